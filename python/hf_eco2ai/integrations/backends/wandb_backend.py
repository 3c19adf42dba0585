"""The ``wandb`` backend: a Weights & Biases run, offline by default (``WANDB_MODE=offline``).

Offline, W&B writes the run to ``<dir>/wandb/offline-run-*/run-<id>.wandb``; ``wandb sync``
uploads it later and ``wandb leet inspect --json`` reads it back. Every logged row carries
``iteration`` and W&B is told to plot every metric against it, so rows whose iterations arrive out
of order (energy figures after a metric logged ahead) are kept, where W&B's own step would drop
them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.base import (
    Backend,
    BackendRun,
    Metric,
    StoredArtifact,
    import_backend_library,
    plain_param,
)

WANDB_MODES = ("offline", "online", "disabled")
ITERATION_KEY = "iteration"


class WandbBackend(Backend):
    """Logs to a W&B run.

    Args:
        project: the W&B project; None uses the run's project name.
        mode: ``offline`` (default, or ``WANDB_MODE`` when set), ``online`` or ``disabled``.
        dir: where the ``wandb/`` folder goes; None uses the run's output directory.
        entity: the W&B entity (team or user) for online runs.
        active_run: log into ``wandb.run`` (made by ``wandb.init()`` or the Trainer's W&B
            callback) instead of creating a run; until one is active at a ``prepare()``, this
            backend logs nothing. Figures then join the run's current step (``commit=False``)
            and the run's own step axis is left alone.

    Raises:
        ConfigurationError: wandb is not installed (names the pip extra) or ``mode`` is unknown.
    """

    name = "wandb"

    def __init__(
        self,
        project: Optional[str] = None,
        *,
        mode: Optional[str] = None,
        dir: Optional[str] = None,
        entity: Optional[str] = None,
        active_run: bool = False,
    ) -> None:
        self._wandb = import_backend_library("wandb", self.name)
        chosen = mode or os.environ.get("WANDB_MODE") or "offline"
        if chosen not in WANDB_MODES:
            raise ConfigurationError(
                f"wandb mode = {chosen!r} is invalid: expected one of {', '.join(map(repr, WANDB_MODES))}"
            )
        self._mode = chosen
        self._project = project
        self._dir = dir
        self._entity = entity
        self._adopt_active_run = active_run
        self._run: Any = None
        self._owns_run = False
        self._artifact_versions: Dict[str, int] = {}

    @property
    def run(self) -> Any:
        """The ``wandb`` run logged into (after ``start``)."""
        return self._run

    @property
    def run_dir(self) -> Optional[Path]:
        """The run's local folder (holding its ``run-<id>.wandb`` file), after ``start``."""
        return None if self._run is None else Path(self._run.settings.sync_dir)

    def prepare(self) -> None:
        if self._adopt_active_run and self._run is None:
            self._run = self._wandb.run

    def start(self, run: BackendRun) -> None:
        if self._adopt_active_run:
            return
        if self._run is None:
            directory = Path(self._dir) if self._dir is not None else run.output_dir
            directory.mkdir(parents=True, exist_ok=True)
            self._run = self._wandb.init(
                project=self._project or run.project,
                name=run.name,
                entity=self._entity,
                mode=self._mode,
                dir=str(directory),
                tags=[str(tag) for tag in run.tags][:64] or None,
                config={key: plain_param(value) for key, value in run.params.items()},
                reinit="create_new",
                settings=self._wandb.Settings(silent=True, console="off", x_disable_stats=True),
            )
            self._owns_run = True
        self._run.define_metric(ITERATION_KEY)
        self._run.define_metric("*", step_metric=ITERATION_KEY)
        self._run.config.update({"hf_eco2ai.run_id": run.run_id}, allow_val_change=True)

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        if self._run is None:
            return
        row: Dict[str, float] = {}
        row_step: Optional[int] = None
        for metric in metrics:
            if row and (metric.step != row_step or metric.name in row):
                self._log_row(row, row_step)
                row = {}
            row_step = metric.step
            row[metric.name] = metric.value
        if row:
            self._log_row(row, row_step)

    def _log_row(self, row: Dict[str, float], step: Optional[int]) -> None:
        if not self._owns_run:
            self._run.log(row, commit=False)
            return
        if step is not None:
            row[ITERATION_KEY] = step
        self._run.log(row)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self._run is not None and params:
            self._run.config.update({k: plain_param(v) for k, v in params.items()}, allow_val_change=True)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        # W&B tags are labels without values; key/value provenance belongs in the summary.
        if self._run is not None and tags:
            self._run.summary.update({key: str(value) for key, value in tags.items()})

    def log_files(self, paths: Sequence[Path], folder: str) -> None:
        if self._run is None:
            return
        for path in paths:
            self._run.save(str(path), base_path=str(Path(path).parent), policy="now")

    def log_artifact_dir(self, local_dir: Path, name: str) -> Optional[StoredArtifact]:
        if self._run is None:
            return None
        # W&B numbers an artifact's versions from v0.
        version = self._artifact_versions.get(name, -1) + 1
        artifact = self._wandb.Artifact(name, type="tracelet")
        artifact.add_dir(str(local_dir))
        self._run.log_artifact(artifact)
        self._artifact_versions[name] = version
        return StoredArtifact(
            uri=f"wandb-artifact://{self._run.project}/{name}:v{version}",
            version=f"v{version}",
            metadata={"mode": self._mode},
        )

    def stop(self, status: str) -> None:
        if self._run is not None and self._owns_run:
            self._run.finish(exit_code=0 if status == "finished" else 1)
