"""What the Tracer API costs a training step, and how fast its per-step rows reach the store.

1. ``watch()`` overhead. A ~50-layer MLP (50 ``Linear`` layers) trains on a CPU with SGD, the
   same batches for every variant, variants interleaved round by round (the order rotating) so
   that drifts of a shared machine cancel out; each variant's median step time is divided by the
   baseline's of the same round, and the table gives the median of those ratios:

   - ``baseline``: the plain loop;
   - ``tracer``: ``tracer.init`` + ``log`` + ``step`` each step, no ``watch`` (energy session,
     loss detector, per-step rows to the store);
   - ``tracer+watch``: the same with ``tracer.watch(model)``: per-layer gradient statistics at
     every optimiser step;
   - ``wandb.watch``: ``wandb.watch(model, log="gradients")`` on an offline run, when wandb is
     installed (the ``bench`` extra): its per-module hooks are the usual way to watch gradients.

   The watch overhead is ``tracer+watch`` against ``tracer``; the time inside ``step()`` and in
   the gradient capture is also measured per call. Correctness is checked beside the speed: every
   step has its gradient row in the store.

2. CUDA synchronisations (only with a GPU): the loop runs under
   ``torch.cuda.set_sync_debug_mode("warn")`` without any sync of its own; every synchronising
   call inside ``capture()`` or ``step()`` is counted (expected: 0 per step).

3. Store throughput: step rows (loss, memory and a 50-layer gradient row each) through the
   store's batched background writer, from the first enqueue until they are committed.

    python benches/bench_tracer_watch.py [--rounds 5] [--steps 200] [--threads 1] [--smoke]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import statistics
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, List

import numpy as np
import torch

from hf_eco2ai import CarbonConfig, tracer
from hf_eco2ai.tracer.config import TracerConfig
from hf_eco2ai.tracer.storage import StorageBackend

LAYERS = 50
WIDTH = 128
BATCH = 128


def mlp(device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(0)
    modules: List[torch.nn.Module] = []
    for _ in range(LAYERS - 1):
        modules += [torch.nn.Linear(WIDTH, WIDTH), torch.nn.ReLU()]
    modules.append(torch.nn.Linear(WIDTH, 10))
    return torch.nn.Sequential(*modules).to(device)


def carbon_config(directory: str) -> CarbonConfig:
    return CarbonConfig(
        project_name="bench", carbon_intensity_g_per_kwh=100.0, sources=["cpu-estimate"], output_dir=directory
    )


def loop(
    model: torch.nn.Module, steps: int, after_step: Callable[[torch.Tensor], None], device: str = "cpu"
) -> List[float]:
    """Step times (s). ``after_step`` gets the loss (a tensor) once the optimiser has stepped."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randn(BATCH, WIDTH, generator=generator).to(device),
            torch.randint(0, 10, (BATCH,), generator=generator).to(device),
        )
        for _ in range(16)
    ]
    times = []
    for step in range(steps):
        features, labels = batches[step % len(batches)]
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        after_step(loss.detach())
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


class Timed:
    """Wraps a callable and accumulates the seconds spent in it."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.seconds: List[float] = []

    def __call__(self, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.function(*args)
        finally:
            self.seconds.append(time.perf_counter() - start)


def run_variant(name: str, steps: int, directory: str, timings: Dict[str, List[float]]) -> float:
    """The median step time (s) of one variant's run."""
    model = mlp()
    if name == "baseline":
        return statistics.median(loop(model, steps, lambda loss: None))
    if name == "wandb.watch":
        import wandb

        wandb_run = wandb.init(mode="offline", dir=directory, project="bench", reinit="finish_previous")
        wandb.watch(model, log="gradients")
        try:
            return statistics.median(loop(model, steps, lambda loss: None))
        finally:
            wandb_run.finish()
    run = tracer.init(
        "bench", storage_path=directory, carbon_config=carbon_config(directory), checkpoint_interval=10_000
    )
    watching = name == "tracer+watch"
    if watching:
        tracer.watch(model)
        run._watcher.capture = Timed(run._watcher.capture)  # type: ignore[union-attr]
    timed_step = Timed(run.step)

    def after_step(loss: torch.Tensor) -> None:
        run.log({"loss": loss})
        timed_step()

    try:
        median = statistics.median(loop(model, steps, after_step))
    finally:
        tracer.finish()
    timings.setdefault(f"{name} step()", []).extend(timed_step.seconds)
    if watching:
        timings.setdefault("capture", []).extend(run._watcher.capture.seconds)  # type: ignore[union-attr]
        stored = run.storage.get_step_statistics(run.run_id)
        assert len(stored) == steps and stored.has_gradients.all(), "every step must have its gradient row"
    return median


def bench_watch(rounds: int, steps: int) -> None:
    variants = ["baseline", "tracer", "tracer+watch"]
    if importlib.util.find_spec("wandb") is not None:
        variants.append("wandb.watch")
    else:
        print("wandb is not installed (pip install 'hf-eco2ai[bench]'): no wandb.watch baseline")
    ratios: Dict[str, List[float]] = {name: [] for name in variants}
    watch_ratios: List[float] = []
    medians: Dict[str, List[float]] = {name: [] for name in variants}
    timings: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory() as directory:
        for round_index in range(rounds):
            order = variants[round_index % len(variants) :] + variants[: round_index % len(variants)]
            this_round = {name: run_variant(name, steps, directory, timings) for name in order}
            for name in variants:
                ratios[name].append(this_round[name] / this_round["baseline"])
                medians[name].append(this_round[name])
            watch_ratios.append(this_round["tracer+watch"] / this_round["tracer"])
    print(
        f"\nwatch() overhead: {LAYERS}-layer MLP (width {WIDTH}, batch {BATCH}) on the CPU, "
        f"{torch.get_num_threads()} thread(s), {rounds} rounds x {steps} steps"
    )
    print(f"{'variant':<16}{'step (ms)':>11}{'vs baseline':>13}")
    for name in variants:
        print(
            f"{name:<16}{statistics.median(medians[name]) * 1e3:>11.3f}{(statistics.median(ratios[name]) - 1) * 100:>+12.2f}%"
        )
    print(f"watch() alone (tracer+watch vs tracer): {(statistics.median(watch_ratios) - 1) * 100:+.2f}% per step")
    for name, seconds in timings.items():
        print(f"time in {name}: median {statistics.median(seconds) * 1e6:.1f} us per call ({len(seconds)} calls)")
    # The direct cost is steadier than step-time ratios on a busy machine: the time watch() adds
    # inside the step (the capture, and step() handing the row over) against the plain step.
    added_s = (
        statistics.median(timings["capture"])
        + statistics.median(timings["tracer+watch step()"])
        - statistics.median(timings["tracer step()"])
    )
    baseline_s = statistics.median(medians["baseline"])
    print(
        f"watch() direct cost: {added_s * 1e6:.0f} us per step = {added_s / baseline_s * 100:.2f}% of the "
        f"baseline step ({baseline_s * 1e3:.2f} ms)"
    )
    print("correct: every watched step has its gradient row in the store")


def bench_cuda_syncs(steps: int) -> None:
    if not torch.cuda.is_available():
        print("\nno CUDA device: the synchronisation count needs a GPU")
        return
    with tempfile.TemporaryDirectory() as directory:
        model = mlp("cuda")
        run = tracer.init(
            "bench-gpu", storage_path=directory, carbon_config=carbon_config(directory), checkpoint_interval=10_000
        )
        tracer.watch(model)
        counted = {"capture": 0, "step": 0}
        watcher = run._watcher
        original_capture, original_step = watcher.capture, run.step

        def count(name: str, function: Callable[[], None]) -> Callable[[], None]:
            def wrapped() -> None:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    function()
                counted[name] += sum("synchroniz" in str(w.message) for w in caught)

            return wrapped

        watcher.capture = count("capture", original_capture)

        def after_step(loss: torch.Tensor) -> None:
            run.log({"lr": 1e-3})
            count("step", original_step)()

        warmup = 10
        loop(model, warmup, after_step, device="cuda")
        counted.update(capture=0, step=0)
        torch.cuda.set_sync_debug_mode("warn")
        try:
            loop_without_sync(model, steps, after_step)
        finally:
            torch.cuda.set_sync_debug_mode("default")
            tracer.finish()
        rows = run.storage.get_step_statistics(run.run_id)
        print(
            f"\nCUDA ({torch.cuda.get_device_name()}): {steps} steps, synchronising calls inside capture(): "
            f"{counted['capture']}, inside step(): {counted['step']}; rows with gradients: "
            f"{int(rows.has_gradients.sum())} of {len(rows)}"
        )


def loop_without_sync(model: torch.nn.Module, steps: int, after_step: Callable[[torch.Tensor], None]) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    features = torch.randn(BATCH, WIDTH, device="cuda")
    labels = torch.randint(0, 10, (BATCH,), device="cuda")
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(model(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        after_step(loss.detach())


def bench_store(rows_total: int, batch_rows: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        storage = StorageBackend(TracerConfig(project_name="bench", storage_path=directory))
        storage.create_run("bench-run", "bench", "bench", time.time(), {}, layers=[str(i) for i in range(LAYERS)])
        storage.flush()
        gradients = np.random.default_rng(0).random((batch_rows, LAYERS, 3)).astype(np.float32)
        recorded = np.full(batch_rows, 1, dtype=np.int64)
        loss = np.linspace(1.0, 0.1, batch_rows)
        memory = np.full(batch_rows, np.nan)
        has = np.ones(batch_rows, dtype=bool)
        start = time.perf_counter()
        for first in range(0, rows_total, batch_rows):
            steps = np.arange(first, first + batch_rows)
            storage.write_step_statistics("bench-run", steps, recorded, loss, memory, gradients, has)
        enqueued = time.perf_counter() - start
        storage.flush(timeout_s=600)
        elapsed = time.perf_counter() - start
        stored = len(storage.get_step_statistics("bench-run"))
        storage.close()
    print(
        f"\nstore: {rows_total} step rows ({LAYERS}-layer gradient rows) in batches of {batch_rows}: "
        f"{rows_total / elapsed:,.0f} rows/s committed (enqueueing took {enqueued * 1e3:.1f} ms on the "
        f"training thread); correct: {stored == rows_total}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--store-rows", type=int, default=300_000)
    parser.add_argument("--smoke", action="store_true", help="a few steps and rows; no figures to rely on")
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.steps, args.store_rows = 1, 20, 5_000
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_SILENT", "true")
    logging.getLogger("hf_eco2ai").setLevel(logging.ERROR)
    bench_watch(args.rounds, args.steps)
    bench_cuda_syncs(args.steps)
    for batch_rows in (100, 1_000):  # write_buffer_size: the default, and a larger one
        bench_store(args.store_rows, batch_rows)


if __name__ == "__main__":
    main()
