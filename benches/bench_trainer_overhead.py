"""What energy tracking costs a real Hugging Face Trainer run: throughput and start-up time.

The same tiny training run (a random GPT-2 of 2 layers on synthetic tokens, steps of roughly
5-20 ms on one CPU thread) is repeated with each tracker, runs interleaved round by round
(A/B/C/A/B/C..., the order rotating each round), and each tracker's steps/s is divided by the
baseline's of the same round. The table gives the median of those ratios, so slow drifts of a
shared machine cancel out. Trackers:

- ``baseline``: no tracking callback;
- ``eco2ai``: ``Eco2AICallback`` with its defaults (sources "auto", run store on, the figures added
  at every log);
- ``codecarbon``: transformers' ``CodeCarbonCallback``, with codecarbon's offline tracker (no
  network here);
- ``zeus``: a ``ZeusMonitor`` window around every step, where Zeus is installed and has a GPU to
  read (it measures through NVML; without a GPU it has nothing to measure, so no figure is given).

Also reported: time spent inside the hooks the tracker defines (measured around each call): the
per-step hooks, ``on_log`` and train begin + end, and over a whole run net of the timer's own
cost per call (timed in the same run around an empty hook); the CPU time its other threads used
while training (they compete with training on a busy machine); and start-up time from the
callback's construction to the first step, measured in fresh processes so that one-time costs
count. ``extra_info``-style
correctness: the Eco2AI run must record exactly one step per optimiser step. Last, the per-step
mark timed in place inside one more Eco2AI run, on alternate steps: the C function that
``mark_step`` is against the binding's method ``Meter.mark`` (a ratio in the same run).

    python benches/bench_trainer_overhead.py [--rounds 7] [--steps 300] [--threads 1]

Then the sampler's CPU per source (each source alone at 100 Hz in a fresh process, NVML on the
emulator when built) and in total, against CodeCarbon's tracker threads; alone with:

    python benches/bench_trainer_overhead.py --sampler-cpu [--seconds 10]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

VOCABULARY = 256
SEQUENCE_LENGTH = 32
WARMUP_STEPS = 20
HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_step_begin",
    "on_step_end",
    "on_substep_end",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_log",
    "on_evaluate",
    "on_save",
)


class RandomTokens(torch.utils.data.Dataset):
    def __init__(self, size: int) -> None:
        self.tokens = torch.randint(0, VOCABULARY, (size, SEQUENCE_LENGTH), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def __getitem__(self, index: int) -> Dict[str, torch.Tensor]:
        return {"input_ids": self.tokens[index], "labels": self.tokens[index]}


class StepClock(TrainerCallback):
    """Timestamps each step's end and the first step's start (the end of start-up), and the CPU
    time of the whole process and of the training thread over the timed steps: the difference is
    what every other thread (a tracker's sampler, scheduler, writer) used meanwhile."""

    def __init__(self) -> None:
        self.first_step_begin: Optional[float] = None
        self.step_ends: List[float] = []
        self.cpu_marks: List[Tuple[float, float]] = []

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.first_step_begin is None:
            self.first_step_begin = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step_ends.append(time.perf_counter())
        if len(self.step_ends) in (WARMUP_STEPS + 1, state.max_steps):
            self.cpu_marks.append((time.process_time(), time.thread_time()))

    def other_threads_cpu_fraction(self) -> float:
        """CPU seconds of the other threads per wall second of the timed steps."""
        (process_0, thread_0), (process_1, thread_1) = self.cpu_marks
        wall_s = self.step_ends[-1] - self.step_ends[WARMUP_STEPS]
        return ((process_1 - process_0) - (thread_1 - thread_0)) / wall_s


class EmptyHook(TrainerCallback):
    """An ``on_step_end`` that does nothing, timed like the trackers' hooks in every run: what the
    timer costs around one call in place (cold caches included), to take out of the hook times."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        return None


STEP_HOOKS = ("on_step_begin", "on_step_end", "on_substep_end", "on_pre_optimizer_step", "on_optimizer_step")
RUN_HOOKS = ("on_train_begin", "on_train_end")


def time_hooks(callback: Any) -> Dict[str, List[float]]:
    """Wrap the hooks the callback's class defines; returns hook name -> [seconds spent inside,
    calls]. A hook it does not define is ``TrainerCallback``'s empty method, the same for every
    tracker: a timer around it would time only itself (about 2.5 µs a call, four calls a step)."""
    spent: Dict[str, List[float]] = {}
    for name in HOOKS:
        hook = getattr(callback, name, None)
        if hook is None or getattr(type(callback), name) is getattr(TrainerCallback, name):
            continue
        spent[name] = [0.0, 0]

        def timed(
            *args: Any, _hook: Callable[..., Any] = hook, _tally: List[float] = spent[name], **kwargs: Any
        ) -> Any:
            started = time.perf_counter()
            try:
                return _hook(*args, **kwargs)
            finally:
                _tally[0] += time.perf_counter() - started
                _tally[1] += 1

        setattr(callback, name, functools.wraps(hook)(timed))
    return spent


# The trackers ------------------------------------------------------------------------------------


def no_tracker(workdir: Path) -> Tuple[Optional[Any], Callable[[], Dict[str, Any]]]:
    return None, dict


def eco2ai_tracker(workdir: Path) -> Tuple[Optional[Any], Callable[[], Dict[str, Any]]]:
    from hf_eco2ai import CarbonConfig, Eco2AICallback

    callback = Eco2AICallback(CarbonConfig(country_iso_code="FR", offline=True, output_dir=str(workdir / "eco2ai")))

    def facts() -> Dict[str, Any]:
        report = callback.get_carbon_report()
        return {
            "steps_recorded": report["training"]["optimizer_steps"]
            if report["steps_marked"] == report["training"]["optimizer_steps"]
            else -1,
            "channels": ", ".join(f"{c['name']} ({c['provenance']})" for c in report["channels"]),
        }

    return callback, facts


def codecarbon_tracker(workdir: Path) -> Tuple[Optional[Any], Callable[[], Dict[str, Any]]]:
    from codecarbon import OfflineEmissionsTracker
    from transformers.integrations import CodeCarbonCallback

    class OfflineCodeCarbonCallback(CodeCarbonCallback):
        """transformers' callback with codecarbon's offline tracker: this machine has no internet,
        and the online tracker would first try to geolocate the host."""

        def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.tracker is None and state.is_local_process_zero:
                self.tracker = OfflineEmissionsTracker(
                    country_iso_code="FRA", output_dir=str(workdir), log_level="error"
                )

    return OfflineCodeCarbonCallback(), dict


def zeus_unavailable_reason() -> Optional[str]:
    if importlib.util.find_spec("zeus") is None:
        return "zeus is not installed (pip install zeus); it measures GPUs through NVML"
    from zeus.device.gpu import nvml_is_available

    if not nvml_is_available():
        return (
            "no NVIDIA GPU/NVML here: ZeusMonitor would open no device (and no RAPL), so its windows "
            "would time nothing but their own bookkeeping; its real per-step cost is the NVML reads"
        )
    return None


def zeus_tracker(workdir: Path) -> Tuple[Optional[Any], Callable[[], Dict[str, Any]]]:
    from zeus.monitor import ZeusMonitor

    class ZeusWindowPerStep(TrainerCallback):
        """One ZeusMonitor measurement window around every optimiser step."""

        def __init__(self) -> None:
            self.monitor = ZeusMonitor()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.monitor.begin_window("step", sync_execution=False)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.monitor.end_window("step", sync_execution=False)

    return ZeusWindowPerStep(), dict


TRACKERS: Dict[str, Callable[[Path], Tuple[Optional[Any], Callable[[], Dict[str, Any]]]]] = {
    "baseline": no_tracker,
    "eco2ai": eco2ai_tracker,
    "codecarbon": codecarbon_tracker,
    "zeus": zeus_tracker,
}


@dataclass
class RunTiming:
    steps_per_s: float
    startup_s: float
    step_hooks_us_per_step: float
    log_hook_ms_per_log: float
    begin_end_ms: float
    other_threads_cpu: float
    facts: Dict[str, Any]
    all_hooks_s: float = 0.0
    train_s: float = 0.0
    timer_s_per_call: float = 0.0
    timed_calls: int = 0

    @property
    def net_hooks_s(self) -> float:
        """The time inside the tracker's hooks, less the timer's own cost around each call."""
        return self.all_hooks_s - self.timed_calls * self.timer_s_per_call


def run_once(
    tracker_name: str,
    steps: int,
    workdir: Path,
    make_tracker: Optional[Callable[[Path], Tuple[Optional[Any], Callable[[], Dict[str, Any]]]]] = None,
) -> RunTiming:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=VOCABULARY,
            n_positions=SEQUENCE_LENGTH,
            n_embd=64,
            n_layer=2,
            n_head=4,
            n_inner=128,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    model.loss_type = "ForCausalLM"
    arguments = TrainingArguments(
        output_dir=str(workdir / "trainer"),
        per_device_train_batch_size=8,
        max_steps=steps,
        logging_steps=50,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        dataloader_pin_memory=False,
        seed=0,
    )
    clock = StepClock()
    constructed = time.perf_counter()
    callback, facts = (make_tracker or TRACKERS[tracker_name])(workdir)
    spent = time_hooks(callback) if callback is not None else {}
    empty_hook = EmptyHook()
    timer_alone = time_hooks(empty_hook)["on_step_end"]
    callbacks = [callback, clock, empty_hook] if callback is not None else [clock, empty_hook]
    trainer = Trainer(model=model, args=arguments, train_dataset=RandomTokens(4096), callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    train_started = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - train_started
    ends = clock.step_ends[WARMUP_STEPS:]
    assert clock.first_step_begin is not None and len(ends) > 1
    return RunTiming(
        steps_per_s=(len(ends) - 1) / (ends[-1] - ends[0]),
        startup_s=clock.first_step_begin - constructed,
        step_hooks_us_per_step=sum(spent[name][0] for name in STEP_HOOKS if name in spent) / steps * 1e6,
        log_hook_ms_per_log=spent["on_log"][0] / max(spent["on_log"][1], 1) * 1e3 if "on_log" in spent else 0.0,
        begin_end_ms=sum(spent[name][0] for name in RUN_HOOKS if name in spent) * 1e3,
        other_threads_cpu=clock.other_threads_cpu_fraction(),
        facts=facts(),
        all_hooks_s=sum(tally[0] for tally in spent.values()),
        timer_s_per_call=timer_alone[0] / max(timer_alone[1], 1),
        timed_calls=int(sum(tally[1] for tally in spent.values())),
        train_s=train_s,
    )


def mark_in_place(steps: int, workdir: Path) -> Dict[str, List[int]]:
    """The per-step mark timed in place, on alternate steps of one Eco2AI run: the C function
    that ``mark_step`` is, and the binding's method ``Meter.mark``. Either is the step's only
    mark, called first thing after the step's kernels, as the callback's ``on_step_end`` does;
    ns per call, warm-up steps left out."""
    timings: Dict[str, List[int]] = {"function": [], "method": []}

    def tracker(directory: Path) -> Tuple[Optional[Any], Callable[[], Dict[str, Any]]]:
        callback, facts = eco2ai_tracker(directory)
        lifecycle = callback.lifecycle

        def on_step_end(args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            session = lifecycle.session
            odd = state.global_step % 2 == 1
            mark = session.mark_step if odd else session.meter._core.mark
            started = time.perf_counter_ns()
            mark()
            if state.global_step > WARMUP_STEPS:
                timings["function" if odd else "method"].append(time.perf_counter_ns() - started)

        callback.on_step_end = on_step_end
        return callback, facts

    timing = run_once("eco2ai", steps, workdir, make_tracker=tracker)
    assert timing.facts["steps_recorded"] == steps, "every step must be marked once"
    return timings


def print_mark_in_place(steps: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        timings = mark_in_place(steps, Path(scratch))
    function_us, method_us = (statistics.median(timings[name]) / 1e3 for name in ("function", "method"))
    print(
        f"\nThe per-step mark in place (alternate steps of one Eco2AI run, {len(timings['function'])} and "
        f"{len(timings['method'])} calls): the C function `mark_step` is {function_us:.2f} µs median, the binding's "
        f"method `Meter.mark` {method_us:.2f} µs; ratio {function_us / method_us:.2f}"
    )


# Sampler CPU per source -------------------------------------------------------------------------

EMULATOR_DIRS = ("target/nvml-emulator", "target/nvml-emulator-release")


# Run in a fresh interpreter that imports neither torch nor transformers: their thread pools
# would blur what is measured.
SAMPLER_CPU_CHILD = """
import sys, threading, time
from pathlib import Path

arm, seconds = sys.argv[1], float(sys.argv[2])
source, _, cpu_scope = arm.partition(":")
main_tid = threading.get_native_id()
if cpu_scope == "process":
    # The process share walks every thread's children list: give it a trainer's thread count.
    idle = threading.Event()
    for _ in range(48):
        threading.Thread(target=idle.wait, daemon=True).start()


def thread_cpu_ns():
    # The hf-eco2ai sampler thread by its name; for CodeCarbon, every thread but the main one.
    total = 0
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            wanted = name == "hf-eco2ai-sampl" if source != "codecarbon" else int(task.name) != main_tid
            if wanted:
                total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            continue
    return total


if source == "codecarbon":
    from codecarbon import OfflineEmissionsTracker

    tracker = OfflineEmissionsTracker(country_iso_code="FRA", save_to_file=False, log_level="error")
    tracker.start()
    stop = tracker.stop
else:
    from hf_eco2ai import EnergyMeter

    meter = EnergyMeter(sources=source, rate_hz=100.0, cpu_scope=cpu_scope or "machine")
    meter.start()
    stop = meter.stop
time.sleep(0.5)
cpu_0, wall_0 = thread_cpu_ns(), time.monotonic()
time.sleep(seconds)
cpu_1, wall_1 = thread_cpu_ns(), time.monotonic()
stop()
print((cpu_1 - cpu_0) * 1e-9 / (wall_1 - wall_0))
"""


def sampler_cpu_by_source(seconds: float) -> Dict[str, Optional[float]]:
    """Each source alone at the default 100 Hz, all of "auto", and CodeCarbon, each in a fresh
    process. NVML runs on the emulator (its per-read cost is the emulator's, not a driver's)
    when it was built (`make nvml-emulator`)."""
    repo = Path(__file__).resolve().parents[1]
    emulator = next((repo / d for d in EMULATOR_DIRS if (repo / d / "libnvidia-ml.so.1").is_file()), None)
    arms: Dict[str, Dict[str, str]] = {
        "cpu-estimate": {},
        "cpu-estimate:process": {},
        "synthetic": {},
        "auto": {},
        "codecarbon": {},
    }
    if emulator is not None:
        arms["nvml"] = {"LD_LIBRARY_PATH": str(emulator), "NVML_EMULATOR": "gpus=1;stair_ms=100"}
    shares: Dict[str, Optional[float]] = {"nvml": None}
    for source, extra in arms.items():
        result = subprocess.run(
            [sys.executable, "-c", SAMPLER_CPU_CHILD, source, str(seconds)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **extra},
        )
        shares[source] = float(result.stdout.strip().splitlines()[-1])
    return shares


def print_sampler_cpu(seconds: float) -> None:
    shares = sampler_cpu_by_source(seconds)
    print(
        f"\nSampler CPU per source, {seconds:g} s each, 100 Hz, idle training thread "
        "(share of one core used by the tracker's threads):\n"
    )
    print("| tracker / source | CPU of its threads |")
    print("| --- | ---: |")
    for source in ("cpu-estimate", "cpu-estimate:process", "synthetic", "nvml", "auto", "codecarbon"):
        share = shares.get(source)
        label = {
            "cpu-estimate:process": "cpu-estimate, cpu_scope=process (49 threads walked)",
            "synthetic": "synthetic (read at the configured rate, as RAPL)",
            "nvml": "nvml (emulated GPU)",
            "auto": "auto (everything found here)",
            "codecarbon": "CodeCarbon 3.3.2 offline, defaults",
        }.get(source, source)
        print(
            f"| {label} | "
            + (
                "not run: build the emulator (make nvml-emulator)"
                if share is None
                else f"{share * 100:.3f} % of a core"
            )
            + " |"
        )


def cold_startup_s(tracker_name: str, threads: int) -> float:
    """Start-up in a fresh interpreter (imports done, nothing of the tracker's warmed up yet)."""
    result = subprocess.run(
        [sys.executable, __file__, "--cold-startup-of", tracker_name, "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def cold_run_hooks(tracker_name: str, steps: int) -> Dict[str, float]:
    """Time inside the tracker's hooks over one whole run, the first of its process (cold)."""
    with tempfile.TemporaryDirectory() as scratch:
        timing = run_once(tracker_name, steps, Path(scratch))
    return {"hooks_s": timing.all_hooks_s, "net_hooks_s": timing.net_hooks_s, "train_s": timing.train_s}


def cold_hooks(tracker_name: str, options: argparse.Namespace) -> Dict[str, float]:
    result = subprocess.run(
        [
            sys.executable,
            __file__,
            "--cold-hooks-of",
            tracker_name,
            "--threads",
            str(options.threads),
            "--steps",
            str(options.steps),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_whole_run_hooks(results: Dict[str, List[RunTiming]], cold: Dict[str, Dict[str, float]]) -> None:
    """Time inside each tracker's hooks over a whole run (every hook it defines, train begin and
    end included), warm (median over the rounds) and cold (a fresh process), beside CodeCarbon's.
    "Net" takes out the timer's own cost around each call, measured in the same run around an
    empty hook; the ratios and the share compare net times."""
    warm = {name: statistics.median(t.all_hooks_s for t in results[name]) for name in cold}
    net = {name: statistics.median(t.net_hooks_s for t in results[name]) for name in cold}
    per_call = {name: statistics.median(t.timer_s_per_call for t in results[name]) for name in cold}
    share = {name: statistics.median(t.net_hooks_s / t.train_s for t in results[name]) for name in cold}
    print(
        "\n| tracker | hooks over a whole run, warm | timer per call | net, warm | vs CodeCarbon | "
        "share of training time | net, cold process | vs CodeCarbon |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in cold:
        print(
            f"| {name} | {warm[name] * 1e3:.1f} ms | {per_call[name] * 1e6:.1f} µs | {net[name] * 1e3:.1f} ms | "
            f"{net[name] / net['codecarbon']:.2f}x | {share[name] * 100:.2f} % | "
            f"{cold[name]['net_hooks_s'] * 1e3:.1f} ms | "
            f"{cold[name]['net_hooks_s'] / cold['codecarbon']['net_hooks_s']:.2f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument("--steps", type=int, default=300, help="optimiser steps per run (default 300)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (default 1: steadier on shared machines)"
    )
    parser.add_argument(
        "--cold-starts", type=int, default=3, help="fresh processes per tracker for start-up (default 3)"
    )
    parser.add_argument("--cold-startup-of", help=argparse.SUPPRESS)
    parser.add_argument(
        "--sampler-cpu", action="store_true", help="only the sampler CPU per source, against CodeCarbon"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per sampler CPU measurement (default 10)")
    parser.add_argument("--cold-hooks-of", help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="1 round of a few steps, to check the benchmark runs")
    options = parser.parse_args()
    if options.smoke:
        options.rounds, options.steps, options.cold_starts = 1, WARMUP_STEPS + 5, 1
        options.seconds = 0.5
    if options.sampler_cpu:
        print_sampler_cpu(options.seconds)
        return
    torch.set_num_threads(options.threads)
    transformers.logging.set_verbosity_error()
    if options.cold_hooks_of:
        print(json.dumps(cold_run_hooks(options.cold_hooks_of, options.steps)))
        return
    if options.cold_startup_of:
        with tempfile.TemporaryDirectory() as scratch:
            print(run_once(options.cold_startup_of, WARMUP_STEPS + 2, Path(scratch)).startup_s)
        return

    names = ["baseline", "eco2ai", "codecarbon"]
    zeus_reason = zeus_unavailable_reason()
    if zeus_reason is None:
        names.append("zeus")
    results: Dict[str, List[RunTiming]] = {name: [] for name in names}
    ratios: Dict[str, List[float]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as scratch:
        run_once("baseline", options.steps, Path(scratch) / "warmup")
        for round_index in range(options.rounds):
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            timings = {name: run_once(name, options.steps, Path(scratch) / f"{round_index}-{name}") for name in order}
            for name in names:
                results[name].append(timings[name])
                ratios[name].append(timings[name].steps_per_s / timings["baseline"].steps_per_s)
            print(
                f"round {round_index + 1}/{options.rounds}: "
                + ", ".join(f"{name} {timings[name].steps_per_s:.1f} steps/s" for name in names),
                file=sys.stderr,
                flush=True,
            )

    cold: Dict[str, float] = {}
    for name in names:
        cold[name] = statistics.median(cold_startup_s(name, options.threads) for _ in range(options.cold_starts))
        print(f"cold start-up of {name}: {cold[name]:.3f} s", file=sys.stderr, flush=True)
    print(
        f"\nCommand: `python benches/{Path(__file__).name} --rounds {options.rounds} --steps {options.steps} "
        f"--threads {options.threads}`"
    )
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
        f"torch {torch.__version__} on CPU with {options.threads} thread(s), transformers {transformers.__version__}, "
        f"Python {platform.python_version()}; load average at the end {os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| tracker | median steps/s | throughput vs baseline (median of per-round ratios) | overhead | "
        "in its step hooks | in on_log, per log | in train begin + end | CPU of other threads | "
        "start-up, cold process | start-up beyond baseline |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        ratio = statistics.median(ratios[name])
        runs = results[name]
        print(
            f"| {name} | {statistics.median(t.steps_per_s for t in runs):.1f} | {ratio:.4f} "
            f"(min {min(ratios[name]):.3f}, max {max(ratios[name]):.3f}) | {(1 - ratio) * 100:+.2f} % | "
            f"{statistics.median(t.step_hooks_us_per_step for t in runs):.1f} µs/step | "
            f"{statistics.median(t.log_hook_ms_per_log for t in runs):.2f} ms | "
            f"{statistics.median(t.begin_end_ms for t in runs):.0f} ms | "
            f"{statistics.median(t.other_threads_cpu for t in runs) * 100:.2f} % of a core | "
            f"{cold[name]:.3f} s | {cold[name] - cold['baseline']:+.3f} s |"
        )
    if zeus_reason is not None:
        print(f"| zeus | not run: {zeus_reason} | | | | | | | | |")
    print_whole_run_hooks(results, {name: cold_hooks(name, options) for name in names if name != "baseline"})
    eco2ai_facts = [t.facts for t in results["eco2ai"]]
    correct = all(facts["steps_recorded"] == options.steps for facts in eco2ai_facts)
    print(
        f"\nCorrectness: every Eco2AI run recorded one step per optimiser step: {correct}; "
        f"channels: {eco2ai_facts[0]['channels']}."
    )
    print_mark_in_place(options.steps)
    print_sampler_cpu(options.seconds)


if __name__ == "__main__":
    main()
