"""``emissions.csv``: one row per run, appended at each run's end, for people who load runs into
pandas or a spreadsheet. Every row says where its figures came from (channels and their
provenance, the intensity's source, zone, year and whether the live API estimated it)."""

from __future__ import annotations

import csv
import io
import os
import threading
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from hf_eco2ai.reporting.csv_format import neutralise_formula

EMISSIONS_CSV_NAME = "emissions.csv"
EMISSIONS_COLUMNS = (
    "run_id",
    "project_name",
    "experiment_id",
    "model_name",
    "host",
    "rank",
    "world_size",
    "started_unix_s",
    "ended_unix_s",
    "duration_s",
    "status",
    "steps_marked",
    "samples_total",
    "energy_kwh",
    "it_energy_kwh",
    "pue",
    "co2_kg",
    "intensity_g_per_kwh",
    "intensity_source",
    "intensity_dataset",
    "intensity_zone",
    "intensity_year",
    "intensity_is_estimated",
    "channels",
    "monitoring_errors_total",
    "report_path",
)


def emissions_row(report: Mapping[str, Any], status: str, report_path: Optional[Path]) -> Dict[str, Any]:
    """The ``emissions.csv`` row of one run's report."""
    run = report["run"]
    intensity = report["intensity"]
    return {
        "run_id": run["run_id"],
        "project_name": run["project_name"],
        "experiment_id": run["experiment_id"],
        "model_name": run["model_name"],
        "host": run["host"],
        "rank": run["rank"],
        "world_size": run["world_size"],
        "started_unix_s": run["started_unix_s"],
        "ended_unix_s": run["ended_unix_s"],
        "duration_s": report["duration_s"],
        "status": status,
        "steps_marked": report["steps_marked"],
        "samples_total": report["samples_total"],
        "energy_kwh": report["energy"]["total_kwh"],
        "it_energy_kwh": report["energy"]["it_kwh"],
        "pue": report["energy"]["pue"],
        "co2_kg": report["total_co2_kg"],
        "intensity_g_per_kwh": intensity["g_per_kwh"],
        "intensity_source": intensity["source"],
        "intensity_dataset": intensity["dataset"],
        "intensity_zone": intensity.get("zone"),
        "intensity_year": intensity.get("year"),
        "intensity_is_estimated": intensity.get("is_estimated"),
        "channels": "; ".join(f"{c['name']} {c['provenance']}" for c in report["channels"]),
        "monitoring_errors_total": report["monitoring_errors_total"],
        "report_path": None if report_path is None else str(report_path),
    }


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula (the same rule as the
    CSV reports: ``neutralise_formula``); numbers stay numbers."""
    if value is None:
        return ""
    return neutralise_formula(value) if isinstance(value, str) else str(value)


def append_emissions_row(output_dir: Any, row: Mapping[str, Any]) -> Path:
    """Append ``row`` to ``<output_dir>/emissions.csv``, writing the header when the file is new.

    The row goes out in one ``write`` on a file opened for appending, so rows of runs ending at
    the same time in other processes do not interleave; a new file appears with its header
    already in it (written aside, then linked into place, which only one process can do), so
    runs starting a file at the same moment write one header between them.

    Raises:
        OSError: the file cannot be written.
    """
    path = Path(output_dir) / EMISSIONS_CSV_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_with_header(path)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([_cell(row.get(column)) for column in EMISSIONS_COLUMNS])
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(descriptor, buffer.getvalue().encode("utf-8"))
    finally:
        os.close(descriptor)
    return path


def _create_with_header(path: Path) -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(EMISSIONS_COLUMNS)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    aside.write_text(buffer.getvalue(), encoding="utf-8")
    try:
        os.link(aside, path)
    except FileExistsError:
        pass  # another run created it first, header included
    except OSError:
        # A filesystem without hard links: create it in place; two runs starting it in the same
        # instant may then both write the header.
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.fstat(descriptor).st_size == 0:
                os.write(descriptor, buffer.getvalue().encode("utf-8"))
        finally:
            os.close(descriptor)
    finally:
        aside.unlink(missing_ok=True)
