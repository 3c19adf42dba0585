"""Properties of the Rust gradient ring, for any push sequence: bounded, rolling figures equal to a
numpy reference over the same window, thresholds that act monotonically."""

from __future__ import annotations

from typing import List

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_eco2ai._core import GradientRing

NORMS = st.floats(min_value=0.0, max_value=1e6, allow_nan=False, width=32)


def row(norms: List[float]) -> bytes:
    return np.array([[n, n, 0.0] for n in norms], dtype="<f4").tobytes()


@settings(max_examples=60, deadline=None)
@given(capacity=st.integers(1, 40), window=st.integers(3, 30), pushes=st.integers(0, 120))
def test_history_and_window_stay_bounded_and_keep_the_latest(capacity: int, window: int, pushes: int) -> None:
    ring = GradientRing(2, history_capacity=capacity, window=window, min_history=1)
    for step in range(pushes):
        ring.push_gradients(step, row([float(step), 1.0]))
    steps, rows = ring.history(0)
    assert len(steps) == len(rows) == min(pushes, capacity)
    assert steps == list(range(max(0, pushes - capacity), pushes))
    assert len(ring.window_values(0)) == min(pushes, window)
    assert ring.rows_pushed == pushes


@settings(max_examples=80, deadline=None)
@given(window=st.integers(3, 25), values=st.lists(NORMS, min_size=1, max_size=80))
def test_rolling_figures_equal_numpy_over_the_same_window(window: int, values: List[float]) -> None:
    ring = GradientRing(1, window=window, min_history=1)
    for step, value in enumerate(values):
        ring.push_gradients(step, row([value]))
    stored = np.array(values, dtype=np.float32).astype(np.float64)[-window:]
    count, mean, std, median = ring.rolling(0)
    assert count == len(stored)
    assert ring.window_values(0) == stored.tolist()
    assert median == np.median(stored)
    assert mean == pytest.approx(np.mean(stored), rel=1e-12, abs=1e-9)
    assert std == pytest.approx(np.std(stored), rel=1e-9, abs=1e-6)


def first_flag(kind: str, series_of: str, push: str, values: List[float], **thresholds: float) -> float:
    """The step of the first ``kind`` anomaly (inf when none). Whether a value is anomalous is
    monotonic in the thresholds; an anomaly is reported when a series enters that state, so the
    first report is too (later ones need not be: a lower threshold may still be in the state)."""
    ring = GradientRing(1, window=20, min_history=5, **thresholds)
    for step, value in enumerate(values):
        if push == "gradients":
            ring.push_gradients(step, row([value]))
        else:
            ring.push_loss(step, value)
    steps = [a[0] for a in ring.drain_anomalies() if a[1] == kind and a[2] == (0 if series_of == "layer" else 2)]
    return float(min(steps)) if steps else float("inf")


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.floats(0.25, 100.0, width=32), min_size=5, max_size=40),
    low=st.floats(1.1, 50.0),
    extra=st.floats(0.0, 50.0),
)
def test_a_larger_explosion_factor_never_flags_earlier(values: List[float], low: float, extra: float) -> None:
    assert first_flag("gradient_explosion", "layer", "gradients", values, explosion_factor=low + extra) >= first_flag(
        "gradient_explosion", "layer", "gradients", values, explosion_factor=low
    )


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.floats(0.0, 1e4), min_size=5, max_size=40), low=st.floats(1.0, 30.0), extra=st.floats(0.0, 30.0)
)
def test_a_larger_loss_z_threshold_never_flags_earlier(values: List[float], low: float, extra: float) -> None:
    assert first_flag("loss_spike", "loss", "loss", values, loss_z_threshold=low + extra) >= first_flag(
        "loss_spike", "loss", "loss", values, loss_z_threshold=low
    )


@settings(max_examples=40, deadline=None)
@given(
    norms=st.lists(st.sampled_from([0.0, 1e-12, 1.0]), min_size=1, max_size=60),
    steps_low=st.integers(1, 10),
    steps_extra=st.integers(0, 10),
)
def test_more_vanishing_steps_never_flags_more(norms: List[float], steps_low: int, steps_extra: int) -> None:
    def vanishing(steps: int) -> int:
        ring = GradientRing(1, vanishing_steps=steps, vanishing_eps=1e-8)
        for step, norm in enumerate(norms):
            ring.push_gradients(step, row([norm]))
        return sum(1 for anomaly in ring.drain_anomalies() if anomaly[1] == "vanishing_gradient" and anomaly[2] == 0)

    assert vanishing(steps_low + steps_extra) <= vanishing(steps_low)


def test_a_row_of_the_wrong_size_or_type_is_refused() -> None:
    ring = GradientRing(3)
    with pytest.raises(ValueError, match="36"):
        ring.push_gradients(0, row([1.0]))
    with pytest.raises(TypeError, match="bytes or bytearray"):
        ring.push_gradients(0, [1.0] * 9)  # type: ignore[arg-type]


def test_bad_thresholds_raise_configuration_errors_naming_the_field() -> None:
    from hf_eco2ai import ConfigurationError

    with pytest.raises(ConfigurationError, match="memory_spike_factor"):
        GradientRing(1, memory_spike_factor=0.0)
    with pytest.raises(ConfigurationError, match="min_history"):
        GradientRing(1, window=5, min_history=6)
