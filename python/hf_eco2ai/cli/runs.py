"""What ``hf-eco2ai runs/show/compare/report`` print, read from the run store."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hf_eco2ai.cli.tracer_sections import print_curve_comparison, print_gradient_sections, tracer_json
from hf_eco2ai.cli.windows_section import print_windows
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.store.run_store import DamagedRunError, RunStore, RunSummary, default_store_path
from hf_eco2ai.units import joules_from_kwh


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


def _figure(value: Optional[float], fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _when(unix_s: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(unix_s))


def print_runs(store: RunStore, project_name: Optional[str], limit: Optional[int]) -> int:
    runs = store.list_runs(project_name=project_name, limit=limit, on_damaged=_warn_damaged)
    if not runs:
        print(f"no runs in {store.path}")
        return 0
    print(f"{'run':<14}{'project':<20}{'status':<12}{'started':<21}{'steps':>7}{'kWh':>12}{'kg CO2e':>12}")
    for run in runs:
        print(
            f"{run.run_id[:12]:<14}{run.project_name[:19]:<20}{run.status:<12}{_when(run.started_unix_s):<21}"
            f"{run.step_count:>7}{_figure(run.energy_kwh_total, '.6f'):>12}{_figure(run.co2_kg_total, '.6f'):>12}"
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
        f"  host {summary.host}, rank {summary.rank}/{summary.world_size}, started {_when(summary.started_unix_s)}, {summary.duration_s:.1f} s"
    )
    print(
        f"  steps {summary.step_count}, energy {_figure(summary.energy_kwh_total, '.6f')} kWh, CO2 {_figure(summary.co2_kg_total, '.6f')} kg"
    )
    if summary.intensity:
        intensity = summary.intensity
        print(
            f"  intensity {intensity.get('g_per_kwh')} g/kWh from {intensity.get('source')} "
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
    print(f"{'run':<14}{'steps':>7}{'kWh':>12}{'kg CO2e':>12}{'J/step':>10}  vs first")
    for summary in summaries:
        kwh = summary.energy_kwh_total
        per_step = joules_from_kwh(kwh) / summary.step_count if kwh is not None and summary.step_count else None
        versus = ""
        if kwh is not None and baseline.energy_kwh_total:
            versus = f"{(kwh / baseline.energy_kwh_total - 1) * 100:+.1f} % energy"
        print(
            f"{summary.run_id[:12]:<14}{summary.step_count:>7}{_figure(kwh, '.6f'):>12}"
            f"{_figure(summary.co2_kg_total, '.6f'):>12}{_figure(per_step, '.2f'):>10}  {versus}"
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
