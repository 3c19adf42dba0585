"""Every benchmark still runs: each in its short mode, as ``benches/run_all.py --smoke`` runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benches"))
from run_all import benchmark_commands  # noqa: E402


def _name(command: List[str]) -> str:
    return Path(command[1]).stem if command[0] == sys.executable else "cargo-bench-sampler"


SMOKE_COMMANDS = benchmark_commands(smoke=True)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("command", SMOKE_COMMANDS, ids=[_name(command) for command in SMOKE_COMMANDS])
def test_each_benchmark_runs_in_its_short_mode(command: List[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=590)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert result.stdout.strip(), "a benchmark prints its figures"


def test_every_python_benchmark_is_run() -> None:
    scripts = {path.stem for path in (ROOT / "benches").glob("bench_*.py")}
    assert scripts <= {_name(command) for command in SMOKE_COMMANDS}
