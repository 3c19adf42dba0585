"""Eco2AILightningCallback on real Lightning Trainer.fit runs of a tiny model on a CPU."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any, Dict, List

import lightning.pytorch as lightning_pl
import pytest
import pytorch_lightning as standalone_pl
from lightning.pytorch.loggers import CSVLogger
from tiny_lightning import random_loader, tiny_module

from hf_eco2ai import CarbonConfig, ConfigurationError, EnergyMeter
from hf_eco2ai.integrations import pytorch_lightning as standalone_integration
from hf_eco2ai.integrations.lightning import Eco2AILightningCallback
from hf_eco2ai.meter.flags import FLAG_SENSOR_ERROR, FLAG_TAIL
from hf_eco2ai.reporting.schema import incomplete_reason
from hf_eco2ai.reporting.step_file import read_step_file
from hf_eco2ai.store.run_store import RunStore

pytestmark = [
    # Lightning's own deprecation inside its data loading, and its advice to use more workers.
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings(r"ignore:The '\w+_dataloader' does not have many workers"),
]

ENERGY_KEYS = ("energy/step_joules", "energy/total_kwh", "power/mean_watts", "carbon/co2_kg", "carbon/samples_per_kwh")


def all_steps(report: Any) -> list:
    """Every step of the run, from the per-step file its report names."""
    return list(read_step_file(report["steps_file"]["path"]))


def callback(
    tmp_path: Path,
    watts: float = 100.0,
    fail_after_s: Any = None,
    package: Any = None,
    settings: Any = None,
    **options: Any,
) -> Any:
    config = CarbonConfig(output_dir=str(tmp_path / "carbon"), offline=True, country_iso_code="FR", **(settings or {}))
    meter = EnergyMeter(
        sources="synthetic", synthetic={"kind": "constant", "watts": watts}, synthetic_fail_after_s=fail_after_s
    )
    return (package or Eco2AILightningCallback)(config, meter=meter, **options)


def fit(
    tmp_path: Path,
    tracker: Any,
    pl: Any = lightning_pl,
    train_size: int = 160,
    fail_at_step: int = -1,
    step_s: float = 0.0,
    **trainer_options: Any,
) -> Any:
    settings: Dict[str, Any] = dict(
        max_epochs=2,
        log_every_n_steps=5,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=2,
        default_root_dir=str(tmp_path),
    )
    settings.update(trainer_options)
    if pl is lightning_pl:
        settings.setdefault("logger", CSVLogger(str(tmp_path)))
    trainer = pl.Trainer(callbacks=[tracker], **settings)
    trainer.fit(tiny_module(pl, fail_at_step, step_s), random_loader(train_size), random_loader(32, seed=1))
    return trainer


def training_steps(report: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [step for step in all_steps(report) if not step["flags"] & FLAG_TAIL]


def logged_rows(trainer: Any) -> List[Dict[str, str]]:
    with open(Path(trainer.logger.log_dir) / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def test_fit_records_one_step_per_optimiser_step_adding_up_to_the_total(tmp_path: Path) -> None:
    tracker = callback(tmp_path)
    trainer = fit(tmp_path, tracker)
    report = tracker.get_carbon_report()
    assert trainer.global_step == 40 == len(training_steps(report)) == report["training"]["optimizer_steps"]
    assert sum(step["joules"] for step in all_steps(report)) == pytest.approx(
        report["energy"]["it_kwh"] * 3.6e6, rel=1e-6
    )
    assert [(e["first_step"], e["last_step"]) for e in report["epochs"]] == [(0, 19), (20, 39)]
    assert len(RunStore(tmp_path / "carbon" / "runs.sqlite").steps(report["run"]["run_id"])) == 41


def test_the_figures_reach_the_trainer_loggers_at_the_logging_interval(tmp_path: Path) -> None:
    tracker = callback(tmp_path, watts=120.0)
    # Steps long enough that every logging interval spans sampler readings (10 ms apart).
    trainer = fit(tmp_path, tracker, max_epochs=1, step_s=0.003)
    energy_rows = [row for row in logged_rows(trainer) if row.get("energy/total_kwh")]
    assert [int(row["step"]) for row in energy_rows] == [4, 9, 14, 19]
    for row in energy_rows:
        assert [key for key in ENERGY_KEYS if not row[key]] == [], row
        assert float(row["power/mean_watts"]) == pytest.approx(120.0, rel=1e-5)
    assert "energy/total_kwh" in trainer.logged_metrics


def test_the_report_files_are_written_and_parse(tmp_path: Path) -> None:
    tracker = callback(tmp_path)
    fit(tmp_path, tracker, max_epochs=1)
    paths = tracker.report_paths
    assert json.loads(paths["json"].read_text())["total_co2_kg"] == tracker.get_carbon_report()["total_co2_kg"]
    assert len(paths["csv"].read_text().splitlines()) == 1 + 21
    assert "<svg" in paths["html"].read_text() and "kg CO2e" in paths["markdown"].read_text()


def test_accumulation_marks_each_optimiser_step_and_counts_micro_batches(tmp_path: Path) -> None:
    tracker = callback(tmp_path)
    trainer = fit(tmp_path, tracker, accumulate_grad_batches=4, max_epochs=1)
    report = tracker.get_carbon_report()
    assert trainer.global_step == 5 == len(training_steps(report))
    assert report["training"]["micro_batches"] == 20


def test_max_steps_with_validation_in_the_loop_records_validation_windows(tmp_path: Path) -> None:
    tracker = callback(tmp_path)
    trainer = fit(tmp_path, tracker, max_epochs=-1, max_steps=12, val_check_interval=5)
    report = tracker.get_carbon_report()
    assert trainer.global_step == 12 == len(training_steps(report))
    windows = RunStore(tmp_path / "carbon" / "runs.sqlite").windows(report["run"]["run_id"])
    # The sanity check, then validation after steps 5 and 10.
    assert [window["name"] for window in windows] == ["validation"] * 3
    assert all(window["joules"] > 0 for window in windows)


def test_an_exceeded_budget_stops_fit(tmp_path: Path) -> None:
    tracker = callback(
        tmp_path,
        watts=1e5,
        settings=dict(carbon_intensity_g_per_kwh=2000, carbon_budget_kg=1e-6, stop_on_budget_exceeded=True),
    )
    trainer = fit(tmp_path, tracker, max_epochs=5)
    report = tracker.get_carbon_report()
    # Checked at each logging interval (5 steps); the first may come before any reading.
    assert trainer.global_step in (5, 10)
    assert report["budget"]["exceeded"] and report["training"]["stopped_by_budget"]


def test_a_sensor_failing_mid_fit_warns_once_and_training_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="hf_eco2ai")
    tracker = callback(tmp_path, fail_after_s=0.05)
    trainer = fit(tmp_path, tracker, max_epochs=3)
    report = tracker.get_carbon_report()
    assert trainer.global_step == 60
    assert len([r for r in caplog.records if "failed during the run" in r.getMessage()]) == 1
    assert incomplete_reason(report) and any(step["flags"] & FLAG_SENSOR_ERROR for step in all_steps(report))


def test_an_exception_in_training_stops_the_sampler_and_marks_the_run_failed(tmp_path: Path) -> None:
    tracker = callback(tmp_path)
    with pytest.raises(RuntimeError, match="on purpose"):
        fit(tmp_path, tracker, fail_at_step=7)
    assert not tracker.session.running and not tracker.session.meter.running
    run = RunStore(tmp_path / "carbon" / "runs.sqlite").get_run(tracker.session.run_id)
    # Steps 0-6 finished; the failing step's partial energy is the tail record, not a step.
    assert run.status == "failed" and run.step_count == 7


def test_the_standalone_pytorch_lightning_package_is_supported(tmp_path: Path) -> None:
    tracker = callback(tmp_path, package=standalone_integration.Eco2AILightningCallback)
    assert isinstance(tracker, standalone_pl.Callback)
    trainer = fit(tmp_path, tracker, pl=standalone_pl, max_epochs=1, logger=False)
    assert trainer.global_step == 20 == len(training_steps(tracker.get_carbon_report()))


def test_bad_options_are_refused_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="tracking_frequency = 'often'"):
        Eco2AILightningCallback(tracking_frequency="often")
    with pytest.raises(ConfigurationError, match="after trainer.fit"):
        Eco2AILightningCallback().get_carbon_report()
