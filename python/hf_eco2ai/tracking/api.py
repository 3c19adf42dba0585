"""The Tracelet API's module functions: ``start_logging``, ``stop_logging`` and
``get_active_experiment``. One experiment is active per process at a time."""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Mapping, Optional, Union

from hf_eco2ai.config import CarbonConfig, field_table
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.base import Backend
from hf_eco2ai.integrations.backends.orchestrator import BackendStats
from hf_eco2ai.integrations.backends.registry import BACKEND_OPTIONS
from hf_eco2ai.tracking.experiment import Experiment
from hf_eco2ai.tracking.settings import ExperimentConfig, TraceletSettings

_lock = threading.Lock()
_active: Optional[Experiment] = None

_SETTING_NAMES = set(TraceletSettings.__dataclass_fields__)
_BACKEND_OPTION_NAMES = {option for options in BACKEND_OPTIONS.values() for option in options}
_CARBON_NAMES = {row["name"] for row in field_table()}
_ORCHESTRATOR_NAMES = {"capacity", "overflow", "block_timeout_s", "batch_size", "linger_s"}


def _split_config(config: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    parts: Dict[str, Dict[str, Any]] = {"settings": {}, "options": {}, "carbon": {}, "orchestrator": {}}
    for key, value in config.items():
        if key in _SETTING_NAMES:
            parts["settings"][key] = value
        elif key in _BACKEND_OPTION_NAMES:
            parts["options"][key] = value
        elif key in _ORCHESTRATOR_NAMES:
            parts["orchestrator"][key] = value
        elif key in _CARBON_NAMES:
            parts["carbon"][key] = value
        else:
            raise ConfigurationError(
                f"config key {key!r} is unknown: expected a TraceletSettings field "
                f"({', '.join(sorted(_SETTING_NAMES))}), a backend option "
                f"({', '.join(sorted(_BACKEND_OPTION_NAMES))}), an orchestrator option "
                f"({', '.join(sorted(_ORCHESTRATOR_NAMES))}) or a CarbonConfig setting"
            )
    return parts


def start_logging(
    exp_name: str,
    project: Optional[str] = None,
    backend: Optional[Union[str, Backend, List[Union[str, Backend]]]] = None,
    config: Optional[Mapping[str, Any]] = None,
) -> Experiment:
    """Create, start and make active an ``Experiment``; also a context manager that stops it.

    ``config`` mixes ``TraceletSettings`` fields (``track_system``, ``metrics_interval``...),
    backend options (``mlflow_tracking_uri``, ``wandb_project``, ``tensorboard_log_dir``...),
    orchestrator options (``capacity``, ``overflow``...) and ``CarbonConfig`` settings
    (``country_iso_code``, ``output_dir``...). ``project`` and ``backend`` default to
    ``TRACELET_PROJECT`` and ``TRACELET_BACKEND``.

    Raises:
        ConfigurationError: an unknown config key, an invalid value, an unknown backend, a backend
            whose library is missing, or another experiment is still active.
    """
    global _active
    if config is not None and not isinstance(config, Mapping):
        raise ConfigurationError(f"config = {config!r} is invalid: expected a dict")
    parts = _split_config(config or {})
    settings = TraceletSettings.from_env().replace(**parts["settings"])
    carbon = CarbonConfig().replace(**parts["carbon"]) if parts["carbon"] else None
    with _lock:
        if _active is not None and _active.running:
            raise ConfigurationError(
                f"experiment {_active.name!r} is still active: call stop_logging() before starting {exp_name!r}"
            )
        experiment = Experiment(
            exp_name,
            config=ExperimentConfig.from_settings(settings),
            backend=backend,
            automagic=settings.enable_automagic,
            project=project,
            settings=settings,
            options=parts["options"],
            carbon_config=carbon,
            orchestrator_options=parts["orchestrator"],
        )
        experiment._on_stop.append(_forget)
        experiment.start()
        _active = experiment
    return experiment


def _forget(experiment: Experiment) -> None:
    global _active
    with _lock:
        if _active is experiment:
            _active = None


def stop_logging() -> Optional[Dict[str, BackendStats]]:
    """Stop the active experiment (delivering everything it logged); None when none is active."""
    experiment = get_active_experiment()
    return None if experiment is None else experiment.stop()


def get_active_experiment() -> Optional[Experiment]:
    """The experiment started by ``start_logging`` and not yet stopped, or None."""
    return _active
