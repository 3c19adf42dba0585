# The two commands of the README. Each sets itself up on a fresh machine that has Python 3.9+ and a
# Rust toolchain: it creates .venv if missing, installs with pip (which builds the Rust extension
# through maturin), then runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test test-rust test-python install system-deps bench lint clean nvml-emulator

# The NVML emulator the tests load as libnvidia-ml.so.1 (tests/nvml_emulator.py), so every NVML
# test runs on every machine, GPU or not.
NVML_EMULATOR_DIR := target/nvml-emulator

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

nvml-emulator:
	cargo build --quiet --release -p nvml-emulator
	mkdir -p $(NVML_EMULATOR_DIR)
	cp target/release/libnvml_emulator.so $(NVML_EMULATOR_DIR)/libnvidia-ml.so.1

test-rust:
	cargo test --quiet --workspace

test-python: install system-deps nvml-emulator
	HF_ECO2AI_NVML_EMULATOR_DIR=$(abspath $(NVML_EMULATOR_DIR)) $(PY) -m pytest -q

test: lint test-rust test-python

bench: install
	$(PY) benches/run_all.py

# Rust: rustfmt and clippy; Python: ruff (lint and format) and mypy on the package.
lint: install
	$(PY) -m ruff check python tests benches examples scripts
	$(PY) -m ruff format --check python tests benches examples scripts
	$(PY) -m mypy
	cargo fmt --all --check
	cargo clippy --all-targets --features python -- -D warnings
	cargo clippy --all-targets -p nvml-emulator -- -D warnings

clean:
	rm -rf target $(VENV) python/hf_eco2ai/_core*.so
