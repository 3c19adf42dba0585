"""The run lifecycle every adapter shares: observers, failing report files, one meter per run."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping

import pytest
from tiny_training import TokenDataset, tiny_bert, training_arguments
from transformers import Trainer

from hf_eco2ai import CarbonConfig, ConfigurationError, Eco2AICallback, EnergyMeter, TrackingSession, track
from hf_eco2ai.store import RunStore


class RecordingObserver:
    def __init__(self) -> None:
        self.events: List[str] = []
        self.logged_steps: List[int] = []
        self.final: Dict[str, Any] = {}

    def on_run_start(self, session: TrackingSession) -> None:
        self.events.append("start")

    def on_log(self, figures: Mapping[str, float], step: int) -> None:
        self.events.append("log")
        self.logged_steps.append(step)

    def on_run_end(self, report: Mapping[str, Any], report_paths: Mapping[str, Path]) -> None:
        self.events.append("end")
        self.final = {"co2": report["total_co2_kg"], "paths": dict(report_paths)}


class BrokenObserver:
    def on_run_start(self, session: TrackingSession) -> None:
        raise RuntimeError("tracker down")

    def on_log(self, figures: Mapping[str, float], step: int) -> None:
        raise RuntimeError("tracker down")

    def on_run_end(self, report: Mapping[str, Any], report_paths: Mapping[str, Path]) -> None:
        raise RuntimeError("tracker down")


def synthetic_meter() -> EnergyMeter:
    return EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 50.0})


def run_trainer(tmp_path: Path, callback: Eco2AICallback, max_steps: int = 12) -> Trainer:
    trainer = Trainer(
        model=tiny_bert(),
        args=training_arguments(tmp_path / "out", max_steps=max_steps),
        train_dataset=TokenDataset(64),
        callbacks=[callback],
    )
    trainer.train()
    return trainer


def test_observers_follow_the_run_from_start_to_the_final_report(tmp_path: Path) -> None:
    observer = RecordingObserver()
    callback = Eco2AICallback(
        CarbonConfig(output_dir=str(tmp_path / "c"), offline=True, country_iso_code="FR"),
        meter=synthetic_meter(),
        observers=[observer],
    )
    trainer = run_trainer(tmp_path, callback)
    paths = callback.report_paths  # the run's end finishes in the background; this waits for it
    logged_by_trainer = [entry["step"] for entry in trainer.state.log_history if "carbon/co2_kg" in entry]
    assert observer.events[0] == "start" and observer.events[-1] == "end"
    assert observer.logged_steps == logged_by_trainer
    assert observer.final["co2"] == callback.get_carbon_report()["total_co2_kg"]
    assert observer.final["paths"] == paths and paths["json"].is_file()


def test_an_observer_failing_on_every_call_costs_one_warning_per_call_kind_and_a_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    healthy = RecordingObserver()
    callback = Eco2AICallback(
        CarbonConfig(output_dir=str(tmp_path / "c"), offline=True, country_iso_code="FR"),
        meter=synthetic_meter(),
        observers=[BrokenObserver(), healthy],
    )
    with caplog.at_level(logging.WARNING, logger="hf_eco2ai"):
        trainer = run_trainer(tmp_path, callback)
        assert callback.report_paths  # waits for the run's end, whose on_run_end fails too
    assert trainer.state.global_step == 12
    assert healthy.events[-1] == "end", "a failing observer must not keep the others from their calls"
    failures = [record.getMessage() for record in caplog.records if "BrokenObserver" in record.getMessage()]
    assert len(failures) == 1 and "tracker down" in failures[0]
    errors = callback.session.snapshot().monitoring_errors_by_type
    assert errors["observer-BrokenObserver"] >= 3


def test_unwritable_report_files_warn_naming_the_directory_and_training_ends_normally(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the report directory should be")
    output_dir = blocker / "reports"
    store_path = tmp_path / "runs.sqlite"
    callback = Eco2AICallback(
        CarbonConfig(output_dir=str(output_dir), offline=True, country_iso_code="FR"),
        meter=synthetic_meter(),
        store=store_path,
    )
    with caplog.at_level(logging.WARNING, logger="hf_eco2ai"):
        trainer = run_trainer(tmp_path, callback)
    assert trainer.state.global_step == 12
    assert callback.report_paths == {}
    assert any(str(output_dir) in record.getMessage() for record in caplog.records)
    report = callback.get_carbon_report()
    assert any(warning["code"] == "report-files-failed" for warning in report["warnings"])
    stored = RunStore(store_path).report(report["run"]["run_id"])
    assert stored is not None and stored["total_co2_kg"] == pytest.approx(report["total_co2_kg"])


def test_a_tracked_function_keeps_its_return_value_when_its_reports_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    @track(output_dir=str(blocker / "reports"), offline=True, country_iso_code="FR", store=tmp_path / "runs.sqlite")
    def work() -> str:
        return "result"

    assert work() == "result"
    assert work.report_paths == {} and work.carbon_report["total_co2_kg"] >= 0


def test_a_meter_measures_one_run_and_a_second_session_on_it_is_refused_naming_the_fix(tmp_path: Path) -> None:
    meter = synthetic_meter()
    config = CarbonConfig(output_dir=str(tmp_path), offline=True, country_iso_code="FR")
    with TrackingSession(config, meter=meter, store=False):
        pass
    with pytest.raises(ConfigurationError, match="pass a new EnergyMeter for each run"):
        TrackingSession(config, meter=meter, store=False)


def test_a_callback_given_a_meter_refuses_a_second_train_but_builds_its_own_without_one(tmp_path: Path) -> None:
    config = CarbonConfig(output_dir=str(tmp_path / "c"), offline=True, country_iso_code="FR", sources=["synthetic"])
    with_meter = Eco2AICallback(config, meter=synthetic_meter())
    run_trainer(tmp_path / "a", with_meter, max_steps=3)
    with pytest.raises(ConfigurationError, match="already measured an earlier run"):
        run_trainer(tmp_path / "b", with_meter, max_steps=3)
    without_meter = Eco2AICallback(config)
    first = (
        run_trainer(tmp_path / "c", without_meter, max_steps=3),
        without_meter.get_carbon_report()["run"]["run_id"],
    )
    run_trainer(tmp_path / "d", without_meter, max_steps=3)
    assert without_meter.get_carbon_report()["run"]["run_id"] != first[1]


def test_phase_windows_open_forward_backward_and_optimizer_windows_in_every_step(tmp_path: Path) -> None:
    callback = Eco2AICallback(
        CarbonConfig(output_dir=str(tmp_path / "c"), offline=True, country_iso_code="FR"),
        meter=synthetic_meter(),
        phase_windows=True,
    )
    run_trainer(tmp_path, callback, max_steps=6)
    counts = {window["name"]: window["count"] for window in callback.get_carbon_report()["windows"]}
    assert counts["forward"] >= 6 and counts["optimizer"] == 6 and counts["backward"] >= 6


def test_without_phase_windows_no_phase_window_is_recorded(tmp_path: Path) -> None:
    callback = Eco2AICallback(
        CarbonConfig(output_dir=str(tmp_path / "c"), offline=True, country_iso_code="FR"), meter=synthetic_meter()
    )
    run_trainer(tmp_path, callback, max_steps=3)
    assert not {"forward", "backward", "optimizer"} & {w["name"] for w in callback.get_carbon_report()["windows"]}


class StopThreadObserver(RecordingObserver):
    """Records on which thread the session's last drain and report were built."""

    def __init__(self) -> None:
        super().__init__()
        self.stop_threads: List[threading.Thread] = []

    def on_run_start(self, session: TrackingSession) -> None:
        super().on_run_start(session)
        plain_stop = session.stop

        def recording_stop(*args: Any, **kwargs: Any) -> Dict[str, Any]:
            self.stop_threads.append(threading.current_thread())
            return plain_stop(*args, **kwargs)

        session.stop = recording_stop  # type: ignore[method-assign]


def test_train_end_stops_the_meter_and_leaves_the_last_drain_and_the_report_to_a_background_thread(
    tmp_path: Path,
) -> None:
    observer = StopThreadObserver()
    callback = Eco2AICallback(
        CarbonConfig(output_dir=str(tmp_path / "c"), offline=True, country_iso_code="FR"),
        meter=synthetic_meter(),
        observers=[observer],
    )
    run_trainer(tmp_path, callback)
    returned_unix_s = time.time()
    assert callback.session is not None and not callback.session.running, "the meter stops before train() returns"
    report = callback.get_carbon_report()  # waits for the background build
    assert observer.stop_threads and all(thread is not threading.main_thread() for thread in observer.stop_threads)
    assert report["training"]["global_step_end"] == 12 and report["training"]["optimizer_steps"] == 12
    assert report["run"]["ended_unix_s"] <= returned_unix_s, "the run's energy ends at train end, not when built"
    assert report["steps_marked"] == 12
    assert observer.events[-1] == "end" and callback.report_paths["json"].is_file()


def test_a_failure_building_the_report_in_the_background_is_raised_by_get_carbon_report(tmp_path: Path) -> None:
    class FailingStop(RecordingObserver):
        def on_run_start(self, session: TrackingSession) -> None:
            def failing_stop(*args: Any, **kwargs: Any) -> Dict[str, Any]:
                raise OSError("disk gone")

            session.stop = failing_stop  # type: ignore[method-assign]

    callback = Eco2AICallback(
        CarbonConfig(output_dir=str(tmp_path / "c"), offline=True, country_iso_code="FR"),
        meter=synthetic_meter(),
        observers=[FailingStop()],
    )
    trainer = run_trainer(tmp_path, callback)
    assert trainer.state.global_step == 12, "training ends normally"
    with pytest.raises(OSError, match="disk gone"):
        callback.get_carbon_report()
