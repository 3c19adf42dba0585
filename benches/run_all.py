"""Run every benchmark in this folder: each ``bench_*.py`` with this interpreter, then the Rust
sampler benchmark through cargo. ``--smoke`` runs each in its short mode (a few iterations, no
figure to read), which is how the test suite checks that none of them has rotted.

    python benches/run_all.py            # the figures of docs/performance.md
    python benches/run_all.py --smoke    # each benchmark once, quickly
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import List

BENCHES = Path(__file__).resolve().parent


def benchmark_commands(smoke: bool) -> List[List[str]]:
    """The command of every benchmark, Python ones first, in name order."""
    extra = ["--smoke"] if smoke else []
    commands = [[sys.executable, str(path), *extra] for path in sorted(BENCHES.glob("bench_*.py"))]
    commands.append(["cargo", "bench", "--quiet", "--bench", "sampler", "--", *extra])
    return commands


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="run each benchmark in its short mode")
    smoke = parser.parse_args().smoke
    failed = []
    for command in benchmark_commands(smoke):
        name = Path(command[1]).name if command[0] == sys.executable else "cargo bench --bench sampler"
        print(f"\n## {name}\n", flush=True)
        started = time.perf_counter()
        returncode = subprocess.run(command, cwd=BENCHES.parent).returncode
        print(f"\n({name}: exit {returncode}, {time.perf_counter() - started:.0f} s)", flush=True)
        if returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
