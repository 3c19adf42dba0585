"""The meter layer: ``EnergyMeter`` over the Rust sampler, its records, channels and record flags.

``EnergyMeter``, ``StepRecords``, ``WindowRecords`` and ``PowerTrace`` are imported on first use,
so that the light modules of this package (``channels``, ``flags``) do not load the native core.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hf_eco2ai.meter.energy_meter import EnergyMeter, PowerTrace, StepRecords, WindowRecords

__all__ = ["EnergyMeter", "PowerTrace", "StepRecords", "WindowRecords"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'hf_eco2ai.meter' has no attribute {name!r}")
    return getattr(importlib.import_module("hf_eco2ai.meter.energy_meter"), name)
