"""The demos run end to end as `make demo` runs them, shortened: training, figures, report files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("demo", ["hf_trainer_demo.py", "lightning_demo.py"])
def test_each_demo_trains_and_prints_its_energy_and_reports(demo: str, tmp_path: Path) -> None:
    environ = {name: value for name, value in os.environ.items() if not name.startswith("HF_ECO2AI_")}
    # Offline: the demo's grid comes from the packaged tables; no request leaves this machine.
    environ["HF_ECO2AI_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / demo), "--seconds", "4", "--output-dir", str(tmp_path)],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "CO2e" in result.stdout
    assert list(tmp_path.glob("carbon_report_*.json")), result.stdout[-2000:]
