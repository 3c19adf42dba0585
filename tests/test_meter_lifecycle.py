"""The sampler's life: start, stop, fork, interpreter exit, rings, windows, bad arguments."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import time
import warnings
import weakref
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_eco2ai import ConfigurationError, EnergyMeter, SensorUnavailableError, _core
from hf_eco2ai.meter.energy_meter import DRAIN_CHUNK_BYTES, rows_per_pull
from hf_eco2ai.meter.flags import FLAG_SENSOR_ERROR, FLAG_TAIL, FLAG_WINDOW_UNCLOSED


def constant_meter(watts: float = 100.0, **kwargs: object) -> EnergyMeter:
    return EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": watts}, **kwargs)


def sampler_thread_count() -> int:
    """Sampler threads alive in this process (Linux truncates thread names to 15 bytes), so that
    threads of earlier tests still winding down in the background do not count."""
    count = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/comm", encoding="utf-8") as handle:
                count += handle.read().strip() == "hf-eco2ai-sampler"[:15]
        except FileNotFoundError:  # the thread ended while we looked
            pass
    return count


def test_a_thousand_start_stop_cycles_leak_no_threads() -> None:
    meter = constant_meter(rate_hz=1000)
    before = sampler_thread_count()
    for _ in range(1000):
        meter.start()
        meter.mark_step()
        meter.stop()
    # A joined thread's task can stay listed in /proc for a moment after pthread_join returns
    # (the kernel releases it after waking the joiner); a leaked one stays for good.
    deadline = time.monotonic() + 2.0
    while sampler_thread_count() != before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sampler_thread_count() == before
    assert not meter.running
    assert len(meter.drain_steps()) == 2000


def test_start_and_stop_are_idempotent() -> None:
    meter = constant_meter()
    meter.start()
    meter.start()
    assert meter.running
    meter.stop()
    meter.stop()
    assert not meter.running


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capacity=st.integers(2, 32), marks=st.integers(40, 150))
def test_overflowing_the_record_ring_counts_drops_and_never_corrupts_records(capacity: int, marks: int) -> None:
    meter = constant_meter(watts=50.0, rate_hz=4000, ring_capacity=capacity)
    with meter:
        for _ in range(marks):
            time.sleep(0.0003)
            meter.mark_step()
    steps = meter.drain_steps()
    totals = meter.totals()
    assert len(steps) == capacity
    assert totals["records_dropped"] == marks + 1 - capacity
    assert (np.diff(steps.index) == 1).all()
    assert (steps.t1_s[:-1] == steps.t0_s[1:]).all()
    np.testing.assert_allclose(steps.joules[:, 0], 50.0 * steps.duration_s, rtol=1e-6, atol=1e-9)


def meter_of_channels(channels: int, **kwargs: object) -> EnergyMeter:
    return EnergyMeter(
        sources="synthetic",
        synthetic=[{"kind": "constant", "watts": 10.0 + channel} for channel in range(channels)],
        **kwargs,
    )


def mark_with_windows(meter: EnergyMeter, marks: int) -> None:
    """``marks`` marks, every tenth inside a window: steps and windows interleave in the ring."""
    for step in range(marks):
        if step % 10 == 0:
            with meter.window("tenth"):
                meter.mark_step()
        else:
            meter.mark_step()


@pytest.mark.parametrize("channels", [1, 5, _core.MAX_CHANNELS])
def test_a_drain_of_several_pulls_hands_over_every_record_once_in_order(channels: int) -> None:
    chunk_rows = rows_per_pull(channels)
    marks = 3 * chunk_rows + 5
    meter = meter_of_channels(channels, rate_hz=1000, ring_capacity=8192)
    with meter:
        mark_with_windows(meter, marks)
    assert meter.totals()["records_dropped"] == 0
    chunks = list(meter.drain_in_chunks())
    assert len(chunks) >= 3
    for steps, windows in chunks:
        assert 0 < len(steps) + len(windows) <= chunk_rows
        # The widest array a chunk makes downstream: every channel plus three columns.
        assert len(steps) * (channels + 3) * 8 <= DRAIN_CHUNK_BYTES
    index = np.concatenate([steps.index for steps, _ in chunks])
    assert index.tolist() == list(range(marks + 1))  # every marked step, then the tail
    window_t0_s = np.concatenate([windows.t0_s for _, windows in chunks])
    assert len(window_t0_s) == len(range(0, marks, 10)) and (np.diff(window_t0_s) > 0).all()
    assert all(name == "tenth" for _, windows in chunks for name in windows.name)
    joules = np.concatenate([steps.joules for steps, _ in chunks]).sum(axis=0)
    totals = meter.totals()["joules"]
    np.testing.assert_allclose(joules, [totals[f"synthetic:{c}"] for c in range(channels)], rtol=1e-9)
    assert len(meter.drain_steps()) == 0 and len(meter.drain_windows()) == 0


@pytest.mark.parametrize("channels", [1, _core.MAX_CHANNELS])
def test_drain_steps_and_drain_windows_return_every_record_of_several_pulls(channels: int) -> None:
    marks = 2 * rows_per_pull(channels) + 3
    meter = meter_of_channels(channels, rate_hz=1000, ring_capacity=8192)
    with meter:
        mark_with_windows(meter, marks)
    steps = meter.drain_steps()
    windows = meter.drain_windows()
    assert steps.index.tolist() == list(range(marks + 1))
    assert steps.joules.shape == (marks + 1, channels)
    assert len(windows) == len(range(0, marks, 10)) and (np.diff(windows.t0_s) > 0).all()
    assert steps.joules.sum() == pytest.approx(sum(meter.totals()["joules"].values()), rel=1e-9)


def test_the_power_trace_drains_in_bounded_chunks_without_losing_a_reading() -> None:
    meter = meter_of_channels(2, rate_hz=20_000, ring_capacity=8192)
    chunk_rows = rows_per_pull(2)
    deadline = time.monotonic() + 30.0
    with meter:
        while meter.totals()["readings"] <= 3 * chunk_rows and time.monotonic() < deadline:
            time.sleep(0.005)
    totals = meter.totals()
    assert totals["readings"] > 3 * chunk_rows
    chunks = list(meter.drain_trace_in_chunks())
    assert len(chunks) > 3 and all(0 < len(chunk.t_s) <= chunk_rows for chunk in chunks)
    t_s = np.concatenate([chunk.t_s for chunk in chunks])
    assert len(t_s) == totals["readings"] - totals["trace_dropped"]
    assert (np.diff(t_s) > 0).all()
    np.testing.assert_array_equal(np.concatenate([chunk.watts for chunk in chunks])[:, 1], 11.0)
    assert len(meter.drain_trace().t_s) == 0


def test_marks_resolve_into_steps_whose_records_add_up_to_the_total() -> None:
    meter = constant_meter(watts=80.0, rate_hz=1000)
    with meter:
        for _ in range(20):
            time.sleep(0.002)
            meter.mark_step()
    steps = meter.drain_steps()
    assert len(steps.training_steps()) == 20
    assert steps.is_tail[-1] and not steps.is_tail[:-1].any()
    assert steps.flags[-1] & FLAG_TAIL
    assert steps.joules.sum() == pytest.approx(meter.totals()["joules"]["synthetic:0"], rel=1e-9)
    # A step's duration comes from monotonic seconds; hours after boot a float64 second keeps
    # about 1e-12 s, some 1e-9 of a 2 ms step, so a closer tolerance would test the clock's age.
    np.testing.assert_allclose(steps.mean_watts[:-1, 0], 80.0, rtol=1e-6)


def test_the_step_mark_function_marks_like_the_method_and_holds_its_core() -> None:
    meter = constant_meter(watts=50.0, rate_hz=1000)
    core = meter._core
    references = sys.getrefcount(core)
    mark = core.mark_function()
    assert sys.getrefcount(core) == references + 1
    assert mark() is False  # not running yet
    with meter:
        for _ in range(5):
            time.sleep(0.001)
            assert mark() is True
            assert core.mark() is True
    assert mark() is False
    assert len(meter.drain_steps().training_steps()) == 10
    with pytest.raises(TypeError):
        mark(1)
    del mark
    assert sys.getrefcount(core) == references


def test_a_held_step_mark_keeps_its_core_running_after_the_meter_is_dropped() -> None:
    threads_before = sampler_thread_count()
    meter = constant_meter(rate_hz=1000)
    meter.start()
    mark = meter.mark_step
    dropped = weakref.ref(meter)
    del meter
    gc.collect()
    assert dropped() is None
    assert mark() is True
    del mark
    deadline = time.monotonic() + 5.0
    while sampler_thread_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sampler_thread_count() <= threads_before


def test_live_totals_are_readable_while_running_without_draining() -> None:
    meter = constant_meter(watts=10.0, rate_hz=500)
    before = meter.totals()
    assert before["readings"] == 0 and before["t_s"] is None
    with meter:
        time.sleep(0.05)
        live = meter.totals()
        assert live["readings"] > 5
        assert live["joules"]["synthetic:0"] > 0
        assert live["watts"]["synthetic:0"] == 10.0
    assert len(meter.drain_steps()) == 1


def test_nested_windows_record_their_names_depths_and_energy() -> None:
    meter = constant_meter(watts=100.0, rate_hz=2000)
    with meter:
        with meter.window("epoch"):
            with meter.window("forward"):
                time.sleep(0.01)
            time.sleep(0.01)

        @meter.window("eval")
        def evaluate() -> int:
            time.sleep(0.005)
            return 7

        assert evaluate() == 7
    windows = meter.drain_windows()
    assert windows.name == ["forward", "epoch", "eval"]
    assert windows.depth.tolist() == [1, 0, 0]
    np.testing.assert_allclose(windows.joules[:, 0], 100.0 * windows.duration_s, rtol=1e-6)
    assert windows.duration_s[1] > windows.duration_s[0]


def test_a_window_still_open_at_stop_is_closed_and_flagged() -> None:
    meter = constant_meter(rate_hz=1000)
    meter.start()
    meter.window("unfinished").__enter__()
    meter.stop()
    windows = meter.drain_windows()
    assert windows.name == ["unfinished"]
    assert windows.flags[0] & FLAG_WINDOW_UNCLOSED


def test_a_forked_child_sees_a_stopped_meter_and_the_parent_keeps_measuring() -> None:
    meter = constant_meter(rate_hz=1000)
    meter.start()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a threaded process is risky: that risk is the subject.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        ok = (not meter.running) and (meter.mark_step() is False)
        try:
            meter.start()
            ok = False
        except RuntimeError as error:
            ok = ok and "fork" in str(error)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert meter.running
    assert meter.mark_step() is True
    meter.stop()
    assert len(meter.drain_steps()) == 2


def test_interpreter_exit_stops_a_running_meter(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        from hf_eco2ai import EnergyMeter
        meter = EnergyMeter(sources="synthetic", rate_hz=1000)
        meter.start()
        print("started", meter.running)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "started True" in result.stdout


def test_the_gil_is_released_while_stop_waits_for_the_sampler() -> None:
    import threading

    meter = constant_meter(rate_hz=2)  # a 0.5 s tick: stop() must not hold the GIL meanwhile
    meter.start()
    counted = []
    spinner = threading.Thread(target=lambda: counted.append(sum(1 for _ in range(2_000_000))))
    spinner.start()
    meter.stop()
    spinner.join()
    assert counted == [2_000_000]


def test_a_sensor_that_starts_failing_is_counted_and_flags_its_steps() -> None:
    meter = EnergyMeter(
        sources="synthetic", synthetic={"kind": "constant", "watts": 20.0}, synthetic_fail_after_s=0.03, rate_hz=1000
    )
    with meter:
        time.sleep(0.02)
        meter.mark_step()
        time.sleep(0.04)
        meter.mark_step()
    totals = meter.totals()
    assert totals["sensor_errors"] > 0
    steps = meter.drain_steps()
    assert not steps.flags[0] & FLAG_SENSOR_ERROR
    assert steps.flags[1] & FLAG_SENSOR_ERROR


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"rate_hz": 0}, "rate_hz=0"),
        ({"rate_hz": 50_000}, "rate_hz=50000"),
        ({"sources": "gpu-magic"}, "'gpu-magic'"),
        ({"sources": []}, "sources=[]"),
        ({"sources": ["auto", "rapl"]}, "'auto' cannot be combined"),
        ({"rapl_root": "/no/such/powercap"}, "rapl_root='/no/such/powercap'"),
        ({"ring_capacity": 1}, "ring_capacity=1"),
        ({"sources": "synthetic", "synthetic": {"kind": "sine"}}, "kind must be one of"),
        ({"sources": "synthetic", "synthetic": {"kind": "square", "low_watts": 1}}, "high_watts, period_s"),
        (
            {"sources": "synthetic", "synthetic": {"kind": "piecewise", "points": [(2, 1), (1, 1)]}},
            "strictly increasing",
        ),
        ({"sources": "cpu-estimate", "cpu_tdp_watts": -5}, "cpu_tdp_watts=-5"),
    ],
)
def test_bad_arguments_raise_configuration_error_naming_the_value(kwargs: dict, named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        EnergyMeter(**kwargs)
    assert named in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_nvml_requested_explicitly_either_measures_gpus_or_says_why_not() -> None:
    import ctypes.util

    if ctypes.util.find_library("nvidia-ml") is None:
        with pytest.raises(SensorUnavailableError, match="libnvidia-ml"):
            EnergyMeter(sources="nvml")
    else:
        assert all(c.name.startswith("gpu:") for c in EnergyMeter(sources="nvml").channels())


def test_auto_falls_back_quietly_and_info_says_why() -> None:
    meter = EnergyMeter(rapl_root=None)
    info = meter.info()
    names = {c["name"] for c in info["channels"]}
    assert names, "auto always finds something: at least the CPU estimate"
    for skipped, reason in info["skipped_sources"].items():
        assert skipped in ("nvml", "rapl", "cpu-estimate") and reason
    if "cpu:estimate" in names:
        estimate = next(s for s in info["sources"] if s["name"] == "cpu-estimate")
        assert estimate["tdp_origin"] and float(estimate["tdp_watts"]) > 0
        assert all(c["provenance"] == "estimated" for c in info["channels"] if c["name"] == "cpu:estimate")


def test_info_reports_the_observed_update_period_of_a_changing_sensor() -> None:
    meter = EnergyMeter(
        sources="synthetic", synthetic={"kind": "ramp", "start_watts": 1, "watts_per_s": 1}, rate_hz=1000
    )
    with meter:
        time.sleep(0.05)
    period = meter.info()["channels"][0]["observed_update_period_s"]
    assert period == pytest.approx(0.001, rel=0.5)
