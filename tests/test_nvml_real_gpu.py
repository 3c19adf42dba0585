"""On real NVIDIA hardware only (marker ``gpu``): the facts the emulator's defaults assume.

Run where a GPU is present: ``pytest -m gpu -q``. Each test prints what it saw, so the figures
can be recorded (docs/gpu.md, "On a machine with a real GPU").
"""

from __future__ import annotations

import math
import time

import pytest

from hf_eco2ai import EnergyMeter

pytestmark = pytest.mark.gpu


def test_the_energy_counter_moves_in_stairs_of_tens_of_milliseconds() -> None:
    meter = EnergyMeter(sources="nvml", rate_hz=1000)
    with meter:
        time.sleep(3.0)
    for channel in meter.info()["channels"]:
        period = channel["observed_update_period_s"]
        print(f"{channel['name']}: observed counter update period {period}")
        assert period is not None and 0.001 <= period <= 0.5
    assert meter.info()["counter_resets"] == 0
    assert len(meter.stairs()) > 0


def test_instant_power_is_read_for_the_trace() -> None:
    meter = EnergyMeter(sources="nvml", rate_hz=200)
    with meter:
        time.sleep(1.0)
    trace = meter.drain_trace()
    finite = [w for w in trace.watts[:, 0].tolist() if math.isfinite(w)]
    print(f"instant power readings: {len(finite)} of {len(trace.t_s)} finite, last {finite[-1:]}")
    assert finite and all(w > 0 for w in finite)
