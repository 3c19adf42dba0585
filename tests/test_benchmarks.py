"""Every benchmark still runs: each in its short mode, as ``benches/run_all.py --smoke`` runs it."""

from __future__ import annotations

import shutil
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


def test_the_gpu_check_says_there_is_no_gpu_and_exits_2(tmp_path: Path) -> None:
    # A PATH without nvidia-smi: the machine has no NVIDIA driver.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "date", "mkdir"):
        (bin_dir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
    result = subprocess.run(
        ["/bin/bash", str(ROOT / "benches" / "gpu_check.sh"), str(tmp_path / "out")],
        env={"PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no NVIDIA GPU" in result.stderr
