"""The Tracer API: training metrics, gradient statistics, anomalies and checkpoints, with energy.

```python
from hf_eco2ai import tracer

tracer.init(project="gpt-finetuning", run_name="experiment-001", checkpoint_interval=500)
tracer.watch(model)
try:
    for batch in dataloader:
        loss = train_step(batch)
        tracer.log({"loss": loss.item()})
        tracer.step()
finally:
    tracer.finish()
```

Modules: ``hf_eco2ai.tracer.config`` (``TracerConfig``), ``.analysis`` (``QueryEngine``,
``AnomalyDetector``), ``.storage`` (``StorageBackend``), ``.integrations``
(``TransformersCallback``, ``LightningCallback``), ``.core.tracer`` (``TrainingTracer``) and
``.watch`` (the gradient watcher). Importing this package imports no training framework.

The module-level functions act on the run started by ``init``; they are for the training thread.
Called before ``init`` (or after ``finish``) they raise ``RuntimeError``.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.tracer.config import ANOMALY_TYPES, TracerConfig
from hf_eco2ai.tracer.core.tracer import TrainingTracer

# The submodule ``watch`` is loaded now, so that the function ``watch`` defined below keeps the
# name: a submodule loaded later would set the package attribute to itself.
from hf_eco2ai.tracer import watch as _watch_module  # noqa: E402,F401  (isort: skip)

if TYPE_CHECKING:
    from hf_eco2ai.tracer.analysis import AnomalyDetector, QueryEngine
    from hf_eco2ai.tracer.integrations import LightningCallback, TransformersCallback
    from hf_eco2ai.tracer.storage import StorageBackend

NOT_INITIALISED = "Tracer not initialized: call hf_eco2ai.tracer.init(project) before {call}()"

_LAZY_EXPORTS = {
    "QueryEngine": "hf_eco2ai.tracer.analysis",
    "AnomalyDetector": "hf_eco2ai.tracer.analysis",
    "StorageBackend": "hf_eco2ai.tracer.storage",
    "TransformersCallback": "hf_eco2ai.tracer.integrations",
    "LightningCallback": "hf_eco2ai.tracer.integrations",
}

__all__ = [
    "ANOMALY_TYPES",
    "TracerConfig",
    "TrainingTracer",
    "current",
    "finish",
    "init",
    "log",
    "step",
    "watch",
    *_LAZY_EXPORTS,
]

_active: Optional[TrainingTracer] = None
_EXTRA_ARGUMENTS = ("carbon_config", "meter")


def _config_from(project: str, run_name: Optional[str], kwargs: Dict[str, Any]) -> TracerConfig:
    known = set(TracerConfig.field_names()) - {"project_name", "run_name"}
    unknown = [key for key in kwargs if key not in known]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known settings: {', '.join(sorted(known))}"
        raise ConfigurationError(f"tracer.init({key}=...): {key!r} is not a Tracer setting{hint}")
    return TracerConfig(project_name=project, run_name=run_name, **kwargs)


def init(project: str, run_name: Optional[str] = None, **kwargs: Any) -> TrainingTracer:
    """Start a traced run and return its ``TrainingTracer``.

    ``kwargs`` are ``TracerConfig`` fields (``checkpoint_interval=500``, ``track_gradients=True``,
    ``storage_path=...``, the anomaly thresholds...), plus ``carbon_config`` (a ``CarbonConfig``
    for the energy side) and ``meter`` (an ``EnergyMeter``). A run still active is finished first.

    Raises:
        ConfigurationError: an unknown or invalid setting (names it and what is allowed).
    """
    global _active
    extras = {name: kwargs.pop(name) for name in _EXTRA_ARGUMENTS if name in kwargs}
    config = _config_from(project, run_name, kwargs)
    if _active is not None:
        _active.finish()
        _active = None
    tracer = TrainingTracer(config, **extras)
    tracer.start()
    _active = tracer
    return tracer


def _require(call: str) -> TrainingTracer:
    if _active is None:
        raise RuntimeError(NOT_INITIALISED.format(call=call))
    return _active


def log(metrics: Mapping[str, Any]) -> None:
    """Log metrics for the current step (``TrainingTracer.log``)."""
    _require("log").log(metrics)


def step() -> None:
    """Close the current step; checkpoints every ``checkpoint_interval`` steps."""
    _require("step").step()


def watch(model: Any) -> None:
    """Attach gradient tracking to a ``torch.nn.Module``."""
    _require("watch").watch(model)


def finish() -> None:
    """Finalise the run and flush all data."""
    global _active
    tracer = _require("finish")
    try:
        tracer.finish()
    finally:
        _active = None


def current() -> Optional[TrainingTracer]:
    """The run started by ``init`` and not yet finished, or None."""
    return _active


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hf_eco2ai.tracer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
