"""``StepRows``: per-step rows gathered in preallocated arrays and handed to the store in batches.

A step's loss and memory are known at ``tracer.step()``; its gradient row may arrive a step or two
later (it waits on the device). A row is handed over once no gradient row can still arrive for it:
``write_buffer_size`` complete rows make one batch for the store's background writer. Nothing here
allocates per step; a batch copies its arrays once.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from hf_eco2ai.store.tracer_tables import LOSS_RECORDED, MEMORY_RECORDED

BatchSink = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Optional[np.ndarray], np.ndarray], None]

# Steps a gradient row may lag behind tracer.step() (the watcher's pinned slots, plus one).
MAX_GRADIENT_LAG = 9


class StepRows:
    """Rows of consecutive steps from ``first_step`` on.

    Args:
        n_layers: layers per gradient row (0: no gradients are watched).
        batch_rows: rows per batch handed to ``sink`` (``write_buffer_size``).
        sink: receives ``(steps, recorded, loss, memory_bytes, gradients or None, has_gradients)``.
    """

    def __init__(self, n_layers: int, batch_rows: int, sink: BatchSink, first_step: int = 0) -> None:
        self.n_layers = n_layers
        self.batch_rows = batch_rows
        self._sink = sink
        capacity = batch_rows + MAX_GRADIENT_LAG
        self._steps = np.zeros(capacity, dtype=np.int64)
        self._recorded = np.zeros(capacity, dtype=np.int64)
        self._loss = np.full(capacity, np.nan)
        self._memory = np.full(capacity, np.nan)
        # The gradient rows and their flags live in bytearrays that numpy views: a step's row is
        # then one slice assignment of its bytes, where numpy's item assignment costs a watched
        # step tens of µs once its caches are cold.
        self._row_bytes = max(n_layers, 1) * 3 * 4
        self._gradient_bytes = bytearray(capacity * self._row_bytes) if n_layers else None
        self._gradients = (
            None
            if self._gradient_bytes is None
            else np.frombuffer(self._gradient_bytes, dtype="<f4").reshape(capacity, max(n_layers, 1), 3)
        )
        self._has_gradient_bytes = bytearray(capacity)
        self._has_gradients = np.frombuffer(self._has_gradient_bytes, dtype=bool)
        self._first_step = first_step
        self._count = 0

    @property
    def pending(self) -> int:
        return self._count

    def add(self, step: int, loss: Optional[float], memory_bytes: Optional[float]) -> None:
        """The scalars of ``step``, the next step after the previous ``add``: the rows held are
        consecutive, so that a step's position is its distance from the first.

        Raises:
            ValueError: ``step`` does not follow the previous one.
        """
        if self._count == 0:
            self._first_step = step
        elif step != self._first_step + self._count:
            raise ValueError(f"step {step} does not follow step {self._first_step + self._count - 1}")
        position = self._count
        self._steps[position] = step
        bits = 0
        if loss is not None:
            self._loss[position] = loss
            bits |= LOSS_RECORDED
        else:
            self._loss[position] = np.nan
        if memory_bytes is not None:
            self._memory[position] = memory_bytes
            bits |= MEMORY_RECORDED
        else:
            self._memory[position] = np.nan
        self._recorded[position] = bits
        self._has_gradients[position] = False
        self._count += 1
        if self._gradients is None and self._count >= self.batch_rows:
            self._hand_over(self._count)
        elif self._count >= self.batch_rows + MAX_GRADIENT_LAG:
            self._hand_over(self._count - MAX_GRADIENT_LAG)

    def set_gradients(self, step: int, row: bytes | bytearray) -> bool:
        """The gradient row of ``step`` (``n_layers`` x 3 little-endian float32, as bytes); False
        when that step is not held (already handed over)."""
        position = step - self._first_step
        if self._gradient_bytes is None or not 0 <= position < self._count:
            return False
        if len(row) != self._row_bytes:
            raise ValueError(f"a gradient row has {len(row)} bytes; these rows take {self._row_bytes}")
        start = position * self._row_bytes
        self._gradient_bytes[start : start + self._row_bytes] = row
        self._has_gradient_bytes[position] = 1
        return True

    def flush(self) -> None:
        """Hand over every row held (call after the watcher's ``drain()``)."""
        if self._count:
            self._hand_over(self._count)

    def _hand_over(self, rows: int) -> None:
        if rows <= 0:
            return
        gradients = None if self._gradients is None else self._gradients[:rows].copy()
        self._sink(
            self._steps[:rows].copy(),
            self._recorded[:rows].copy(),
            self._loss[:rows].copy(),
            self._memory[:rows].copy(),
            gradients,
            self._has_gradients[:rows].copy(),
        )
        left = self._count - rows
        for array in (self._steps, self._recorded, self._loss, self._memory, self._has_gradients):
            array[:left] = array[rows : self._count]
        if self._gradients is not None:
            self._gradients[:left] = self._gradients[rows : self._count]
        self._count = left
        if left:
            self._first_step = int(self._steps[0])
