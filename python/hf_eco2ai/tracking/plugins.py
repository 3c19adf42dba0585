"""The Tracelet API's plugin interfaces and their discovery through entry points.

A third-party backend subclasses ``BackendPlugin`` (a ``Backend`` with metadata) and registers it
in the entry-point group ``hf_eco2ai.backends``; it is then accepted by name wherever a backend is::

    [project.entry-points."hf_eco2ai.backends"]
    neptune = "my_package.backend:NeptuneBackend"

Framework and collector plugins register in ``hf_eco2ai.tracking.plugins`` and are started and
stopped with each experiment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.base import Backend
from hf_eco2ai.integrations.backends.registry import ENTRY_POINT_GROUP as BACKEND_ENTRY_POINT_GROUP

if TYPE_CHECKING:
    from hf_eco2ai.tracking.experiment import Experiment

PLUGIN_ENTRY_POINT_GROUP = "hf_eco2ai.tracking.plugins"


class PluginType(Enum):
    BACKEND = "backend"
    FRAMEWORK = "framework"
    COLLECTOR = "collector"


@dataclass(frozen=True)
class PluginMetadata:
    """A plugin's name, version, description and type."""

    name: str
    version: str
    description: str = ""
    type: PluginType = PluginType.BACKEND
    dependencies: List[str] = field(default_factory=list)


class PluginInterface:
    """Base of every plugin: it describes itself and can be initialised with options."""

    @classmethod
    def get_metadata(cls) -> PluginMetadata:
        """Subclasses return their ``PluginMetadata``.

        Raises:
            NotImplementedError: the subclass did not say what it is.
        """
        raise NotImplementedError(f"{cls.__name__} must define get_metadata()")

    def initialize(self, config: Mapping[str, Any]) -> None:
        """Take the options given (the experiment's config mapping)."""


class BackendPlugin(PluginInterface, Backend):
    """A backend delivered as a plugin: override ``Backend``'s methods (``start``,
    ``log_metrics``, ``log_params``, ``set_tags``, ``log_artifact_dir``, ``flush``, ``stop``).
    Built with the options mapping; its ``name`` is its metadata's name."""

    def __init__(self, config: Optional[Mapping[str, Any]] = None) -> None:
        self.name = self.get_metadata().name
        self.initialize(dict(config or {}))


class FrameworkPlugin(PluginInterface):
    """Instruments a framework for the length of an experiment."""

    def start(self, experiment: "Experiment") -> None:
        """Called when the experiment starts."""

    def stop(self) -> None:
        """Called when the experiment stops: undo any instrumentation."""


def discover_plugins() -> Dict[str, Any]:
    """Installed plugin classes by name: backends (``hf_eco2ai.backends``) and framework or
    collector plugins (``hf_eco2ai.tracking.plugins``).

    Raises:
        ConfigurationError: an entry point does not lead to a ``PluginInterface`` subclass.
    """
    found: Dict[str, Any] = {}
    for group in (BACKEND_ENTRY_POINT_GROUP, PLUGIN_ENTRY_POINT_GROUP):
        for point in entry_points(group=group):
            loaded = point.load()
            if not (isinstance(loaded, type) and issubclass(loaded, PluginInterface)):
                raise ConfigurationError(
                    f"entry point {point.name!r} = {point.value!r} in {group!r} is not a PluginInterface "
                    "subclass: subclass BackendPlugin or FrameworkPlugin"
                )
            found[point.name] = loaded
    return found


def framework_plugins() -> List[FrameworkPlugin]:
    """One instance of every installed framework/collector plugin."""
    plugins = []
    for point in entry_points(group=PLUGIN_ENTRY_POINT_GROUP):
        loaded = point.load()
        if isinstance(loaded, type) and issubclass(loaded, FrameworkPlugin):
            plugins.append(loaded())
    return plugins
