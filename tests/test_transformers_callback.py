"""Eco2AICallback on real transformers.Trainer runs of a tiny random BERT on a CPU."""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any, Tuple

import pytest
from tiny_training import TokenDataset, tiny_bert, training_arguments
from transformers import Trainer, TrainerCallback

from hf_eco2ai import CarbonConfig, ConfigurationError, Eco2AICallback, EnergyMeter
from hf_eco2ai.meter.flags import FLAG_SENSOR_ERROR, FLAG_TAIL
from hf_eco2ai.reporting.schema import incomplete_reason
from hf_eco2ai.reporting.step_file import read_step_file
from hf_eco2ai.store.run_store import RunStore

ENERGY_KEYS = ("energy/step_joules", "energy/total_kwh", "power/mean_watts", "carbon/co2_kg", "carbon/samples_per_kwh")


def all_steps(report: Any) -> list:
    """Every step of the run, from the per-step file its report names."""
    return list(read_step_file(report["steps_file"]["path"]))


def config(tmp_path: Path, **settings: Any) -> CarbonConfig:
    settings.setdefault("country_iso_code", "FR")
    return CarbonConfig(output_dir=str(tmp_path / "carbon"), offline=True, **settings)


def train(
    tmp_path: Path, callback: Eco2AICallback, dataset_size: int = 64, resume: Any = None, **arguments: Any
) -> Trainer:
    trainer = Trainer(
        model=tiny_bert(),
        args=training_arguments(tmp_path / "out", **arguments),
        train_dataset=TokenDataset(dataset_size),
        eval_dataset=TokenDataset(16, seed=1),
        callbacks=[callback],
    )
    trainer.train(resume_from_checkpoint=resume)
    return trainer


def synthetic_callback(tmp_path: Path, watts: float = 100.0, **options: Any) -> Eco2AICallback:
    settings = options.pop("settings", {})
    meter = EnergyMeter(
        sources="synthetic",
        synthetic={"kind": "constant", "watts": watts},
        synthetic_fail_after_s=options.pop("fail_after_s", None),
    )
    return Eco2AICallback(config(tmp_path, **settings), meter=meter, **options)


def training_steps(report: dict) -> list:
    return [step for step in all_steps(report) if not step["flags"] & FLAG_TAIL]


def test_one_record_per_optimiser_step_adding_up_to_the_run_total(tmp_path: Path) -> None:
    callback = synthetic_callback(tmp_path)
    trainer = train(tmp_path, callback, max_steps=24)
    report = callback.get_carbon_report()
    assert trainer.state.global_step == 24 == len(training_steps(report)) == report["training"]["optimizer_steps"]
    assert len(RunStore(tmp_path / "carbon" / "runs.sqlite").steps(report["run"]["run_id"])) == 25
    step_joules = sum(step["joules"] for step in all_steps(report))
    assert step_joules == pytest.approx(report["energy"]["it_kwh"] * 3.6e6, rel=1e-6)
    assert report["run"]["model_name"] == "BertForSequenceClassification"
    assert report["total_co2_kg"] > 0


def test_the_log_history_carries_the_energy_keys(tmp_path: Path) -> None:
    callback = synthetic_callback(tmp_path, watts=150.0)
    trainer = train(tmp_path, callback, max_steps=15)
    training_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in training_logs] == [5, 10, 15]
    for entry in training_logs:
        assert all(key in entry for key in ENERGY_KEYS)
        assert entry["power/mean_watts"] == pytest.approx(150.0, rel=1e-6)
        assert entry["power/synthetic:0_watts"] == 150.0
    last = training_logs[-1]
    assert last["carbon/samples_per_kwh"] == pytest.approx(15 * 4 / last["energy/total_kwh"], rel=1e-9)


def test_the_report_files_are_written_and_parse(tmp_path: Path) -> None:
    callback = synthetic_callback(tmp_path)
    train(tmp_path, callback, max_steps=10)
    paths = callback.report_paths
    assert sorted(paths) == ["csv", "html", "json", "markdown"]
    assert all(path.parent == tmp_path / "carbon" for path in paths.values())
    assert json.loads(paths["json"].read_text())["total_co2_kg"] == callback.get_carbon_report()["total_co2_kg"]
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert len(rows) == 11 and rows[0]["intensity_source"] == "country-table"
    assert "<svg" in paths["html"].read_text()
    assert "kg CO2e" in paths["markdown"].read_text()


def test_gradient_accumulation_marks_each_optimiser_step_and_counts_micro_batches(tmp_path: Path) -> None:
    callback = synthetic_callback(tmp_path)
    # 40 samples in batches of 4 are 10 micro-batches an epoch: optimiser steps of 4, 4 and 2.
    trainer = train(tmp_path, callback, dataset_size=40, num_train_epochs=2, gradient_accumulation_steps=4)
    report = callback.get_carbon_report()
    assert trainer.state.global_step == 6 == len(training_steps(report))
    assert report["training"]["micro_batches"] == 20
    assert [(e["first_step"], e["last_step"]) for e in report["epochs"]] == [(0, 2), (3, 5)]


def test_batch_frequency_records_every_micro_batch(tmp_path: Path) -> None:
    callback = synthetic_callback(tmp_path, tracking_frequency="batch")
    train(tmp_path, callback, dataset_size=40, num_train_epochs=1, gradient_accumulation_steps=4)
    assert len(training_steps(callback.get_carbon_report())) == 10


def test_epoch_frequency_records_and_logs_once_an_epoch(tmp_path: Path) -> None:
    callback = synthetic_callback(tmp_path, tracking_frequency="epoch")
    trainer = train(tmp_path, callback, dataset_size=32, num_train_epochs=3, logging_steps=1000)
    report = callback.get_carbon_report()
    assert len(training_steps(report)) == 3 and [e["first_step"] for e in report["epochs"]] == [0, 1, 2]
    epoch_logs = [entry for entry in trainer.state.log_history if "energy/total_kwh" in entry and "loss" in entry]
    assert [entry["epoch"] for entry in epoch_logs] == [1.0, 2.0, 3.0]


def test_evaluation_in_the_loop_and_max_steps(tmp_path: Path) -> None:
    callback = synthetic_callback(tmp_path)
    trainer = train(tmp_path, callback, max_steps=12, eval_strategy="steps", eval_steps=5)
    report = callback.get_carbon_report()
    assert trainer.state.global_step == 12 == len(training_steps(report))
    eval_logs = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    assert len(eval_logs) == 3 and all("carbon/co2_kg" in entry for entry in eval_logs)
    assert sum(step["joules"] for step in all_steps(report)) == pytest.approx(
        report["energy"]["it_kwh"] * 3.6e6, rel=1e-6
    )


def test_an_exceeded_budget_stops_training(tmp_path: Path) -> None:
    callback = synthetic_callback(
        tmp_path,
        watts=1e5,
        settings=dict(carbon_intensity_g_per_kwh=2000, carbon_budget_kg=1e-6, stop_on_budget_exceeded=True),
    )
    trainer = train(tmp_path, callback, max_steps=200, logging_steps=2)
    report = callback.get_carbon_report()
    over_budget = [
        entry["step"] for entry in trainer.state.log_history if entry.get("carbon/budget_used_fraction", 0) > 1
    ]
    # Energy arrives with the sampler's readings, so the first log may still be under budget.
    assert trainer.state.global_step == over_budget[0] < 20
    assert report["budget"]["exceeded"] and report["training"]["stopped_by_budget"]


def test_a_sensor_failing_mid_training_warns_once_and_training_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hf_eco2ai")
    callback = synthetic_callback(tmp_path, fail_after_s=0.05)
    trainer = train(tmp_path, callback, max_steps=40, logging_steps=4)
    report = callback.get_carbon_report()
    assert trainer.state.global_step == 40
    assert len([r for r in caplog.records if "failed during the run" in r.getMessage()]) == 1
    assert report["monitoring_errors_total"] > 0 and incomplete_reason(report)
    assert any(step["flags"] & FLAG_SENSOR_ERROR for step in all_steps(report))
    assert "incomplete" in callback.report_paths["markdown"].read_text().lower()


def checkpointed_run(tmp_path: Path) -> Tuple[Path, Eco2AICallback]:
    first = synthetic_callback(tmp_path)
    train(tmp_path, first, max_steps=10, save_strategy="steps", save_steps=10)
    return tmp_path / "out" / "checkpoint-10", first


def test_a_run_resumed_from_a_checkpoint_counts_only_its_own_steps(tmp_path: Path) -> None:
    checkpoint, first = checkpointed_run(tmp_path)
    resumed = synthetic_callback(tmp_path)
    trainer = train(tmp_path, resumed, max_steps=16, resume=str(checkpoint))
    report = resumed.get_carbon_report()
    assert trainer.state.global_step == 16
    assert report["training"]["global_step_start"] == 10 and report["training"]["optimizer_steps"] == 6
    assert len(training_steps(report)) == 6 and report["run"]["run_id"] != first.get_carbon_report()["run"]["run_id"]
    final_log = trainer.state.log_history[-1]
    assert "train_runtime" in final_log
    assert final_log["carbon/samples_per_kwh"] == pytest.approx(6 * 4 / final_log["energy/total_kwh"], rel=1e-9)


def test_without_a_meter_the_configured_sources_are_measured(tmp_path: Path) -> None:
    callback = Eco2AICallback(config(tmp_path), tracking_mode="minimal")
    train(tmp_path, callback, max_steps=5)
    report = callback.get_carbon_report()
    assert report["channels"][0]["provenance"] == "estimated"
    assert report["steps_file"] is None and report["step_series"] is None
    assert report["energy"]["it_kwh"] > 0


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"tracking_frequency": "hourly"}, "tracking_frequency = 'hourly'"),
        ({"tracking_mode": "verbose"}, "tracking_mode"),
        ({"wandb_integration": True}, "pip install wandb"),
        ({"mlflow_integration": True}, "pip install mlflow"),
        ({"include_infrastructure": "yes"}, "include_infrastructure"),
    ],
)
def test_bad_options_are_refused_at_construction_naming_the_fix(
    tmp_path: Path, options: dict, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules is how Python marks a package as not importable.
    monkeypatch.setitem(sys.modules, "wandb", None)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(ConfigurationError, match=named.replace("(", r"\(")):
        Eco2AICallback(config(tmp_path), **options)


def test_the_report_is_not_available_before_training(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="after trainer.train"):
        Eco2AICallback(config(tmp_path)).get_carbon_report()


class LogRecorder(TrainerCallback):
    """Stands in for a report_to integration: keeps the keys of every log it is shown."""

    def __init__(self) -> None:
        self.keys: list = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        self.keys.append(set(logs or {}))


def test_installed_first_the_figures_reach_callbacks_that_come_before_it(tmp_path: Path) -> None:
    seen = {}
    for installed in (False, True):
        recorder = LogRecorder()
        callback = synthetic_callback(tmp_path / str(installed))
        trainer = Trainer(
            model=tiny_bert(),
            args=training_arguments(tmp_path / "out", max_steps=10),
            train_dataset=TokenDataset(64),
            callbacks=[recorder, callback],
        )
        if installed:
            assert callback.install(trainer) is callback
            assert trainer.callback_handler.callbacks[0] is callback
        trainer.train()
        seen[installed] = any("carbon/co2_kg" in keys for keys in recorder.keys)
    assert seen == {False: False, True: True}


def test_evaluate_and_predict_run_inside_windows_of_their_own(tmp_path: Path) -> None:
    callback = Eco2AICallback(config(tmp_path))
    trainer = train(tmp_path, callback, max_steps=6, eval_strategy="steps", eval_steps=3)
    training = callback.get_carbon_report()
    windows = {window["name"]: window for window in training["windows"]}
    assert set(windows) == {"evaluate"} and windows["evaluate"]["count"] == 2
    assert 0 < windows["evaluate"]["duration_s"] < training["duration_s"]
    assert windows["evaluate"]["share_of_run"] == pytest.approx(
        windows["evaluate"]["joules"] / (training["energy"]["it_kwh"] * 3.6e6)
    )

    # Outside train(), each loop is a run of its own holding its window.
    trainer.evaluate()
    evaluation = callback.get_carbon_report()
    trainer.predict(TokenDataset(16, seed=2))
    prediction = callback.get_carbon_report()
    assert [(w["name"], w["count"]) for w in evaluation["windows"]] == [("evaluate", 1)]
    assert [(w["name"], w["count"]) for w in prediction["windows"]] == [("predict", 1)]
    assert prediction["training"]["loop"] == "predict" and evaluation["training"]["loop"] == "evaluate"
    run_ids = {training["run"]["run_id"], evaluation["run"]["run_id"], prediction["run"]["run_id"]}
    store = RunStore(tmp_path / "carbon" / "runs.sqlite", read_only=True)
    assert len(run_ids) == 3 and run_ids == {run.run_id for run in store.list_runs()}
    assert [window["name"] for window in store.windows(prediction["run"]["run_id"])] == ["predict"]
