"""What the session's background threads cost a fast training loop: its slowdown and its pauses.

A loop of steps of ~15 µs each (a SHA-256 of 16 KiB: work that releases the interpreter, as torch's
kernels do) marks every step and logs every 4,000, with the synthetic source. While it runs, the
session's threads drain the records and write them. Whatever they do while holding the
interpreter, the loop waits for at its next step. Three variants, interleaved round by round:

- ``no session``: the bare loop, the baseline;
- ``session, nothing written``: ``store=False, step_file=False``;
- ``session, defaults``: the run store and the per-step CSV file streamed, as a run has them.

Printed per variant: the loop's time against the baseline of the same round (median over rounds),
and the step times' p99, p99.9 and maximum, with the number of steps over 1 ms per 10,000.

    python benches/bench_fast_loop.py [--steps 60000] [--rounds 3]
    python benches/bench_fast_loop.py --smoke
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

LOG_EVERY = 4000
WORK = bytes(16384)
VARIANTS = ("no session", "session, nothing written", "session, defaults")


def step_times(steps: int, mark: Optional[Callable[[], Any]], log: Optional[Callable[..., Any]]) -> np.ndarray:
    """Seconds of each step of the loop."""
    times = np.zeros(steps)
    previous = time.perf_counter()
    for step in range(steps):
        hashlib.sha256(WORK).digest()
        if mark is not None:
            mark()
        if log is not None and step % LOG_EVERY == LOG_EVERY - 1:
            log({"loss": 1.0}, step=step)
        now = time.perf_counter()
        times[step] = now - previous
        previous = now
    return times


def run_variant(variant: str, steps: int, workdir: Path) -> np.ndarray:
    if variant == "no session":
        return step_times(steps, None, None)
    from hf_eco2ai import CarbonConfig, EnergyMeter
    from hf_eco2ai.session import TrackingSession

    writes = variant == "session, defaults"
    session = TrackingSession(
        CarbonConfig(country_iso_code="FR", offline=True, output_dir=str(workdir)),
        meter=EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 100.0}),
        store=writes,
        step_file=writes,
    )
    session.start()
    try:
        return step_times(steps, session.mark_step, session.log)
    finally:
        session.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60_000, help="steps per loop (default 60,000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--smoke", action="store_true", help="short loops, to check the benchmark runs")
    options = parser.parse_args()
    if options.smoke:
        options.steps, options.rounds = 5000, 1
    warmup = options.steps // 20
    ratios: Dict[str, List[float]] = {variant: [] for variant in VARIANTS}
    times: Dict[str, List[np.ndarray]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as scratch:
        for round_index in range(options.rounds):
            order = VARIANTS[round_index % 3 :] + VARIANTS[: round_index % 3]
            loops = {
                variant: run_variant(variant, options.steps, Path(scratch) / f"{round_index}-{position}")[warmup:]
                for position, variant in enumerate(order)
            }
            for variant in VARIANTS:
                times[variant].append(loops[variant])
                ratios[variant].append(loops[variant].sum() / loops["no session"].sum())
    print(f"\nCommand: `python benches/{Path(__file__).name} --steps {options.steps} --rounds {options.rounds}`")
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, Python "
        f"{platform.python_version()}; load average at the end {os.getloadavg()[0]:.2f}\n"
    )
    print("| variant | loop time vs no session | step p50 | p99 | p99.9 | max | steps over 1 ms per 10,000 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for variant in VARIANTS:
        every = np.concatenate(times[variant]) * 1e6
        over = (every > 1000).sum() / len(every) * 10_000
        print(
            f"| {variant} | {statistics.median(ratios[variant]):.3f}x | {np.percentile(every, 50):.1f} µs | "
            f"{np.percentile(every, 99):.1f} µs | {np.percentile(every, 99.9):.1f} µs | {every.max():.0f} µs | "
            f"{over:.1f} |"
        )


if __name__ == "__main__":
    main()
