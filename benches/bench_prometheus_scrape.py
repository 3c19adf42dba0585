"""Cost of being scraped: a tiny training loop with the Prometheus exporter under 50 scrapes/s.

Run: `.venv/bin/python benches/bench_prometheus_scrape.py` (after `make install`; about two minutes).
Options: `--rounds N` (default 30), `--steps N` per run (default 100), `--scrape-hz F` (default 50).

Each round runs the same tiny torch training loop three times, in rotating order, each tracked by
a TrackingSession (synthetic meter, so the sensors are identical):

- *exporter*: `prometheus_enabled=True`, while a separate scraper process GETs `/metrics` at
  `--scrape-hz` on absolute deadlines over one kept-alive connection (as a Prometheus with a
  20 ms scrape interval would);
- *none*: no exporter and no scraper (the baseline);
- *elsewhere*: no exporter here, the same scraping aimed at a live session's endpoint in another
  process. On a small machine the scraper and that endpoint compete for the CPU; this arm shows
  how much, so that exporter/elsewhere isolates what the endpoint costs inside training.

The headline is the median over rounds of steps/s (exporter) ÷ steps/s (none); the target is
>= 0.99. Short runs, many rounds: on a shared machine the load of other processes drifts, so
close interleaving and the median keep it out of the ratio. torch runs on one thread so that
the scraper process has a core of its own on small machines: what is measured is the exporter's
cost inside the training process. Correctness is printed beside it: the scrape rate achieved,
failed scrapes, and whether the last scrape of each run showed the run's final step count; and the
CPU time one scrape costs the serving process.
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
from typing import Any, Callable, Dict, List, Optional, Tuple

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
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--scraper", "--scrape-hz", str(hz)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

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
    threading.Thread(
        target=lambda: [commands.put(line.strip()) for line in sys.stdin] + [commands.put("exit")], daemon=True
    ).start()
    period_s = 1.0 / hz
    while True:
        command = commands.get()
        if command == "exit":
            return
        parts = urllib.parse.urlsplit(command.split(" ", 1)[1])
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=2)
        tally: Dict[str, float] = {"ok": 0, "failed": 0, "last_step_count": -1.0}
        body = b""
        started = deadline = time.monotonic()
        while commands.empty():
            try:
                connection.request("GET", parts.path)
                body = connection.getresponse().read()
                tally["ok"] += 1
            except (OSError, http.client.HTTPException):
                tally["failed"] += 1
                connection.close()
            deadline += period_s
            time.sleep(max(0.0, deadline - time.monotonic()))
        connection.close()
        tally["seconds"] = time.monotonic() - started
        # parsed once, not per scrape: the scraper's own CPU competes with training on small machines
        for line in body.splitlines():
            if line.startswith(STEP_COUNT_PREFIX):
                tally["last_step_count"] = float(line.rsplit(b" ", 1)[1])
        assert commands.get() == "stop"
        print(json.dumps(tally), flush=True)


def make_step() -> Callable[[], None]:
    """One optimiser step of a small MLP on one thread: about 10 ms on a laptop-class core."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(512, 1024),
        torch.nn.ReLU(),
        torch.nn.Linear(1024, 512),
        torch.nn.ReLU(),
        torch.nn.Linear(512, 10),
    )
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    inputs, targets = torch.randn(128, 512), torch.randint(0, 10, (128,))

    def step() -> None:
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimiser.step()

    return step


def started_session(output_dir: str, port: Optional[int]) -> Any:
    """A running TrackingSession on a synthetic meter; with ``port``, its exporter serves there."""
    from hf_eco2ai import CarbonConfig, EnergyMeter, TrackingSession

    config = CarbonConfig(
        project_name="bench",
        offline=True,
        country_iso_code="FR",
        output_dir=output_dir,
        prometheus_enabled=port is not None,
        prometheus_port=port or 8000,
    )
    return TrackingSession(config, meter=EnergyMeter(sources="synthetic", rate_hz=100), store=False).start()


def serve_elsewhere_main(port: int) -> None:
    """The ``elsewhere`` arm's endpoint: a live session's exporter in a process of its own."""
    with tempfile.TemporaryDirectory() as output_dir:
        session = started_session(output_dir, port)
        print("ready", flush=True)
        sys.stdin.read()
        session.stop()


def tracked_run(
    step: Callable[[], None], steps: int, arm: str, scraper: Scraper, elsewhere_url: str, output_dir: str
) -> Tuple[float, Dict[str, float]]:
    """Steps/s of one run tracked by a TrackingSession, and the scraper's tally (empty in ``none``).

    ``exporter``: this process serves the session on an endpoint, scraped throughout; ``none``: no
    endpoint, no scraping; ``elsewhere``: no endpoint here, the same scraping aimed at another
    process's endpoint (what the scraping itself costs on this machine).
    """
    from hf_eco2ai.integrations.prometheus import shared_exporter
    from hf_eco2ai.integrations.prometheus.server import RENDER_TTL_S

    port = free_port() if arm == "exporter" else None
    session = started_session(output_dir, port)
    if arm != "none":
        scraper.start(f"http://127.0.0.1:{port}/metrics" if port else elsewhere_url)
        time.sleep(0.1)  # connected and at its rate before the clock starts
    started = time.perf_counter()
    for _ in range(steps):
        step()
        session.mark_step()
    elapsed = time.perf_counter() - started
    tally: Dict[str, float] = {}
    if arm != "none":
        # Scrapes share a rendering for RENDER_TTL_S: one more after that sees the final count.
        time.sleep(RENDER_TTL_S + 0.05)
        tally = scraper.stop()
    session.stop()
    if port is not None:
        shared_exporter("127.0.0.1", port).close()  # the next runs must have no endpoint at all
    return steps / elapsed, tally


def server_cpu_per_scrape_us(scrapes: int = 2000) -> float:
    """CPU time the training process spends per scrape: a live session's endpoint, hit back to back
    over one connection by another process; process CPU time divided by the scrapes."""
    with tempfile.TemporaryDirectory() as output_dir:
        port = free_port()
        session = started_session(output_dir, port)
        client = (
            f"import http.client\nc = http.client.HTTPConnection('127.0.0.1', {port})\n"
            f"for _ in range({scrapes}):\n    c.request('GET', '/metrics'); c.getresponse().read()\n"
        )
        cpu_before = time.process_time()
        subprocess.run([sys.executable, "-c", client], check=True)
        cpu_s = time.process_time() - cpu_before
        session.stop()
    from hf_eco2ai.integrations.prometheus import shared_exporter

    shared_exporter("127.0.0.1", port).close()
    return cpu_s / scrapes * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--scrape-hz", type=float, default=50.0)
    parser.add_argument("--scraper", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve-elsewhere", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="2 rounds of 20 steps, to check the benchmark runs")
    options = parser.parse_args()
    if options.smoke:
        options.rounds, options.steps = 2, 20
    if options.scraper:
        scraper_main(options.scrape_hz)
        return
    if options.serve_elsewhere:
        serve_elsewhere_main(options.serve_elsewhere)
        return

    import torch

    torch.set_num_threads(1)
    step = make_step()
    for _ in range(50):
        step()
    elsewhere_port = free_port()
    elsewhere = subprocess.Popen(
        [sys.executable, __file__, "--serve-elsewhere", str(elsewhere_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert elsewhere.stdout is not None and elsewhere.stdout.readline().strip() == "ready"
    scraper = Scraper(options.scrape_hz)
    arms = ("exporter", "none", "elsewhere")
    ratios: Dict[str, List[float]] = {"exporter/none": [], "elsewhere/none": [], "exporter/elsewhere": []}
    scrape_rates: List[float] = []
    failures = final_seen = 0
    try:
        with tempfile.TemporaryDirectory() as output_dir:
            for round_index in range(options.rounds):
                order = arms[round_index % 3 :] + arms[: round_index % 3]
                runs = {
                    arm: tracked_run(
                        step, options.steps, arm, scraper, f"http://127.0.0.1:{elsewhere_port}/metrics", output_dir
                    )
                    for arm in order
                }
                rate = {arm: runs[arm][0] for arm in arms}
                for key in ratios:
                    numerator, denominator = key.split("/")
                    ratios[key].append(rate[numerator] / rate[denominator])
                for arm in ("exporter", "elsewhere"):
                    tally = runs[arm][1]
                    scrape_rates.append(tally["ok"] / tally["seconds"])
                    failures += int(tally["failed"])
                final_seen += int(runs["exporter"][1]["last_step_count"] == options.steps)
                print(
                    f"round {round_index + 1}: " + ", ".join(f"{arm} {rate[arm]:.1f} steps/s" for arm in arms),
                    flush=True,
                )
        cpu_us = server_cpu_per_scrape_us()
    finally:
        scraper.close()
        elsewhere.communicate("", timeout=30)
    print()
    print("| figure | result | detail | target met |")
    print("| --- | --- | --- | --- |")
    setting = (
        f"median of {options.rounds} interleaved rounds, {options.steps} steps each, scraped at {options.scrape_hz:g}/s"
    )
    meaning = {
        "exporter/none": "training throughput, endpoint in the training process scraped, relative to no endpoint",
        "elsewhere/none": "the same, the scraped endpoint in another process (the scraping traffic's own cost here)",
        "exporter/elsewhere": "the endpoint's cost inside the training process, traffic cost cancelled",
    }
    for key, values in ratios.items():
        median = statistics.median(values)
        low, _, high = statistics.quantiles(values, n=4)
        target = ("yes" if median >= 0.99 else "NO") if key == "exporter/none" else "-"
        print(f"| {meaning[key]} ({setting}) | {median:.4f} | quartiles {low:.4f}-{high:.4f} | {target} |")
    print(
        f"| CPU time per scrape in the serving process (2000 back-to-back scrapes, one connection) | "
        f"{cpu_us:.0f} us | {options.scrape_hz:g} scrapes/s = {cpu_us * options.scrape_hz / 1e4:.2f} % of one core; "
        f"{statistics.median(scrape_rates):.1f} scrapes/s achieved, {failures} failed; final step count seen in "
        f"{final_seen}/{options.rounds} runs | - |"
    )


if __name__ == "__main__":
    main()
