"""The ``local`` backend: the project's own SQLite run store.

Metrics, params and tags go into the measured run's ``logs`` rows through the store's public
writer (``RunWriter.add_log``), so ``hf-eco2ai runs``/``show`` see them next to the run's energy.
Params are one row of ``param/<name>`` keys and tags one row of ``tag/<name>`` keys, at step None.
Artifacts are copied to ``<store dir>/artifacts/<run id>/<name>/v<N>/``.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.base import (
    SOURCE_ENERGY,
    Backend,
    BackendRun,
    Metric,
    StoredArtifact,
    plain_param,
)
from hf_eco2ai.store.run_store import RunStore, RunWriter

_VERSION = re.compile(r"^v(\d+)$")


def artifact_versions(folder: Path) -> List[int]:
    """The version numbers present under an artifact's folder, ascending."""
    if not folder.is_dir():
        return []
    return sorted(int(match.group(1)) for match in (_VERSION.match(p.name) for p in folder.iterdir()) if match)


class LocalBackend(Backend):
    """Logs into the run store that holds the measured run (``BackendRun.run_id``).

    Args:
        store: the run store (a ``RunStore`` or its path).
        include_energy: also store the energy figures routed to backends. The measuring session
            writes them to its own store already, so the default leaves them out here.

    Raises:
        ConfigurationError: the store cannot be opened (at construction).
    """

    name = "local"

    def __init__(self, store: Union[RunStore, str, Path], *, include_energy: bool = False) -> None:
        self.store = store if isinstance(store, RunStore) else RunStore(store)
        self._include_energy = include_energy
        self._writer: Optional[RunWriter] = None
        self._run_id = ""
        self._write_errors: List[BaseException] = []

    @property
    def artifact_root(self) -> Path:
        return self.store.path.parent / "artifacts" / self._run_id

    def start(self, run: BackendRun) -> None:
        self._run_id = run.run_id
        self._writer = self.store.writer(on_error=self._write_errors.append)

    def _require_writer(self) -> RunWriter:
        """The writer; a commit that failed on its thread since the last call is raised here, so
        that the orchestrator counts it as this backend's failure."""
        if self._writer is None:
            raise ConfigurationError("the local backend was used before start(): start the run first")
        if self._write_errors:
            error = self._write_errors.pop(0)
            self._write_errors.clear()
            raise error
        return self._writer

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        writer = self._require_writer()
        row: Dict[str, float] = {}
        row_step: Optional[int] = None
        row_time_s = 0.0
        for metric in metrics:
            if metric.source == SOURCE_ENERGY and not self._include_energy:
                continue
            # One row per step: a new step, or a name seen twice at one step, starts a new row.
            if row and (metric.step != row_step or metric.name in row):
                writer.add_log(self._run_id, row_time_s, row_step, row)
                row = {}
            if not row:
                row_step, row_time_s = metric.step, metric.unix_time_s
            row[metric.name] = metric.value
        if row:
            writer.add_log(self._run_id, row_time_s, row_step, row)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if params:
            self._require_writer().add_log(
                self._run_id, time.time(), None, {f"param/{k}": plain_param(v) for k, v in params.items()}
            )

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if tags:
            self._require_writer().add_log(
                self._run_id, time.time(), None, {f"tag/{k}": str(v) for k, v in tags.items()}
            )

    def log_artifact_dir(self, local_dir: Path, name: str) -> Optional[StoredArtifact]:
        folder = self.artifact_root / name
        version = f"v{(artifact_versions(folder) or [0])[-1] + 1}"
        destination = folder / version
        shutil.copytree(local_dir, destination)
        self._require_writer().add_log(self._run_id, time.time(), None, {f"artifact/{name}": str(destination)})
        return StoredArtifact(uri=destination.as_uri(), version=version)

    def fetch_artifact_dir(self, name: str, version: str, destination: Path) -> Optional[Path]:
        folder = self.artifact_root / name
        versions = artifact_versions(folder)
        if not versions:
            return None
        chosen = f"v{versions[-1]}" if version == "latest" else version
        source = folder / chosen
        if not source.is_dir():
            return None
        shutil.copytree(source, destination, dirs_exist_ok=True)
        return destination

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._require_writer()

    def stop(self, status: str) -> None:
        if self._writer is not None:
            self._writer.close()
            self._require_writer()
