"""StepRows: per-step rows batched for the store, with gradient rows that arrive steps later."""

from __future__ import annotations

from typing import Any, List

import numpy as np
import pytest

from hf_eco2ai.tracer.step_rows import MAX_GRADIENT_LAG, StepRows


def gradient_row(step: int, layers: int = 4) -> bytes:
    return (np.arange(layers * 3, dtype=np.float32) + step).tobytes()


def test_gradient_rows_given_as_bytes_land_on_their_steps_even_when_late() -> None:
    batches: List[Any] = []
    rows = StepRows(n_layers=4, batch_rows=5, sink=lambda *batch: batches.append(batch))
    for step in range(12):
        rows.add(step, loss=float(step), memory_bytes=None)
        if step >= 2:
            assert rows.set_gradients(step - 2, gradient_row(step - 2))  # two steps late
    rows.flush()
    steps = np.concatenate([batch[0] for batch in batches])
    gradients = np.concatenate([batch[4] for batch in batches])
    has_gradients = np.concatenate([batch[5] for batch in batches])
    assert steps.tolist() == list(range(12))
    assert has_gradients.tolist() == [True] * 10 + [False] * 2
    for step in range(10):
        assert gradients[step].tobytes() == gradient_row(step)
    assert not gradients[10:].any()


def test_a_row_already_handed_over_or_of_the_wrong_size_is_refused() -> None:
    rows = StepRows(n_layers=4, batch_rows=2, sink=lambda *batch: None)
    for step in range(2 + MAX_GRADIENT_LAG + 1):
        rows.add(step, loss=None, memory_bytes=None)
    assert not rows.set_gradients(0, gradient_row(0))
    with pytest.raises(ValueError, match="a gradient row has 8 bytes; these rows take 48"):
        rows.set_gradients(5, b"\0" * 8)


def test_rows_must_come_step_after_step() -> None:
    rows = StepRows(n_layers=4, batch_rows=5, sink=lambda *batch: None, first_step=10)
    rows.add(10, loss=None, memory_bytes=None)
    with pytest.raises(ValueError, match="step 12 does not follow step 10"):
        rows.add(12, loss=None, memory_bytes=None)
