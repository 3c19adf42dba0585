"""The Tracelet API at hf_eco2ai.tracking: module functions, Experiment, settings, exceptions,
automagic, artifacts with checksums, plugins, and the documented usage examples as written."""

from __future__ import annotations

import logging
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Sequence

import pytest
from local_servers import clean_carbon_env  # noqa: F401
from tracking_helpers import synthetic_meter, tensorboard_scalars

import hf_eco2ai
import hf_eco2ai.tracking as tracelet
from hf_eco2ai import CarbonConfig
from hf_eco2ai.integrations.backends import Backend, BackendRun, Metric
from hf_eco2ai.store.run_store import RunStore
from hf_eco2ai.tracking import (
    ArtifactChecksumError,
    ArtifactType,
    BackendError,
    ConfigurationError,
    Experiment,
    ExperimentConfig,
    TraceletException,
    TraceletSettings,
)


class Recorder(Backend):
    """A backend that keeps what it receives, for checking what the face routes."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.metrics: List[Metric] = []
        self.params: Dict[str, Any] = {}
        self.tags: Dict[str, str] = {}
        self.run: Any = None

    def start(self, run: BackendRun) -> None:
        self.run = run

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        self.metrics.extend(metrics)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.params.update(params)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.tags.update(tags)


class Broken(Backend):
    name = "broken"

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        raise ConnectionError("tracking server unreachable")


@pytest.fixture
def carbon(tmp_path: Path) -> CarbonConfig:
    return CarbonConfig(offline=True, country_iso_code="FR", output_dir=str(tmp_path))


@pytest.fixture(scope="module")
def mlflow_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow database for the module's examples (each logs to its own MLflow experiment):
    creating a database costs seconds."""
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def env(clean_carbon_env: Path, mlflow_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:  # noqa: F811
    """A clean working directory with the settings the documented examples rely on set in the
    environment: offline carbon figures for Sweden, MLflow in a sqlite file, W&B offline.
    Yields the folder holding MLflow's database."""
    for name in [n for n in __import__("os").environ if n.startswith(("TRACELET_", "MLFLOW_", "WANDB_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HF_ECO2AI_OFFLINE", "true")
    monkeypatch.setenv("HF_ECO2AI_COUNTRY_ISO_CODE", "SE")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_folder}/mlflow.db")
    monkeypatch.setenv("WANDB_MODE", "offline")
    yield mlflow_folder
    if tracelet.get_active_experiment() is not None:
        tracelet.stop_logging()


def _mlflow_run(path: Path, experiment_name: str) -> Any:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}/mlflow.db")
    experiment = client.get_experiment_by_name(experiment_name)
    [run] = client.search_runs([experiment.experiment_id])
    return client, run


# The documented usage examples, run as written (``import tracelet`` is ``hf_eco2ai.tracking``).


def test_the_basic_usage_example_runs_as_written(env: Path) -> None:
    Path("model.pth").write_bytes(b"weights")
    example = textwrap.dedent("""
        import hf_eco2ai.tracking as tracelet
        from torch.utils.tensorboard import SummaryWriter

        # Start experiment tracking
        experiment = tracelet.start_logging(
            exp_name="my_experiment",
            project="my_project",
            backend="mlflow"
        )

        # Use TensorBoard normally - metrics automatically captured
        writer = SummaryWriter()
        writer.add_scalar('loss', 0.5, 0)
        writer.add_scalar('accuracy', 0.95, 0)

        # Direct API usage
        experiment.log_params({
            "learning_rate": 0.01,
            "batch_size": 32
        })

        experiment.log_artifact("model.pth")

        # Stop tracking
        tracelet.stop_logging()
    """)
    namespace: Dict[str, Any] = {}
    exec(compile(example, "basic_usage.py", "exec"), namespace)
    namespace["writer"].close()

    client, run = _mlflow_run(env, "my_project")
    assert [(p.step, p.value) for p in client.get_metric_history(run.info.run_id, "loss")] == [(0, 0.5)]
    assert [(p.step, p.value) for p in client.get_metric_history(run.info.run_id, "accuracy")] == [(0, 0.95)]
    assert run.data.params["learning_rate"] == "0.01" and run.data.params["batch_size"] == "32"
    assert "carbon/total_co2_kg" in run.data.metrics
    listed = client.list_artifacts(run.info.run_id, "artifacts/model.pth/v1")
    assert sorted(Path(item.path).name for item in listed) == ["manifest.json", "model.pth"]
    assert tracelet.get_active_experiment() is None


def test_the_advanced_configuration_example_runs_with_its_backends(env: Path, capsys: pytest.CaptureFixture) -> None:
    # As written except the tracking server address: MLflow writes to a sqlite file here.
    example = textwrap.dedent(f"""
        import hf_eco2ai.tracking as tracelet

        # Multi-backend logging with custom configuration
        experiment = tracelet.start_logging(
            exp_name="advanced_experiment",
            project="research_project",
            backend=["mlflow", "wandb"],
            config={{
                "track_system": True,
                "track_git": True,
                "track_env": True,
                "metrics_interval": 10.0,
                "mlflow_tracking_uri": "sqlite:///{env}/mlflow.db",
                "wandb_project": "my-wandb-project"
            }}
        )

        # Get current experiment for direct manipulation
        current_exp = tracelet.get_active_experiment()
        print(f"Experiment ID: {{current_exp.experiment_id}}")
        print(f"Active backends: {{[b.name for b in current_exp.backends]}}")
    """)
    namespace: Dict[str, Any] = {}
    exec(compile(example, "advanced.py", "exec"), namespace)
    experiment = namespace["experiment"]
    printed = capsys.readouterr().out
    assert f"Experiment ID: {experiment.id}" in printed
    assert "Active backends: ['mlflow', 'wandb']" in printed
    stats = tracelet.stop_logging()
    assert stats is not None and all(s.failures == 0 for s in stats.values())
    assert experiment.backends[1].run.project == "my-wandb-project"
    _, run = _mlflow_run(env, "research_project")
    assert run.data.params["env/hf_eco2ai"] == hf_eco2ai.__version__


def test_the_context_manager_example_runs_as_written(env: Path) -> None:
    losses = iter([0.9, 0.7, 0.6, 0.5, 0.45, 0.4, 0.38, 0.36, 0.35, 0.34])
    example = textwrap.dedent("""
        import hf_eco2ai.tracking as tracelet

        # Use as context manager for automatic cleanup
        with tracelet.start_logging("context_experiment", backend="mlflow") as exp:
            # Training code here
            for epoch in range(10):
                loss = train_epoch()
                exp.log_metric("loss", loss, epoch)

            # Experiment automatically closed when exiting context
    """)
    exec(compile(example, "context.py", "exec"), {"train_epoch": lambda: next(losses)})
    client, run = _mlflow_run(env, "default")
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [p.step for p in history] == list(range(10)) and history[-1].value == pytest.approx(0.34)
    assert run.info.status == "FINISHED" and tracelet.get_active_experiment() is None


# Module functions and the Experiment -----------------------------------------------------------


def test_start_logging_makes_one_experiment_active_until_stop_logging(env: Path) -> None:
    experiment = tracelet.start_logging("first", backend="local")
    assert tracelet.get_active_experiment() is experiment and experiment.running
    with pytest.raises(ConfigurationError, match="stop_logging"):
        tracelet.start_logging("second", backend="local")
    tracelet.stop_logging()
    assert tracelet.get_active_experiment() is None and not experiment.running
    assert tracelet.stop_logging() is None


def test_experiment_properties_are_the_documented_ones(carbon: CarbonConfig) -> None:
    experiment = Experiment(
        "props", backend=[Recorder()], tags=["baseline", "cpu"], carbon_config=carbon, meter=synthetic_meter()
    )
    assert experiment.name == "props" and experiment.tags == ["baseline", "cpu"]
    assert len(experiment.id) == 32 and experiment.experiment_id == experiment.id
    assert experiment.created_at.tzinfo is not None and experiment.iteration == 0
    with experiment:
        experiment.set_iteration(7)
        assert experiment.iteration == 7
    assert experiment.end() == experiment.backend_stats()


def test_set_iteration_marks_one_energy_step_per_iteration(carbon: CarbonConfig) -> None:
    recorder = Recorder()
    with Experiment(
        "steps",
        backend=[recorder],
        carbon_config=carbon,
        meter=synthetic_meter(),
        settings=TraceletSettings(metrics_interval=0.02),
    ) as experiment:
        for iteration in range(1, 21):
            time.sleep(0.005)
            experiment.set_iteration(iteration)
            experiment.log_metric("loss", 1.0 / iteration)
    assert experiment.carbon_report["steps_marked"] == 20
    step_joules = [m for m in recorder.metrics if m.name == "energy/step_joules"]
    assert all(m.value >= 0 and m.source == "energy" for m in step_joules)
    assert any(m.value > 0 for m in step_joules)
    assert [m.step for m in recorder.metrics if m.name == "loss"] == list(range(1, 21))
    assert recorder.tags["carbon/intensity_source"] == "country-table"
    assert recorder.params["hf_eco2ai/run_id"] == experiment.run_id


def test_log_hyperparameter_is_log_params_of_one(carbon: CarbonConfig) -> None:
    recorder = Recorder()
    with Experiment("hp", backend=[recorder], carbon_config=carbon, meter=synthetic_meter()) as experiment:
        experiment.log_hyperparameter("dropout", 0.1)
    assert recorder.params["dropout"] == 0.1 and experiment.params == {"dropout": 0.1}


def test_logging_outside_a_running_experiment_is_a_configuration_error(carbon: CarbonConfig) -> None:
    experiment = Experiment("idle", backend=[Recorder()], carbon_config=carbon, meter=synthetic_meter())
    with pytest.raises(ConfigurationError, match="call start"):
        experiment.log_metric("loss", 1.0)
    with experiment:
        with pytest.raises(ConfigurationError, match="'loss' = 'high'"):
            experiment.log_metric("loss", "high")
    with pytest.raises(ConfigurationError, match="stopped"):
        experiment.log_params({"a": 1})


def test_a_failing_backend_does_not_stop_the_others_and_is_counted(carbon: CarbonConfig) -> None:
    recorder = Recorder()
    with Experiment(
        "isolated", backend=[Broken(), recorder], carbon_config=carbon, meter=synthetic_meter()
    ) as experiment:
        for step in range(1000):
            experiment.log_metric("loss", 1.0, step)
    stats = experiment.backend_stats()
    assert len([m for m in recorder.metrics if m.name == "loss"]) == 1000
    assert stats["broken"].failures >= 1 and stats["broken"].failed >= 1000
    assert stats["broken"].last_error == "ConnectionError: tracking server unreachable"


# Settings and exceptions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "variable, text, field, expected",
    [
        ("TRACELET_PROJECT", "vision", "project", "vision"),
        ("TRACELET_BACKEND", "mlflow, wandb", "backend", ["mlflow", "wandb"]),
        ("TRACELET_TRACK_SYSTEM", "false", "track_system", False),
        ("TRACELET_TRACK_GIT", "0", "track_git", False),
        ("TRACELET_TRACK_ENV", "no", "track_env", False),
        ("TRACELET_METRICS_INTERVAL", "2.5", "metrics_interval", 2.5),
        ("TRACELET_ENABLE_AUTOMAGIC", "true", "enable_automagic", True),
        ("TRACELET_AUTOMAGIC_FRAMEWORKS", "pytorch,lightning", "automagic_frameworks", {"pytorch", "lightning"}),
        ("TRACELET_ENABLE_ARTIFACTS", "yes", "enable_artifacts", True),
        ("TRACELET_AUTOMAGIC_ARTIFACTS", "on", "automagic_artifacts", True),
        ("TRACELET_WATCH_FILESYSTEM", "1", "watch_filesystem", True),
        ("TRACELET_ARTIFACT_WATCH_DIRS", "checkpoints,outputs", "artifact_watch_dirs", ["checkpoints", "outputs"]),
    ],
)
def test_each_tracelet_environment_variable_sets_its_setting(
    variable: str, text: str, field: str, expected: Any
) -> None:
    assert getattr(TraceletSettings.from_env({variable: text}), field) == expected


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="TRACELET_TRACK_GIT = 'maybe'"):
        TraceletSettings.from_env({"TRACELET_TRACK_GIT": "maybe"})
    with pytest.raises(ConfigurationError, match="TRACELET_METRICS_INTERVAL"):
        TraceletSettings.from_env({"TRACELET_METRICS_INTERVAL": "-1"})


def test_experiment_config_has_the_documented_defaults() -> None:
    config = ExperimentConfig()
    assert config.track_metrics and config.track_system_metrics and config.track_git
    assert not config.enable_automagic and config.automagic_frameworks is None
    assert not config.enable_artifacts and config.artifact_watch_dirs is None


def test_configuration_error_is_the_top_level_class_and_a_tracelet_exception(env: Path) -> None:
    assert ConfigurationError is hf_eco2ai.ConfigurationError
    assert issubclass(ConfigurationError, TraceletException) and issubclass(BackendError, TraceletException)
    with pytest.raises(TraceletException, match="metrics_intervall"):
        tracelet.start_logging("typo", backend="local", config={"metrics_intervall": 1.0})


# Artifacts ---------------------------------------------------------------------------------------


def test_artifacts_carry_sha256_checksums_and_round_trip_through_local_and_mlflow(
    carbon: CarbonConfig, tmp_path: Path
) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"\x00\x01" * 1000)
    with Experiment(
        "artifacts",
        backend=["local", "mlflow"],
        carbon_config=carbon,
        meter=synthetic_meter(),
        options={"mlflow_tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
    ) as experiment:
        artifact = (
            experiment.create_artifact("checkpoint", ArtifactType.CHECKPOINT, "epoch 3")
            .add_file(str(weights), "model/weights.bin")
            .add_object({"epoch": 3, "lr": 0.01}, "state")
            .add_reference("s3://bucket/full.ckpt", size_bytes=10_000)
        )
        results = experiment.log_artifact(artifact)
        second = experiment.log_artifact(artifact)
    import hashlib

    assert artifact.files[0].checksum == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert artifact.size_bytes == 2000 + 10_000
    assert {name: result.version for name, result in results.items()} == {"local": "v1", "mlflow": "v1"}
    assert second["mlflow"].version == "v2"
    for backend in ("local", "mlflow"):
        fetched = experiment.get_artifact("checkpoint", backend=backend)
        assert fetched is not None and fetched.type == ArtifactType.CHECKPOINT
        assert Path(fetched.files[0].local_path).read_bytes() == weights.read_bytes()
        assert fetched.objects[0].obj == {"epoch": 3, "lr": 0.01}
        assert fetched.references[0].uri == "s3://bucket/full.ckpt"
    assert experiment.get_artifact("checkpoint", version="v1", backend="mlflow") is not None
    assert experiment.get_artifact("absent") is None
    assert experiment.list_artifacts(type_filter=ArtifactType.CHECKPOINT) == [artifact, artifact]
    assert experiment.list_artifacts(type_filter=ArtifactType.MODEL) == []


def test_a_checksum_mismatch_on_get_artifact_is_detected(carbon: CarbonConfig, tmp_path: Path) -> None:
    source = tmp_path / "data.csv"
    source.write_text("a,b\n1,2\n")
    with Experiment("tamper", backend=["local"], carbon_config=carbon, meter=synthetic_meter()) as experiment:
        [result] = experiment.log_artifact(
            experiment.create_artifact("table", ArtifactType.DATASET).add_file(str(source))
        ).values()
    stored = Path(result.uri.replace("file://", "")) / "data.csv"
    stored.write_text("a,b\n1,3\n")
    with pytest.raises(ArtifactChecksumError, match="data.csv has sha256"):
        experiment.get_artifact("table", backend="local")


def test_objects_are_pickled_only_when_asked_for_by_name(tmp_path: Path) -> None:
    artifact = tracelet.TraceletArtifact("objects", ArtifactType.CUSTOM)
    with pytest.raises(ConfigurationError, match="serializer='pickle'"):
        artifact.add_object({1, 2, 3}, "a_set")
    artifact.add_object({1, 2, 3}, "a_set", serializer="pickle").add_object({"k": [1]}, "cfg", serializer="yaml")
    assert [(o.name, o.serializer) for o in artifact.objects] == [("a_set", "pickle"), ("cfg", "yaml")]
    assert Path(artifact.serialize_object(artifact.objects[1], str(tmp_path))).read_text() == "k:\n- 1\n"
    assert artifact.to_dict()["objects"][0] == {"name": "a_set", "serializer": "pickle", "description": None}


def test_add_model_saves_a_torch_state_dict_with_its_metadata(carbon: CarbonConfig) -> None:
    import torch

    model = torch.nn.Linear(4, 2)
    artifact = tracelet.TraceletArtifact("linear", ArtifactType.MODEL).add_model(model, input_example=[1, 2, 3, 4])
    assert artifact.metadata["models"][0]["framework"] == "pytorch"
    assert artifact.metadata["models"][0]["parameters"] == 10
    with Experiment("model", backend=["local"], carbon_config=carbon, meter=synthetic_meter()) as experiment:
        experiment.log_artifact(artifact)
    fetched = experiment.get_artifact("linear")
    state = torch.load(fetched.files[0].local_path, weights_only=True)
    assert torch.equal(state["weight"], model.state_dict()["weight"])


# Automagic -----------------------------------------------------------------------------------------


def test_automagic_captures_hyperparameters_from_the_calling_frame(carbon: CarbonConfig) -> None:
    learning_rate = 3e-4
    batch_size = 64
    optimizer = "adamw"
    not_a_hyperparameter = 12
    recorder = Recorder()
    experiment = Experiment("magic", backend=[recorder], automagic=True, carbon_config=carbon, meter=synthetic_meter())
    experiment.start()
    experiment.stop()
    assert {k: recorder.params[k] for k in ("learning_rate", "batch_size", "optimizer")} == {
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "optimizer": optimizer,
    }
    assert "not_a_hyperparameter" not in recorder.params and not_a_hyperparameter == 12


def test_capture_model_and_dataset_describe_them(carbon: CarbonConfig) -> None:
    import torch

    recorder = Recorder()
    dataset = torch.utils.data.TensorDataset(torch.zeros(10, 3), torch.zeros(10))
    with Experiment("describe", backend=[recorder], carbon_config=carbon, meter=synthetic_meter()) as experiment:
        model_info = experiment.capture_model(torch.nn.Linear(3, 1))
        dataset_info = experiment.capture_dataset(dataset)
    assert model_info["parameters"] == 4 and recorder.params["model/trainable_parameters"] == 4
    assert dataset_info["size"] == 10 and recorder.params["dataset/sample"] == "(3,), ()"


def test_summary_writer_capture_is_undone_on_stop(carbon: CarbonConfig, tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer_class_before, add_scalar_before = SummaryWriter, SummaryWriter.add_scalar
    recorder = Recorder()
    experiment = Experiment(
        "writer",
        backend=[recorder, "tensorboard"],
        automagic=True,
        carbon_config=carbon,
        meter=synthetic_meter(),
        options={"tensorboard_log_dir": str(tmp_path / "ours")},
    )
    experiment.start()
    assert SummaryWriter.add_scalar is not add_scalar_before
    writer = SummaryWriter(log_dir=str(tmp_path / "users"))
    for step in range(5):
        writer.add_scalar("user/loss", 1.0 / (step + 1), step)
    experiment.stop()
    writer.add_scalar("user/loss", 0.01, 99)  # after stop: not captured
    writer.close()

    from torch.utils import tensorboard

    assert tensorboard.SummaryWriter is writer_class_before
    assert SummaryWriter.add_scalar is add_scalar_before
    assert [(m.step, m.value) for m in recorder.metrics if m.name == "user/loss"] == [
        (0, 1.0),
        (1, 0.5),
        (2, pytest.approx(1 / 3)),
        (3, 0.25),
        (4, 0.2),
    ]
    # The backend's own writer is not captured back: each point is in our event file once.
    ours = tensorboard_scalars(tmp_path / "ours")
    assert [event.step for event in ours["user/loss"]] == [0, 1, 2, 3, 4]
    assert [event.step for event in tensorboard_scalars(tmp_path / "users")["user/loss"]] == [0, 1, 2, 3, 4, 99]


# Plugins -------------------------------------------------------------------------------------------


def test_a_third_party_backend_is_discovered_through_its_entry_point(
    carbon: CarbonConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    (site / "acme_tracking").mkdir(parents=True)
    (site / "acme_tracking" / "__init__.py").write_text(
        textwrap.dedent("""
        from hf_eco2ai.tracking import BackendPlugin, PluginMetadata, PluginType

        RECEIVED = []

        class AcmeBackend(BackendPlugin):
            @classmethod
            def get_metadata(cls):
                return PluginMetadata("acme", "1.0", "Acme tracker", PluginType.BACKEND)

            def initialize(self, config):
                self.endpoint = config.get("acme_endpoint", "none")

            def log_metrics(self, metrics):
                RECEIVED.extend((m.name, m.value) for m in metrics)
    """)
    )
    dist = site / "acme_tracking-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-tracking\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[hf_eco2ai.backends]\nacme = acme_tracking:AcmeBackend\n")
    monkeypatch.syspath_prepend(str(site))

    assert tracelet.discover_plugins()["acme"].get_metadata().name == "acme"
    with Experiment("plugin", backend=["acme"], carbon_config=carbon, meter=synthetic_meter()) as experiment:
        experiment.log_metric("loss", 0.25, 1)
    assert ("loss", 0.25) in sys.modules["acme_tracking"].RECEIVED
    assert experiment.backends[0].name == "acme" and experiment.backend_stats()["acme"].delivered >= 1


def test_a_missing_backend_library_fails_at_construction_naming_the_extra(
    carbon: CarbonConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hf_eco2ai.integrations.backends import tensorboard_backend

    monkeypatch.setattr(tensorboard_backend, "_library_available", lambda: False)
    monkeypatch.setattr(tensorboard_backend.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ConfigurationError, match=r"hf-eco2ai\[tracking\]"):
        Experiment("no-tb", backend="tensorboard", carbon_config=carbon)


def test_the_local_backend_shares_the_measured_runs_store(carbon: CarbonConfig, tmp_path: Path) -> None:
    with Experiment("local", backend="local", carbon_config=carbon, meter=synthetic_meter()) as experiment:
        experiment.log_metric("accuracy", 0.9, 3)
    store = RunStore(tmp_path / "runs.sqlite")
    assert [run.run_id for run in store.list_runs()] == [experiment.run_id]
    assert any(row.get("accuracy") == 0.9 and row["step"] == 3 for row in store.logs(experiment.run_id))


def test_fault_warnings_use_the_package_logger(carbon: CarbonConfig, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        with Experiment("warn", backend=[Broken()], carbon_config=carbon, meter=synthetic_meter()) as experiment:
            experiment.log_metric("loss", 1.0)
    assert any("'broken' failed" in record.getMessage() for record in caplog.records)
