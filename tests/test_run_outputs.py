"""What a run leaves behind, whichever entry point ran it: reports where the framework writes,
a run-store row, an ``emissions.csv`` row, one summary line, and totals in every Lightning logger."""

from __future__ import annotations

import csv
import logging
import threading
from pathlib import Path
from typing import Any, Dict, List

import lightning.pytorch as pl
import pytest
from lightning.pytorch.loggers import CSVLogger
from tiny_lightning import random_loader, tiny_module
from tiny_training import TokenDataset, tiny_bert, training_arguments
from transformers import Trainer

from hf_eco2ai import CarbonConfig, Eco2AICallback, EnergyMeter, track
from hf_eco2ai.integrations.lightning import Eco2AILightningCallback
from hf_eco2ai.reporting.emissions_csv import append_emissions_row
from hf_eco2ai.store import RunStore

LIGHTNING_NOISE = [
    # Lightning's own deprecation inside its data loading, and its advice to use more workers.
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings(r"ignore:The '\w+_dataloader' does not have many workers"),
]


@pytest.fixture(autouse=True)
def no_output_dir_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_ECO2AI_OUTPUT_DIR", raising=False)


def synthetic_meter() -> EnergyMeter:
    return EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 80.0})


def emissions_rows(directory: Path) -> List[Dict[str, str]]:
    with open(directory / "emissions.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def train_hf(output_dir: Path, callback: Eco2AICallback) -> None:
    Trainer(
        model=tiny_bert(),
        args=training_arguments(output_dir, max_steps=4),
        train_dataset=TokenDataset(32),
        callbacks=[callback],
    ).train()


def test_hf_reports_and_store_go_to_the_trainers_output_dir_unless_output_dir_is_set(tmp_path: Path) -> None:
    follows = Eco2AICallback(CarbonConfig(offline=True, country_iso_code="FR"), meter=synthetic_meter())
    train_hf(tmp_path / "out", follows)
    assert follows.report_paths["json"].parent == tmp_path / "out"
    run_id = follows.get_carbon_report()["run"]["run_id"]
    assert RunStore(tmp_path / "out" / "runs.sqlite").report(run_id) is not None

    explicit = Eco2AICallback(
        CarbonConfig(offline=True, country_iso_code="FR", output_dir=str(tmp_path / "mine")), meter=synthetic_meter()
    )
    train_hf(tmp_path / "out2", explicit)
    assert explicit.report_paths["json"].parent == tmp_path / "mine"
    assert not (tmp_path / "out2" / "emissions.csv").exists()


def test_each_run_appends_one_emissions_row_with_its_provenance(tmp_path: Path) -> None:
    config = CarbonConfig(offline=True, country_iso_code="FR", output_dir=str(tmp_path / "c"))
    runs = []
    for name in ("a", "b"):
        callback = Eco2AICallback(config, meter=synthetic_meter())
        train_hf(tmp_path / name, callback)
        runs.append(callback.get_carbon_report())
    rows = emissions_rows(tmp_path / "c")
    assert [row["run_id"] for row in rows] == [report["run"]["run_id"] for report in runs]
    first = rows[0]
    assert float(first["co2_kg"]) == pytest.approx(runs[0]["total_co2_kg"])
    assert first["intensity_source"] == "country-table" and first["intensity_year"]
    assert first["channels"] == "synthetic:0 measured" and first["status"] == "finished"
    assert Path(first["report_path"]).is_file()


def test_a_formula_in_a_project_name_reaches_emissions_csv_as_text(tmp_path: Path) -> None:
    @track(
        project_name='=HYPERLINK("http://127.0.0.1/x","click")',
        offline=True,
        country_iso_code="FR",
        output_dir=str(tmp_path),
        meter=synthetic_meter(),
    )
    def work() -> None:
        return None

    work()
    row = emissions_rows(tmp_path)[0]
    assert row["project_name"].startswith("'=HYPERLINK")


def test_a_run_ends_with_one_summary_line_naming_energy_carbon_source_and_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    callback = Eco2AICallback(
        CarbonConfig(offline=True, country_iso_code="FR", output_dir=str(tmp_path / "c")), meter=synthetic_meter()
    )
    with caplog.at_level(logging.INFO, logger="hf_eco2ai"):
        train_hf(tmp_path / "out", callback)
        paths = callback.report_paths  # the run's end is written in the background; this waits for it
    lines = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("hf_eco2ai") and record.levelno == logging.INFO
    ]
    assert len(lines) == 1
    assert "kWh" in lines[0] or " J," in lines[0] or "Wh," in lines[0]
    assert "CO2e at" in lines[0] and "country-table FR" in lines[0]
    assert str(paths["html"]) in lines[0]


@LIGHTNING_NOISE[0]
@LIGHTNING_NOISE[1]
def test_lightning_logs_totals_at_fit_end_even_when_shorter_than_the_logging_interval(tmp_path: Path) -> None:
    tracker = Eco2AILightningCallback(CarbonConfig(offline=True, country_iso_code="FR"), meter=synthetic_meter())
    logger = CSVLogger(str(tmp_path))
    trainer = pl.Trainer(
        max_steps=3,
        log_every_n_steps=5,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=logger,
        default_root_dir=str(tmp_path),
        callbacks=[tracker],
    )
    trainer.fit(tiny_module(pl), random_loader(64), random_loader(16, seed=1))
    with open(Path(logger.log_dir) / "metrics.csv", newline="") as handle:
        rows: List[Dict[str, Any]] = list(csv.DictReader(handle))
    totals = [row for row in rows if row.get("carbon/total_co2_kg")]
    assert len(totals) == 1 and int(totals[0]["step"]) == 3
    assert float(totals[0]["carbon/total_co2_kg"]) == pytest.approx(tracker.get_carbon_report()["total_co2_kg"])
    assert tracker.report_paths["json"].parent == Path(trainer.log_dir)


def test_runs_starting_a_new_emissions_file_at_the_same_moment_write_one_header(tmp_path: Path) -> None:
    writers = 8
    for attempt in range(20):
        output_dir = tmp_path / f"attempt-{attempt}"
        start_together = threading.Barrier(writers, timeout=10.0)

        def append(
            index: int, output_dir: Path = output_dir, start_together: threading.Barrier = start_together
        ) -> None:
            start_together.wait()
            append_emissions_row(output_dir, {"project_name": f"run-{index}"})

        threads = [threading.Thread(target=append, args=(index,)) for index in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10.0)
        with (output_dir / "emissions.csv").open(newline="") as emissions:
            rows = list(csv.DictReader(emissions))
        assert sorted(row["project_name"] for row in rows) == sorted(f"run-{index}" for index in range(writers))
        assert [path.name for path in output_dir.iterdir()] == ["emissions.csv"]
