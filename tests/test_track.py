"""``hf_eco2ai.track``: eco2ai's decorator (its migration example) and a context manager."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf_eco2ai import CarbonConfig, ConfigurationError, EnergyMeter, track
from hf_eco2ai.store.run_store import RunStore
from hf_eco2ai.track_decorator import current_session

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"


def test_the_decorated_function_runs_as_one_tracked_run_per_call(tmp_path: Path) -> None:
    @track(
        project_name="my-project",
        country_iso_code="FR",
        offline=True,
        output_dir=str(tmp_path),
        meter=EnergyMeter(sources="synthetic"),
    )
    def train_model(steps: int) -> str:
        for _ in range(steps):
            time.sleep(0.002)
            current_session().mark_step()
        return "trained"

    assert train_model(12) == "trained"
    report = train_model.carbon_report
    assert report["run"]["project_name"] == "my-project" and report["steps_marked"] == 12
    assert json.loads(train_model.report_paths["json"].read_text())["total_co2_kg"] == report["total_co2_kg"]
    assert current_session() is None


def test_a_second_call_measures_a_fresh_run_from_the_config(tmp_path: Path) -> None:
    @track(config=CarbonConfig(offline=True, country_iso_code="DE", output_dir=str(tmp_path)), report_formats=[])
    def work() -> None:
        time.sleep(0.05)

    work()
    first = work.carbon_report["run"]["run_id"]
    work()
    assert work.carbon_report["run"]["run_id"] != first
    assert work.carbon_report["intensity"]["country"] == "DE" and work.report_paths == {}


def test_the_context_manager_yields_the_session_and_keeps_the_report(tmp_path: Path) -> None:
    tracker = track(
        offline=True,
        country_iso_code="FR",
        output_dir=str(tmp_path),
        store=False,
        meter=EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 50}),
        report_formats=["markdown"],
    )
    with tracker as session:
        time.sleep(0.1)
        assert current_session() is session
    assert tracker.report["energy"]["by_channel"]["synthetic:0"]["mean_watts"] == pytest.approx(50.0, rel=1e-6)
    assert tracker.report_paths["markdown"].read_text().startswith("#")


def test_a_failing_function_still_ends_its_run_and_reraises(tmp_path: Path) -> None:
    @track(offline=True, country_iso_code="FR", output_dir=str(tmp_path))
    def broken() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        broken()
    assert broken.carbon_report["run"]["ended_unix_s"] is not None
    run = RunStore(tmp_path / "runs.sqlite").get_run(broken.carbon_report["run"]["run_id"])
    assert run.status == "failed"


def test_an_unknown_setting_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="country_iso"):
        track(country="FR")


def test_track_stays_the_function_after_its_module_is_imported(tmp_path: Path) -> None:
    script = (
        f"import sys; sys.path.insert(0, {str(PYTHON_DIR)!r})\n"
        "import hf_eco2ai.track_decorator\nimport hf_eco2ai\nfrom hf_eco2ai import track\n"
        "print(track is hf_eco2ai.track_decorator.track, type(track(offline=True, country_iso_code='FR')).__name__)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.split() == ["True", "Tracker"], result.stderr
