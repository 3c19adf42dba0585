"""What ``hf-eco2ai runs/show/compare/report`` print, read from the run store."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hf_eco2ai.cli.tracer_sections import print_curve_comparison, print_gradient_sections, tracer_json
from hf_eco2ai.cli.windows_section import print_windows
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.reporting import numbers
from hf_eco2ai.reporting.csv_format import neutralise_formula
from hf_eco2ai.store.run_store import DamagedRunError, RunStore, RunSummary, default_store_path


def open_store(store_path: Optional[str]) -> RunStore:
    """The store named, or the default one under the configured ``output_dir``, opened read-only:
    the read commands never change the file (nor turn another SQLite file into a store).

    Raises:
        ConfigurationError: the file does not exist, is empty, or is not a run store (names it
            and how to point at another).
    """
    if store_path is None:
        from hf_eco2ai.config import CarbonConfig

        path = default_store_path(CarbonConfig().output_dir)
    else:
        path = Path(store_path)
    if not path.is_file():
        raise ConfigurationError(
            f"no run store at {str(path)!r}: runs are stored under the output_dir they ran with; "
            "pass --store PATH/runs.sqlite"
        )
    return RunStore(path, read_only=True)


def _warn_damaged(error: DamagedRunError) -> None:
    print(f"hf-eco2ai: warning: skipped a damaged row: {error}", file=sys.stderr)


def _resolve(store: RunStore, run: str) -> RunSummary:
    try:
        return store.get_run(run)
    except KeyError as error:
        raise ConfigurationError(
            f"run {run!r}: {error.args[0] if error.args else 'not found'}; `hf-eco2ai runs` lists them"
        ) from None


def _when(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix_s))


def _versus(value: Optional[float], baseline: Optional[float], what: str) -> Optional[str]:
    if value is None or not baseline:
        return None
    return f"{(value / baseline - 1) * 100:+.1f} % {what}"


RUN_LIST_COLUMNS = (
    "run_id",
    "project_name",
    "status",
    "started_unix_s",
    "duration_s",
    "steps",
    "energy_kwh",
    "co2_kg",
    "intensity_g_per_kwh",
    "intensity_source",
)


def _run_row(run: RunSummary) -> Dict[str, Any]:
    """One run as the csv and json formats list it: full precision, kWh and kg."""
    intensity = run.intensity or {}
    return {
        "run_id": run.run_id,
        "project_name": run.project_name,
        "status": run.status,
        "started_unix_s": run.started_unix_s,
        "duration_s": run.duration_s,
        "steps": run.step_count,
        "energy_kwh": run.energy_kwh_total,
        "co2_kg": run.co2_kg_total,
        "intensity_g_per_kwh": intensity.get("g_per_kwh"),
        "intensity_source": intensity.get("source"),
    }


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    return neutralise_formula(value) if isinstance(value, str) else str(value)


def print_runs(store: RunStore, project_name: Optional[str], limit: Optional[int], output_format: str = "table") -> int:
    """Lists the stored runs, newest first: ``table`` for people (figures in readable units, as
    the reports spell them), ``csv`` (with a header) or ``json`` (a list) at full precision."""
    runs = store.list_runs(project_name=project_name, limit=limit, on_damaged=_warn_damaged)
    if output_format == "json":
        print(json.dumps([_run_row(run) for run in runs], indent=2))
        return 0
    if output_format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(RUN_LIST_COLUMNS)
        for run in runs:
            row = _run_row(run)
            writer.writerow([_csv_cell(row[column]) for column in RUN_LIST_COLUMNS])
        return 0
    if not runs:
        print(f"no runs in {store.path}")
        return 0
    print(f"{'run':<14}{'project':<20}{'status':<12}{'started':<21}{'steps':>7}{'energy':>13}{'CO2e':>13}")
    for run in runs:
        print(
            f"{run.run_id[:12]:<14}{run.project_name[:19]:<20}{run.status:<12}{_when(run.started_unix_s):<21}"
            f"{run.step_count:>7}{numbers.energy_kwh(run.energy_kwh_total):>13}{numbers.mass_kg(run.co2_kg_total):>13}"
        )
    return 0


def print_run(store: RunStore, run: str, as_json: bool) -> int:
    summary = _resolve(store, run)
    if as_json:
        print(
            json.dumps(
                {
                    "summary": summary.__dict__,
                    "report": store.report(summary.run_id),
                    **tracer_json(store, summary.run_id),
                },
                indent=2,
                default=str,
            )
        )
        return 0
    print(f"run {summary.run_id} ({summary.status})")
    print(
        f"  project {summary.project_name}, experiment {summary.experiment_id or '-'}, model {summary.model_name or '-'}"
    )
    print(
        f"  host {summary.host}, rank {summary.rank}/{summary.world_size}, started {_when(summary.started_unix_s)}, "
        f"{numbers.duration(summary.duration_s)}"
    )
    print(
        f"  steps {summary.step_count}, energy {numbers.energy_kwh(summary.energy_kwh_total)}, "
        f"CO2e {numbers.mass_kg(summary.co2_kg_total)}"
    )
    if summary.intensity:
        intensity = summary.intensity
        print(
            f"  intensity {numbers.significant(intensity.get('g_per_kwh'))} g/kWh from {intensity.get('source')} "
            f"({intensity.get('dataset')}, {intensity.get('year') or 'year unknown'})"
        )
    for channel in summary.channels:
        print(f"  channel {channel['name']}: {channel.get('provenance')}, {channel.get('source')}")
    print_windows(store, summary, store.report(summary.run_id))
    print_gradient_sections(store, summary.run_id)
    return 0


def print_comparison(store: RunStore, runs: Sequence[str]) -> int:
    if len(runs) < 2:
        raise ConfigurationError(
            f"compare needs at least two runs, got {len(runs)}: hf-eco2ai compare RUN RUN [RUN ...]"
        )
    summaries: List[RunSummary] = [_resolve(store, run) for run in runs]
    baseline = summaries[0]
    print(f"{'run':<14}{'steps':>7}{'energy':>13}{'CO2e':>13}{'per step':>13}{'CO2e/step':>13}  vs first")
    for summary in summaries:
        kwh, co2_kg, steps = summary.energy_kwh_total, summary.co2_kg_total, summary.step_count
        kwh_per_step = kwh / steps if kwh is not None and steps else None
        co2_kg_per_step = co2_kg / steps if co2_kg is not None and steps else None
        versus = [
            _versus(kwh, baseline.energy_kwh_total, "energy"),
            _versus(co2_kg, baseline.co2_kg_total, "CO2e"),
        ]
        print(
            f"{summary.run_id[:12]:<14}{steps:>7}{numbers.energy_kwh(kwh):>13}{numbers.mass_kg(co2_kg):>13}"
            f"{numbers.energy_kwh(kwh_per_step):>13}{numbers.mass_kg(co2_kg_per_step):>13}  "
            + ", ".join(text for text in versus if text is not None)
        )
    print_curve_comparison(store, [summary.run_id for summary in summaries])
    return 0


def _report_of_unfinished_run(store: RunStore, summary: RunSummary) -> Any:
    """A run without a final report: rendered from its stored rows when its process is gone."""
    from hf_eco2ai.reporting.interrupted import interrupted_report

    if summary.status != "interrupted":
        raise ConfigurationError(
            f"run {summary.run_id} has no final report yet (status {summary.status}): it is still running"
            + ("" if summary.status == "running" else " or ended without one")
        )
    return interrupted_report(store, summary.run_id)


def write_report(store: RunStore, run: str, output_format: str, output_path: Optional[str]) -> int:
    from hf_eco2ai.reporting.generate import generate_carbon_report

    summary = _resolve(store, run)
    tracking_data: Optional[Any] = store.report(summary.run_id)
    if tracking_data is None:
        tracking_data = _report_of_unfinished_run(store, summary)
    try:
        text = generate_carbon_report(tracking_data, output_format=output_format, output_path=output_path)
    except OSError as error:
        raise ConfigurationError(
            f"--output {output_path!r} cannot be written ({error.strerror or error}): choose a writable path"
        ) from None
    if output_path is None:
        print(text)
    else:
        print(f"report written to {output_path}")
    return 0
