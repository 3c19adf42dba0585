"""The ``mlflow`` backend: metrics, params, tags and artifacts through ``mlflow.MlflowClient``.

Metrics go out in ``log_batch`` calls of up to 1,000 (MLflow's limit per call): one call per
metric costs about 1 ms on the file store and 11 ms on sqlite, which a busy loop cannot afford.
The client is used with explicit run ids, so the backend's worker thread needs none of MLflow's
thread-local "active run" state.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlparse

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.base import (
    Backend,
    BackendRun,
    Metric,
    StoredArtifact,
    import_backend_library,
    plain_param,
)

METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
_TRUE = ("1", "true", "yes", "on")
_VERSION = re.compile(r"^v(\d+)$")


def _is_file_store(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    # A bare path (or a Windows drive letter) is a file store too.
    return scheme in ("", "file") or len(scheme) == 1


def _chunks(items: Sequence[Any], size: int) -> List[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class MlflowBackend(Backend):
    """Logs to an MLflow tracking store.

    Args:
        tracking_uri: ``sqlite:///path/mlflow.db``, a directory / ``file://`` URI (the file store),
            or a tracking server's ``http(s)://`` URL; None: MLflow's own default
            (``MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``).
        experiment_name: the MLflow experiment; None uses the run's project name.
        active_run: log into the run that ``mlflow.start_run()`` made active on the calling thread
            (the Trainer and Lightning callbacks use this) instead of creating a run; until one is
            active at a ``prepare()``, this backend logs nothing.
        artifact_location: where a new MLflow experiment keeps its artifacts; None: next to a
            sqlite database (``<db folder>/mlartifacts``), else MLflow's default.

    Raises:
        ConfigurationError: mlflow is not installed (names the pip extra), or the URI is a file
            store that MLflow 3.13+ refuses without ``MLFLOW_ALLOW_FILE_STORE=true``.
    """

    name = "mlflow"

    def __init__(
        self,
        tracking_uri: Optional[str] = None,
        *,
        experiment_name: Optional[str] = None,
        active_run: bool = False,
        artifact_location: Optional[str] = None,
    ) -> None:
        self._mlflow = import_backend_library("mlflow", self.name)
        self._entities = import_backend_library("mlflow.entities", self.name)
        self._adopt_active_run = active_run
        self._tracking_uri: Optional[str] = None if tracking_uri is None else str(tracking_uri)
        if self._tracking_uri is not None:
            check_tracking_uri(self._tracking_uri)
        self._experiment_name = experiment_name
        self._client: Any = None
        self._run_id: Optional[str] = None
        self._owns_run = False
        self._artifact_location = artifact_location
        self._adopted: Optional[Tuple[str, str]] = None
        self._run: Optional[BackendRun] = None

    @property
    def run_id(self) -> Optional[str]:
        """The MLflow run logged into (after ``start``)."""
        return self._run_id

    @property
    def tracking_uri(self) -> Optional[str]:
        return self._tracking_uri

    def prepare(self) -> None:
        """On the caller's thread: find the active run (MLflow keeps it per thread)."""
        if not self._adopt_active_run or self._adopted is not None:
            return
        active = self._mlflow.active_run()
        if active is not None:
            # One tuple assignment: the worker thread sees both values or neither.
            self._adopted = (active.info.run_id, self._tracking_uri or self._mlflow.get_tracking_uri())

    def _ready(self) -> bool:
        """Whether there is a run to log into (binding an adopted one on first use)."""
        if self._client is not None:
            return True
        if self._adopted is None or self._run is None:
            return False
        self._run_id, self._tracking_uri = self._adopted
        self._client = self._mlflow.MlflowClient(tracking_uri=self._tracking_uri)
        self.set_tags({"hf_eco2ai.run_id": self._run.run_id})
        return True

    def _experiment_id(self, name: str, uri: str) -> str:
        experiment = self._client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = self._artifact_location
        parsed = urlparse(uri)
        if location is None and parsed.scheme == "sqlite" and parsed.path not in ("", "/:memory:"):
            # MLflow's default is ./mlruns in whatever the working directory is.
            location = (Path(uri[len("sqlite:///") :]).resolve().parent / "mlartifacts").as_uri()
        return self._client.create_experiment(name, artifact_location=location)

    def start(self, run: BackendRun) -> None:
        self._run = run
        if self._adopt_active_run:
            return
        uri = self._tracking_uri or self._mlflow.get_tracking_uri()
        check_tracking_uri(uri)
        self._tracking_uri = uri
        self._client = self._mlflow.MlflowClient(tracking_uri=uri)
        tags = {"hf_eco2ai.run_id": run.run_id, "hf_eco2ai.project": run.project}
        tags.update({f"tag.{tag}": "true" for tag in run.tags})
        experiment_id = self._experiment_id(self._experiment_name or run.project, uri)
        created = self._client.create_run(experiment_id, run_name=run.name, tags=tags)
        self._run_id = created.info.run_id
        self._owns_run = True
        if run.params:
            self.log_params(run.params)

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        if not self._ready():
            return
        Entity = self._entities.Metric
        rows = [
            Entity(key=m.name, value=m.value, timestamp=int(m.unix_time_s * 1000), step=0 if m.step is None else m.step)
            for m in metrics
        ]
        for chunk in _chunks(rows, METRICS_PER_BATCH):
            self._client.log_batch(self._run_id, metrics=chunk, synchronous=True)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not params or not self._ready():
            return
        Param = self._entities.Param
        rows = [Param(key, str(plain_param(value))) for key, value in params.items()]
        for chunk in _chunks(rows, PARAMS_PER_BATCH):
            self._client.log_batch(self._run_id, params=chunk, synchronous=True)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if not tags or not self._ready():
            return
        RunTag = self._entities.RunTag
        rows = [RunTag(key, str(value)) for key, value in tags.items()]
        for chunk in _chunks(rows, PARAMS_PER_BATCH):
            self._client.log_batch(self._run_id, tags=chunk, synchronous=True)

    def log_files(self, paths: Sequence[Path], folder: str) -> None:
        if not self._ready():
            return
        for path in paths:
            self._client.log_artifact(self._run_id, str(path), artifact_path=folder)

    def _versions(self, name: str) -> List[int]:
        listed = self._client.list_artifacts(self._run_id, f"artifacts/{name}")
        return sorted(int(m.group(1)) for m in (_VERSION.match(Path(f.path).name) for f in listed) if m)

    def log_artifact_dir(self, local_dir: Path, name: str) -> Optional[StoredArtifact]:
        if not self._ready():
            return None
        version = f"v{(self._versions(name) or [0])[-1] + 1}"
        path = f"artifacts/{name}/{version}"
        self._client.log_artifacts(self._run_id, str(local_dir), artifact_path=path)
        uri = f"runs:/{self._run_id}/{path}"
        return StoredArtifact(uri=uri, version=version, metadata={"run_id": self._run_id})

    def fetch_artifact_dir(self, name: str, version: str, destination: Path) -> Optional[Path]:
        if self._client is None:
            return None
        versions = self._versions(name)
        if not versions:
            return None
        chosen = f"v{versions[-1]}" if version == "latest" else version
        if not _VERSION.match(chosen) or int(chosen[1:]) not in versions:
            return None
        destination.mkdir(parents=True, exist_ok=True)
        local = self._client.download_artifacts(self._run_id, f"artifacts/{name}/{chosen}", str(destination))
        return Path(local)

    def stop(self, status: str) -> None:
        if self._client is not None and self._owns_run:
            self._client.set_terminated(
                self._run_id, "FINISHED" if status == "finished" else "FAILED", end_time=int(time.time() * 1000)
            )


def check_tracking_uri(uri: str) -> None:
    """Refuse at once a file store that MLflow would refuse later, with the fix in the message.

    Raises:
        ConfigurationError: ``uri`` is a file store and ``MLFLOW_ALLOW_FILE_STORE`` is not true.
    """
    if _is_file_store(uri) and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() not in _TRUE:
        raise ConfigurationError(
            f"mlflow tracking_uri = {uri!r} is a file store, which MLflow 3.13 and later refuse unless "
            "the environment variable MLFLOW_ALLOW_FILE_STORE=true is set: set it, or use a database "
            "store such as 'sqlite:///mlflow.db'"
        )
