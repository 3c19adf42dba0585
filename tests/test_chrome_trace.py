"""Chrome/Perfetto traces: `EnergyMeter.export_trace`, `hf-eco2ai trace RUN` and `--merge` into a real
torch.profiler trace, checked against a strict JSON Schema of the Trace Event Format.

The schema stands in for Perfetto's trace processor: its Python package (`perfetto`) fetches the
`trace_processor_shell` binary from get.perfetto.dev at first use, and the tests run offline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import jsonschema
import pytest
from trace_event_schema import OWN_EVENT_SCHEMA, TRACE_SCHEMA

from hf_eco2ai import CarbonConfig, EnergyMeter, TrackingSession
from hf_eco2ai.store.run_store import RunStore

CLI = [sys.executable, "-m", "hf_eco2ai.cli"]
TWO_CHANNELS = [{"kind": "constant", "watts": 100.0}, {"kind": "constant", "watts": 40.0}]
STEP_SLEEP_S = 0.02
# A mark and the record_function next to it read their clocks about 50 us apart here; the bound
# leaves room for a loaded machine and for NTP slewing the Unix clock, and is far below one step.
ALIGNMENT_TOLERANCE_US = 1_000.0


def check_strict(trace: Dict[str, Any], own_pid: Any) -> List[Dict[str, Any]]:
    """Validates the whole trace and hf-eco2ai's events in their closed shape; returns ours."""
    jsonschema.validate(trace, TRACE_SCHEMA)
    own = [event for event in trace["traceEvents"] if event.get("pid") == own_pid]
    assert own
    for event in own:
        jsonschema.validate(event, OWN_EVENT_SCHEMA)
    return own


def load(path: Path) -> Dict[str, Any]:
    # parse_constant rejects NaN and Infinity, which are not JSON and break Perfetto's importer
    def reject(token: str) -> None:
        raise AssertionError(f"{path} holds {token}")

    return dict(json.loads(path.read_text(encoding="utf-8"), parse_constant=reject))


def slices(events: List[Dict[str, Any]], thread: int) -> List[Dict[str, Any]]:
    return [event for event in events if event["ph"] == "X" and event["tid"] == thread]


def test_meter_export_trace_has_a_power_track_per_channel_and_step_and_window_slices_with_joules(
    tmp_path: Path,
) -> None:
    meter = EnergyMeter(sources="synthetic", synthetic=TWO_CHANNELS, rate_hz=500)
    with meter:
        for _ in range(4):
            time.sleep(0.01)
            meter.mark_step()
        with meter.window("eval"):
            time.sleep(0.02)
    joules_total = sum(meter.totals()["joules"].values())
    path = meter.export_trace(tmp_path / "meter-trace.json")

    trace = load(path)
    own = check_strict(trace, own_pid=1)
    counters = {event["name"] for event in own if event["ph"] == "C"}
    assert counters == {f"power {name} (W)" for name in meter.info()["totals"]["joules"]}
    assert len(counters) == 2
    watts = sorted({event["args"]["watts"] for event in own if event["ph"] == "C"})
    assert watts == [40.0, 100.0]
    steps = slices(own, thread=1)
    assert [event["name"] for event in steps] == ["step 0", "step 1", "step 2", "step 3", "tail (last mark to stop)"]
    # the steps, tail included, add up to the run's energy
    assert sum(event["args"]["joules"] for event in steps) == pytest.approx(joules_total, rel=1e-9)
    assert steps[1]["args"]["mean_watts"] == pytest.approx(140.0, rel=1e-3)
    (window,) = slices(own, thread=2)
    assert window["name"] == "eval" and window["dur"] == pytest.approx(20_000, rel=0.5)
    assert window["args"]["joules"] == pytest.approx(140.0 * window["dur"] / 1e6, rel=0.05)
    # consecutive steps touch: each starts where the previous ended
    for before, after in zip(steps, steps[1:]):
        assert after["ts"] == pytest.approx(before["ts"] + before["dur"], abs=0.01)


def test_export_trace_puts_the_meter_on_the_unix_clock_torch_uses(tmp_path: Path) -> None:
    meter = EnergyMeter(sources="synthetic", synthetic=TWO_CHANNELS, rate_hz=500)
    before_unix_s = time.time()
    with meter:
        time.sleep(0.01)
        meter.mark_step()
    after_unix_s = time.time()
    trace = load(meter.export_trace(tmp_path / "t.json"))
    base_us = trace["baseTimeNanoseconds"] / 1000.0
    for event in trace["traceEvents"]:
        if "ts" in event:
            assert before_unix_s * 1e6 - 1_000 <= base_us + event["ts"] <= after_unix_s * 1e6 + 1_000


def test_export_trace_writes_records_the_caller_already_drained(tmp_path: Path) -> None:
    meter = EnergyMeter(sources="synthetic", synthetic=TWO_CHANNELS, rate_hz=500)
    with meter:
        time.sleep(0.01)
        meter.mark_step()
    steps = meter.drain_steps()
    assert len(steps) == 2
    trace = load(meter.export_trace(tmp_path / "t.json", steps=steps))
    assert len(slices(trace["traceEvents"], thread=1)) == 2


def record_profiled_run(store_dir: Path) -> Tuple[str, Path]:
    """A run stored by a real TrackingSession while a tiny model trains under torch.profiler, one
    ``train_step`` annotation per step; returns the run id and torch's Chrome trace."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    config = CarbonConfig(project_name="trace", output_dir=str(store_dir), country_iso_code="FR", offline=True)
    session = TrackingSession(config, meter=EnergyMeter(sources="synthetic", synthetic=TWO_CHANNELS, rate_hz=500))
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    batch, target = torch.randn(8, 16), torch.randn(8, 1)
    torch_trace = store_dir / "torch_trace.json"
    session.start()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(5):
            with record_function("train_step"):
                loss = torch.nn.functional.mse_loss(model(batch), target)
                loss.backward()
                optimiser.step()
                optimiser.zero_grad()
                time.sleep(STEP_SLEEP_S)
            session.mark_step()
        with session.window("eval"):
            time.sleep(STEP_SLEEP_S)
    session.stop()
    profiler.export_chrome_trace(str(torch_trace))
    return session.run_id, torch_trace


@pytest.fixture(scope="module")
def profiled_run(tmp_path_factory: pytest.TempPathFactory) -> Tuple[str, Path, Path]:
    store_dir = tmp_path_factory.mktemp("traced-run")
    run_id, torch_trace = record_profiled_run(store_dir)
    return run_id, store_dir / "runs.sqlite", torch_trace


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_trace_command_writes_a_stored_run_as_a_strict_chrome_trace(
    profiled_run: Tuple[str, Path, Path], tmp_path: Path
) -> None:
    run_id, store, _ = profiled_run
    result = run_cli("trace", run_id[:8], "-o", "run.json", "--store", str(store), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 steps, 1 windows" in result.stdout

    trace = load(tmp_path / "run.json")
    own = check_strict(trace, own_pid=1)
    stored = RunStore(store)
    assert [event["args"]["step"] for event in slices(own, thread=1)] == stored.steps(run_id).index.tolist()
    assert sum(event["args"]["joules"] for event in slices(own, thread=1)) == pytest.approx(
        float(stored.steps(run_id).joules.sum())
    )
    (window,) = slices(own, thread=2)
    assert window["name"] == "eval" and window["args"]["joules"] > 0
    counters = [event for event in own if event["ph"] == "C"]
    assert {event["name"] for event in counters} == {"power synthetic:0 (W)", "power synthetic:1 (W)"}
    assert {round(event["args"]["watts"]) for event in counters} == {40, 100}


def test_trace_merge_lines_steps_up_with_a_real_torch_profiler_trace(
    profiled_run: Tuple[str, Path, Path], tmp_path: Path
) -> None:
    run_id, store, torch_trace_path = profiled_run
    result = run_cli(
        "trace", run_id, "--merge", str(torch_trace_path), "-o", "merged.json", "--store", str(store), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr

    torch_trace = load(torch_trace_path)
    merged = load(tmp_path / "merged.json")
    assert merged["baseTimeNanoseconds"] == torch_trace["baseTimeNanoseconds"]
    # torch's events are all there, untouched, and ours sit in a process of their own
    assert merged["traceEvents"][: len(torch_trace["traceEvents"])] == torch_trace["traceEvents"]
    ours = merged["traceEvents"][len(torch_trace["traceEvents"]) :]
    own_pid = ours[0]["pid"]
    assert own_pid not in {event.get("pid") for event in torch_trace["traceEvents"]}
    check_strict(merged, own_pid=own_pid)

    annotations = sorted(
        (event for event in torch_trace["traceEvents"] if event.get("name") == "train_step" and event.get("ph") == "X"),
        key=lambda e: e["ts"],
    )
    steps = [event for event in slices(ours, thread=1) if not event["args"]["flags"]]
    assert len(annotations) == len(steps) == 5
    # Step k runs from mark k-1 to mark k; train_step k starts just after mark k-1 and ends just
    # before mark k. Steps 1.. start at a mark, so both ends line up; step 0 starts at the run's start.
    for annotation, step in zip(annotations[1:], steps[1:]):
        assert step["ts"] == pytest.approx(annotation["ts"], abs=ALIGNMENT_TOLERANCE_US)
        assert step["ts"] + step["dur"] == pytest.approx(
            annotation["ts"] + annotation["dur"], abs=ALIGNMENT_TOLERANCE_US
        )
    assert steps[0]["ts"] + steps[0]["dur"] == pytest.approx(
        annotations[0]["ts"] + annotations[0]["dur"], abs=ALIGNMENT_TOLERANCE_US
    )


def test_trace_errors_name_the_fix_and_exit_2(profiled_run: Tuple[str, Path, Path], tmp_path: Path) -> None:
    run_id, store, _ = profiled_run
    unknown = run_cli("trace", "no-such-run", "-o", "x.json", "--store", str(store), cwd=tmp_path)
    assert unknown.returncode == 2 and "hf-eco2ai runs" in unknown.stderr
    (tmp_path / "not-a-trace.json").write_text("[1, 2]")
    wrong = run_cli("trace", run_id, "--merge", "not-a-trace.json", "-o", "x.json", "--store", str(store), cwd=tmp_path)
    assert wrong.returncode == 2 and "export_chrome_trace" in wrong.stderr
    unwritable = run_cli("trace", run_id, "-o", "/proc/no-such-dir/x.json", "--store", str(store), cwd=tmp_path)
    assert unwritable.returncode == 2 and "choose another -o path" in unwritable.stderr
    assert "Traceback" not in unknown.stderr + wrong.stderr + unwritable.stderr
    assert not (tmp_path / "x.json").exists()


def test_merge_into_a_trace_with_absolute_unix_timestamps_keeps_the_same_instants(
    profiled_run: Tuple[str, Path, Path], tmp_path: Path
) -> None:
    # torch.profiler versions before baseTimeNanoseconds wrote absolute Unix microseconds
    run_id, store, torch_trace_path = profiled_run
    with_base = load(torch_trace_path)
    base_us = with_base["baseTimeNanoseconds"] / 1000.0
    absolute = {key: value for key, value in with_base.items() if key != "baseTimeNanoseconds"}
    absolute["traceEvents"] = [
        {**event, "ts": event["ts"] + base_us} if "ts" in event else event for event in with_base["traceEvents"]
    ]
    (tmp_path / "absolute.json").write_text(json.dumps(absolute))
    for name in ("absolute.json", str(torch_trace_path)):
        result = run_cli(
            "trace", run_id, "--merge", name, "-o", f"merged-{Path(name).name}", "--store", str(store), cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
    merged_absolute = load(tmp_path / "merged-absolute.json")
    merged_with_base = load(tmp_path / f"merged-{torch_trace_path.name}")
    steps_absolute = slices(merged_absolute["traceEvents"][len(absolute["traceEvents"]) :], thread=1)
    steps_with_base = slices(merged_with_base["traceEvents"][len(with_base["traceEvents"]) :], thread=1)
    assert [event["ts"] for event in steps_absolute] == pytest.approx(
        [event["ts"] + base_us for event in steps_with_base], abs=1.0
    )
