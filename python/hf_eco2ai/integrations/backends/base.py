"""What every tracking backend is: the ``Backend`` base class, the ``Metric`` record it receives,
and the ``BackendRun`` identity it is started with.

A backend is one destination (the run store, MLflow, W&B, TensorBoard, a third-party plugin). It
is called from one thread only: the ``Orchestrator`` gives each backend its own worker thread, so
a backend needs no locking of its own and may block on I/O without slowing anyone else.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, NamedTuple, Optional, Sequence

from hf_eco2ai.errors import ConfigurationError

TRACKING_EXTRA = "pip install 'hf-eco2ai[tracking]'"

SOURCE_USER = "user"
SOURCE_ENERGY = "energy"


class Metric(NamedTuple):
    """One scalar: ``name``, ``value``, ``step`` (None: the backend's own counter) and the wall
    clock time it was logged (``unix_time_s``). ``source`` is ``"user"`` for the caller's figures
    and ``"energy"`` for the energy and carbon figures of the run's measurement."""

    name: str
    value: float
    step: Optional[int]
    unix_time_s: float
    source: str = SOURCE_USER


@dataclass(frozen=True)
class BackendRun:
    """Who a backend logs for: the run's name, project, tags, and the measured run's id.

    ``run_id`` is the measurement's run id (the run store's key); backends with run ids of their
    own (MLflow, W&B) record it as the tag ``hf_eco2ai.run_id`` so that the two can be joined.
    ``output_dir`` is where file-based backends put their files unless told otherwise.
    """

    name: str
    project: str
    run_id: str
    output_dir: Path
    tags: Sequence[str] = ()
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredArtifact:
    """Where a backend put an artifact's files: ``uri`` and the backend's ``version`` label."""

    uri: str
    version: str
    metadata: Dict[str, Any] = field(default_factory=dict)


class Backend:
    """Base class of tracking backends.

    Subclasses override what they support; the defaults do nothing, so a backend that has no
    notion of tags (TensorBoard) simply ignores them. Every method runs on the backend's own
    worker thread (never the training thread) and may raise: the orchestrator counts the failure,
    warns once, and keeps delivering to the other backends.
    """

    #: the name users pass in ``backend=[...]``
    name: str = "backend"

    def prepare(self) -> None:
        """Called on the caller's thread before ``start`` is queued, and again before each batch
        of figures a run observer routes: read state that a library keeps per thread (MLflow's
        active run). Cheap, idempotent, must not block."""

    def start(self, run: BackendRun) -> None:
        """Open the destination for ``run`` (create the run, open the writer)."""

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        """Record a batch of metrics, in the order given."""

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters / settings (values are str, int, float or bool)."""

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Record string tags (provenance, run identity)."""

    def log_files(self, paths: Sequence[Path], folder: str) -> None:
        """Attach plain files (the run's report files) under ``folder``; ignored by backends that
        keep no files."""

    def log_artifact_dir(self, local_dir: Path, name: str) -> Optional[StoredArtifact]:
        """Store the files under ``local_dir`` (an artifact with its ``manifest.json``) as the next
        version of ``name`` (``v1``, ``v2``...); None when this backend keeps no files."""
        return None

    def fetch_artifact_dir(self, name: str, version: str, destination: Path) -> Optional[Path]:
        """Copy artifact ``name``/``version`` (``"latest"``: the newest) into ``destination`` and
        return the directory holding its ``manifest.json``; None when this backend has no such
        artifact or keeps no files."""
        return None

    def flush(self) -> None:
        """Make everything logged so far durable/visible (write buffers out)."""

    def stop(self, status: str) -> None:
        """Close the run with ``status`` (``finished`` or ``failed``) and release resources."""


def import_backend_library(module_name: str, backend_name: str) -> Any:
    """Import the library a backend needs, or raise an error that names the pip extra.

    Raises:
        ConfigurationError: the library is not installed.
    """
    if importlib.util.find_spec(module_name.split(".")[0]) is None:
        raise ConfigurationError(
            f"backend = {backend_name!r} needs the {module_name.split('.')[0]!r} package, which is not "
            f"installed: run `{TRACKING_EXTRA}` (or `pip install {module_name.split('.')[0]}`), "
            f"or leave {backend_name!r} out of the backends"
        )
    return importlib.import_module(module_name)


def plain_param(value: Any) -> Any:
    """A parameter value every backend accepts: str, int, float and bool kept, the rest as text."""
    if isinstance(value, (str, int, float, bool)):
        return value
    return repr(value) if value is None else str(value)
