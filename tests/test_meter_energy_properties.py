"""Properties of the energy maths, checked against analytic integrals."""

from __future__ import annotations

import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_eco2ai import EnergyMeter, _core


def piecewise_integral(points: list, t0: float, t1: float) -> float:
    """Exact integral of the piecewise-linear trace through `points` (held flat outside)."""
    times = np.array([p[0] for p in points])
    watts = np.array([p[1] for p in points])
    inner = times[(times > t0) & (times < t1)]
    grid = np.concatenate([[t0], inner, [t1]])
    values = np.interp(grid, times, watts)
    return float(np.sum((grid[1:] - grid[:-1]) * (values[1:] + values[:-1]) / 2))


@st.composite
def traces_with_boundaries(draw: st.DrawFn) -> tuple:
    n_points = draw(st.integers(2, 12))
    gaps = draw(st.lists(st.floats(0.001, 0.5), min_size=n_points - 1, max_size=n_points - 1))
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    watts = draw(st.lists(st.floats(0.0, 700.0), min_size=n_points, max_size=n_points))
    points = list(zip(times.tolist(), watts))
    # Readings at every breakpoint plus extra ones in between, as a sampler would take them.
    extra = draw(st.lists(st.floats(0.0, float(times[-1])), max_size=30))
    reading_times = np.unique(np.concatenate([times, extra]))
    boundaries = np.sort(draw(st.lists(st.floats(0.0, float(times[-1])), min_size=2, max_size=15)))
    return points, reading_times, boundaries


@settings(max_examples=300, deadline=None)
@given(traces_with_boundaries())
def test_step_energies_match_the_analytic_integral_of_a_piecewise_linear_trace(case: tuple) -> None:
    points, reading_times, boundaries = case
    watts = np.interp(reading_times, [p[0] for p in points], [p[1] for p in points])
    spans = _core.integrate_power_spans(reading_times.tolist(), watts.tolist(), boundaries.tolist())
    for (t0, t1), joules in zip(zip(boundaries[:-1], boundaries[1:]), spans):
        expected = piecewise_integral(points, t0, t1)
        # Boundaries are rounded to whole nanoseconds: allow that much of the peak power.
        assert abs(joules - expected) <= 1e-6 * max(abs(expected), 1e-9) + 700.0 * 2e-9


@settings(max_examples=300, deadline=None)
@given(traces_with_boundaries())
def test_span_energies_sum_to_the_total_over_the_same_span(case: tuple) -> None:
    points, reading_times, boundaries = case
    watts = np.interp(reading_times, [p[0] for p in points], [p[1] for p in points])
    spans = _core.integrate_power_spans(reading_times.tolist(), watts.tolist(), boundaries.tolist())
    whole = _core.integrate_power_spans(reading_times.tolist(), watts.tolist(), [boundaries[0], boundaries[-1]])
    assert abs(sum(spans) - whole[0]) <= 1e-9 * max(abs(whole[0]), 1.0)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start_watts=st.floats(10.0, 400.0),
    watts_per_s=st.floats(-20.0, 200.0),
    step_gaps_ms=st.lists(st.floats(0.2, 15.0), min_size=3, max_size=25),
)
def test_live_steps_of_a_ramp_match_its_analytic_integral(
    start_watts: float, watts_per_s: float, step_gaps_ms: list
) -> None:
    meter = EnergyMeter(
        sources="synthetic",
        synthetic={"kind": "ramp", "start_watts": start_watts, "watts_per_s": watts_per_s},
        rate_hz=2000,
    )
    with meter:
        for gap_ms in step_gaps_ms:
            time.sleep(gap_ms / 1000)
            meter.mark_step()
    steps = meter.drain_steps()
    origin = meter.totals()["first_reading_s"]
    assert len(steps.training_steps()) == len(step_gaps_ms)
    for t0, t1, joules in zip(steps.t0_s - origin, steps.t1_s - origin, steps.joules[:, 0]):
        expected = start_watts * (t1 - t0) + watts_per_s * (t1**2 - t0**2) / 2
        assert abs(joules - expected) <= 1e-6 * abs(expected) + 1e-9
    total = meter.totals()["joules"]["synthetic:0"]
    assert abs(steps.joules.sum() - total) <= 1e-9 * total
