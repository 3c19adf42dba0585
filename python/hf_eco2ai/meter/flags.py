"""The bits of a step or window record's ``flags`` and the names of the sensor sources.

Both are defined once, in the Rust core (``rust/steps.rs``, ``rust/sources/mod.rs``), and read
from the native module here, so the two languages cannot disagree.
"""

from __future__ import annotations

from typing import Tuple

from hf_eco2ai import _core

FLAG_ESTIMATED: int = _core.FLAG_ESTIMATED
FLAG_SHORTER_THAN_UPDATE_PERIOD: int = _core.FLAG_SHORTER_THAN_UPDATE_PERIOD
FLAG_BOUNDARIES_DROPPED: int = _core.FLAG_BOUNDARIES_DROPPED
FLAG_SENSOR_ERROR: int = _core.FLAG_SENSOR_ERROR
FLAG_TAIL: int = _core.FLAG_TAIL
FLAG_WINDOW_UNCLOSED: int = _core.FLAG_WINDOW_UNCLOSED
FLAG_APPROXIMATE: int = _core.FLAG_APPROXIMATE
FLAG_WINDOW_NESTING: int = _core.FLAG_WINDOW_NESTING

# Short names, as reports print them: every bit a step record can carry (window-only bits are
# left out, reports list steps).
_WINDOW_ONLY = (FLAG_WINDOW_UNCLOSED, FLAG_WINDOW_NESTING)
STEP_FLAG_NAMES: Tuple[Tuple[int, str], ...] = tuple(
    (bit, name) for bit, name in _core.FLAG_NAMES if bit not in _WINDOW_ONLY
)

# The sensor sources, as channels name them (``ChannelInfo.source``) and ``sources=`` takes them.
SOURCE_NAMES: Tuple[str, ...] = tuple(_core.SOURCE_NAMES)
SOURCE_NVML, SOURCE_RAPL, SOURCE_CPU_ESTIMATE, SOURCE_SYNTHETIC = SOURCE_NAMES
# The node's CPU and DRAM sensors: every process on the node shares them.
NODE_WIDE_SOURCES: Tuple[str, ...] = (SOURCE_RAPL, SOURCE_CPU_ESTIMATE)
