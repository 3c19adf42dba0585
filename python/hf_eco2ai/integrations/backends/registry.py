"""Backends by name: the four built in, and third-party ones found through entry points.

A package adds a backend by declaring an entry point in the group ``hf_eco2ai.backends`` whose
object is a ``Backend`` subclass (for the Tracelet API, a ``BackendPlugin``) taking one argument,
the options mapping::

    [project.entry-points."hf_eco2ai.backends"]
    neptune = "my_package.backend:NeptuneBackend"
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, Dict, List, Mapping

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.base import Backend
from hf_eco2ai.store.run_store import default_store_path

ENTRY_POINT_GROUP = "hf_eco2ai.backends"
BUILTIN_BACKENDS = ("local", "mlflow", "wandb", "tensorboard")

#: The options each built-in backend reads from the mapping given to ``create_backend``.
BACKEND_OPTIONS = {
    "local": ("store_path",),
    "mlflow": ("mlflow_tracking_uri", "mlflow_experiment_name"),
    "wandb": ("wandb_project", "wandb_mode", "wandb_dir", "wandb_entity"),
    "tensorboard": ("tensorboard_log_dir",),
}


def plugin_entry_points() -> Dict[str, EntryPoint]:
    """Third-party backends installed, by name (built-in names cannot be replaced)."""
    found = {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}
    return {name: point for name, point in found.items() if name not in BUILTIN_BACKENDS}


def available_backends() -> List[str]:
    """Every backend name ``create_backend`` accepts here."""
    return [*BUILTIN_BACKENDS, *sorted(plugin_entry_points())]


def create_backend(name: str, options: Mapping[str, Any], output_dir: Path) -> Backend:
    """Build the backend called ``name`` from ``options`` (see ``BACKEND_OPTIONS``).

    Raises:
        ConfigurationError: an unknown name (the message lists the known ones), a library that is
            not installed (the message names the pip extra), or an invalid option.
    """
    if name == "local":
        from hf_eco2ai.integrations.backends.local import LocalBackend

        return LocalBackend(options.get("store_path") or default_store_path(output_dir))
    if name == "mlflow":
        from hf_eco2ai.integrations.backends.mlflow_backend import MlflowBackend

        return MlflowBackend(options.get("mlflow_tracking_uri"), experiment_name=options.get("mlflow_experiment_name"))
    if name == "wandb":
        from hf_eco2ai.integrations.backends.wandb_backend import WandbBackend

        return WandbBackend(
            options.get("wandb_project"),
            mode=options.get("wandb_mode"),
            dir=options.get("wandb_dir"),
            entity=options.get("wandb_entity"),
        )
    if name == "tensorboard":
        from hf_eco2ai.integrations.backends.tensorboard_backend import TensorBoardBackend

        return TensorBoardBackend(options.get("tensorboard_log_dir"))
    plugins = plugin_entry_points()
    if name not in plugins:
        raise ConfigurationError(
            f"backend = {name!r} is unknown: expected one of {', '.join(map(repr, available_backends()))} "
            f"(third-party backends register in the entry-point group {ENTRY_POINT_GROUP!r})"
        )
    factory = plugins[name].load()
    backend = factory(dict(options))
    if not isinstance(backend, Backend):
        raise ConfigurationError(
            f"backend = {name!r}: its entry point {plugins[name].value!r} built a {type(backend).__name__}, "
            "not an hf_eco2ai Backend; the plugin must subclass BackendPlugin"
        )
    return backend
