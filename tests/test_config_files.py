"""Bad configuration files: every one is a ConfigurationError that names the file and the fix, fast."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from hf_eco2ai import CarbonConfig, ConfigurationError
from hf_eco2ai.config import CONFIG_FILE_NAME
from hf_eco2ai.safe_yaml import MAX_CONFIG_FILE_BYTES

pytestmark = pytest.mark.timeout(60)

ALIAS_BOMB = textwrap.dedent("""\
    carbon:
      country_iso_code:
        - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
        - &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
        - &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
        - &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
        - &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
        - &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
        - &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
        - &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
        - &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    """)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for name in list(os.environ):
        if name.startswith("HF_ECO2AI_") or name == "CO2_SIGNAL_API_TOKEN":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def _write(directory: Path, content: bytes) -> Path:
    path = directory / CONFIG_FILE_NAME
    path.write_bytes(content)
    return path


def _error_for(path: Path) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as caught:
        CarbonConfig(config_file=path)
    assert str(path) in str(caught.value)
    assert caught.value.__cause__ is None
    return caught.value


def test_latin_1_file_is_a_configuration_error_asking_for_utf_8(clean_env: Path) -> None:
    error = _error_for(_write(clean_env, "tracking:\n  project_name: caf\xe9\n".encode("latin-1")))
    assert "UTF-8" in str(error) and "line 2" in str(error)


def test_twenty_thousand_nested_brackets_are_a_configuration_error(clean_env: Path) -> None:
    error = _error_for(_write(clean_env, b"carbon: " + b"[" * 20_000 + b"]" * 20_000 + b"\n"))
    assert "nested" in str(error)


def test_alias_bomb_is_refused_quickly_with_a_short_message(clean_env: Path) -> None:
    # In a child with a 512 MiB address-space cap: expanding the bomb would take about 1 GB.
    path = _write(clean_env, ALIAS_BOMB.encode())
    child = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({512 * 2**20}, {512 * 2**20}))
        from hf_eco2ai import CarbonConfig, ConfigurationError
        try:
            CarbonConfig(config_file={str(path)!r})
        except ConfigurationError as error:
            print(len(str(error)))
            print(str(error))
            sys.exit(0)
        sys.exit(3)
    """)
    finished = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=30, env=dict(os.environ)
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    length, message = finished.stdout.split("\n", 1)
    assert int(length) < 500
    assert "alias" in message


def test_oversized_file_is_refused_naming_the_limit(clean_env: Path) -> None:
    padding = b"# " + b"x" * 100 + b"\n"
    error = _error_for(_write(clean_env, b"carbon:\n" + padding * (MAX_CONFIG_FILE_BYTES // len(padding) + 1)))
    assert f"{MAX_CONFIG_FILE_BYTES}" in str(error)


def test_unquoted_no_as_a_country_hints_at_quoting(clean_env: Path) -> None:
    error = _error_for(_write(clean_env, b"carbon:\n  country_iso_code: NO\n"))
    assert "country_iso_code" in str(error)
    assert "quote" in str(error) and "'NO'" in str(error)


def test_quoted_no_is_norway(clean_env: Path) -> None:
    path = _write(clean_env, b"carbon:\n  country_iso_code: 'NO'\n")
    assert CarbonConfig(config_file=path).country_iso_code == "NO"


def test_duplicate_key_is_refused_naming_it_and_both_lines(clean_env: Path) -> None:
    error = _error_for(_write(clean_env, b"carbon:\n  country_iso_code: FR\n  country_iso_code: DE\n"))
    assert "country_iso_code" in str(error) and "line 2" in str(error) and "line 3" in str(error)


def test_duplicate_section_is_refused(clean_env: Path) -> None:
    error = _error_for(_write(clean_env, b"carbon:\n  country_iso_code: FR\ncarbon:\n  region: CA\n"))
    assert "duplicate" in str(error) and "carbon" in str(error)


def test_long_invalid_value_is_shortened_in_the_message(clean_env: Path) -> None:
    error = _error_for(_write(clean_env, b"carbon:\n  pue: " + b"9" * 5000 + b"x\n"))
    assert len(str(error)) < 600
    assert "pue" in str(error)


def test_ordinary_file_still_loads(clean_env: Path) -> None:
    path = _write(clean_env, b"carbon:\n  country_iso_code: FR\n  pue: 1.2\n")
    config = CarbonConfig(config_file=path)
    assert (config.country_iso_code, config.pue) == ("FR", 1.2)
