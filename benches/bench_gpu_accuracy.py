"""How far apart are NVML's two views of GPU energy, and how often does each update?

Run on a machine with an NVIDIA GPU (Volta or newer): `python benches/bench_gpu_accuracy.py`.
Without one it says so and exits 0.

The workload alternates matmul bursts with idle gaps of random length (5-60 ms each) while the
meter samples at 1 kHz and a step boundary is marked every ~10 ms. For windows of 10 ms, 100 ms,
1 s and 10 s it compares, over the same spans:
- energy from the NVML energy counter (what the meter reports, split at the boundaries), and
- energy integrated by the trapezoidal rule from the instant-power readings of the trace.
It prints the distribution of their relative difference per window length and the observed
update period of both sensors (a value that changes every ~100 ms cannot resolve 10 ms).

Each burst is also a ``burst`` window, so ``EnergyMeter.estimate_windows()`` estimates the mean
power of a 5-60 ms burst from the counter's stairs (at full observation and with the A100/H100
25 % window). The script then runs the same matmul without a break, and sleeps, for a few seconds
each: the counter over those long windows is the reference for the burst and rest power. Short
bursts may draw a little less than sustained work (clocks ramp), so expect agreement within a few
percent, not exactly.

``--emulated`` runs the same script against the NVML emulator (rust/nvml_emulator, loaded as
libnvidia-ml.so.1 through LD_LIBRARY_PATH) with the emulated GPU at 600 W in bursts and 60 W
between them, to check the script itself without a GPU; ``--smoke`` on a machine without a GPU
does that for a 2 s workload.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

WINDOWS_S = (0.01, 0.1, 1.0, 10.0)


def gpu_unavailable_reason() -> str:
    if ctypes.util.find_library("nvidia-ml") is None:
        return "no NVML library (libnvidia-ml.so.1): this machine has no NVIDIA driver"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "torch sees no CUDA device"
    return ""


class CudaLoad:
    """Half-precision matmul bursts on GPU 0; idle is a sleeping host thread."""

    def __init__(self) -> None:
        import torch

        self._torch = torch
        size = 4096
        self._a = torch.randn(size, size, device="cuda", dtype=torch.float16)
        self._b = torch.randn(size, size, device="cuda", dtype=torch.float16)
        for _ in range(20):  # warm-up, not measured
            self._a @ self._b
        torch.cuda.synchronize()

    def busy_until(self, deadline_s: float, tick: Callable[[], None]) -> None:
        while time.monotonic() < deadline_s:
            self._a @ self._b
            self._torch.cuda.synchronize()
            tick()

    def idle_until(self, deadline_s: float, tick: Callable[[], None]) -> None:
        while time.monotonic() < deadline_s:
            time.sleep(0.001)
            tick()


class EmulatedLoad:
    """The NVML emulator's GPU 0 at 600 W while busy and 60 W while idle."""

    BUSY_WATTS = 600.0
    IDLE_WATTS = 60.0

    def __init__(self) -> None:
        self._lib = ctypes.CDLL("libnvidia-ml.so.1")
        self._lib.nvml_emulator_set_watts.argtypes = [ctypes.c_uint, ctypes.c_double]

    def _hold(self, watts: float, deadline_s: float, tick: Callable[[], None]) -> None:
        self._lib.nvml_emulator_set_watts(0, watts)
        while time.monotonic() < deadline_s:
            time.sleep(0.001)
            tick()

    def busy_until(self, deadline_s: float, tick: Callable[[], None]) -> None:
        self._hold(self.BUSY_WATTS, deadline_s, tick)

    def idle_until(self, deadline_s: float, tick: Callable[[], None]) -> None:
        self._hold(self.IDLE_WATTS, deadline_s, tick)


def run_workload(meter: Any, load: Any, seconds: float, seed: int) -> List[Any]:
    """Random bursts and idle gaps of 5-60 ms, a step marked every ~10 ms, each burst a
    ``burst`` window; returns the power trace drained along the way."""
    rng = random.Random(seed)
    traces = []
    burst = meter.window("burst")
    next_mark = [time.monotonic() + 0.01]

    def tick() -> None:
        if time.monotonic() >= next_mark[0]:
            meter.mark_step()
            next_mark[0] += 0.01

    deadline = time.monotonic() + seconds
    with meter:
        while time.monotonic() < deadline:
            with burst:
                load.busy_until(time.monotonic() + rng.uniform(0.005, 0.06), tick)
            load.idle_until(time.monotonic() + rng.uniform(0.005, 0.06), tick)
            traces.append(meter.drain_trace())
    traces.append(meter.drain_trace())
    return traces


def sustained_watts(load: Any, busy: bool, seconds: float) -> float:
    """Mean power over whole counter stairs while the load runs (or idles) without a break."""
    from hf_eco2ai import EnergyMeter

    meter = EnergyMeter(sources="nvml", devices=[0], rate_hz=1000)
    hold = load.busy_until if busy else load.idle_until
    with meter:
        hold(time.monotonic() + seconds, lambda: None)
    stairs = meter.stairs()
    if len(stairs) == 0:
        return float("nan")
    return float(stairs.joules.sum() / (stairs.t1_s[-1] - stairs.t0_s[0]))


def report_phase_estimates(meter: Any, load: Any, reference_s: float, fractions: Sequence[float]) -> None:
    busy_w = sustained_watts(load, True, reference_s)
    idle_w = sustained_watts(load, False, reference_s)
    print(f"reference over {reference_s:g} s without a break (counter): busy {busy_w:.1f} W, idle {idle_w:.1f} W")
    print("| observed fraction | bursts | mean burst | burst power | vs busy | rest power | vs idle | stair timing |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for fraction in fractions:
        estimates = meter.estimate_windows(observed_fraction=fraction)
        burst = estimates.windows.get("burst")
        if burst is None or estimates.stairs_used == 0:
            print(f"| {fraction:g} | - | - | no estimate: {'; '.join(estimates.notes) or 'no stairs'} | | | | |")
            continue
        print(
            f"| {fraction:g} | {burst.repetitions} | {burst.mean_duration_s * 1000:.1f} ms "
            f"| {burst.mean_watts:.1f} ± {burst.mean_watts_stderr:.1f} W | {100 * (burst.mean_watts / busy_w - 1):+.1f} % "
            f"| {estimates.rest_watts:.1f} W | {100 * (estimates.rest_watts / idle_w - 1):+.1f} % "
            f"| {', '.join(f'{k}: {v}' for k, v in estimates.stair_timing.items())} |"
        )


def run_emulated(arguments: List[str]) -> int:
    """This script again in a child whose dynamic loader finds the NVML emulator first."""
    from bench_gpu_emulated import build_emulator

    library_dir = build_emulator()
    env = dict(
        os.environ,
        NVML_EMULATOR="gpus=1;stair_ms=100;instant_ms=100;scenario=constant:60",
        LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(library_dir), os.environ.get("LD_LIBRARY_PATH")])),
    )
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), *arguments, "--emulated"], env=env).returncode


def summarise(errors: List[float]) -> Dict[str, float]:
    import numpy as np

    values = np.abs(np.array(errors)) * 100
    return {
        "n": len(errors),
        "median_abs_pct": float(np.median(values)),
        "p90_abs_pct": float(np.percentile(values, 90)),
        "max_abs_pct": float(values.max()),
        "mean_signed_pct": float(np.mean(errors) * 100),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the workload (default 60)")
    parser.add_argument("--reference-seconds", type=float, default=5.0, help="each long reference window (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a 2 s workload, to check the benchmark runs")
    parser.add_argument("--emulated", action="store_true", help="run against the NVML emulator (no GPU needed)")
    args = parser.parse_args()
    if args.smoke:
        args.seconds = 2.0
        args.reference_seconds = 1.0

    if args.emulated and "NVML_EMULATOR" not in os.environ:
        return run_emulated([argument for argument in sys.argv[1:] if argument != "--emulated"])
    if not args.emulated:
        reason = gpu_unavailable_reason()
        if reason and args.smoke:
            print(f"bench_gpu_accuracy: {reason}; checking the script on the NVML emulator instead.", flush=True)
            return run_emulated(sys.argv[1:])
        if reason:
            print(f"bench_gpu_accuracy: skipped, {reason}. Run it on a machine with an NVIDIA GPU.")
            return 0

    import numpy as np

    from hf_eco2ai import EnergyMeter

    load = EmulatedLoad() if args.emulated else CudaLoad()
    meter = EnergyMeter(sources="nvml", devices=[0], rate_hz=1000, ring_capacity=1 << 16)
    traces = run_workload(meter, load, args.seconds, args.seed)
    steps = meter.drain_steps().training_steps()
    t_s = np.concatenate([t.t_s for t in traces])
    watts = np.concatenate([t.watts[:, 0] for t in traces])

    # The trapezoid of instant power, as a cumulative curve evaluated at every boundary.
    cumulative = np.concatenate([[0.0], np.cumsum(np.diff(t_s) * (watts[1:] + watts[:-1]) / 2)])
    boundaries = np.concatenate([steps.t0_s[:1], steps.t1_s])
    power_joules_at = np.interp(boundaries, t_s, cumulative)
    counter_joules_at = np.concatenate([[0.0], np.cumsum(steps.joules[:, 0])])
    step_s = float(np.median(steps.duration_s))

    print(f"GPU 0, {len(steps)} steps of ~{step_s * 1000:.1f} ms over {boundaries[-1] - boundaries[0]:.1f} s")
    print("| window | n | median abs diff | p90 | max | mean signed (power - counter) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for window_s in WINDOWS_S:
        width = max(1, int(round(window_s / step_s)))
        counter = counter_joules_at[width:] - counter_joules_at[:-width]
        power = power_joules_at[width:] - power_joules_at[:-width]
        keep = counter > 0
        if not keep.any():
            continue
        stats = summarise(list((power[keep] - counter[keep]) / counter[keep]))
        print(
            f"| {window_s * 1000:g} ms | {stats['n']} | {stats['median_abs_pct']:.1f} % | {stats['p90_abs_pct']:.1f} % "
            f"| {stats['max_abs_pct']:.1f} % | {stats['mean_signed_pct']:+.1f} % |"
        )

    changes = np.nonzero(np.diff(watts))[0]
    power_period = float(np.median(np.diff(t_s[changes + 1]))) if len(changes) > 2 else float("nan")
    counter_period = meter.info()["channels"][0]["observed_update_period_s"]
    print(
        f"observed update period: energy counter {counter_period * 1000 if counter_period else float('nan'):.1f} ms, "
        f"instant power {power_period * 1000:.1f} ms (median between changes)"
    )
    print(f"meter: {meter.totals()['readings']} readings, {meter.totals()['missed_ticks']} missed ticks")
    # The emulated GPU observes all of each period; a real one may see only 25 % (A100/H100).
    report_phase_estimates(meter, load, args.reference_seconds, (1.0,) if args.emulated else (1.0, 0.25))
    return 0


if __name__ == "__main__":
    sys.exit(main())
