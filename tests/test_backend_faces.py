"""Every face logs to other trackers through the same backend classes: the Trainer callback's
wandb_integration/mlflow_integration flags, track(backends=...) and the CarbonTracker API."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import List, Mapping, Sequence

import pytest
from tiny_training import TokenDataset, tiny_bert, training_arguments
from tracking_helpers import synthetic_meter, tensorboard_scalars, wandb_history, wandb_summary

from hf_eco2ai import CarbonConfig, Eco2AICallback, EnergyMeter, track
from hf_eco2ai.integrations.backends import Backend, Metric
from hf_eco2ai.integrations.backends.observer import BackendObserver
from hf_eco2ai.measure import CarbonTracker


def _config(tmp_path: Path) -> CarbonConfig:
    return CarbonConfig(output_dir=str(tmp_path / "carbon"), offline=True, country_iso_code="FR")


def _train(tmp_path: Path, callback: Eco2AICallback) -> None:
    from transformers import Trainer

    trainer = Trainer(
        model=tiny_bert(),
        args=training_arguments(tmp_path / "out", max_steps=10, logging_steps=5),
        train_dataset=TokenDataset(64),
        callbacks=[callback],
    )
    trainer.train()


def test_the_mlflow_flag_logs_into_the_users_active_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as active:
            callback = Eco2AICallback(_config(tmp_path), mlflow_integration=True, meter=synthetic_meter())
            _train(tmp_path, callback)
            report_files = callback.report_paths  # waits until the run's end has reached the observers
        client = mlflow.MlflowClient(uri)
        run = client.get_run(active.info.run_id)
        history = client.get_metric_history(active.info.run_id, "energy/step_joules")
        files = [Path(item.path).name for item in client.list_artifacts(active.info.run_id, "carbon_reports")]
    finally:
        mlflow.set_tracking_uri(None)
    report = callback.get_carbon_report()
    assert [point.step for point in history] == [5, 10] and all(point.value > 0 for point in history)
    assert run.data.metrics["carbon/total_co2_kg"] == pytest.approx(report["total_co2_kg"])
    assert run.data.params["hf_eco2ai/intensity_source"] == "country-table"
    assert run.data.tags["carbon/channels"] == "synthetic:0 (measured, synthetic)"
    assert run.data.tags["hf_eco2ai.run_id"] == report["run"]["run_id"]
    assert sorted(files) == sorted(path.name for path in report_files.values())
    assert f"carbon_report_{report['run']['run_id'][:12]}.json" in files
    assert report["monitoring_errors_total"] == 0


def test_the_wandb_flag_logs_into_the_users_active_run(tmp_path: Path) -> None:
    import wandb

    run = wandb.init(
        mode="offline",
        project="flagged",
        dir=str(tmp_path),
        settings=wandb.Settings(silent=True, console="off", x_disable_stats=True),
    )
    try:
        callback = Eco2AICallback(_config(tmp_path), wandb_integration=True, meter=synthetic_meter())
        _train(tmp_path, callback)
        assert callback.report_paths  # waits until the run's end has reached the observers
        run_dir = Path(run.settings.sync_dir)
    finally:
        run.finish()
    history = wandb_history(run_dir)
    # commit=False: the figures join the run's pending step (here no other logger commits one).
    assert any(row.get("energy/step_joules", 0) > 0 for row in history)
    summary = wandb_summary(run_dir)
    assert summary["carbon/intensity_source"] == "country-table"
    assert summary["carbon/total_kwh"] == pytest.approx(callback.get_carbon_report()["energy"]["total_kwh"])


def test_without_an_active_run_the_flags_log_nothing_and_count_no_error(tmp_path: Path) -> None:
    callback = Eco2AICallback(
        _config(tmp_path), mlflow_integration=True, wandb_integration=True, meter=synthetic_meter()
    )
    _train(tmp_path, callback)
    assert callback.get_carbon_report()["monitoring_errors_total"] == 0


class Failing(Backend):
    name = "failing"

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        raise RuntimeError("backend down")


def test_a_failing_backend_under_a_callback_is_counted_in_the_monitoring_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    observer = BackendObserver(lambda: [Failing()])
    callback = Eco2AICallback(_config(tmp_path), meter=synthetic_meter(), observers=[observer])
    with caplog.at_level(logging.WARNING):
        _train(tmp_path, callback)
        # The backend fails on its own thread, drained by the run's end, which finishes in the
        # background after train() returns.
        assert callback.lifecycle.wait_finished(timeout_s=120)
    failures = observer.orchestrator.stats()["failing"].failures
    assert failures >= 1 and callback.session.monitoring_errors_total == failures
    assert any("tracking backend 'failing' failed" in record.getMessage() for record in caplog.records)


def test_track_sends_each_runs_figures_to_its_backends(tmp_path: Path) -> None:
    log_dir = tmp_path / "tb"

    @track(
        config=_config(tmp_path),
        meter=synthetic_meter(),
        report_formats=[],
        backends=["tensorboard"],
        backend_options={"tensorboard_log_dir": str(log_dir)},
    )
    def work() -> None:
        time.sleep(0.05)

    work()
    scalars = tensorboard_scalars(log_dir)
    assert scalars["carbon/total_kwh"][-1].value == pytest.approx(work.carbon_report["energy"]["total_kwh"], rel=1e-6)


class Recorder(Backend):
    def __init__(self) -> None:
        self.name = "recorder"
        self.metrics: List[Metric] = []
        self.tags: dict = {}

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        self.metrics.extend(metrics)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update(tags)


def test_the_carbon_tracker_sends_each_named_session_and_the_totals(tmp_path: Path) -> None:
    recorder = Recorder()
    tracker = CarbonTracker(project_name="cookbook", config=_config(tmp_path), backends=[recorder], store=False)
    with tracker.start_tracking("training"):
        time.sleep(0.05)
    metrics = tracker.stop_tracking("training")
    names = {m.name: m.value for m in recorder.metrics}
    assert names["session/training/emissions_kg_co2"] == pytest.approx(metrics.emissions_kg_co2)
    assert names["session/training/duration_s"] == pytest.approx(metrics.duration_s)
    assert "carbon/total_co2_kg" in names and recorder.tags["carbon/intensity_source"] == "country-table"


def test_an_unknown_backend_is_refused_by_track_at_once(tmp_path: Path) -> None:
    from hf_eco2ai import ConfigurationError

    with pytest.raises(ConfigurationError, match="backend = 'mlfow' is unknown"):
        track(config=_config(tmp_path), backends=["mlfow"])
    with pytest.raises(ConfigurationError, match="backend = 'mlfow' is unknown"):
        CarbonTracker(config=_config(tmp_path), backends=["mlfow"])


def test_any_meter_is_fine_for_the_observer(tmp_path: Path) -> None:
    recorder = Recorder()
    meter = EnergyMeter(sources="synthetic")
    tracker = track(config=_config(tmp_path), meter=meter, report_formats=[], backends=[recorder])
    with tracker as session:
        session.mark_step()
    assert tracker.report_paths == {}  # reading it waits until the run's end has reached the observers
    assert any(m.name == "carbon/total_kwh" for m in recorder.metrics)
