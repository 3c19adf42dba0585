"""What a run's length costs: train end, each log, memory and file sizes for 10^3 to 10^6 steps.

Drives ``Eco2AICallback``'s hooks as the Trainer does (``on_train_begin``, N x ``on_step_end``, an
``on_log`` every 1,000 steps, then ``on_train_end``) with the CPU-estimate source and the defaults
(run store on, per-step CSV streamed, the four report files), each length in a fresh process. Each
step is ``--step-us`` of work that releases the interpreter like torch's kernels (20 µs by default: 50,000 steps/s, faster than any real
training step, and within what the writer streams); a loop marking as fast as it can (a million
marks per second) outruns the sampler's buffers on a busy machine, which the report then flags as
dropped records. Printed per length:

- ``on_train_begin`` and ``on_train_end`` on the training thread, and the ratio of the train end
  to the train end after 10^3 steps of the same benchmark run;
- ``on_log``: median and max per call (each covers the 1,000 steps since the previous log);
- the time until the background end of the run has written everything (``report_paths``);
- RSS growth over the run; the JSON report, per-step CSV and store sizes;
- correctness: the per-step file and the store hold every step, and the per-step file's energy
  adds up to the report's.

Then the session alone with the synthetic source: RSS after 10^5 and after 10^7 marks (a log
every 1,000), and the run store's batched writer in rows/s.

    python benches/bench_long_run.py                 # 10^3 .. 10^6 steps, 10^7 marks
    python benches/bench_long_run.py --smoke         # a few hundred steps, to check it runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

LOG_EVERY = 1000


def rss_mib() -> float:
    """The process's resident set size now (MiB), from /proc (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def busy_wait(seconds: float) -> None:
    """Stand-in for a training step's work: busy for ``seconds``, letting other threads take the
    interpreter meanwhile, as torch's kernels do (they release the GIL while they compute)."""
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        time.sleep(0)


def drive_hooks(steps: int, workdir: Path, step_s: float) -> Dict[str, Any]:
    """One run of ``steps`` steps through the callback's hooks; the figures as a dict."""
    from transformers import TrainerControl, TrainerState, TrainingArguments

    from hf_eco2ai import CarbonConfig, Eco2AICallback
    from hf_eco2ai.reporting.step_file import read_step_file
    from hf_eco2ai.store.run_store import RunStore

    arguments = TrainingArguments(output_dir=str(workdir / "trainer"), report_to=[], use_cpu=True)
    state, control = TrainerState(), TrainerControl()
    state.max_steps = steps
    callback = Eco2AICallback(
        CarbonConfig(sources="cpu-estimate", country_iso_code="FR", offline=True, output_dir=str(workdir / "reports"))
    )
    rss_before = rss_mib()
    started = time.perf_counter()
    callback.on_train_begin(arguments, state, control)
    begin_s = time.perf_counter() - started
    log_s: List[float] = []
    on_step_end = callback.on_step_end
    for step in range(1, steps + 1):
        state.global_step = step
        if step_s:
            busy_wait(step_s)
        on_step_end(arguments, state, control)
        if step % LOG_EVERY == 0:
            started = time.perf_counter()
            callback.on_log(arguments, state, control, logs={"loss": 0.5, "learning_rate": 1e-4})
            log_s.append(time.perf_counter() - started)
    started = time.perf_counter()
    callback.on_train_end(arguments, state, control)
    end_s = time.perf_counter() - started
    rss_after = rss_mib()
    started = time.perf_counter()
    paths = callback.report_paths
    background_s = time.perf_counter() - started
    report = callback.get_carbon_report()
    streamed = read_step_file(report["steps_file"]["path"])
    file_rows, file_joules = 0, 0.0
    for row in streamed:
        file_rows += 1
        file_joules += row["joules"]
    store_path = workdir / "reports" / "runs.sqlite"
    store_rows = len(RunStore(store_path).steps(report["run"]["run_id"]))
    expected_rows = steps + 1  # every step and the tail
    it_joules = report["energy"]["it_kwh"] * 3.6e6
    return {
        "steps": steps,
        "begin_s": begin_s,
        "end_s": end_s,
        "background_s": background_s,
        "log_median_s": statistics.median(log_s) if log_s else None,
        "log_max_s": max(log_s) if log_s else None,
        "rss_growth_mib": rss_after - rss_before,
        "json_bytes": paths["json"].stat().st_size,
        "csv_bytes": paths["csv"].stat().st_size,
        "store_bytes": store_path.stat().st_size,
        "every_step_kept": file_rows == expected_rows and store_rows == expected_rows,
        "file_energy_matches": abs(file_joules - it_joules) <= 1e-6 * max(it_joules, 1e-9),
    }


def drive_session(marks: List[int]) -> Dict[str, float]:
    """RSS after each count of marks of one session (synthetic source, a log every 1,000 marks)."""
    from hf_eco2ai import CarbonConfig, EnergyMeter
    from hf_eco2ai.session import TrackingSession

    session = TrackingSession(
        CarbonConfig(country_iso_code="FR", offline=True),
        store=False,
        step_file=False,
        meter=EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 100.0}),
    )
    session.start()
    mark, log = session.mark_step, session.log
    rss: Dict[str, float] = {}
    done = 0
    for target in marks:
        while done < target:
            for _ in range(LOG_EVERY):
                mark()
            done += LOG_EVERY
            log()
        rss[str(target)] = rss_mib()
    session.stop()
    return rss


def store_rows_per_s(rows: int) -> float:
    """Step rows per second through the store's batched writer, 1,000-row batches, 3 channels."""
    import numpy as np

    from hf_eco2ai.session.run_records import StepBatch
    from hf_eco2ai.store.run_store import RunIdentity, RunStore

    with tempfile.TemporaryDirectory() as scratch:
        writer = RunStore(Path(scratch) / "runs.sqlite").writer()
        run_id = "0" * 32
        writer.begin_run(RunIdentity(run_id, "bench", None, None, "host", 0, 0, 1, 0.0, [], None, None))
        writer.flush(None)
        index = np.arange(rows)
        t0_s = index * 1e-3
        joules_by_channel = np.random.default_rng(0).random((rows, 3))
        started = time.perf_counter()
        for first in range(0, rows, 1000):
            part = slice(first, first + 1000)
            writer.add_steps(
                run_id,
                StepBatch(
                    index[part],
                    np.zeros(len(index[part]), dtype=np.int64),
                    t0_s[part],
                    t0_s[part] + 1e-3,
                    joules_by_channel[part].sum(axis=1),
                    np.zeros(len(index[part]), dtype=np.uint32),
                    joules_by_channel[part],
                ),
            )
        writer.flush(None)
        elapsed_s = time.perf_counter() - started
        writer.close()
    return rows / elapsed_s


def in_fresh_process(*arguments: str) -> Any:
    result = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-steps", type=int, default=10**6, help="longest run (default 10^6 steps)")
    parser.add_argument("--marks", type=int, default=10**7, help="marks of the memory run (default 10^7)")
    parser.add_argument("--store-rows", type=int, default=300_000, help="rows of the writer run (default 300,000)")
    parser.add_argument("--step-us", type=float, default=20.0, help="busy work per step (default 20 µs)")
    parser.add_argument("--smoke", action="store_true", help="short runs, to check the benchmark runs")
    parser.add_argument("--one-run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--session-marks", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.one_run is not None:
        with tempfile.TemporaryDirectory() as scratch:
            print(json.dumps(drive_hooks(options.one_run, Path(scratch), options.step_us * 1e-6)))
        return
    if options.session_marks is not None:
        print(json.dumps(drive_session([int(count) for count in options.session_marks.split(",")])))
        return
    if options.smoke:
        options.max_steps, options.marks, options.store_rows = 2000, 20_000, 5000
    lengths = [10**exponent for exponent in range(3, 8) if 10**exponent <= options.max_steps]
    if options.smoke:
        lengths = [1000, 2000]
    runs = []
    for steps in lengths:
        runs.append(in_fresh_process("--one-run", str(steps), "--step-us", str(options.step_us)))
        print(f"{steps} steps done", file=sys.stderr, flush=True)
    first_marks = max(options.marks // 100, LOG_EVERY)
    memory = in_fresh_process("--session-marks", f"{first_marks},{options.marks}")
    rows_per_s = store_rows_per_s(options.store_rows)

    print(
        f"\nCommand: `python benches/{Path(__file__).name} --max-steps {options.max_steps} --marks {options.marks} "
        f"--store-rows {options.store_rows} --step-us {options.step_us:g}`"
    )
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, Python "
        f"{platform.python_version()}; load average at the end {os.getloadavg()[0]:.2f}\n"
    )
    baseline_end_s = runs[0]["end_s"]
    print(
        "| steps | on_train_begin | on_train_end (training thread) | vs 10^3 steps | on_log median / max "
        "(1,000 new steps) | end written in the background | RSS growth | JSON report | per-step CSV | "
        "store | every step kept | file adds up |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: | :---: |")
    for run in runs:
        log = (
            "–"
            if run["log_median_s"] is None
            else f"{run['log_median_s'] * 1e6:.0f} µs / {run['log_max_s'] * 1e3:.1f} ms"
        )
        print(
            f"| {run['steps']:,} | {run['begin_s'] * 1e3:.1f} ms | {run['end_s'] * 1e3:.1f} ms | "
            f"{run['end_s'] / baseline_end_s:.2f}x | {log} | {run['background_s']:.2f} s | "
            f"{run['rss_growth_mib']:+.1f} MiB | {run['json_bytes'] / 1e6:.2f} MB | {run['csv_bytes'] / 1e6:.1f} MB | "
            f"{run['store_bytes'] / 1e6:.1f} MB | {run['every_step_kept']} | {run['file_energy_matches']} |"
        )
    low, high = memory[str(first_marks)], memory[str(options.marks)]
    print(
        f"\nSession memory (synthetic source, no store or per-step file): RSS {low:.1f} MiB after {first_marks:,} "
        f"marks, {high:.1f} MiB after {options.marks:,}: growth {high - low:+.1f} MiB."
    )
    print(f"Run store batched writer: {rows_per_s:,.0f} step rows/s (1,000-row batches, 3 channels).")


if __name__ == "__main__":
    main()
