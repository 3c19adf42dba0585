"""``hf-eco2ai profile``: measure the energy and carbon of a whole child process.

A profiled command is a run like any other: it is kept in the run store, its reports are written
to ``output_dir`` named by its run id, and it appends a row to ``emissions.csv``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hf_eco2ai import __version__
from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.meter.energy_meter import EnergyMeter
from hf_eco2ai.reporting import numbers
from hf_eco2ai.reporting.atomic import write_text_atomically
from hf_eco2ai.reporting.files import DEFAULT_REPORT_FORMATS
from hf_eco2ai.reporting.run_outputs import log_run_summary, write_run_outputs
from hf_eco2ai.session.tracking_session import TrackingSession
from hf_eco2ai.units import kwh_from_joules

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
COVERAGE_CODES = ("cpu-estimated", "dram-not-measured")


def _unstartable(command: Sequence[str]) -> Optional[int]:
    """127 (not found) or 126 (not executable) when ``command`` cannot start, with the message a
    shell gives; None when it can. Checked before anything is measured, so that a mistyped
    command leaves no run behind."""
    program = command[0]
    if os.sep in program:
        if not os.path.exists(program):
            print(f"hf-eco2ai profile: command not found: {program}", file=sys.stderr)
            return 127
        if os.path.isdir(program) or not os.access(program, os.X_OK):
            print(f"hf-eco2ai profile: permission denied: {program}", file=sys.stderr)
            return 126
        return None
    if shutil.which(program) is None:
        print(f"hf-eco2ai profile: command not found: {program}", file=sys.stderr)
        return 127
    return None


def _progress_line(session: TrackingSession, elapsed_s: float) -> str:
    snapshot = session.snapshot()
    if snapshot is None:
        return f"hf-eco2ai: {numbers.duration(elapsed_s)} so far"
    watts = sum(
        snapshot.power_watts_by_channel.get(channel.name, 0.0)
        for channel in snapshot.channels
        if channel.parent is None
    )
    return (
        f"hf-eco2ai: {numbers.duration(elapsed_s)} so far, {numbers.energy_kwh(snapshot.energy_kwh_total)}, "
        f"{numbers.mass_kg(snapshot.co2_kg_total)} CO2e, now {numbers.significant(watts)} W"
    )


def _wait(child: "subprocess.Popen[bytes]", session: TrackingSession, interval_s: Optional[float]) -> int:
    """The child's exit status; every ``interval_s`` meanwhile, a progress line on stderr."""
    if interval_s is None:
        return child.wait()
    started = time.monotonic()
    while True:
        try:
            return child.wait(timeout=interval_s)
        except subprocess.TimeoutExpired:
            print(_progress_line(session, time.monotonic() - started), file=sys.stderr, flush=True)


def _run_child(command: Sequence[str], session: TrackingSession, interval_s: Optional[float]) -> Tuple[int, bool]:
    """Runs the command, forwarding Ctrl-C and termination signals to it, and waits for it.
    Returns its exit code and whether it started at all.

    The child decides what a signal means (it may clean up and exit 0); we keep measuring until
    it has exited. A child killed by a signal yields 128 + the signal number, as shells do.
    """
    try:
        child = subprocess.Popen(list(command))
    except FileNotFoundError:
        print(f"hf-eco2ai profile: command not found: {command[0]}", file=sys.stderr)
        return 127, False
    except OSError as error:
        print(f"hf-eco2ai profile: cannot run {command[0]}: {error.strerror or error}", file=sys.stderr)
        return 126, False

    def forward(signum: int, _frame: Any) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS}
    try:
        returncode = _wait(child, session, interval_s)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return (128 - returncode if returncode < 0 else returncode), True


def _summarise(meter: EnergyMeter, duration_s: float) -> List[Dict[str, Any]]:
    joules = meter.totals()["joules"]
    rows = []
    for channel in meter.channels():
        channel_joules = joules[channel.name]
        rows.append(
            {
                "channel": channel.name,
                "provenance": channel.provenance,
                "source": channel.source,
                "scope": channel.scope,
                "part_of": channel.parent,
                "joules": channel_joules,
                "kwh": kwh_from_joules(channel_joules),
                "mean_watts": channel_joules / duration_s if duration_s > 0 else None,
            }
        )
    return rows


def _print_table(rows: List[Dict[str, Any]], duration_s: float, exit_code: int) -> None:
    print(f"\nhf-eco2ai: {duration_s:.3f} s, exit code {exit_code}", file=sys.stderr)
    header = f"{'channel':<18}{'joules':>14}{'mean W':>10}  {'provenance':<10}  part of"
    print(header, file=sys.stderr)
    print("-" * len(header), file=sys.stderr)
    for row in rows:
        mean = f"{row['mean_watts']:.2f}" if row["mean_watts"] is not None else "-"
        print(
            f"{row['channel']:<18}{row['joules']:>14.3f}{mean:>10}  {row['provenance']:<10}  {row['part_of'] or ''}",
            file=sys.stderr,
        )
    top_level = [r for r in rows if r["part_of"] is None]
    total_joules = sum(r["joules"] for r in top_level)
    estimated = any(r["provenance"] == "estimated" for r in top_level)
    note = " (includes estimates)" if estimated else ""
    print(
        f"{'total':<18}{total_joules:>14.3f}{total_joules / duration_s if duration_s else 0:>10.2f}  {note}",
        file=sys.stderr,
    )


def profile_command(
    command: Sequence[str],
    config: Optional[CarbonConfig] = None,
    json_path: Optional[str] = None,
    interval_s: Optional[float] = None,
) -> int:
    """Runs ``command`` as one tracked run; prints a table and a summary line, and writes the
    default outputs (reports, run store row, ``emissions.csv`` row) to ``config.output_dir``,
    plus the profile summary as JSON to ``json_path`` when given.

    ``config`` carries the location (``country_iso_code``, ``region``...), the sampler's rate and
    sources, and the output directory; None reads them from the environment and ``eco2ai.yaml``.
    With ``interval_s``, a progress line goes to stderr every ``interval_s`` seconds. A command
    that cannot start returns 127 or 126 and leaves no run and no report.

    Unless ``cpu_scope`` is configured (argument, environment or ``eco2ai.yaml``), the command is
    charged its process tree's share of the CPU channels (``cpu_scope="process"``), not the
    profiler's own CPU time and not other programs'.

    Returns the command's exit code, also when an output cannot be written (that is a warning).
    Raises ConfigurationError or SensorUnavailableError before the command starts if the
    settings are invalid or the meter cannot be built.
    """
    unstartable = _unstartable(command)
    if unstartable is not None:
        return unstartable
    config = _with_profile_scope(config if config is not None else CarbonConfig())
    session = TrackingSession(config, meter=_process_scope_meter(config))
    session.start()
    try:
        exit_code, started = _run_child(command, session, interval_s)
    except BaseException:
        session.stop("failed")
        raise
    status = "finished" if exit_code == 0 else "failed"
    report = session.stop(status)
    if not started:
        return exit_code
    meter = session.meter
    totals = meter.totals() if meter is not None else {}
    first, last = totals.get("first_reading_s"), totals.get("t_s")
    duration_s = (last - first) if first is not None and last is not None else 0.0
    rows = _summarise(meter, duration_s) if meter is not None else []
    _print_table(rows, duration_s, exit_code)

    _print_scope_and_notes(report)
    report["training"] = {"framework": "profile", "exit_code": exit_code}
    paths = write_run_outputs(report, session.config.output_dir, DEFAULT_REPORT_FORMATS, status, _output_failed)
    log_run_summary(report, paths)
    if json_path is not None:
        _write_json(Path(json_path), _profile_json(command, exit_code, duration_s, rows, report, paths, meter))
    return exit_code


def _profile_json(
    command: Sequence[str],
    exit_code: int,
    duration_s: float,
    rows: List[Dict[str, Any]],
    report: Mapping[str, Any],
    paths: Mapping[str, Path],
    meter: Optional[EnergyMeter],
) -> Dict[str, Any]:
    info = meter.info() if meter is not None else {}
    totals = meter.totals() if meter is not None else {}
    return {
        "schema": "hf-eco2ai/profile/1",
        "hf_eco2ai_version": __version__,
        "run_id": report["run"]["run_id"],
        "command": list(command),
        "exit_code": exit_code,
        "started_unix_s": report["run"]["started_unix_s"],
        "duration_s": duration_s,
        "channels": rows,
        "total_joules": sum(r["joules"] for r in rows if r["part_of"] is None),
        "total_kwh": sum(r["kwh"] for r in rows if r["part_of"] is None),
        "total_co2_kg": report["total_co2_kg"],
        "intensity": report["intensity"],
        "reports": {name: str(path) for name, path in paths.items()},
        "meter": {key: info.get(key) for key in ("rate_hz", "sources", "skipped_sources", "channels")},
        "cpu_scope": report["config"]["cpu_scope"],
        "dram": report.get("dram"),
        "warnings": report["warnings"],
        "counters": {k: v for k, v in totals.items() if isinstance(v, int)},
    }


def _with_profile_scope(config: CarbonConfig) -> CarbonConfig:
    """``config`` with the process scope, unless the user chose a scope."""
    return config.replace(cpu_scope="process") if config.origin("cpu_scope") == "default" else config


def _process_scope_meter(config: CarbonConfig) -> Optional[EnergyMeter]:
    """In process scope, a meter that charges the command's tree only (the profiler's own CPU
    time left out); None lets the session build its meter as for any run."""
    if config.cpu_scope != "process":
        return None
    return EnergyMeter(
        sources=list(config.sources),
        rate_hz=config.rate_hz,
        cpu_scope="process",
        cpu_scope_children_only=True,
    )


def _print_scope_and_notes(report: Mapping[str, Any]) -> None:
    """The CPU scope, the CPU estimate's inputs and the DRAM statement, on stderr."""
    cpu_scope = report["config"]["cpu_scope"]
    meaning = (
        "the command's share of the CPU energy"
        if cpu_scope == "process"
        else "the whole machine's, other programs' too"
    )
    print(f"hf-eco2ai: CPU scope: {cpu_scope} ({meaning})", file=sys.stderr)
    for warning in report["warnings"]:
        if warning["code"] in COVERAGE_CODES:
            print(f"hf-eco2ai: note: {warning['message']}", file=sys.stderr)


def _output_failed(error: OSError) -> None:
    print(
        f"hf-eco2ai: warning: the report files could not be written ({error.strerror or error}); "
        "the run is in the run store (hf-eco2ai report RUN)",
        file=sys.stderr,
    )


def _write_json(path: Path, document: Dict[str, Any]) -> None:
    """Writes the profile JSON; a failure is one warning on stderr, never the command's exit code."""
    try:
        write_text_atomically(path, json.dumps(document, indent=2) + "\n")
    except OSError as error:
        print(
            f"hf-eco2ai: warning: the report could not be written to {path} "
            f"({error.strerror or error}); the figures are in the table above",
            file=sys.stderr,
        )
        return
    print(f"hf-eco2ai: report written to {path}", file=sys.stderr)
