"""The session layer: ``TrackingSession``, the one object every adapter and face talks to.

``TrackingSession`` is imported on first use, so that the light modules of this package (the
snapshot an exporter reads, the rank facts) can be imported without the whole session.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hf_eco2ai.session.tracking_session import StoreSetting, TrackingSession

__all__ = ["StoreSetting", "TrackingSession"]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'hf_eco2ai.session' has no attribute {name!r}")
    return getattr(importlib.import_module("hf_eco2ai.session.tracking_session"), name)
