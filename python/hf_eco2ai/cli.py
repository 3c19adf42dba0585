"""The ``hf-eco2ai`` command. Each subcommand parses its arguments and calls the library."""

from __future__ import annotations

import argparse
import sys
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
    parser.add_argument("--json", dest="json_path", metavar="FILE", help="where to write the JSON report "
                        "(default: hf_eco2ai_reports/profile-<time>.json)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")


def _add_devices(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("devices", help="list the energy sources and channels found here, and why any are missing")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _run_profile(args: argparse.Namespace) -> int:
    from hf_eco2ai.profile import profile_command

    command: List[str] = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        print("hf-eco2ai profile: no command given. Usage: hf-eco2ai profile [--rate HZ] [--json FILE] -- CMD ...", file=sys.stderr)
        return 2
    sources = args.sources.split(",") if "," in args.sources else args.sources
    return profile_command(command, rate_hz=args.rate, sources=sources, json_path=args.json_path)


def _run_devices(args: argparse.Namespace) -> int:
    from hf_eco2ai.devices import print_devices

    return print_devices(as_json=args.json)


COMMANDS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "profile": _run_profile,
    "devices": _run_devices,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-eco2ai", description="Energy and carbon profiling for ML training.")
    subparsers = parser.add_subparsers(dest="subcommand", required=True)
    _add_profile(subparsers)
    _add_devices(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.subcommand](args)
    except CarbonTrackingError as error:
        print(f"hf-eco2ai {args.subcommand}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
