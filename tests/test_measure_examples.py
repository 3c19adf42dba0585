"""The CarbonTracker API's documented examples (budget loop, baseline, regression check) run as written.

Each runs in a subprocess, offline, on the synthetic 100 W source, in a scratch directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"

pytestmark = pytest.mark.timeout(120)


def _run(example: str, cwd: Path) -> str:
    environ: Dict[str, str] = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HF_ECO2AI_") and name != "CO2_SIGNAL_API_TOKEN"
    }
    environ.update(
        {
            "HF_ECO2AI_OFFLINE": "1",
            "HF_ECO2AI_SOURCES": "synthetic",
            "HF_ECO2AI_COUNTRY_ISO_CODE": "FR",
            "HF_ECO2AI_OUTPUT_DIR": str(cwd / "reports"),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "python"), environ.get("PYTHONPATH")])),
            "PYTHONIOENCODING": "utf-8",
        }
    )
    finished = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    return finished.stdout


def test_budget_loop_example(tmp_path: Path) -> None:
    output = _run("measure_budget.py", tmp_path)
    remaining = float(re.search(r"Budget status: ([\d.]+)% remaining", output).group(1))  # type: ignore[union-attr]
    used_g = float(re.search(r"Used: ([\d.]+) g CO2 of 5 kg", output).group(1))  # type: ignore[union-attr]
    total_g = float(re.search(r"Tracker total: ([\d.]+) g CO2", output).group(1))  # type: ignore[union-attr]
    assert used_g > 0
    assert remaining == pytest.approx(100.0 - used_g / 5000.0 * 100.0, abs=0.05)
    # The runs also cover the moments around each span, so their total is at least the spans'.
    assert used_g <= total_g < used_g * 1.5
    assert (tmp_path / "reports" / "runs.sqlite").exists()


def test_baseline_then_regression_examples(tmp_path: Path) -> None:
    baseline_output = _run("measure_baseline.py", tmp_path)
    assert baseline_output.count("Establishing baseline for") == 4
    baseline = json.loads((tmp_path / "carbon_baseline.json").read_text(encoding="utf-8"))
    assert list(baseline) == ["data_preprocessing", "model_training", "model_evaluation", "hyperparameter_search"]
    for figures in baseline.values():
        assert len(figures["samples"]) == 5 and all(sample > 0 for sample in figures["samples"])
        assert float(figures["mean_emissions_g"]) == pytest.approx(sum(figures["samples"]) / 5)
    # 0.2 s of training against 0.02 s of preprocessing at the same power.
    assert float(baseline["model_training"]["mean_emissions_g"]) > 2.5 * float(
        baseline["data_preprocessing"]["mean_emissions_g"]
    )

    output = _run("measure_regression.py", tmp_path)
    assert "✅ model_training:" in output
    assert "CARBON REGRESSION ALERT" in output and "Workload: model_evaluation" in output
    increase = float(re.search(r"Current: [\d.]+g CO2 \(\+([\d.]+)%\)", output).group(1))  # type: ignore[union-attr]
    assert 50.0 < increase < 400.0
