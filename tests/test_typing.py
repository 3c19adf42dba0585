"""The package's names are typed for checkers and IDEs: the lazy top-level exports resolve to
their real classes, so a wrong argument is a type error before anything runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_mypy(snippet: str, tmp_path: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "snippet.py"
    script.write_text(snippet, encoding="utf-8")
    environ = {**os.environ, "MYPYPATH": str(ROOT / "python")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-error-summary",
            "--follow-imports=silent",
            "--cache-dir",
            str(ROOT / ".mypy_cache"),
            str(script),
        ],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.timeout(900)
def test_a_wrong_argument_type_through_a_top_level_name_fails_type_checking(tmp_path: Path) -> None:
    result = run_mypy("from hf_eco2ai import EnergyMeter\nEnergyMeter(rate_hz='fast')\n", tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'Argument "rate_hz" to "EnergyMeter" has incompatible type "str"' in result.stdout


@pytest.mark.timeout(900)
def test_correct_use_of_the_top_level_names_type_checks(tmp_path: Path) -> None:
    snippet = (
        "from hf_eco2ai import CarbonConfig, EnergyMeter\n"
        "meter: EnergyMeter = EnergyMeter(rate_hz=200.0)\n"
        "config: CarbonConfig = CarbonConfig(country_iso_code='FR')\n"
        "print(meter.info(), config.output_dir)\n"
    )
    result = run_mypy(snippet, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
