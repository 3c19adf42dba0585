"""Cost of logging through the Tracelet API, and what the orchestrator delivers per second.

Run: `.venv/bin/python benches/bench_tracking.py` (about a minute). `--smoke`: a few hundred
metrics, figures not meaningful. Options: `--calls N` (default 20,000), `--rounds N` (default 5).

Arms, each measured `--rounds` times in rotating order (the median is printed):

- *bare*: calling an empty Python function with the same arguments (the baseline);
- *log_metric, 3 backends*: `Experiment.log_metric` with MLflow (sqlite), W&B (offline) and
  TensorBoard attached; a tight loop, so the backends' worker threads (which hold the GIL while
  they build their records) compete with it: a loop that does real work between metrics leaves
  them that time instead;
- *log_metric, 3 null backends*: the routing alone (stamp, three queue appends);
- *log_metric, 3 backends + a slow one* against *3 backends + a null one*: a fourth backend that
  sleeps 1 s per call, against a fourth that does nothing (each backend is one more queue append,
  so the comparison keeps their number equal): a slow backend must not slow `log_metric`;
- *3 null backends + a slow one* against *4 null backends*: the same comparison without the real
  backends' workers competing for the GIL, which makes the first one noisy on a busy machine.

Throughput: an `Orchestrator` with the 3 real backends (or 3 null ones, or each real one alone),
already started, gets `--calls` metrics, one per step, and a `flush()`, which returns once every
backend has written them all: metrics/s from the first metric until `flush()` returns. With
several backends this is the slowest one's rate: they work in parallel.
Correctness is printed beside each figure: what every backend received and dropped.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

from hf_eco2ai import CarbonConfig, EnergyMeter
from hf_eco2ai.integrations.backends import Backend, BackendRun, Metric, Orchestrator, create_backend
from hf_eco2ai.tracking import Experiment, TraceletSettings


class NullBackend(Backend):
    def __init__(self, name: str) -> None:
        self.name = name


class SleepyBackend(Backend):
    name = "slow"

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        time.sleep(1.0)


def bare(name: str, value: float, iteration: int) -> None:
    return None


def options(folder: Path, label: str = "orchestrator") -> Dict[str, Any]:
    return {
        "mlflow_tracking_uri": f"sqlite:///{folder}/mlflow.db",
        "wandb_mode": "offline",
        "tensorboard_log_dir": str(folder / "tb" / label),
    }


def experiment(folder: Path, backends: List[Any], label: str) -> Experiment:
    return Experiment(
        label,
        backend=backends,
        project="bench-tracking",
        settings=TraceletSettings(metrics_interval=3600.0, track_git=False),
        options=options(folder, label),
        carbon_config=CarbonConfig(offline=True, country_iso_code="FR", output_dir=str(folder)),
        meter=EnergyMeter(sources="synthetic"),
    )


def per_call_ns(call: Callable[[str, float, int], None], calls: int) -> float:
    started = time.perf_counter_ns()
    for step in range(calls):
        call("loss", 0.5, step)
    return (time.perf_counter_ns() - started) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    calls, rounds = (300, 1) if arguments.smoke else (arguments.calls, arguments.rounds)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("WANDB_SILENT", "true")
    real = ["mlflow", "wandb", "tensorboard"]
    arms: Dict[str, Callable[[Path, str], List[Any]]] = {
        "log_metric, 3 backends": lambda folder, label: list(real),
        "log_metric, 3 null backends": lambda folder, label: [NullBackend(n) for n in ("a", "b", "c")],
        "log_metric, 3 backends + a null one": lambda folder, label: [*real, NullBackend("fast")],
        "log_metric, 3 backends + a slow one": lambda folder, label: [*real, SleepyBackend()],
        "log_metric, 4 null backends": lambda folder, label: [NullBackend(n) for n in ("a", "b", "c", "d")],
        "log_metric, 3 null backends + a slow one": lambda folder, label: [
            *[NullBackend(n) for n in ("a", "b", "c")],
            SleepyBackend(),
        ],
    }
    costs: Dict[str, List[float]] = {"bare": [], **{name: [] for name in arms}}
    received: Dict[str, str] = {}
    throughput: Dict[str, List[float]] = {
        "3 backends": [],
        "3 null backends": [],
        **{f"{name} alone": [] for name in real},
    }
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        # Warm the libraries (imports, MLflow's schema) outside every timed arm.
        warm = experiment(folder, list(real), "warm-up").start()
        warm.log_metric("loss", 1.0)
        warm.stop()
        for round_index in range(rounds):
            names = list(arms)
            names = names[round_index % len(names) :] + names[: round_index % len(names)]
            costs["bare"].append(per_call_ns(bare, calls))
            for name in names:
                label = f"r{round_index}-{name.replace(' ', '').replace(',', '-').replace('+', 'plus')}"
                run = experiment(folder, arms[name](folder, label), label).start()
                costs[name].append(per_call_ns(run.log_metric, calls))
                stats = run.stop()
                received[name] = ", ".join(
                    f"{b}: {s.delivered} delivered, {s.dropped} dropped" for b, s in stats.items()
                )
            groups = [
                ("3 backends", [create_backend(n, options(folder), folder) for n in real]),
                ("3 null backends", [NullBackend(n) for n in ("a", "b", "c")]),
                *[(f"{n} alone", [create_backend(n, options(folder, f"alone{round_index}"), folder)]) for n in real],
            ]
            for name, backends in groups:
                orchestrator = Orchestrator(backends).start(
                    BackendRun(f"t{round_index}-{name.replace(' ', '')}", "bench-tracking", "run", folder)
                )
                orchestrator.flush()
                started = time.perf_counter()
                for step in range(calls):
                    orchestrator.route_metric(Metric("loss", 0.5, step, time.time()))
                orchestrator.flush(timeout_s=None)
                elapsed_s = time.perf_counter() - started
                stats = orchestrator.stop()
                throughput[name].append(calls / elapsed_s)
                received[f"throughput, {name}"] = ", ".join(
                    f"{b}: {s.delivered} delivered, {s.dropped} dropped" for b, s in stats.items()
                )

    bare_ns = statistics.median(costs["bare"])
    print(f"calls per arm: {calls}, rounds: {rounds} (median shown)")
    print(f"{'arm':<40} {'ns/call':>10} {'x bare':>8}")
    for name, values in costs.items():
        median = statistics.median(values)
        print(f"{name:<40} {median:>10.0f} {median / bare_ns:>8.1f}")
    for slow, fast in (
        ("3 backends + a slow one", "3 backends + a null one"),
        ("3 null backends + a slow one", "4 null backends"),
    ):
        ratio = statistics.median(costs[f"log_metric, {slow}"]) / statistics.median(costs[f"log_metric, {fast}"])
        print(f"slow backend / null backend as the 4th ({fast}): {ratio:.2f}")
    for name, values in throughput.items():
        print(
            f"orchestrator throughput, {name}: {statistics.median(values):,.0f} metrics/s "
            "(first metric routed until every backend has written them all)"
        )
    print("correctness:")
    for name, text in received.items():
        print(f"  {name}: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
