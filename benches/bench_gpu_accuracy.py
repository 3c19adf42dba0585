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
"""

from __future__ import annotations

import argparse
import ctypes.util
import random
import sys
import time
from typing import Any, Dict, List

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


def run_workload(meter: Any, seconds: float, seed: int) -> List[Any]:
    import torch

    rng = random.Random(seed)
    size = 4096
    a = torch.randn(size, size, device="cuda", dtype=torch.float16)
    b = torch.randn(size, size, device="cuda", dtype=torch.float16)
    traces = []
    for _ in range(20):  # warm-up, not measured
        a @ b
    torch.cuda.synchronize()
    deadline = time.monotonic() + seconds
    next_mark = time.monotonic() + 0.01
    with meter:
        while time.monotonic() < deadline:
            burst_end = time.monotonic() + rng.uniform(0.005, 0.06)
            while time.monotonic() < burst_end:
                a @ b
                torch.cuda.synchronize()
                if time.monotonic() >= next_mark:
                    meter.mark_step()
                    next_mark += 0.01
            idle_end = time.monotonic() + rng.uniform(0.005, 0.06)
            while time.monotonic() < idle_end:
                time.sleep(0.001)
                if time.monotonic() >= next_mark:
                    meter.mark_step()
                    next_mark += 0.01
            traces.append(meter.drain_trace())
    traces.append(meter.drain_trace())
    return traces


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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a 2 s workload, to check the benchmark runs")
    args = parser.parse_args()
    if args.smoke:
        args.seconds = 2.0

    reason = gpu_unavailable_reason()
    if reason:
        print(f"bench_gpu_accuracy: skipped, {reason}. Run it on a machine with an NVIDIA GPU.")
        return 0

    import numpy as np

    from hf_eco2ai import EnergyMeter

    meter = EnergyMeter(sources="nvml", devices=[0], rate_hz=1000, ring_capacity=1 << 16)
    traces = run_workload(meter, args.seconds, args.seed)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
