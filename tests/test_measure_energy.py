"""hf_eco2ai.measure_energy: median joules, spread and sample count of repeated calls."""

from __future__ import annotations

import time

import pytest

import hf_eco2ai
from hf_eco2ai import ConfigurationError, EnergyMeter, measure_energy


def _busy(seconds: float) -> None:
    time.sleep(seconds)


def test_median_joules_follow_the_constant_power_times_the_call_duration() -> None:
    meter = EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 50.0}, rate_hz=500)
    result = measure_energy(_busy, repeat=5, args=(0.04,), meter=meter)
    assert result.samples == 5 and len(result.joules) == 5
    assert result.median_joules == pytest.approx(50.0 * result.median_duration_s, rel=0.05)
    assert result.median_duration_s >= 0.04
    assert result.median_watts == pytest.approx(50.0, rel=0.05)
    assert result.spread_joules >= 0 and result.provenance == "measured"
    assert result.channels == ("synthetic:0",)


def test_the_spread_is_the_interquartile_range_of_the_calls() -> None:
    durations = iter([0.01, 0.02, 0.03, 0.04, 0.05])
    meter = EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 100.0}, rate_hz=1000)
    result = measure_energy(lambda: _busy(next(durations)), repeat=5, warmup=0, meter=meter)
    ordered = sorted(result.joules)
    assert result.spread_joules == pytest.approx(ordered[3] - ordered[1])
    assert ordered[-1] > ordered[0] * 3


def test_warmup_calls_are_made_but_not_measured() -> None:
    calls = []
    meter = EnergyMeter(sources="synthetic")
    result = measure_energy(lambda: calls.append(1), repeat=3, warmup=2, meter=meter)
    assert len(calls) == 5 and result.samples == 3


def test_it_is_exported_at_top_level_and_validates_its_arguments() -> None:
    assert hf_eco2ai.measure_energy is measure_energy
    with pytest.raises(ConfigurationError, match="repeat = 0"):
        measure_energy(lambda: None, repeat=0)
    with pytest.raises(ConfigurationError, match="fn = 3"):
        measure_energy(3)  # type: ignore[arg-type]
