"""``TracerConfig``: the Tracer API's settings, their defaults and their validation.

Every invalid value raises ``ConfigurationError`` at construction, naming the field, the value and
what is allowed. The anomaly thresholds are the same for the live ring and the offline
``AnomalyDetector``: they are stored with each run, so a later pass uses the run's own.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from hf_eco2ai.errors import ConfigurationError

ANOMALY_TYPES: Tuple[str, ...] = (
    "gradient_explosion",
    "vanishing_gradient",
    "nan_or_inf",
    "loss_spike",
    "memory_spike",
)
DEFAULT_STORAGE_PATH = "./.tracer"


def _fail(name: str, value: Any, allowed: str) -> ConfigurationError:
    return ConfigurationError(f"TracerConfig.{name} = {value!r} is invalid: {allowed}")


def _integer(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _fail(name, value, f"expected an integer >= {low}")


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise _fail(name, value, "expected a finite number > 0")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(name, value, "expected True or False")


@dataclass
class TracerConfig:
    """The settings of one traced run (the documented defaults, plus the anomaly thresholds).

    Project metadata: ``project_name`` groups runs; ``run_name`` (default: generated from the
    project and the start time) names this one; ``tags`` and ``notes`` are kept with it.

    Storage: runs live in ``<storage_path>/runs.sqlite``, the same run store the rest of
    hf_eco2ai writes. At ``init`` the project's runs that started more than ``retention_days``
    ago are deleted (``0`` keeps every run).

    Capture: every ``checkpoint_interval`` steps a checkpoint row keeps the latest metrics,
    gradient statistics, system metrics and the energy since the previous checkpoint; each
    checkpoint also keeps the figures of the last ``capture_samples`` steps.
    ``track_gradients=False`` makes ``watch()`` a no-op; ``track_system_metrics=False`` keeps
    energy and device figures out of the checkpoints. ``gradient_layers`` (glob patterns over
    parameter names, e.g. ``["encoder.*", "classifier.*"]``) groups the watched parameters, one
    group per pattern; ``None`` watches every layer (the module owning each parameter).

    Performance: with ``async_writes`` rows go to the store's background writer and the training
    thread never waits for the disk; without it each checkpoint waits until its rows are
    committed. ``write_buffer_size`` is how many per-step rows are gathered before they are handed
    to the writer in one batch. ``max_workers`` bounds the store's writer threads; SQLite admits
    one writer at a time, so one thread is used whatever its value (it must be >= 1).

    Anomalies (defaults in parentheses): ``anomaly_window`` (100) values per rolling window,
    ``anomaly_min_history`` (20) values before relative checks start; a gradient norm above
    ``explosion_factor`` (10) x its rolling median, or above ``explosion_threshold`` (None: off),
    is an explosion; below ``vanishing_eps`` (1e-8) for ``vanishing_steps`` (50) consecutive steps
    it is vanishing; a loss whose robust z-score (median and MAD over the window) exceeds
    ``loss_z_threshold`` (10) is a spike; device memory above ``memory_spike_factor`` (1.5) x its
    rolling median is a spike; any NaN/Inf gradient or loss is ``nan_or_inf``.
    ``stop_on_anomaly`` (False) asks training to stop on any anomaly (True) or on the types
    listed (e.g. ``["nan_or_inf"]``). ``history_size`` (1000) rows are kept per series in memory.

    Raises:
        ConfigurationError: any invalid field (names it, its value and what is allowed).
    """

    project_name: str
    run_name: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    notes: Optional[str] = None

    storage_path: str = DEFAULT_STORAGE_PATH
    retention_days: int = 30

    checkpoint_interval: int = 1000
    capture_samples: int = 5
    track_gradients: bool = True
    track_system_metrics: bool = True

    gradient_layers: Optional[List[str]] = None

    async_writes: bool = True
    write_buffer_size: int = 100
    max_workers: int = 4

    history_size: int = 1000
    anomaly_window: int = 100
    anomaly_min_history: int = 20
    explosion_factor: float = 10.0
    explosion_threshold: Optional[float] = None
    vanishing_eps: float = 1e-8
    vanishing_steps: int = 50
    loss_z_threshold: float = 10.0
    memory_spike_factor: float = 1.5
    stop_on_anomaly: Union[bool, List[str]] = False

    def __post_init__(self) -> None:
        if not isinstance(self.project_name, str) or not self.project_name.strip():
            raise _fail("project_name", self.project_name, "expected a non-empty string")
        if self.run_name is not None and (not isinstance(self.run_name, str) or not self.run_name.strip()):
            raise _fail("run_name", self.run_name, "expected a non-empty string or None")
        if isinstance(self.tags, str) or not all(isinstance(tag, str) for tag in self.tags):
            raise _fail("tags", self.tags, "expected a list of strings")
        self.tags = list(self.tags)
        if self.notes is not None and not isinstance(self.notes, str):
            raise _fail("notes", self.notes, "expected a string or None")
        if isinstance(self.storage_path, os.PathLike):
            self.storage_path = os.fspath(self.storage_path)
        if not isinstance(self.storage_path, str) or not self.storage_path:
            raise _fail("storage_path", self.storage_path, "expected a directory path")
        _integer("retention_days", self.retention_days, 0)
        _integer("checkpoint_interval", self.checkpoint_interval, 1)
        _integer("capture_samples", self.capture_samples, 0)
        for name in ("track_gradients", "track_system_metrics", "async_writes"):
            _flag(name, getattr(self, name))
        if self.gradient_layers is not None:
            if (
                isinstance(self.gradient_layers, str)
                or not self.gradient_layers
                or not all(isinstance(pattern, str) and pattern for pattern in self.gradient_layers)
            ):
                raise _fail(
                    "gradient_layers",
                    self.gradient_layers,
                    "expected None or a non-empty list of glob patterns over parameter names",
                )
            self.gradient_layers = list(self.gradient_layers)
        _integer("write_buffer_size", self.write_buffer_size, 1)
        _integer("max_workers", self.max_workers, 1)
        _integer("history_size", self.history_size, 1)
        _integer("anomaly_window", self.anomaly_window, 3)
        _integer("anomaly_min_history", self.anomaly_min_history, 1)
        if self.anomaly_min_history > self.anomaly_window:
            raise _fail(
                "anomaly_min_history",
                self.anomaly_min_history,
                f"it must not exceed anomaly_window ({self.anomaly_window})",
            )
        for name in ("explosion_factor", "loss_z_threshold", "memory_spike_factor"):
            _positive(name, getattr(self, name))
        if self.explosion_threshold is not None:
            _positive("explosion_threshold", self.explosion_threshold)
        if (
            isinstance(self.vanishing_eps, bool)
            or not isinstance(self.vanishing_eps, (int, float))
            or not (math.isfinite(self.vanishing_eps) and self.vanishing_eps >= 0)
        ):
            raise _fail("vanishing_eps", self.vanishing_eps, "expected a finite number >= 0")
        _integer("vanishing_steps", self.vanishing_steps, 1)
        self.stop_on_anomaly = _stop_types(self.stop_on_anomaly)

    @property
    def store_file(self) -> Path:
        """The run store file: ``<storage_path>/runs.sqlite``."""
        from hf_eco2ai.store.run_store import default_store_path

        return default_store_path(self.storage_path)

    def stops_on(self, anomaly_type: str) -> bool:
        """Whether an anomaly of this type asks training to stop."""
        stop = self.stop_on_anomaly
        return stop is True or (isinstance(stop, list) and anomaly_type in stop)

    def ring_arguments(self) -> Dict[str, Any]:
        """The keyword arguments of ``hf_eco2ai._core.GradientRing`` for these thresholds."""
        return dict(
            history_capacity=self.history_size,
            window=self.anomaly_window,
            min_history=self.anomaly_min_history,
            explosion_factor=float(self.explosion_factor),
            explosion_threshold=None if self.explosion_threshold is None else float(self.explosion_threshold),
            vanishing_eps=float(self.vanishing_eps),
            vanishing_steps=self.vanishing_steps,
            loss_z_threshold=float(self.loss_z_threshold),
            memory_spike_factor=float(self.memory_spike_factor),
        )

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "TracerConfig":
        """A config from ``as_dict()`` output; unknown keys (from another version) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    @classmethod
    def field_names(cls) -> Sequence[str]:
        return [f.name for f in fields(cls)]


def _stop_types(value: Any) -> Union[bool, List[str]]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _fail(
            "stop_on_anomaly", value, f"expected True, False or a list of anomaly types from {list(ANOMALY_TYPES)}"
        )
    unknown = [item for item in value if item not in ANOMALY_TYPES]
    if unknown:
        raise _fail("stop_on_anomaly", value, f"unknown anomaly type(s) {unknown}; known: {list(ANOMALY_TYPES)}")
    return list(value)
