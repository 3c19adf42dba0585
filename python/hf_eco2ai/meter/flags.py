"""The bits of a step or window record's ``flags`` (set by the Rust core, rust/steps.rs)."""

from __future__ import annotations

from typing import Tuple

FLAG_ESTIMATED = 1
FLAG_SHORTER_THAN_UPDATE_PERIOD = 2
FLAG_BOUNDARIES_DROPPED = 4
FLAG_SENSOR_ERROR = 8
FLAG_TAIL = 16
FLAG_WINDOW_UNCLOSED = 32

# Short names, as reports print them.
STEP_FLAG_NAMES: Tuple[Tuple[int, str], ...] = (
    (FLAG_ESTIMATED, "estimated"),
    (FLAG_SHORTER_THAN_UPDATE_PERIOD, "sub-period"),
    (FLAG_BOUNDARIES_DROPPED, "dropped-boundaries"),
    (FLAG_SENSOR_ERROR, "sensor-error"),
    (FLAG_TAIL, "tail"),
)
