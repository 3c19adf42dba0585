"""``TraceletSettings`` (global defaults, from ``TRACELET_*`` environment variables),
``ExperimentConfig`` (one experiment's switches) and ``AutomagicConfig``.

Environment variables (booleans accept true/false, 1/0, yes/no, on/off; lists are comma-separated):

=========================  ================================
setting                    environment variable
=========================  ================================
``project``                ``TRACELET_PROJECT``
``backend``                ``TRACELET_BACKEND``
``track_system``           ``TRACELET_TRACK_SYSTEM``
``track_git``              ``TRACELET_TRACK_GIT``
``track_env``              ``TRACELET_TRACK_ENV``
``metrics_interval``       ``TRACELET_METRICS_INTERVAL``
``enable_automagic``       ``TRACELET_ENABLE_AUTOMAGIC``
``automagic_frameworks``   ``TRACELET_AUTOMAGIC_FRAMEWORKS``
``enable_artifacts``       ``TRACELET_ENABLE_ARTIFACTS``
``automagic_artifacts``    ``TRACELET_AUTOMAGIC_ARTIFACTS``
``watch_filesystem``       ``TRACELET_WATCH_FILESYSTEM``
``artifact_watch_dirs``    ``TRACELET_ARTIFACT_WATCH_DIRS``
=========================  ================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from hf_eco2ai.errors import ConfigurationError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
DEFAULT_HYPERPARAMETER_NAMES = (
    "lr",
    "learning_rate",
    "batch_size",
    "epochs",
    "num_epochs",
    "max_epochs",
    "max_steps",
    "momentum",
    "weight_decay",
    "dropout",
    "hidden_size",
    "num_layers",
    "num_heads",
    "seed",
    "optimizer",
    "scheduler",
    "warmup_steps",
    "gradient_accumulation_steps",
    "gamma",
    "beta1",
    "beta2",
    "eps",
    "temperature",
    "max_length",
    "seq_len",
    "embedding_dim",
)


def _parse_bool(variable: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"{variable} = {text!r} is invalid: expected true or false")


def _parse_list(text: str) -> List[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parse_interval(variable: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigurationError(f"{variable} = {text!r} is invalid: expected a number of seconds > 0") from None
    return _check_interval(variable, value)


def _check_interval(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{name} = {value!r} is invalid: expected a number of seconds > 0")
    return float(value)


def normalise_backends(name: str, value: Any) -> List[str]:
    """A backend name or list of names, as a list (empty entries dropped).

    Raises:
        ConfigurationError: not a string or a list of strings.
    """
    if isinstance(value, str):
        return _parse_list(value)
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    raise ConfigurationError(f"{name} = {value!r} is invalid: expected a backend name or a list of names")


@dataclass
class TraceletSettings:
    """Global defaults of the Tracelet API. ``TraceletSettings.from_env()`` reads the
    ``TRACELET_*`` variables (see the module docstring); ``replace(**changes)`` overrides fields.

    ``metrics_interval`` is how often (seconds) the energy and carbon figures are sent to every
    backend while an experiment runs; ``track_system`` turns that measurement on or off.
    """

    project: str = "default"
    backend: List[str] = field(default_factory=lambda: ["local"])
    track_system: bool = True
    track_git: bool = True
    track_env: bool = True
    metrics_interval: float = 10.0
    enable_automagic: bool = False
    automagic_frameworks: Set[str] = field(default_factory=lambda: {"pytorch", "tensorboard"})
    enable_artifacts: bool = False
    automagic_artifacts: bool = False
    watch_filesystem: bool = False
    artifact_watch_dirs: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.project, str) or not self.project:
            raise ConfigurationError(f"project = {self.project!r} is invalid: expected a non-empty name")
        self.backend = normalise_backends("backend", self.backend)
        self.metrics_interval = _check_interval("metrics_interval", self.metrics_interval)
        for name in (
            "track_system",
            "track_git",
            "track_env",
            "enable_automagic",
            "enable_artifacts",
            "automagic_artifacts",
            "watch_filesystem",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigurationError(f"{name} = {getattr(self, name)!r} is invalid: expected True or False")
        self.automagic_frameworks = set(self.automagic_frameworks)
        self.artifact_watch_dirs = list(self.artifact_watch_dirs)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None) -> "TraceletSettings":
        """The defaults with every ``TRACELET_*`` variable that is set applied.

        Raises:
            ConfigurationError: a variable's value is invalid (names the variable).
        """
        env = os.environ if environ is None else environ
        values: Dict[str, Any] = {}
        for setting in fields(cls):
            variable = f"TRACELET_{setting.name.upper()}"
            text = env.get(variable)
            if text is None:
                continue
            if setting.name in ("project",):
                values[setting.name] = text
            elif setting.name == "metrics_interval":
                values[setting.name] = _parse_interval(variable, text)
            elif setting.name in ("backend", "artifact_watch_dirs"):
                values[setting.name] = _parse_list(text)
            elif setting.name == "automagic_frameworks":
                values[setting.name] = set(_parse_list(text))
            else:
                values[setting.name] = _parse_bool(variable, text)
        return cls(**values)

    def replace(self, **changes: Any) -> "TraceletSettings":
        """A copy with ``changes`` applied (validated).

        Raises:
            ConfigurationError: an unknown setting or an invalid value.
        """
        known = {setting.name for setting in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigurationError(
                f"{unknown[0]} is not a TraceletSettings field: expected one of {', '.join(sorted(known))}"
            )
        current = {setting.name: getattr(self, setting.name) for setting in fields(self)}
        return TraceletSettings(**{**current, **changes})


@dataclass
class ExperimentConfig:
    """One experiment's switches. ``track_system_metrics`` sends the energy and carbon figures to
    every backend; ``enable_automagic`` captures hyperparameters and TensorBoard scalars;
    ``enable_artifacts`` turns the artifact API on (``log_artifact`` works either way)."""

    track_metrics: bool = True
    track_environment: bool = True
    track_args: bool = True
    track_stdout: bool = True
    track_checkpoints: bool = True
    track_system_metrics: bool = True
    track_git: bool = True
    enable_automagic: bool = False
    automagic_frameworks: Optional[Set[str]] = None
    enable_artifacts: bool = False
    automagic_artifacts: bool = False
    artifact_watch_dirs: Optional[List[str]] = None
    watch_filesystem: bool = False

    def __post_init__(self) -> None:
        for setting in fields(self):
            value = getattr(self, setting.name)
            if setting.type in ("bool", bool) and not isinstance(value, bool):
                raise ConfigurationError(f"{setting.name} = {value!r} is invalid: expected True or False")

    @classmethod
    def from_settings(cls, settings: TraceletSettings) -> "ExperimentConfig":
        return cls(
            track_environment=settings.track_env,
            track_system_metrics=settings.track_system,
            track_git=settings.track_git,
            enable_automagic=settings.enable_automagic,
            automagic_frameworks=set(settings.automagic_frameworks),
            enable_artifacts=settings.enable_artifacts,
            automagic_artifacts=settings.automagic_artifacts,
            artifact_watch_dirs=list(settings.artifact_watch_dirs),
            watch_filesystem=settings.watch_filesystem,
        )


@dataclass
class AutomagicConfig:
    """What automagic captures. ``hyperparameter_names`` are the local variable names taken as
    hyperparameters (besides any name listed in ``extra_hyperparameter_names``); values are
    kept only when they are plain (bool, int, float, or str up to ``max_str_length``)."""

    detect_hyperparameters: bool = True
    capture_summary_writer: bool = True
    hyperparameter_names: Tuple[str, ...] = DEFAULT_HYPERPARAMETER_NAMES
    extra_hyperparameter_names: Tuple[str, ...] = ()
    max_str_length: int = 200
