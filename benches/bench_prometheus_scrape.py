"""Cost of being scraped: a tiny training loop with the Prometheus exporter under 50 scrapes/s.

Run: `.venv/bin/python benches/bench_prometheus_scrape.py` (after `make install`; about a minute).
Options: `--pairs N` (default 30), `--steps N` per run (default 100), `--scrape-hz F` (default 50).

Each pair runs the same tiny torch training loop twice, in alternating order, both tracked by a
TrackingSession (synthetic meter, so the sensors are identical):

- *exporter*: `prometheus_enabled=True`, while a separate scraper process GETs `/metrics` at
  `--scrape-hz` on absolute deadlines over one kept-alive connection (as a Prometheus with a
  20 ms scrape interval would);
- *baseline*: no exporter and no scraper.

The result is the median over pairs of steps/s (exporter) ÷ steps/s (baseline); the target is
>= 0.99. Short runs, many pairs: on a shared machine the load of other processes drifts slowly,
so close interleaving and the median keep it out of the ratio. torch runs on one thread so that
the scraper process has a core of its own on small machines: what is measured is the exporter's
cost inside the training process. Correctness is printed beside it: the scrape rate achieved, failed scrapes, and whether the last scrape of each
run showed the run's final step count.
"""

from __future__ import annotations

import argparse
import http.client
import json
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from typing import Callable, Dict, List, Optional, Tuple

STEP_COUNT_PREFIX = b"hf_training_step_count{"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Scraper:
    """A separate process that GETs an exporter's /metrics at a fixed rate while told to.

    It stays up for the whole benchmark, so no process start-up falls into a timed run. Each
    period of scraping keeps one connection open, as Prometheus does.
    """

    def __init__(self, hz: float) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "--scraper", "--scrape-hz", str(hz)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def start(self, url: str) -> None:
        self._send(f"go {url}")

    def stop(self) -> Dict[str, float]:
        self._send("stop")
        return dict(json.loads(self.process.stdout.readline()))  # type: ignore[union-attr]

    def close(self) -> None:
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.wait(timeout=10)

    def _send(self, command: str) -> None:
        self.process.stdin.write(command + "\n")  # type: ignore[union-attr]
        self.process.stdin.flush()  # type: ignore[union-attr]


def scraper_main(hz: float) -> None:
    """The scraper process: `go URL` scrapes URL at hz on absolute deadlines until `stop`, which
    prints the period's tally as one JSON line; end of input exits."""
    commands: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [commands.put(line.strip()) for line in sys.stdin] + [commands.put("exit")],
                     daemon=True).start()
    period_s = 1.0 / hz
    while True:
        command = commands.get()
        if command == "exit":
            return
        parts = urllib.parse.urlsplit(command.split(" ", 1)[1])
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
        tally: Dict[str, float] = {"ok": 0, "failed": 0, "last_step_count": -1.0}
        started = deadline = time.monotonic()
        while commands.empty():
            try:
                connection.request("GET", parts.path)
                body = connection.getresponse().read()
                tally["ok"] += 1
                for line in body.splitlines():
                    if line.startswith(STEP_COUNT_PREFIX):
                        tally["last_step_count"] = float(line.rsplit(b" ", 1)[1])
            except (OSError, http.client.HTTPException):
                tally["failed"] += 1
                connection.close()
            deadline += period_s
            time.sleep(max(0.0, deadline - time.monotonic()))
        connection.close()
        tally["seconds"] = time.monotonic() - started
        assert commands.get() == "stop"
        print(json.dumps(tally), flush=True)


def make_step() -> Callable[[], None]:
    """One optimiser step of a small MLP on one thread: about 10 ms on a laptop-class core."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(512, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 512), torch.nn.ReLU(),
                                torch.nn.Linear(512, 10))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    inputs, targets = torch.randn(128, 512), torch.randint(0, 10, (128,))

    def step() -> None:
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimiser.step()

    return step


def tracked_run(step: Callable[[], None], steps: int, scraper: Optional[Scraper], output_dir: str
                ) -> Tuple[float, Dict[str, float]]:
    """Steps/s of one run tracked by a TrackingSession; with a scraper, the exporter is on and
    scraped throughout. Returns the scraper's tally too (empty without)."""
    from hf_eco2ai import CarbonConfig, EnergyMeter, TrackingSession
    from hf_eco2ai.integrations.prometheus import shared_exporter

    port = free_port()
    config = CarbonConfig(project_name="bench", offline=True, country_iso_code="FR", output_dir=output_dir,
                          prometheus_enabled=scraper is not None, prometheus_port=port)
    session = TrackingSession(config, meter=EnergyMeter(sources="synthetic", rate_hz=100), store=False)
    session.start()
    if scraper is not None:
        scraper.start(f"http://127.0.0.1:{port}/metrics")
        time.sleep(0.1)  # connected and at its rate before the clock starts
    started = time.perf_counter()
    for _ in range(steps):
        step()
        session.mark_step()
    elapsed = time.perf_counter() - started
    tally: Dict[str, float] = {}
    if scraper is not None:
        time.sleep(0.05)  # one more scrape sees the final step count
        tally = scraper.stop()
    session.stop()
    if scraper is not None:
        shared_exporter("127.0.0.1", port).close()  # the next baseline run must have no endpoint at all
    return steps / elapsed, tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--scrape-hz", type=float, default=50.0)
    parser.add_argument("--scraper", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.scraper:
        scraper_main(options.scrape_hz)
        return

    import torch

    torch.set_num_threads(1)
    step = make_step()
    for _ in range(50):
        step()
    scraper = Scraper(options.scrape_hz)
    ratios: List[float] = []
    scrape_rates: List[float] = []
    failures = final_seen = 0
    try:
        with tempfile.TemporaryDirectory() as output_dir:
            for pair in range(options.pairs):
                runs = {}
                for scraped in ((True, False) if pair % 2 == 0 else (False, True)):
                    runs[scraped] = tracked_run(step, options.steps, scraper if scraped else None, output_dir)
                (with_rate, tally), (without_rate, _) = runs[True], runs[False]
                ratios.append(with_rate / without_rate)
                scrape_rates.append(tally["ok"] / tally["seconds"])
                failures += int(tally["failed"])
                final_seen += int(tally["last_step_count"] == options.steps)
                print(f"pair {pair + 1}: exporter {with_rate:.1f} steps/s, baseline {without_rate:.1f} steps/s, "
                      f"ratio {ratios[-1]:.4f}, {scrape_rates[-1]:.1f} scrapes/s", flush=True)
    finally:
        scraper.close()
    median_ratio = statistics.median(ratios)
    quartiles = statistics.quantiles(ratios, n=4)
    print()
    print("| figure | result | detail | target met |")
    print("| --- | --- | --- | --- |")
    print(f"| training throughput with the exporter scraped at {options.scrape_hz:g}/s, relative to no exporter "
          f"(median of {options.pairs} interleaved pairs, {options.steps} steps each) | {median_ratio:.4f} | "
          f"pair ratios: quartiles {quartiles[0]:.4f}-{quartiles[2]:.4f}; {statistics.median(scrape_rates):.1f} "
          f"scrapes/s achieved, {failures} failed; final step count seen in {final_seen}/{options.pairs} runs | "
          f"{'yes' if median_ratio >= 0.99 else 'NO'} |")


if __name__ == "__main__":
    main()
