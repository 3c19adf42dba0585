"""The ``hf-eco2ai`` command. Each subcommand parses its arguments and calls the library."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from typing import Callable, Dict, List, Optional

from hf_eco2ai import __version__
from hf_eco2ai.errors import CarbonTrackingError, ConfigurationError
from hf_eco2ai.logs import attach_stderr_handler


def _add_profile(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="run a command and report the energy and carbon it used",
        description="Runs CMD while sampling energy, prints a summary, keeps the run in the run store "
        "and writes its reports (carbon_report_<run id>.*) and an emissions.csv row to the output "
        "directory. Exits with CMD's exit code; Ctrl-C and SIGTERM are forwarded to CMD. Settings "
        "not given here come from the environment and eco2ai.yaml, as for every run.",
    )
    parser.add_argument("--rate", type=float, metavar="HZ", help="sampler rate (default: rate_hz, 100)")
    parser.add_argument("--sources", help="auto, nvml, rapl, cpu-estimate, or a comma-separated list (default auto)")
    parser.add_argument("--country", metavar="ISO", help="the grid's country, ISO 3166 (sets country_iso_code)")
    parser.add_argument("--region", help="a US state or Canadian province within --country (sets region)")
    parser.add_argument("--project", help="the run's project name (sets project_name)")
    parser.add_argument("--output-dir", metavar="DIR", help="where reports and runs.sqlite go (sets output_dir)")
    parser.add_argument(
        "--interval", type=float, metavar="S", help="print a progress line every S seconds while CMD runs"
    )
    parser.add_argument(
        "--cpu-scope",
        choices=("process", "machine"),
        help="charge CMD's share of the CPU energy (process, the default unless cpu_scope is configured: "
        "its process tree's CPU time over the machine's) or the whole machine's (machine)",
    )
    parser.add_argument(
        "--json",
        dest="json_path",
        metavar="FILE",
        help="also write the profile summary (command, exit code, channels, carbon) as JSON to FILE",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")


def _add_devices(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "devices", help="list the energy sources and channels found here, and why any are missing"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


RUNS_FORMATS = ("table", "csv", "json")


def _add_store_commands(subparsers: argparse._SubParsersAction) -> None:
    store_help = "the run store file (default: <output_dir>/runs.sqlite from CarbonConfig)"
    runs = subparsers.add_parser("runs", help="list the stored runs, newest first")
    runs.add_argument("--store", help=store_help)
    runs.add_argument("--project", help="only this project's runs")
    runs.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    runs.add_argument(
        "--format",
        dest="output_format",
        choices=RUNS_FORMATS,
        default="table",
        help="table (for people, figures in readable units), csv or json (full precision in kWh and kg)",
    )

    show = subparsers.add_parser("show", help="one stored run's figures and provenance")
    show.add_argument("run", help="a run id or a unique prefix of one")
    show.add_argument("--store", help=store_help)
    show.add_argument("--json", action="store_true", help="print the summary and final report as JSON")

    compare = subparsers.add_parser("compare", help="energy and carbon of runs side by side, against the first")
    compare.add_argument("runs", nargs="+", help="run ids or unique prefixes")
    compare.add_argument("--store", help=store_help)
    compare.add_argument(
        "--html",
        metavar="OUT",
        help="also write a comparison page there: per-run cards, energy and CO2 per step and per sample, overlaid curves",
    )

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
    from hf_eco2ai.config import CarbonConfig

    command: List[str] = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print(
            "hf-eco2ai profile: no command given. Usage: hf-eco2ai profile [--country ISO] [--interval S] -- CMD ...",
            file=sys.stderr,
        )
        return 2
    if args.interval is not None and not args.interval > 0:
        raise ConfigurationError(f"--interval {args.interval:g} is invalid: expected a number of seconds > 0")
    sources = args.sources.split(",") if args.sources is not None and "," in args.sources else args.sources
    config = CarbonConfig(
        rate_hz=args.rate,
        sources=sources,
        country_iso_code=args.country,
        region=args.region,
        project_name=args.project,
        output_dir=args.output_dir,
        cpu_scope=args.cpu_scope,
    )
    return profile_command(command, config=config, json_path=args.json_path, interval_s=args.interval)


def _run_devices(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.devices import print_devices

    return print_devices(as_json=args.json)


def _run_runs(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.runs import open_store, print_runs

    return print_runs(open_store(args.store), args.project, args.limit, args.output_format)


def _run_show(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.runs import open_store, print_run

    return print_run(open_store(args.store), args.run, args.json)


def _run_compare(args: argparse.Namespace) -> int:
    from hf_eco2ai.cli.runs import open_store, print_comparison

    store = open_store(args.store)
    status = print_comparison(store, args.runs)
    if args.html is not None:
        from hf_eco2ai.cli.compare_page import write_comparison_page

        write_comparison_page(store, args.runs, args.html)
    return status


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
    parser.add_argument("--version", action="version", version=f"hf-eco2ai {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", required=True)
    _add_profile(subparsers)
    _add_devices(subparsers)
    _add_store_commands(subparsers)
    _add_trace(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run one subcommand; returns its exit status (2 for a usage or settings error).

    Output piped into a command that stops reading early (``| head``) ends this one quietly, as
    it ends a shell tool: exit status 141 (128 + SIGPIPE), no traceback.
    """
    args = build_parser().parse_args(argv)
    # The end-of-run summary line and the exporter's URL are INFO: a command shows them.
    logging.getLogger("hf_eco2ai").setLevel(logging.INFO)
    attach_stderr_handler()
    try:
        status = COMMANDS[args.subcommand](args)
        sys.stdout.flush()
        return status
    except CarbonTrackingError as error:
        print(f"hf-eco2ai {args.subcommand}: {error}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as error:
        return _damaged_store(args.subcommand, error)
    except BrokenPipeError:
        return _reader_went_away()


def _reader_went_away() -> int:
    """The reader of stdout closed it. Point stdout at /dev/null so that the interpreter's own
    flush at exit does not fail a second time, and exit as a process killed by SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def _damaged_store(subcommand: str, error: sqlite3.DatabaseError) -> int:
    """A store file SQLite itself cannot read (a torn or overwritten page): a message, no traceback."""
    print(
        f"hf-eco2ai {subcommand}: the run store cannot be read ({error}); "
        "`sqlite3 FILE 'PRAGMA integrity_check'` says which part is damaged",
        file=sys.stderr,
    )
    return 2
