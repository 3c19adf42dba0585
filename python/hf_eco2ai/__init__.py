"""hf_eco2ai: energy and carbon profiling for ML training.

Names are imported lazily so that ``import hf_eco2ai`` stays cheap and never imports torch,
transformers or lightning; only the adapters in ``hf_eco2ai.integrations`` need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hf_eco2ai.errors import APIError, CarbonTrackingError, ConfigurationError, SensorUnavailableError

__version__ = "0.1.0"

if TYPE_CHECKING:
    # What the lazy exports below resolve to, spelled out for type checkers and IDEs.
    from hf_eco2ai.benchmarking.measure_energy import measure_energy
    from hf_eco2ai.carbon.impact import get_carbon_impact
    from hf_eco2ai.config import CarbonConfig
    from hf_eco2ai.integrations.lightning import Eco2AILightningCallback
    from hf_eco2ai.integrations.transformers import Eco2AICallback
    from hf_eco2ai.measure import CarbonTracker
    from hf_eco2ai.meter import EnergyMeter, StepRecords, WindowRecords
    from hf_eco2ai.meter.channels import ChannelInfo
    from hf_eco2ai.reporting.generate import generate_carbon_report
    from hf_eco2ai.session import TrackingSession
    from hf_eco2ai.track_decorator import track

_LAZY_EXPORTS = {
    "EnergyMeter": "hf_eco2ai.meter",
    "StepRecords": "hf_eco2ai.meter",
    "WindowRecords": "hf_eco2ai.meter",
    "ChannelInfo": "hf_eco2ai.meter.channels",
    "CarbonConfig": "hf_eco2ai.config",
    "get_carbon_impact": "hf_eco2ai.carbon.impact",
    "generate_carbon_report": "hf_eco2ai.reporting.generate",
    "TrackingSession": "hf_eco2ai.session",
    "Eco2AICallback": "hf_eco2ai.integrations.transformers",
    "Eco2AILightningCallback": "hf_eco2ai.integrations.lightning",
    "CarbonTracker": "hf_eco2ai.measure",
    "track": "hf_eco2ai.track_decorator",
    "measure_energy": "hf_eco2ai.benchmarking.measure_energy",
}

__all__ = [
    "APIError",
    "CarbonTrackingError",
    "ConfigurationError",
    "SensorUnavailableError",
    "__version__",
    *_LAZY_EXPORTS,
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hf_eco2ai' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
