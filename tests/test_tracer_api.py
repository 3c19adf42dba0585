"""The Tracer API as its reference documents it: every example runs as written (with
``from hf_eco2ai import tracer`` for ``import tracer`` and ``hf_eco2ai.tracer.`` for ``tracer.``
module paths), the documented defaults, and the errors."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any, Dict

import pytest
import torch

from hf_eco2ai import ConfigurationError, tracer
from hf_eco2ai.tracer import TracerConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_training import TokenDataset, tiny_bert, training_arguments  # noqa: E402
from tracer_training import mlp, quiet_carbon_config  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings(r"ignore:The '\w+_dataloader' does not have many workers"),
    pytest.mark.filterwarnings(r"ignore:.*GPU available but not used"),
]

# The reference's examples, verbatim apart from the package path.
EXAMPLE_INIT = """
tracer.init(
    project="gpt-finetuning",
    run_name="experiment-001",
    checkpoint_interval=500,
    track_gradients=True
)
"""
EXAMPLE_LOG = """
tracer.log({
    "loss": 2.34,
    "accuracy": 0.89,
    "learning_rate": 1e-4
})
"""
EXAMPLE_STEP = """
for batch in dataloader:
    loss = train_step(batch)
    tracer.log({"loss": loss.item()})
    tracer.step()  # Auto-checkpoints based on interval
"""
EXAMPLE_WATCH = """
model = MyModel()
tracer.watch(model)
"""
EXAMPLE_FINISH = """
try:
    # Training loop
    train()
finally:
    tracer.finish()  # Always cleanup
"""
EXAMPLE_QUERY = """
from hf_eco2ai.tracer.analysis import QueryEngine

query = QueryEngine(storage_path="./.tracer")
summary = query.get_run_summary("abc-123")
print(summary["total_steps"])
print(summary["final_metrics"])
comparison = query.compare_runs(
    "run1", "run2",
    metrics=["loss", "accuracy"]
)
anomalies = query.find_anomalous_checkpoints(
    "run1",
    anomaly_types=["gradient_explosion", "nan_or_inf"]
)
"""
EXAMPLE_DETECTOR = """
from hf_eco2ai.tracer.analysis import AnomalyDetector

detector = AnomalyDetector(storage_backend)
anomalies = detector.detect_all_anomalies("run1")
detector.store_anomalies(anomalies)
"""
EXAMPLE_TRANSFORMERS = """
from hf_eco2ai.tracer.integrations import TransformersCallback
from transformers import Trainer

trainer = Trainer(
    model=model,
    args=training_args,
    callbacks=[
        TransformersCallback(
            project="my-project",
            checkpoint_interval=100
        )
    ]
)
trainer.train()
"""
EXAMPLE_LIGHTNING = """
from hf_eco2ai.tracer.integrations import LightningCallback
import pytorch_lightning as pl

trainer = pl.Trainer(
    callbacks=[
        LightningCallback(
            project="my-project",
            checkpoint_interval=100
        )
    ]
)
trainer.fit(model)
"""
EXAMPLE_STORAGE = """
from hf_eco2ai.tracer.storage import StorageBackend
from hf_eco2ai.tracer.config import TracerConfig

config = TracerConfig(project_name="test")
storage = StorageBackend(config)

# Create run
storage.create_run(
    run_id="123",
    project_name="test",
    run_name="run1",
    start_time=1000.0,
    config={}
)

# Write checkpoint
storage.write_checkpoint(
    run_id="123",
    step=100,
    timestamp=1100.0,
    metrics={"loss": 0.5},
    gradient_stats={},
    system_metrics={}
)

# Query
runs = storage.list_runs(project_name="test")
checkpoints = storage.get_checkpoints("123")
"""
EXAMPLE_EXCEPTION = """
try:
    tracer.log({"loss": 1.0})
except RuntimeError as e:
    print("Tracer not initialized!")
"""
EXAMPLE_TYPES = """
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hf_eco2ai.tracer.config import TracerConfig
    from hf_eco2ai.tracer.core.tracer import TrainingTracer
"""


def run_example(code: str, namespace: Dict[str, Any]) -> Dict[str, Any]:
    exec(compile(textwrap.dedent(code), "<example>", "exec"), namespace)
    return namespace


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples use relative paths (./.tracer): run them in a fresh directory, with a fixed
    intensity so that no location lookup happens."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_ECO2AI_CARBON_INTENSITY_G_PER_KWH", "100")
    monkeypatch.setenv("HF_ECO2AI_SOURCES", "cpu-estimate")
    yield tmp_path
    if tracer.current() is not None:
        tracer.finish()


def test_the_core_examples_run_as_written_and_trace_a_real_loop(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    model = mlp(layers=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    dataloader = [(torch.randn(16, 12), torch.randint(0, 2, (16,))) for _ in range(30)]

    def train_step(batch: Any) -> torch.Tensor:
        features, labels = batch
        loss = torch.nn.functional.cross_entropy(model(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    namespace: Dict[str, Any] = {
        "tracer": tracer,
        "dataloader": dataloader,
        "train_step": train_step,
        "MyModel": lambda: model,
    }
    namespace["train"] = lambda: run_example(EXAMPLE_STEP, namespace)
    run_example(EXAMPLE_EXCEPTION, namespace)
    assert capsys.readouterr().out == "Tracer not initialized!\n"
    run_example(EXAMPLE_INIT, namespace)
    run = tracer.current()
    assert run is not None and run.run_name == "experiment-001" and run.config.checkpoint_interval == 500
    run_example(EXAMPLE_LOG, namespace)
    run_example(EXAMPLE_WATCH, namespace)
    run_example(EXAMPLE_FINISH, namespace)
    assert tracer.current() is None
    statistics = run.storage.get_step_statistics(run.run_id)
    assert statistics.steps.tolist() == list(range(30))
    assert statistics.has_gradients.all()
    assert run.storage.get_checkpoints(run.run_id)[-1]["metrics"]["accuracy"] == 0.89
    assert (in_tmp / ".tracer" / "runs.sqlite").is_file()
    run_example(EXAMPLE_TYPES, namespace)


def test_the_storage_query_and_detector_examples_run_as_written(in_tmp: Path, capsys: pytest.CaptureFixture) -> None:
    from hf_eco2ai.tracer.storage import StorageBackend

    namespace = run_example(EXAMPLE_STORAGE, {})
    assert [c["step"] for c in namespace["checkpoints"]] == [100]
    assert [r["run_name"] for r in namespace["runs"]] == ["run1"]
    storage = StorageBackend(TracerConfig(project_name="test"))
    for run_id, loss in (("abc-123", 0.4), ("run1", 0.5), ("run2", 0.3)):
        storage.create_run(run_id=run_id, project_name="test", run_name=run_id, start_time=1000.0, config={})
        for step in (9, 19):
            storage.write_checkpoint(
                run_id=run_id,
                step=step,
                timestamp=1000.0 + step,
                metrics={"loss": loss + (19 - step) / 100, "accuracy": 0.9},
                gradient_stats={},
                system_metrics={},
            )
    storage.write_anomalies(
        "run1",
        [
            {
                "step": 12,
                "type": "gradient_explosion",
                "layer": "total",
                "value": 1e6,
                "threshold": 10.0,
                "statistic": 1.0,
            }
        ],
    )
    storage.flush()
    namespace = run_example(EXAMPLE_QUERY, {})
    assert capsys.readouterr().out == "20\n{'loss': 0.4, 'accuracy': 0.9}\n"
    comparison = namespace["comparison"]["metrics"]
    assert comparison["loss"]["run1"]["final"] == 0.5 and comparison["loss"]["run2"]["final"] == 0.3
    assert comparison["loss"]["difference"] == pytest.approx(-0.2)
    assert [(c["step"], [a["step"] for a in c["anomalies"]]) for c in namespace["anomalies"]] == [(19, [12])]
    namespace = run_example(EXAMPLE_DETECTOR, {"storage_backend": storage})
    assert namespace["anomalies"] == []
    storage.close()


def test_the_transformers_example_runs_as_written(in_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import Trainer

    # The fragment gives the Trainer no dataset; the test supplies the training batches.
    monkeypatch.setattr(
        Trainer, "get_train_dataloader", lambda self: torch.utils.data.DataLoader(TokenDataset(64), batch_size=4)
    )
    namespace = run_example(
        EXAMPLE_TRANSFORMERS,
        {
            "model": tiny_bert(),
            "training_args": training_arguments(in_tmp / "out", max_steps=6, logging_steps=3),
        },
    )
    callback = next(
        c for c in namespace["trainer"].callback_handler.callbacks if type(c).__name__ == "TransformersCallback"
    )
    run = callback.tracer
    assert run.config.project_name == "my-project" and run.config.checkpoint_interval == 100
    assert len(run.storage.get_step_statistics(run.run_id)) == 6
    assert (in_tmp / ".tracer" / "runs.sqlite").is_file()


def test_the_transformers_callback_traces_every_optimiser_step(tmp_path: Path) -> None:
    from transformers import Trainer

    from hf_eco2ai.tracer.integrations import TransformersCallback

    callback = TransformersCallback(
        project="hf",
        checkpoint_interval=5,
        storage_path=str(tmp_path / "tracer"),
        carbon_config=quiet_carbon_config(tmp_path),
    )
    trainer = Trainer(
        model=tiny_bert(),
        args=training_arguments(tmp_path / "out", max_steps=12, logging_steps=4),
        train_dataset=TokenDataset(64),
        callbacks=[callback],
    )
    trainer.train()
    run = callback.tracer
    statistics = run.storage.get_step_statistics(run.run_id)
    assert statistics.steps.tolist() == list(range(12))
    assert statistics.has_gradients.all()
    assert statistics.loss_recorded.tolist() == [step % 4 == 3 for step in range(12)]
    checkpoints = run.storage.get_checkpoints(run.run_id)
    assert [c["step"] for c in checkpoints] == [4, 9, 11]
    assert all(c["energy_joules"] is not None for c in checkpoints)
    report = callback.get_carbon_report()
    assert report["gradients"]["steps"] == list(range(12))
    assert 'id="gradient-chart"' in callback.report_paths["html"].read_text()
    assert run.session is callback.session and run.session.store.path == tmp_path / "tracer" / "runs.sqlite"


# The example's Trainer sets no max_epochs, and Lightning advises about it and the log interval.
@pytest.mark.filterwarnings("ignore:`max_epochs` was not set")
@pytest.mark.filterwarnings("ignore:The number of training batches")
def test_the_lightning_example_runs_as_written_with_pytorch_lightning(in_tmp: Path) -> None:
    import pytorch_lightning as pl
    from tiny_lightning import random_loader, tiny_module

    module = tiny_module(pl)
    module.train_dataloader = lambda: random_loader(48)  # type: ignore[method-assign]
    module.val_dataloader = lambda: random_loader(16, seed=1)  # type: ignore[method-assign]
    module.on_train_batch_end = lambda *args: setattr(module.trainer, "should_stop", module.global_step >= 8)  # type: ignore[method-assign]
    namespace = run_example(EXAMPLE_LIGHTNING, {"model": module})
    callback = next(c for c in namespace["trainer"].callbacks if type(c).__name__ == "LightningCallback")
    run = callback.tracer
    statistics = run.storage.get_step_statistics(run.run_id)
    assert len(statistics) == 8 and statistics.has_gradients.all()
    assert run.storage.get_checkpoints(run.run_id)[-1]["step"] == 7


def test_the_lightning_callback_is_accepted_by_the_lightning_package_too(tmp_path: Path) -> None:
    import lightning.pytorch as lightning_pl
    from tiny_lightning import random_loader, tiny_module

    from hf_eco2ai.tracer.integrations import LightningCallback

    callback = LightningCallback(
        project="lit",
        checkpoint_interval=4,
        storage_path=str(tmp_path / "tracer"),
        carbon_config=quiet_carbon_config(tmp_path),
        stop_on_anomaly=True,
        explosion_threshold=1e-9,
    )
    trainer = lightning_pl.Trainer(
        callbacks=[callback],
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(tmp_path),
    )
    trainer.fit(tiny_module(lightning_pl), random_loader(80), random_loader(16, seed=1))
    run = callback.tracer
    # An absolute threshold below any real norm flags the first step, and stop_on_anomaly stops there.
    assert run.stop_requested
    assert run.storage.get_anomalies(run.run_id)[0]["step"] == 0
    assert trainer.global_step == 1


def test_tracer_config_has_the_documented_fields_and_defaults() -> None:
    config = TracerConfig(project_name="p")
    documented = dict(
        run_name=None,
        tags=[],
        notes=None,
        storage_path="./.tracer",
        retention_days=30,
        checkpoint_interval=1000,
        capture_samples=5,
        track_gradients=True,
        track_system_metrics=True,
        gradient_layers=None,
        async_writes=True,
        write_buffer_size=100,
        max_workers=4,
    )
    assert {name: getattr(config, name) for name in documented} == documented


@pytest.mark.parametrize(
    "field, value",
    [
        ("checkpoint_interval", 0),
        ("retention_days", -1),
        ("write_buffer_size", 0),
        ("max_workers", 0),
        ("gradient_layers", "encoder.*"),
        ("explosion_factor", float("nan")),
        ("stop_on_anomaly", ["nan"]),
        ("track_gradients", "yes"),
        ("anomaly_min_history", 500),
    ],
)
def test_an_invalid_setting_names_the_field_and_the_value(field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=field) as raised:
        TracerConfig(project_name="p", **{field: value})
    assert repr(value) in str(raised.value)


def test_an_unknown_init_setting_suggests_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="did you mean 'checkpoint_interval'"):
        tracer.init("p", checkpoint_intervall=5, storage_path=str(tmp_path))
    assert tracer.current() is None


@pytest.mark.parametrize(
    "call, arguments", [("log", ({"loss": 1.0},)), ("step", ()), ("watch", (None,)), ("finish", ())]
)
def test_every_call_before_init_raises_runtime_error(call: str, arguments: tuple) -> None:
    with pytest.raises(RuntimeError, match=f"Tracer not initialized.*before {call}"):
        getattr(tracer, call)(*arguments)


def test_gradient_layers_group_parameters_by_glob_and_a_pattern_matching_nothing_is_refused(tmp_path: Path) -> None:
    run = tracer.init(
        "globs", storage_path=str(tmp_path), gradient_layers=["0.*", "2.*"], carbon_config=quiet_carbon_config(tmp_path)
    )
    try:
        tracer.watch(mlp(layers=3))
        assert run.layers == ["0.*", "2.*"]
        with pytest.raises(ConfigurationError, match=r"\['nothing\.\*'\] match no parameter"):
            from hf_eco2ai.tracer.watch import GradientWatcher

            GradientWatcher(mlp(layers=3), ["0.*", "nothing.*"], lambda *row: None)
    finally:
        tracer.finish()


def test_importing_the_tracer_imports_no_framework() -> None:
    import subprocess

    probe = (
        "import sys, hf_eco2ai.tracer, hf_eco2ai.tracer.integrations, hf_eco2ai.tracer.analysis; "
        "print(sorted(m for m in ('torch', 'transformers', 'lightning') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
