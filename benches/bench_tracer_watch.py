"""What the Tracer API costs a training step, and how fast its per-step rows reach the store.

1. ``watch()`` overhead. Identical ~50-layer MLPs (50 ``Linear`` layers) train on a CPU with SGD
   on the same batches, one model per variant, **step by step in turn** (the order rotating every
   step), so that the load of a shared machine falls on every variant alike:

   - ``baseline``: the plain loop;
   - ``tracer``: a Tracer run with its documented defaults (``tracer.init(project,
     storage_path=..., carbon_config=...)``: ``checkpoint_interval=1000``, ``capture_samples=5``,
     ``track_gradients=True``, ``async_writes=True``, ``write_buffer_size=100``), ``log`` +
     ``step`` each step, no ``watch`` (energy session, loss detector, per-step rows to the store);
   - ``tracer+watch``: the same with ``watch(model)``: per-layer gradient statistics at every
     optimiser step (the default: every step is captured);
   - ``wandb.watch``: ``wandb.watch(model, log="gradients")`` on an offline run, when wandb is
     installed (the ``bench`` extra): its per-module hooks are the usual way to watch gradients.

   The steps are split into blocks; each block gives every variant's median step time, and the
   tables give the median over blocks of the ratios. The watch overhead is ``tracer+watch``
   against ``tracer``. The time inside ``step()`` and the gradient capture is also measured per
   call. Correctness is checked beside the speed: every step has its gradient row in the store.

2. CUDA synchronisations (only with a GPU): the loop runs under
   ``torch.cuda.set_sync_debug_mode("warn")`` without any sync of its own; every synchronising
   call inside ``capture()`` or ``step()`` is counted (expected: 0 per step).

3. Store throughput: step rows (loss, memory and a 50-layer gradient row each) through the
   store's batched background writer, from the first enqueue until they are committed.

    python benches/bench_tracer_watch.py [--steps 1500] [--block 100] [--threads 1] [--batch 128] [--smoke]
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
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import torch

from hf_eco2ai import CarbonConfig, tracer
from hf_eco2ai.tracer.config import TracerConfig
from hf_eco2ai.tracer.core.tracer import TrainingTracer
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


def batches(device: str = "cpu", batch_size: int = BATCH) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [
        (
            torch.randn(batch_size, WIDTH, generator=generator).to(device),
            torch.randint(0, 10, (batch_size,), generator=generator).to(device),
        )
        for _ in range(16)
    ]


def loop(
    model: torch.nn.Module, steps: int, after_step: Callable[[torch.Tensor], None], device: str = "cpu"
) -> List[float]:
    """Step times (s). ``after_step`` gets the loss (a tensor) once the optimiser has stepped."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    data = batches(device)
    times = []
    for step in range(steps):
        features, labels = data[step % len(data)]
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


class Variant:
    """One model, its optimiser and what runs after its optimiser step; ``step(i)`` times step i."""

    def __init__(self, name: str, directory: str) -> None:
        self.name = name
        self.model = mlp()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3)
        self.times: List[float] = []
        self.run: Optional[TrainingTracer] = None
        self.wandb_run: Any = None
        self.timed_step: Optional[Timed] = None
        self.timed_capture: Optional[Timed] = None
        if name == "wandb.watch":
            import wandb

            self.wandb_run = wandb.init(mode="offline", dir=directory, project="bench", reinit="finish_previous")
            wandb.watch(self.model, log="gradients")
        elif name != "baseline":
            # The documented defaults: only where it stores and how energy is read are set.
            config = TracerConfig(project_name="bench", storage_path=os.path.join(directory, name))
            self.run = TrainingTracer(config, carbon_config=carbon_config(directory)).start()
            if name == "tracer+watch":
                self.run.watch(self.model)
                watcher = self.run._watcher
                self.timed_capture = watcher.capture = Timed(watcher.capture)
            self.timed_step = Timed(self.run.step)

    def step(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(self.model(features), labels)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        if self.run is not None and self.timed_step is not None:
            self.run.log({"loss": loss.detach()})
            self.timed_step()
        self.times.append(time.perf_counter() - start)

    def finish(self) -> None:
        if self.wandb_run is not None:
            self.wandb_run.finish()
        if self.run is not None:
            self.run.finish()
            if self.timed_capture is not None:
                stored = self.run.storage.get_step_statistics(self.run.run_id)
                assert len(stored) == len(self.times) and stored.has_gradients.all(), "every step needs its row"


def bench_watch(steps: int, block: int, batch_size: int) -> None:
    names = ["baseline", "tracer", "tracer+watch"]
    if importlib.util.find_spec("wandb") is not None:
        names.append("wandb.watch")
    else:
        print("wandb is not installed (pip install 'hf-eco2ai[bench]'): no wandb.watch baseline")
    data = batches(batch_size=batch_size)
    with tempfile.TemporaryDirectory() as directory:
        variants = [Variant(name, directory) for name in names]
        try:
            for step in range(steps):
                features, labels = data[step % len(data)]
                shift = step % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    variant.step(features, labels)
        finally:
            for variant in variants:
                variant.finish()
    by_name = {variant.name: variant for variant in variants}
    warmup = min(20, steps // 2)
    blocks = [(first, first + block) for first in range(warmup, steps - block + 1, block)] or [(warmup, steps)]
    block_medians = {
        name: [statistics.median(by_name[name].times[first:last]) for first, last in blocks] for name in names
    }
    print(
        f"\nwatch() overhead: {LAYERS}-layer MLP (width {WIDTH}, batch {batch_size}) on the CPU, "
        f"{torch.get_num_threads()} thread(s), {steps} steps per variant interleaved step by step, "
        f"{len(blocks)} blocks of {blocks[0][1] - blocks[0][0]} steps"
    )
    print(f"{'variant':<16}{'step (ms)':>11}{'vs baseline':>13}{'vs tracer':>12}")
    for name in names:
        versus_baseline = statistics.median(
            [mine / base for mine, base in zip(block_medians[name], block_medians["baseline"])]
        )
        versus_tracer = statistics.median(
            [mine / base for mine, base in zip(block_medians[name], block_medians["tracer"])]
        )
        print(
            f"{name:<16}{statistics.median(by_name[name].times[warmup:]) * 1e3:>11.3f}"
            f"{(versus_baseline - 1) * 100:>+12.2f}%{(versus_tracer - 1) * 100:>+11.2f}%"
        )
    watch_ratios = [mine / base for mine, base in zip(block_medians["tracer+watch"], block_medians["tracer"])]
    print(
        "watch() alone (tracer+watch vs tracer), per block: "
        + " ".join(f"{(ratio - 1) * 100:+.1f}%" for ratio in watch_ratios)
    )
    print(f"watch() alone: median {(statistics.median(watch_ratios) - 1) * 100:+.2f}% per step")
    watched, plain = by_name["tracer+watch"], by_name["tracer"]
    assert watched.timed_step is not None and plain.timed_step is not None and watched.timed_capture is not None
    timings = {
        "tracer step()": plain.timed_step.seconds[warmup:],
        "tracer+watch step()": watched.timed_step.seconds[warmup:],
        "capture": watched.timed_capture.seconds[warmup:],
    }
    for name, seconds in timings.items():
        print(f"time in {name}: median {statistics.median(seconds) * 1e6:.1f} us per call ({len(seconds)} calls)")
    # The direct cost: the time watch() adds inside the step (the capture, and step() handing
    # the row over) against the plain step. The capture includes creating the Python objects of
    # the step's new gradients, which the optimiser would otherwise create a moment later.
    added_s = (
        statistics.median(timings["capture"])
        + statistics.median(timings["tracer+watch step()"])
        - statistics.median(timings["tracer step()"])
    )
    baseline_s = statistics.median(by_name["baseline"].times[warmup:])
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
        run = tracer.init("bench-gpu", storage_path=directory, carbon_config=carbon_config(directory))
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
    parser.add_argument("--steps", type=int, default=1500, help="steps per variant")
    parser.add_argument("--block", type=int, default=100, help="steps per block of the ratios")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--batch", type=int, default=BATCH, help="batch size of the watch() part (the gradients' size does not change)"
    )
    parser.add_argument("--store-rows", type=int, default=300_000)
    parser.add_argument("--smoke", action="store_true", help="a few steps and rows; no figures to rely on")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.block, args.store_rows = 20, 10, 5_000
    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_SILENT", "true")
    logging.getLogger("hf_eco2ai").setLevel(logging.ERROR)
    bench_watch(args.steps, args.block, args.batch)
    bench_cuda_syncs(args.steps)
    for batch_rows in (100, 1_000):  # write_buffer_size: the default, and a larger one
        bench_store(args.store_rows, batch_rows)


if __name__ == "__main__":
    main()
