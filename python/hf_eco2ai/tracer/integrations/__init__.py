"""The Tracer API's framework callbacks: ``TransformersCallback`` (Hugging Face ``Trainer``) and
``LightningCallback`` (``lightning.pytorch.Trainer``).

Each is the project's energy callback (``Eco2AICallback``, ``Eco2AILightningCallback``: one run
lifecycle) plus gradient watching, metrics and checkpoints through a ``TracerObserver``. Each
is imported on first use, so this package imports no framework by itself.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hf_eco2ai.tracer.integrations.lightning import LightningCallback
    from hf_eco2ai.tracer.integrations.observer import TracerObserver
    from hf_eco2ai.tracer.integrations.transformers import TransformersCallback

_LAZY_EXPORTS = {
    "TransformersCallback": "hf_eco2ai.tracer.integrations.transformers",
    "LightningCallback": "hf_eco2ai.tracer.integrations.lightning",
    "TracerObserver": "hf_eco2ai.tracer.integrations.observer",
}

__all__ = list(_LAZY_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hf_eco2ai.tracer.integrations' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
