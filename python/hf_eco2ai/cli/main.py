"""The ``hf-eco2ai`` command. Each subcommand parses its arguments and calls the library."""

from __future__ import annotations

import argparse
import sqlite3
import sys
import threading
import time
from typing import Callable, Dict, List, Optional

from hf_eco2ai.errors import CarbonTrackingError


def _add_profile(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="run a command and report the energy it used",
        description="Runs CMD while sampling energy, prints a summary and writes a JSON report. "
        "Exits with CMD's exit code; Ctrl-C is forwarded to CMD.",
    )
    parser.add_argument("--rate", type=float, default=100.0, metavar="HZ", help="sampler rate (default 100)")
    parser.add_argument("--sources", default="auto", help="auto, nvml, rapl, cpu-estimate, or a comma-separated list")
    parser.add_argument(
        "--cpu-scope",
        choices=("process", "machine"),
        default="process",
        help="charge CMD's share of the CPU energy (process, the default: its process tree's CPU time "
        "over the machine's) or the whole machine's (machine)",
    )
    parser.add_argument(
        "--json",
        dest="json_path",
        metavar="FILE",
        help="where to write the JSON report (default: hf_eco2ai_reports/profile-<time>.json)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")


def _add_devices(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "devices", help="list the energy sources and channels found here, and why any are missing"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_store_commands(subparsers: argparse._SubParsersAction) -> None:
    store_help = "the run store file (default: <output_dir>/runs.sqlite from CarbonConfig)"
    runs = subparsers.add_parser("runs", help="list the stored runs, newest first")
    runs.add_argument("--store", help=store_help)
    runs.add_argument("--project", help="only this project's runs")
    runs.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")

    show = subparsers.add_parser("show", help="one stored run's figures and provenance")
    show.add_argument("run", help="a run id or a unique prefix of one")
    show.add_argument("--store", help=store_help)
    show.add_argument("--json", action="store_true", help="print the summary and final report as JSON")

    compare = subparsers.add_parser("compare", help="energy and carbon of runs side by side, against the first")
    compare.add_argument("runs", nargs="+", help="run ids or unique prefixes")
    compare.add_argument("--store", help=store_help)

    report = subparsers.add_parser("report", help="render a finished run's report")
    report.add_argument("run", help="a run id or a unique prefix of one")
    report.add_argument("--store", help=store_help)
    report.add_argument(
        "--format", default="markdown", help="json, csv, csv-summary, markdown or html (default markdown)"
    )
    report.add_argument("--output", help="write to this file instead of printing")

    serve = subparsers.add_parser("serve", help="serve a stored run's figures on a Prometheus endpoint")
    serve.add_argument("--run", required=True, help="a run id or a unique prefix of one")
    serve.add_argument("--store", help=store_help)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")


def _add_trace(subparsers: argparse._SubParsersAction) -> None:
    trace = subparsers.add_parser(
        "trace",
        help="write a stored run as Chrome/Perfetto trace JSON",
        description="Writes a counter track per channel (watts) and slices for steps and windows (with "
        "their joules) as Chrome trace JSON, on the Unix clock that torch.profiler traces use. With "
        "--merge, adds those tracks to a torch.profiler trace so that one timeline shows kernels and power.",
    )
    trace.add_argument("run", help="a run id or a unique prefix of one")
    trace.add_argument("-o", "--output", required=True, help="the trace file to write")
    trace.add_argument("--merge", metavar="TORCH_TRACE", help="a torch.profiler Chrome trace to add the tracks to")
    trace.add_argument("--store", help="the run store file (default: <output_dir>/runs.sqlite from CarbonConfig)")


def _run_trace(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.trace import write_run_trace

    return write_run_trace(args.store, args.run, args.output, args.merge)


def _run_profile(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.profile import profile_command

    command: List[str] = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print(
            "hf-eco2ai profile: no command given. Usage: hf-eco2ai profile [--rate HZ] [--json FILE] -- CMD ...",
            file=sys.stderr,
        )
        return 2
    sources = args.sources.split(",") if "," in args.sources else args.sources
    return profile_command(
        command, rate_hz=args.rate, sources=sources, json_path=args.json_path, cpu_scope=args.cpu_scope
    )


def _run_devices(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.devices import print_devices

    return print_devices(as_json=args.json)


def _run_runs(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.runs import open_store, print_runs

    return print_runs(open_store(args.store), args.project, args.limit)


def _run_show(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.runs import open_store, print_run

    return print_run(open_store(args.store), args.run, args.json)


def _run_compare(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.runs import open_store, print_comparison

    return print_comparison(open_store(args.store), args.runs)


def _run_report(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.runs import open_store, write_report

    return write_report(open_store(args.store), args.run, args.format, args.output)


def _run_serve(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.runs import open_store
    from hf_eco2ai.integrations.prometheus.stored_run import serve_run

    store = open_store(args.store)
    exporter = serve_run(args.run, store.path, host=args.host, port=args.port)
    print(f"serving run {args.run} on {exporter.url}", flush=True)
    try:
        if args.seconds is None:
            threading.Event().wait()
        else:
            time.sleep(args.seconds)
    except KeyboardInterrupt:
        pass
    finally:
        exporter.close()
    return 0


COMMANDS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "profile": _run_profile,
    "devices": _run_devices,
    "runs": _run_runs,
    "show": _run_show,
    "compare": _run_compare,
    "report": _run_report,
    "serve": _run_serve,
    "trace": _run_trace,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-eco2ai", description="Energy and carbon profiling for ML training.")
    subparsers = parser.add_subparsers(dest="subcommand", required=True)
    _add_profile(subparsers)
    _add_devices(subparsers)
    _add_store_commands(subparsers)
    _add_trace(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.subcommand](args)
    except CarbonTrackingError as error:
        print(f"hf-eco2ai {args.subcommand}: {error}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as error:
        return _damaged_store(args.subcommand, error)


def _damaged_store(subcommand: str, error: sqlite3.DatabaseError) -> int:
    """A store file SQLite itself cannot read (a torn or overwritten page): a message, no traceback."""
    print(
        f"hf-eco2ai {subcommand}: the run store cannot be read ({error}); "
        "`sqlite3 FILE 'PRAGMA integrity_check'` says which part is damaged",
        file=sys.stderr,
    )
    return 2
