"""How close to their deadlines the network waits of the carbon layer end, against stalled servers.

Run: `.venv/bin/python benches/bench_deadlines.py` (about 30 s); `--smoke` runs one round of each.

Three waits, each against a server on 127.0.0.1 that accepts the request and never answers:

- *live*: one live-intensity request with the default 2 s timeout;
- *cloud*: cloud detection (three metadata probes at once) with its 200 ms budget;
- *trickle*: one live-intensity request to a server that sends one byte of its headers every
  100 ms, forever (a per-read timeout would never fire).

Each line prints the median and the worst elapsed time over the rounds, and their ratio to the
deadline (1.00 is exact; the overshoot is scheduling and teardown). Correctness is printed beside
it: every wait must have ended with no answer (an ``APIError`` or ``None``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from stalling_server import StallingServer  # noqa: E402

from hf_eco2ai.carbon.cloud import from_metadata  # noqa: E402
from hf_eco2ai.carbon.live import LiveIntensityClient  # noqa: E402
from hf_eco2ai.errors import APIError  # noqa: E402


def live_wait(url: str) -> bool:
    try:
        LiveIntensityClient("bench-token", base_url=url, cache_s=0.0).latest("FR")
    except APIError:
        return True
    return False


def cloud_wait(url: str) -> bool:
    return from_metadata(url) is None


def measure(rounds: int, deadline_s: float, wait: Callable[[str], bool], trickle: bool) -> Tuple[List[float], bool]:
    server = StallingServer(trickle_interval_s=0.1 if trickle else None)
    elapsed_s: List[float] = []
    all_failed = True
    try:
        for _ in range(rounds):
            started = time.monotonic()
            all_failed = wait(server.url) and all_failed
            elapsed_s.append(time.monotonic() - started)
    finally:
        server.close()
    return elapsed_s, all_failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="one round of each, no figures to keep")
    args = parser.parse_args()
    rounds = 1 if args.smoke else args.rounds
    arms = [("live", 2.0, live_wait, False), ("cloud", 0.2, cloud_wait, False), ("trickle", 2.0, live_wait, True)]
    for name, deadline_s, wait, trickle in arms:
        elapsed_s, all_failed = measure(rounds if name != "cloud" else rounds * 10, deadline_s, wait, trickle)
        median_s, worst_s = statistics.median(elapsed_s), max(elapsed_s)
        print(
            f"{name:8s} deadline {deadline_s:.2f} s  median {median_s:.3f} s ({median_s / deadline_s:.2f}x)  "
            f"worst {worst_s:.3f} s ({worst_s / deadline_s:.2f}x)  no-answer-every-time={all_failed}"
        )


if __name__ == "__main__":
    main()
