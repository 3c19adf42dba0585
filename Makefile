# The two commands of the README. Each sets itself up on a fresh machine that has Python 3.9+ and a
# Rust toolchain: it creates .venv if missing, installs with pip (which builds the Rust extension
# through maturin), then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test test-rust test-python install system-deps bench lint clean

$(VENV)/.deps-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]' maturin
	touch $@

# Rebuilds the extension from the current Rust sources (incremental, seconds when nothing changed).
install: $(VENV)/.deps-installed
	$(PIP) install -q --no-deps --no-build-isolation -e .

# Debian packages that the tests drive for real: prometheus (with promtool) and chromium.
system-deps:
	@bash scripts/install_system_deps.sh

demo: install
	$(PY) examples/hf_trainer_demo.py

test-rust:
	cargo test --quiet

test-python: install system-deps
	$(PY) -m pytest -q

test: lint test-rust test-python

bench: install
	$(PY) benches/run_all.py

lint:
	cargo fmt --check
	cargo clippy --all-targets --features python -- -D warnings

clean:
	rm -rf target $(VENV) python/hf_eco2ai/_core*.so
