"""Each backend round-tripped through its own library's reader, with the run's energy and carbon
figures and their provenance arriving next to the user's metrics."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Dict

import pytest
from tracking_helpers import synthetic_meter, tensorboard_scalars, wandb_history, wandb_summary

from hf_eco2ai import CarbonConfig, ConfigurationError
from hf_eco2ai.integrations.backends import Backend, BackendRun, Orchestrator, create_backend
from hf_eco2ai.integrations.backends import base as backends_base
from hf_eco2ai.integrations.backends.mlflow_backend import MlflowBackend
from hf_eco2ai.store.run_store import RunStore
from hf_eco2ai.tracking import Experiment, TraceletSettings

STEPS = 300


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    """One experiment logged to all four backends at once."""
    out = tmp_path_factory.mktemp("tracked")
    experiment = Experiment(
        "round-trip",
        backend=["local", "mlflow", "wandb", "tensorboard"],
        project="energy-roundtrip",
        settings=TraceletSettings(metrics_interval=0.05),
        options={"mlflow_tracking_uri": f"sqlite:///{out}/mlflow.db", "wandb_mode": "offline"},
        carbon_config=CarbonConfig(offline=True, country_iso_code="FR", output_dir=str(out)),
        meter=synthetic_meter(120.0),
    )
    experiment.start()
    experiment.log_params({"learning_rate": 0.01, "optimizer": "adamw"})
    for step in range(STEPS):
        experiment.set_iteration(step)
        experiment.log_metric("loss", 1.0 / (step + 1))
    stats = experiment.stop()
    backends = {backend.name: backend for backend in experiment.backends}
    return {"experiment": experiment, "stats": stats, "backends": backends, "out": out}


def test_every_backend_received_every_metric_without_failures(tracked: Dict[str, Any]) -> None:
    for name, stats in tracked["stats"].items():
        assert stats.failures == 0 and stats.dropped == 0 and stats.queued == 0, name
        assert stats.delivered > STEPS, name  # the user's metrics plus the energy figures


def test_mlflow_holds_the_metric_history_energy_figures_params_and_provenance(tracked: Dict[str, Any]) -> None:
    import mlflow

    backend = tracked["backends"]["mlflow"]
    client = mlflow.MlflowClient(tracking_uri=backend.tracking_uri)
    history = client.get_metric_history(backend.run_id, "loss")
    assert [point.step for point in history] == list(range(STEPS))
    assert history[-1].value == pytest.approx(1.0 / STEPS)
    run = client.get_run(backend.run_id)
    report = tracked["experiment"].carbon_report
    assert run.data.metrics["carbon/total_co2_kg"] == pytest.approx(report["total_co2_kg"])
    assert run.data.metrics["carbon/total_kwh"] == pytest.approx(report["energy"]["total_kwh"])
    assert client.get_metric_history(backend.run_id, "energy/step_joules")
    assert run.data.params["learning_rate"] == "0.01"
    assert run.data.params["hf_eco2ai/intensity_source"] == "country-table"
    assert run.data.tags["carbon/intensity_source"] == "country-table"
    assert run.data.tags["carbon/channels"] == "synthetic:0 (measured, synthetic)"
    assert run.data.tags["hf_eco2ai.run_id"] == tracked["experiment"].run_id
    assert run.info.status == "FINISHED" and run.info.run_name == "round-trip"


def test_wandb_offline_run_holds_the_metrics_config_and_provenance(tracked: Dict[str, Any]) -> None:
    backend = tracked["backends"]["wandb"]
    history = wandb_history(backend.run_dir)
    losses = [(row["iteration"], row["loss"]) for row in history if "loss" in row]
    assert [step for step, _ in losses] == list(range(STEPS))
    assert losses[0][1] == pytest.approx(1.0)
    assert any("energy/total_kwh" in row for row in history)
    summary = wandb_summary(backend.run_dir)
    assert summary["carbon/intensity_source"] == "country-table"
    assert summary["carbon/total_co2_kg"] == pytest.approx(tracked["experiment"].carbon_report["total_co2_kg"])
    assert backend.run.config["learning_rate"] == 0.01


def test_tensorboard_event_files_hold_every_point_after_stop(tracked: Dict[str, Any]) -> None:
    scalars = tensorboard_scalars(tracked["backends"]["tensorboard"].log_dir)
    assert [event.step for event in scalars["loss"]] == list(range(STEPS))
    assert scalars["carbon/total_kwh"][-1].value == pytest.approx(
        tracked["experiment"].carbon_report["energy"]["total_kwh"], rel=1e-6
    )
    assert "energy/interval_joules" in scalars


def test_the_local_store_holds_the_metrics_params_and_tags_beside_the_measured_run(tracked: Dict[str, Any]) -> None:
    store = RunStore(Path(tracked["out"]) / "runs.sqlite")
    experiment = tracked["experiment"]
    run = store.get_run(experiment.run_id)
    assert run.status == "finished" and run.project_name == "energy-roundtrip"
    rows = store.logs(experiment.run_id)
    losses = [(row["step"], row["loss"]) for row in rows if "loss" in row]
    assert [step for step, _ in losses] == list(range(STEPS))
    assert any(row.get("param/learning_rate") == 0.01 for row in rows)
    assert any(row.get("tag/carbon/intensity_source") == "country-table" for row in rows)
    assert store.report(experiment.run_id)["total_co2_kg"] == pytest.approx(experiment.carbon_report["total_co2_kg"])


def test_a_file_store_without_the_opt_in_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ConfigurationError, match="MLFLOW_ALLOW_FILE_STORE=true"):
        MlflowBackend(str(tmp_path / "mlruns"))
    with pytest.raises(ConfigurationError, match="sqlite:///"):
        MlflowBackend((tmp_path / "mlruns").as_uri())


def test_the_file_store_works_once_opted_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = (tmp_path / "mlruns").as_uri()
    backend = MlflowBackend(uri)
    orchestrator = Orchestrator([backend]).start(BackendRun("file-store", "p", "id", tmp_path))
    for step in range(2500):
        orchestrator.log_metric("loss", float(step), step)
    assert orchestrator.stop()["mlflow"].delivered == 2500
    history = mlflow.MlflowClient(tracking_uri=uri).get_metric_history(backend.run_id, "loss")
    assert sorted(point.step for point in history) == list(range(2500))


def test_the_active_mlflow_run_is_adopted_on_the_callers_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)  # MLflow's default experiment keeps artifacts in ./mlruns

    uri = f"sqlite:///{tmp_path}/adopted.db"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as active:
            backend = MlflowBackend(active_run=True)
            orchestrator = Orchestrator([backend]).start(BackendRun("adopted", "p", "id", tmp_path))
            orchestrator.log_metric("energy/step_joules", 2.5, 3)
            orchestrator.stop()
        run = mlflow.MlflowClient(uri).get_run(active.info.run_id)
    finally:
        mlflow.set_tracking_uri(None)
    assert backend.run_id == active.info.run_id
    assert run.data.metrics["energy/step_joules"] == 2.5 and run.info.status == "FINISHED"


@pytest.mark.parametrize("name, module", [("mlflow", "mlflow"), ("wandb", "wandb")])
def test_a_missing_library_gets_an_error_naming_the_pip_extra(
    name: str, module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        backends_base.importlib.util,
        "find_spec",
        lambda candidate, *args: None if candidate == module else real_find_spec(candidate, *args),
    )
    with pytest.raises(ConfigurationError, match=r"pip install 'hf-eco2ai\[tracking\]'") as raised:
        create_backend(name, {}, tmp_path)
    assert repr(module) in str(raised.value)


def test_an_unknown_backend_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="'local', 'mlflow', 'wandb', 'tensorboard'"):
        create_backend("neptune-typo", {}, tmp_path)


def test_backends_are_plain_classes_free_of_any_training_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import hf_eco2ai.integrations.backends as b; import hf_eco2ai.tracking; "
        "print(sorted(m for m in ('torch', 'transformers', 'lightning', 'mlflow', 'wandb') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert done.stdout.strip() == "[]"
    assert issubclass(MlflowBackend, Backend)


def test_tensorboard_points_are_on_disk_after_a_flush_before_the_run_stops(tmp_path: Path) -> None:
    from hf_eco2ai.integrations.backends.tensorboard_backend import TensorBoardBackend

    backend = TensorBoardBackend(str(tmp_path / "tb"))
    orchestrator = Orchestrator([backend]).start(BackendRun("flushed", "p", "id", tmp_path))
    for step in range(50):
        orchestrator.log_metric("loss", float(step), step)
    assert orchestrator.flush(timeout_s=30)
    assert [event.step for event in tensorboard_scalars(tmp_path / "tb")["loss"]] == list(range(50))
    orchestrator.stop()
