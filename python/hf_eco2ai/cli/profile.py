"""``hf-eco2ai profile``: measure the energy of a whole child process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from hf_eco2ai import __version__
from hf_eco2ai.meter.coverage import coverage_warnings, dram_coverage
from hf_eco2ai.meter.energy_meter import EnergyMeter
from hf_eco2ai.reporting.atomic import write_text_atomically
from hf_eco2ai.units import kwh_from_joules

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _default_report_path() -> Path:
    return Path("hf_eco2ai_reports") / time.strftime("profile-%Y%m%d-%H%M%S.json")


def _run_child(command: Sequence[str]) -> int:
    """Runs the command, forwarding Ctrl-C and termination signals to it, and waits for it.

    The child decides what a signal means (it may clean up and exit 0); we keep measuring until
    it has exited. A child killed by a signal yields 128 + the signal number, as shells do.
    """
    try:
        child = subprocess.Popen(list(command))
    except FileNotFoundError:
        print(f"hf-eco2ai profile: command not found: {command[0]}", file=sys.stderr)
        return 127
    except PermissionError:
        print(f"hf-eco2ai profile: permission denied: {command[0]}", file=sys.stderr)
        return 126

    def forward(signum: int, _frame: Any) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS}
    try:
        returncode = child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - returncode if returncode < 0 else returncode


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
    rate_hz: float = 100.0,
    sources: Union[str, Sequence[str]] = "auto",
    json_path: Optional[str] = None,
    cpu_scope: str = "process",
) -> int:
    """Runs ``command`` under an EnergyMeter; prints a table and writes a JSON report.

    ``cpu_scope="process"`` charges the command's process tree its share of the CPU channels
    (its CPU time over the machine's); ``"machine"`` charges it the whole node's.

    Returns the command's exit code, also when the report cannot be written (that is a warning).
    Raises ConfigurationError or SensorUnavailableError before the command starts if the meter
    cannot be built.
    """
    meter = EnergyMeter(sources=sources, rate_hz=rate_hz, cpu_scope=cpu_scope, cpu_scope_children_only=True)
    started_unix_s = time.time()
    meter.start()
    try:
        exit_code = _run_child(command)
    finally:
        meter.stop()
    totals = meter.totals()
    first, last = totals["first_reading_s"], totals["t_s"]
    duration_s = (last - first) if first is not None and last is not None else 0.0
    rows = _summarise(meter, duration_s)
    _print_table(rows, duration_s, exit_code)

    info = meter.info()
    warnings = coverage_warnings(info)
    scope_meaning = (
        "the command's share of the CPU energy"
        if cpu_scope == "process"
        else "the whole machine's, other programs' too"
    )
    print(f"hf-eco2ai: CPU scope: {cpu_scope} ({scope_meaning})", file=sys.stderr)
    for warning in warnings:
        print(f"hf-eco2ai: note: {warning['message']}", file=sys.stderr)
    report = {
        "schema": "hf-eco2ai/profile/1",
        "hf_eco2ai_version": __version__,
        "command": list(command),
        "exit_code": exit_code,
        "started_unix_s": started_unix_s,
        "duration_s": duration_s,
        "channels": rows,
        "total_joules": sum(r["joules"] for r in rows if r["part_of"] is None),
        "total_kwh": sum(r["kwh"] for r in rows if r["part_of"] is None),
        "meter": {key: info[key] for key in ("rate_hz", "sources", "skipped_sources", "channels")},
        "cpu_scope": cpu_scope,
        "dram": dram_coverage(info),
        "warnings": warnings,
        "counters": {k: v for k, v in totals.items() if isinstance(v, int)},
    }
    _write_report(Path(json_path) if json_path else _default_report_path(), report)
    return exit_code


def _write_report(path: Path, report: Dict[str, Any]) -> None:
    """Writes the JSON report; a failure is one warning on stderr, never the command's exit code."""
    try:
        write_text_atomically(path, json.dumps(report, indent=2) + "\n")
    except OSError as error:
        print(
            f"hf-eco2ai: warning: the report could not be written to {path} "
            f"({error.strerror or error}); the figures are in the table above",
            file=sys.stderr,
        )
        return
    print(f"hf-eco2ai: report written to {path}", file=sys.stderr)
