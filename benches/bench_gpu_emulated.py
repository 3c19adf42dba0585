"""EnergyMeter, Zeus and CodeCarbon side by side on the same emulated GPU, against its truth.

The NVML emulator (rust/nvml_emulator, loaded as libnvidia-ml.so.1) plays one H100-like GPU
whose energy counter moves in 100 ms stairs. A training loop runs a phase program over and over:
``forward`` 10 ms at 600 W, ``backward`` 20 ms at 450 W, ``optimizer`` 5 ms at 300 W, then a
random idle gap (5-45 ms at 60 W), setting the emulator's power live at each phase and asking
the emulator for the true energy of every phase and step. Each tool runs in its own process
(NVML is loaded once per process):

- ``bare``: the loop alone, for the cost baseline;
- ``eco2ai``: ``EnergyMeter`` at 1 kHz, a step mark per repetition and a window per phase; per
  phase from the window estimator (``EnergyMeter.estimate_windows``), compared with the truth of
  the windows as the meter stamped them;
- ``eco2ai-duty25``: the same with the A100/H100 habit of observing only 25 % of each period;
- ``zeus``: Zeus 0.16 ``ZeusMonitor``, ``begin_window``/``end_window`` per step and per phase;
- ``codecarbon``: CodeCarbon 3.3.2 ``OfflineEmissionsTracker`` (GPU energy), whole run only.

Per tool: the time its calls take on the training thread per window and the loop's wall time
against ``bare`` (ratio); whole-run energy error; median per-step error; per-phase error of the
mean. A ``shaping`` run adds 30 ms steps at 100 ms stairs with 10 ms instant-power readings:
the median per-step error with linear interpolation and with the instant readings shaping each
stair.

    python benches/bench_gpu_emulated.py [--reps 1000] [--smoke]

The peers are optional (``pip install 'hf-eco2ai[bench]'``): an arm whose package is missing is
skipped and named. Needs cargo to build the emulator.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, Optional

REPO = Path(__file__).resolve().parents[1]
LIBRARY_NAME = "libnvidia-ml.so.1"
PHASES = (("forward", 0.010, 600.0), ("backward", 0.020, 450.0), ("optimizer", 0.005, 300.0))
IDLE_WATTS = 60.0
PEERS = {"zeus": "zeus", "codecarbon": "codecarbon"}

CHILD_PRELUDE = """
import ctypes, json, random, statistics, sys, time
lib = None
def emulator():
    global lib
    if lib is None:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
        lib.nvml_emulator_set_watts.argtypes = [ctypes.c_uint, ctypes.c_double]
        lib.nvml_emulator_true_joules.argtypes = [ctypes.c_uint, ctypes.c_double, ctypes.c_double]
        lib.nvml_emulator_true_joules.restype = ctypes.c_double
    return lib
PHASES = {phases!r}
IDLE_WATTS = {idle!r}
REPS = {reps!r}

def truth(t0, t1):
    return emulator().nvml_emulator_true_joules(0, t0, t1)

def run_loop(open_window, close_window, mark_step):
    '''The phase program; returns per-step and per-phase truth and the tracker's own call time.'''
    rng = random.Random(11)
    lib = emulator()
    tracker_s = 0.0
    calls = 0
    steps, phases = [], {{name: [] for name, _, _ in PHASES}}
    windows = []
    clock = time.perf_counter
    loop_start = time.monotonic()
    for _ in range(REPS):
        step_t0 = time.monotonic()
        for name, duration, watts in PHASES:
            lib.nvml_emulator_set_watts(0, watts)
            c0 = clock(); open_window(name); tracker_s += clock() - c0; calls += 1
            t0 = time.monotonic()
            time.sleep(duration)
            t1 = time.monotonic()
            c0 = clock(); close_window(name); tracker_s += clock() - c0; calls += 1
            phases[name].append(truth(t0, t1))
            windows.append((name, t0, t1))
        lib.nvml_emulator_set_watts(0, IDLE_WATTS)
        time.sleep(rng.uniform(0.005, 0.045))
        c0 = clock(); mark_step(); tracker_s += clock() - c0; calls += 1
        steps.append(truth(step_t0, time.monotonic()))
    return {{"loop_s": time.monotonic() - loop_start, "tracker_s": tracker_s, "calls": calls,
             "step_truth": steps, "phase_truth": {{k: sum(v) / len(v) for k, v in phases.items()}}}}
"""

ARMS = {
    "bare": """
result = run_loop(lambda name: None, lambda name: None, lambda: None)
print(json.dumps(result))
""",
    "eco2ai": """
from hf_eco2ai import EnergyMeter
meter = EnergyMeter(sources="nvml", rate_hz=1000)
windows = {{name: meter.window(name) for name, _, _ in PHASES}}
meter.start()
result = run_loop(lambda name: windows[name].__enter__(), lambda name: windows[name].__exit__(None, None, None),
                  meter.mark_step)
meter.stop()
totals = meter.totals()
steps = meter.drain_steps().training_steps()
result["run_joules"] = totals["joules"]["gpu:0"]
result["run_truth"] = truth(totals["first_reading_s"], totals["t_s"])
# Step 0 starts at the first reading, before the loop: compare from step 1 on.
result["step_joules"] = steps.joules[1:, 0].tolist()
result["step_truth"] = result["step_truth"][1:]
# Windows of >= 1 s: consecutive steps grouped, from the records and from the stairs.
import numpy as np
from hf_eco2ai.meter.window_estimates import shaped_energy_at
trace = meter.drain_trace()
stairs = meter.stairs()
edges, start = [], steps.t0_s[1]
for t1 in steps.t1_s[1:]:
    if t1 - start >= 1.0:
        edges.append((start, t1))
        start = t1
long_truth = np.array([truth(a, b) for a, b in edges])
cumulative = np.concatenate(([0.0], np.cumsum(steps.joules[:, 0])))
at = {{t: e for t, e in zip(np.concatenate((steps.t0_s[:1], steps.t1_s)), cumulative)}}
from_records = np.array([at[b] - at[a] for a, b in edges])
ends = np.array(edges)
from_stairs = (shaped_energy_at(stairs, 0, trace.t_s, trace.watts[:, 0], ends[:, 1])
               - shaped_energy_at(stairs, 0, trace.t_s, trace.watts[:, 0], ends[:, 0]))
inside = (ends[:, 0] > stairs.t0_s[0]) & (ends[:, 1] < stairs.t1_s[-1])
result["long_windows"] = int(inside.sum())
if inside.any():
    result["long_error_records"] = float(np.median(np.abs(from_records - long_truth)[inside] / long_truth[inside]))
    result["long_error_stairs"] = float(np.median(np.abs(from_stairs - long_truth)[inside] / long_truth[inside]))
# The truth of each window as the meter stamped it (the loop's own timing brackets it a few
# microseconds inside, more when the host preempts it between the two).
recorded = meter.drain_windows()
result["phase_truth"] = {{
    name: float(np.mean([truth(a, b) for n, a, b in zip(recorded.name, recorded.t0_s, recorded.t1_s) if n == name]))
    for name, _, _ in PHASES
}}
estimates = meter.estimate_windows(observed_fraction={observed_fraction!r})
result["phase_joules"] = {{name: e.mean_joules for name, e in estimates.windows.items()}}
result["phase_stderr"] = {{name: e.mean_joules_stderr for name, e in estimates.windows.items()}}
result["stairs_used"] = estimates.stairs_used
print(json.dumps(result))
""",
    "zeus": """
import logging, warnings
logging.disable(logging.WARNING)
warnings.simplefilter("ignore")
from zeus.monitor import ZeusMonitor
monitor = ZeusMonitor(gpu_indices=[0], cpu_indices=[])
phase_joules = {{name: [] for name, _, _ in PHASES}}
step_joules = []
state = {{"step": 0}}
def open_window(name):
    monitor.begin_window(name, sync_execution=False)
def close_window(name):
    phase_joules[name].append(monitor.end_window(name, sync_execution=False).gpu_energy[0])
def mark_step():
    step_joules.append(monitor.end_window("step", sync_execution=False).gpu_energy[0])
    monitor.begin_window("step", sync_execution=False)
t0 = time.monotonic()
monitor.begin_window("run", sync_execution=False)
monitor.begin_window("step", sync_execution=False)
result = run_loop(open_window, close_window, mark_step)
monitor.end_window("step", sync_execution=False)
run = monitor.end_window("run", sync_execution=False)
result["run_joules"] = run.gpu_energy[0]
result["run_truth"] = truth(t0, time.monotonic())
result["step_joules"] = step_joules
result["phase_joules"] = {{k: sum(v) / len(v) for k, v in phase_joules.items()}}
print(json.dumps(result))
""",
    "codecarbon": """
import logging, warnings
logging.disable(logging.WARNING)
warnings.simplefilter("ignore")
from codecarbon import OfflineEmissionsTracker
tracker = OfflineEmissionsTracker(country_iso_code="FRA", measure_power_secs=1, save_to_file=False,
                                  log_level="error", tracking_mode="machine")
tracker.start()
t0 = time.monotonic()
result = run_loop(lambda name: None, lambda name: None, lambda: None)
tracker.stop()
result["run_joules"] = tracker._total_gpu_energy.kWh * 3.6e6
result["run_truth"] = truth(t0, time.monotonic())
print(json.dumps(result))
""",
    "shaping": """
import numpy as np
from hf_eco2ai import EnergyMeter
from hf_eco2ai.meter.window_estimates import shaped_energy_at
meter = EnergyMeter(sources="nvml", rate_hz=1000)
lib = emulator()
rng = random.Random(5)
meter.start()
marks = []
for _ in range(max(REPS // 3, 20)):
    lib.nvml_emulator_set_watts(0, 600.0)
    time.sleep(0.010 + rng.uniform(0, 0.004))
    lib.nvml_emulator_set_watts(0, 250.0)
    time.sleep(0.020 - rng.uniform(0, 0.004))
    meter.mark_step()
    marks.append(time.monotonic())
meter.stop()
steps = meter.drain_steps().training_steps()
trace = meter.drain_trace()
stairs = meter.stairs()
t0, t1 = steps.t0_s[1:], steps.t1_s[1:]
truths = np.array([truth(a, b) for a, b in zip(t0, t1)])
linear = steps.joules[1:, 0]
edges = np.concatenate((t0[:1], t1))
# Each instant reading is the mean of the 10 ms before it: centre it.
shaped = np.diff(shaped_energy_at(stairs, 0, trace.t_s - 0.005, trace.watts[:, 0], edges))
inside = (t0 > stairs.t0_s[0]) & (t1 < stairs.t1_s[-1])
print(json.dumps({{
    "steps": int(inside.sum()),
    "linear_median_error": float(np.median(np.abs(linear[inside] - truths[inside]) / truths[inside])),
    "shaped_median_error": float(np.median(np.abs(shaped[inside] - truths[inside]) / truths[inside])),
}}))
""",
}


def build_emulator() -> Path:
    out_dir = REPO / "target" / "nvml-emulator-release"
    subprocess.run(
        ["cargo", "build", "--quiet", "--release", "-p", "nvml-emulator", "--target-dir", str(REPO / "target")],
        cwd=REPO,
        check=True,
        timeout=900,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    # Copied aside and renamed into place: overwriting the file would corrupt it under a process
    # that has it loaded (another benchmark running at the same time).
    staged = out_dir / f".{LIBRARY_NAME}.{os.getpid()}"
    shutil.copyfile(REPO / "target" / "release" / "libnvml_emulator.so", staged)
    os.replace(staged, out_dir / LIBRARY_NAME)
    # CodeCarbon looks for NVIDIA GPUs only where `nvidia-smi --help` runs: the emulated machine
    # has one, which answers that and nothing else.
    smi = out_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA System Management Interface (emulated)'\n")
    smi.chmod(0o755)
    return out_dir


def run_arm(library_dir: Path, arm: str, reps: int, duty: float = 1.0, instant_ms: int = 100) -> Dict[str, Any]:
    config = f"gpus=1;stair_ms=100;instant_ms={instant_ms};duty={duty};scenario=constant:{IDLE_WATTS}"
    env = dict(
        os.environ,
        NVML_EMULATOR=config,
        PATH=os.pathsep.join([str(library_dir), os.environ.get("PATH", "")]),
        LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(library_dir), os.environ.get("LD_LIBRARY_PATH")])),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "python"), os.environ.get("PYTHONPATH")])),
    )
    env.pop("CUDA_VISIBLE_DEVICES", None)
    code = CHILD_PRELUDE.format(phases=PHASES, idle=IDLE_WATTS, reps=reps) + textwrap.dedent(
        ARMS[arm.replace("-duty25", "")].format(observed_fraction=duty)
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        raise RuntimeError(f"arm {arm} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def percent(measured: float, truth: float) -> str:
    return f"{100.0 * (measured - truth) / truth:+.2f} %" if truth else "n/a"


def median_step_error(result: Dict[str, Any]) -> Optional[float]:
    joules, truths = result.get("step_joules"), result.get("step_truth")
    if not joules:
        return None
    pairs = list(zip(joules, truths))
    return statistics.median(abs(j - t) / t for j, t in pairs if t > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1000, help="repetitions of the phase program per arm")
    parser.add_argument("--smoke", action="store_true", help="a few repetitions, no figures to keep")
    args = parser.parse_args()
    reps = 20 if args.smoke else args.reps
    library_dir = build_emulator()
    arms = ["bare", "eco2ai", "eco2ai-duty25", "zeus", "codecarbon"]
    skipped = {arm: package for arm, package in PEERS.items() if importlib.util.find_spec(package) is None}
    results: Dict[str, Dict[str, Any]] = {}
    for arm in arms:
        if arm in skipped:
            continue
        duty = 0.25 if arm.endswith("duty25") else 1.0
        results[arm] = run_arm(library_dir, arm, reps, duty=duty)
    shaping = run_arm(library_dir, "shaping", reps, instant_ms=10)

    bare = results["bare"]
    truth_by_phase = bare["phase_truth"]
    print(
        f"phase program x {reps} repetitions, 100 ms stairs; truth per phase (J): "
        + ", ".join(f"{k} {v:.3f}" for k, v in truth_by_phase.items())
    )
    print(
        "| tool | tracker time per window | loop time vs bare | whole run | per step (median abs) | "
        + " | ".join(f"{name} (mean)" for name, _, _ in PHASES)
        + " |"
    )
    print("| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in PHASES) + " |")
    for arm, result in results.items():
        per_window_us = 1e6 * result["tracker_s"] / result["calls"]
        ratio = result["loop_s"] / bare["loop_s"]
        run = percent(result["run_joules"], result["run_truth"]) if "run_joules" in result else "-"
        step_error = median_step_error(result) if arm != "bare" else None
        step = "-" if step_error is None else f"{100 * step_error:.1f} %"
        phases = []
        for name, _, _ in PHASES:
            measured = result.get("phase_joules", {}).get(name)
            stderr = result.get("phase_stderr", {}).get(name)
            spread = "" if stderr is None else f" ± {100 * stderr / result['phase_truth'][name]:.2f}"
            phases.append("-" if measured is None else percent(measured, result["phase_truth"][name]) + spread)
        print(f"| {arm} | {per_window_us:.1f} µs | {ratio:.3f} | {run} | {step} | " + " | ".join(phases) + " |")
    for arm in ("eco2ai", "eco2ai-duty25"):
        if "long_error_stairs" in results.get(arm, {}):
            r = results[arm]
            print(
                f"{arm}: {r['long_windows']} windows of >= 1 s, median abs error "
                f"{100 * r['long_error_records']:.2f} % from step records, "
                f"{100 * r['long_error_stairs']:.2f} % from stairs shaped by instant power"
            )
    print(
        f"30 ms steps at 100 ms stairs, 10 ms instant power ({shaping['steps']} steps): median per-step error "
        f"{100 * shaping['linear_median_error']:.1f} % interpolated linearly, "
        f"{100 * shaping['shaped_median_error']:.1f} % shaped by instant power"
    )
    for arm, package in skipped.items():
        print(f"skipped {arm}: {package} is not installed (pip install 'hf-eco2ai[bench]')")


if __name__ == "__main__":
    main()
