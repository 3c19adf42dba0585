"""``Experiment``: the Tracelet API's run, routing metrics, params and artifacts to its backends,
with the run's energy and carbon figures flowing into every one of them.

An experiment owns a ``TrackingSession`` (the measurement) and an ``Orchestrator`` (one worker
per backend). ``log_metric`` stamps the metric and queues it for every backend: it never waits on
a backend's I/O. Every ``metrics_interval`` seconds, and once more at ``stop()``, the session's
figures (``energy/step_joules``, ``energy/total_kwh``, ``carbon/co2_kg``, ...) are routed the same
way; at ``stop()`` the report's totals follow as metrics and its provenance (intensity source,
dataset, year, channels) as tags. ``set_iteration`` marks a step boundary, so per-step joules
follow the iterations.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from concurrent.futures import Future
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

from hf_eco2ai import __version__
from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.base import SOURCE_ENERGY, Backend, BackendRun, Metric
from hf_eco2ai.integrations.backends.figures import split_summary, start_provenance
from hf_eco2ai.integrations.backends.orchestrator import BackendStats, Orchestrator
from hf_eco2ai.integrations.backends.registry import create_backend
from hf_eco2ai.session.tracking_session import TrackingSession
from hf_eco2ai.store.run_store import default_store_path
from hf_eco2ai.tracking.artifacts import (
    ArtifactResult,
    ArtifactType,
    TraceletArtifact,
    read_artifact_folder,
    write_artifact_folder,
)
from hf_eco2ai.tracking.automagic import (
    SummaryWriterCapture,
    calling_frame,
    describe_dataset,
    describe_model,
    hyperparameters_in,
)
from hf_eco2ai.tracking.exceptions import BackendError
from hf_eco2ai.tracking.plugins import FrameworkPlugin, framework_plugins
from hf_eco2ai.tracking.settings import AutomagicConfig, ExperimentConfig, TraceletSettings, normalise_backends

logger = logging.getLogger(__name__)

ARTIFACT_TIMEOUT_S = 600.0
_GIT_TIMEOUT_S = 2.0

BackendSpec = Union[str, Backend]


def _git_commit(directory: Path) -> Optional[str]:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=str(directory),
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


class Experiment:
    """One tracked experiment (the Tracelet API).

    Args:
        name: the experiment's name (the run name in every backend).
        config: an ``ExperimentConfig``; None takes the switches from ``TraceletSettings``.
        backend: backend names (``local``, ``mlflow``, ``wandb``, ``tensorboard``, or a plugin's)
            and/or ``Backend`` instances; None: ``TraceletSettings.backend`` (``TRACELET_BACKEND``).
        tags: labels recorded with the run.
        automagic: capture hyperparameters from the calling frame at ``start()`` and
            ``SummaryWriter.add_scalar`` calls while running.
        automagic_config: what automagic captures.
        artifacts, automagic_artifacts: turn the artifact switches of ``config`` on.
        project: the project (MLflow experiment, W&B project); None: ``TraceletSettings.project``.
        settings: the global settings; None reads ``TRACELET_*`` from the environment.
        options: backend options (``mlflow_tracking_uri``, ``wandb_project``, ``wandb_mode``,
            ``tensorboard_log_dir``, ``store_path``...), passed to each backend built by name.
        carbon_config: the measurement's ``CarbonConfig``; None reads the environment and
            ``eco2ai.yaml``. Its ``output_dir`` is where file-based backends write by default.
        meter: an ``EnergyMeter`` to measure with instead of one built from ``carbon_config``.
        orchestrator_options: ``Orchestrator`` arguments (``capacity``, ``overflow``,
            ``block_timeout_s``, ``batch_size``).

    Threading: ``log_metric``, ``log_params`` and ``set_iteration`` may be called from any thread;
    ``start``/``stop`` from one.

    Raises:
        ConfigurationError: an invalid argument or setting, an unknown backend, or a backend whose
            library is missing (the message names the pip extra), all at construction.
    """

    def __init__(
        self,
        name: str,
        config: Optional[ExperimentConfig] = None,
        backend: Optional[Union[BackendSpec, Sequence[BackendSpec]]] = None,
        tags: Optional[List[str]] = None,
        automagic: bool = False,
        automagic_config: Optional[AutomagicConfig] = None,
        artifacts: bool = False,
        automagic_artifacts: bool = False,
        *,
        project: Optional[str] = None,
        settings: Optional[TraceletSettings] = None,
        options: Optional[Mapping[str, Any]] = None,
        carbon_config: Optional[CarbonConfig] = None,
        meter: Any = None,
        orchestrator_options: Optional[Mapping[str, Any]] = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"name = {name!r} is invalid: expected a non-empty experiment name")
        if config is not None and not isinstance(config, ExperimentConfig):
            raise ConfigurationError(f"config = {type(config).__name__} is invalid: expected an ExperimentConfig")
        if tags is not None and (isinstance(tags, str) or not all(isinstance(t, str) for t in tags)):
            raise ConfigurationError(f"tags = {tags!r} is invalid: expected a list of strings")
        self._settings = settings if settings is not None else TraceletSettings.from_env()
        self._config = config if config is not None else ExperimentConfig.from_settings(self._settings)
        self._config.enable_automagic = self._config.enable_automagic or automagic
        self._config.enable_artifacts = self._config.enable_artifacts or artifacts
        self._config.automagic_artifacts = self._config.automagic_artifacts or automagic_artifacts
        self._automagic_config = automagic_config or AutomagicConfig()
        self._name = name
        self._project = project or self._settings.project
        self._tags = list(tags or [])
        self._id = uuid.uuid4().hex
        self._created_at = datetime.now(timezone.utc)
        self._options = dict(options or {})
        base = carbon_config if carbon_config is not None else CarbonConfig()
        self._carbon_config = base.replace(project_name=self._project, experiment_id=name)
        self._output_dir = Path(self._carbon_config.output_dir)
        self._meter = meter
        specs = self._backend_specs(backend)
        self._store_path = (
            Path(self._options["store_path"])
            if self._options.get("store_path")
            else default_store_path(self._output_dir)
        )
        self._backends = [
            spec if isinstance(spec, Backend) else create_backend(spec, self._options, self._output_dir)
            for spec in specs
        ]
        self._orchestrator = Orchestrator(self._backends, **dict(orchestrator_options or {}))
        self._iteration = 0
        self._state = "new"
        self._lock = threading.Lock()
        self._session: Optional[TrackingSession] = None
        self._params: Dict[str, Any] = {}
        self._artifacts: List[Dict[str, Any]] = []
        self._capture: Optional[SummaryWriterCapture] = None
        self._plugins: List[FrameworkPlugin] = []
        self._energy_stop = threading.Event()
        self._energy_thread: Optional[threading.Thread] = None
        self._on_stop: List[Callable[["Experiment"], None]] = []
        self.carbon_report: Optional[Dict[str, Any]] = None

    def _backend_specs(self, backend: Any) -> List[BackendSpec]:
        if backend is None:
            return list(self._settings.backend)
        if isinstance(backend, (str, Backend)):
            backend = [backend]
        specs: List[BackendSpec] = []
        for item in backend:
            if isinstance(item, Backend):
                specs.append(item)
            else:
                specs.extend(normalise_backends("backend", item))
        names = [spec if isinstance(spec, str) else spec.name for spec in specs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigurationError(f"backend = {names!r} names {duplicates[0]!r} twice: list each backend once")
        return specs

    # Properties ----------------------------------------------------------------------------------

    @property
    def iteration(self) -> int:
        return self._iteration

    @property
    def name(self) -> str:
        return self._name

    @property
    def id(self) -> str:
        return self._id

    @property
    def experiment_id(self) -> str:
        """The same as ``id``."""
        return self._id

    @property
    def created_at(self) -> datetime:
        return self._created_at

    @property
    def tags(self) -> List[str]:
        return list(self._tags)

    @property
    def project(self) -> str:
        return self._project

    @property
    def config(self) -> ExperimentConfig:
        return self._config

    @property
    def backends(self) -> List[Backend]:
        """The backend objects (each has a ``name``)."""
        return list(self._backends)

    @property
    def session(self) -> Optional[TrackingSession]:
        """The measurement (a ``TrackingSession``) once started."""
        return self._session

    @property
    def run_id(self) -> Optional[str]:
        """The measured run's id in the run store (after ``start``)."""
        return None if self._session is None else self._session.run_id

    @property
    def running(self) -> bool:
        return self._state == "running"

    def backend_stats(self) -> Dict[str, BackendStats]:
        """Per backend: metrics delivered, dropped (overflow policy), failed, and failures."""
        return self._orchestrator.stats()

    # Lifecycle -----------------------------------------------------------------------------------

    def start(self) -> "Experiment":
        """Start measuring and open every backend. Idempotent while running.

        Raises:
            ConfigurationError: the experiment has stopped (an experiment is one run).
            SensorUnavailableError: a sensor source named explicitly in the carbon config cannot run.
        """
        with self._lock:
            if self._state == "running":
                return self
            if self._state == "stopped":
                raise ConfigurationError(f"experiment {self._name!r} has stopped; create a new Experiment")
            uses_store = any(backend.name == "local" for backend in self._backends)
            self._session = TrackingSession(
                self._carbon_config, meter=self._meter, store=self._store_path if uses_store else False
            )
            self._session.start()
            run = BackendRun(
                name=self._name,
                project=self._project,
                run_id=self._session.run_id,
                output_dir=self._output_dir,
                tags=tuple(self._tags),
            )
            self._orchestrator.start(run)
            self._state = "running"
        self._orchestrator.log_params(self._provenance_params())
        if self._config.enable_automagic and self._automagic_config.detect_hyperparameters:
            self.capture_hyperparams()
        self._capture_summary_writers()
        for plugin in framework_plugins():
            plugin.start(self)
            self._plugins.append(plugin)
        if self._config.track_system_metrics:
            self._energy_thread = threading.Thread(
                target=self._publish_energy_periodically, name="hf-eco2ai-tracelet-energy", daemon=True
            )
            self._energy_thread.start()
        return self

    def _provenance_params(self) -> Dict[str, Any]:
        params = {**start_provenance(self._session), "hf_eco2ai/experiment_id": self._id}
        if self._config.track_environment and self._settings.track_env:
            params.update(
                {
                    "env/python": platform.python_version(),
                    "env/platform": platform.platform(),
                    "env/hf_eco2ai": __version__,
                }
            )
        if self._config.track_git and self._settings.track_git:
            commit = _git_commit(Path.cwd())
            if commit is not None:
                params["git/commit"] = commit
        return params

    def _capture_summary_writers(self) -> None:
        frameworks = self._config.automagic_frameworks or self._settings.automagic_frameworks
        if not (
            self._config.track_metrics
            and self._automagic_config.capture_summary_writer
            and {"tensorboard", "pytorch"} & set(frameworks)
        ):
            return
        # Without automagic only writers already imported are captured, so that tracking never
        # imports torch on its own.
        classes = SummaryWriterCapture.writer_classes(import_torch_writer=self._config.enable_automagic)
        if classes:
            capture = SummaryWriterCapture(self._scalar_from_writer)
            if capture.install(classes):
                self._capture = capture

    def _scalar_from_writer(self, name: str, value: float, step: Optional[int]) -> None:
        if self._state == "running":
            self._orchestrator.route_metric(Metric(name, value, self._iteration if step is None else step, time.time()))

    def _publish_energy_periodically(self) -> None:
        while not self._energy_stop.wait(self._settings.metrics_interval):
            try:
                self._publish_energy()
            except Exception as error:  # noqa: BLE001 - measurement faults never reach training
                logger.warning(
                    "hf-eco2ai: the energy figures could not be sent to the backends (%s: %s); tracking goes on",
                    type(error).__name__,
                    error,
                )

    def _publish_energy(self) -> None:
        session = self._session
        if session is None:
            return
        step = self._iteration
        now = time.time()
        for name, value in session.log(step=step).items():
            self._orchestrator.route_metric(Metric(name, float(value), step, now, SOURCE_ENERGY))

    def stop(self, status: str = "finished") -> Dict[str, BackendStats]:
        """Stop measuring, send the final figures, deliver everything queued to every backend, and
        close them. Idempotent. Returns each backend's stats (``backend_stats()``).

        Every metric logged before ``stop()`` is delivered (or counted as failed by the backend
        that raised); ``stop()`` waits for the slowest backend.
        """
        with self._lock:
            if self._state != "running":
                if self._state == "new":
                    self._state = "stopped"
                return self._orchestrator.stats()
            self._state = "stopping"
        if self._capture is not None:
            self._capture.restore()
            self._capture = None
        for plugin in self._plugins:
            try:
                plugin.stop()
            except Exception as error:  # noqa: BLE001 - a plugin must not keep the run from ending
                logger.warning("hf-eco2ai: plugin %r failed to stop (%s)", type(plugin).__name__, error)
        self._energy_stop.set()
        if self._energy_thread is not None:
            self._energy_thread.join()
        session = self._session
        assert session is not None
        if self._config.track_system_metrics:
            self._publish_energy()
        report = session.stop(status)
        self.carbon_report = report
        numbers, texts = split_summary(report)
        now = time.time()
        for key, value in numbers.items():
            self._orchestrator.route_metric(Metric(key, value, self._iteration, now, SOURCE_ENERGY))
        self._orchestrator.set_tags(texts)
        stats = self._orchestrator.stop(status)
        with self._lock:
            self._state = "stopped"
        for callback in self._on_stop:
            callback(self)
        return stats

    def end(self, status: str = "finished") -> Dict[str, BackendStats]:
        """The same as ``stop()``."""
        return self.stop(status)

    def __enter__(self) -> "Experiment":
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop("failed" if exc_type is not None else "finished")

    # Logging -------------------------------------------------------------------------------------

    def _require_running(self, what: str) -> None:
        if self._state != "running":
            raise ConfigurationError(
                f"{what} on experiment {self._name!r}, which is {self._state}: call start() first "
                "(or use start_logging), and log before stop()"
            )

    def log_metric(self, name: str, value: Any, iteration: Optional[int] = None) -> None:
        """Queue a scalar for every backend and return at once (no backend I/O on this thread).

        ``iteration`` defaults to the current iteration (``set_iteration``).

        Raises:
            ConfigurationError: not running, a non-string name, or a value that is not a number.
        """
        if self._state != "running":
            self._require_running("log_metric")
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"metric name = {name!r} is invalid: expected a non-empty string")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"metric {name!r} = {value!r} is invalid: expected a number") from None
        self._orchestrator.route_metric(
            Metric(name, number, self._iteration if iteration is None else int(iteration), time.time())
        )

    def log_params(self, params: Dict[str, Any]) -> None:
        """Record hyperparameters in every backend (values other than str/int/float/bool as text).

        Raises:
            ConfigurationError: not running, or ``params`` is not a mapping with string keys.
        """
        self._require_running("log_params")
        if not isinstance(params, Mapping) or not all(isinstance(key, str) for key in params):
            raise ConfigurationError(f"params = {params!r} is invalid: expected a dict with string keys")
        self._params.update(params)
        self._orchestrator.log_params(dict(params))

    def log_hyperparameter(self, name: str, value: Any) -> None:
        """``log_params({name: value})``."""
        self.log_params({name: value})

    def set_iteration(self, iteration: int) -> None:
        """Set the current iteration; each call also marks an energy step boundary, so that
        ``energy/step_joules`` is energy per iteration."""
        if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
            raise ConfigurationError(f"iteration = {iteration!r} is invalid: expected an integer >= 0")
        self._iteration = iteration
        session = self._session
        if session is not None:
            session.mark_step()

    @property
    def params(self) -> Dict[str, Any]:
        """The params logged so far through ``log_params``/``log_hyperparameter``/automagic."""
        return dict(self._params)

    # Automagic -----------------------------------------------------------------------------------

    def capture_hyperparams(self) -> Dict[str, Any]:
        """Log (and return) the calling frame's local variables named like hyperparameters."""
        params = hyperparameters_in(calling_frame(), self._automagic_config)
        if params and self._state == "running":
            self.log_params(params)
        return params

    def capture_model(self, model: Any) -> Dict[str, Any]:
        """Log (as ``model/...`` params) and return the model's class and parameter counts."""
        info = describe_model(model)
        if self._state == "running":
            self.log_params({f"model/{key}": value for key, value in info.items()})
        return info

    def capture_dataset(self, dataset: Any) -> Dict[str, Any]:
        """Log (as ``dataset/...`` params) and return the dataset's class, size and sample shape."""
        info = describe_dataset(dataset)
        if self._state == "running":
            self.log_params({f"dataset/{key}": value for key, value in info.items()})
        return info

    # Artifacts -----------------------------------------------------------------------------------

    def create_artifact(
        self, name: str, artifact_type: ArtifactType, description: Optional[str] = None
    ) -> TraceletArtifact:
        """A new, empty artifact to fill with ``add_file``/``add_object``/... and log."""
        return TraceletArtifact(name, artifact_type, description)

    def log_artifact(self, artifact: Union[TraceletArtifact, str, "os.PathLike[str]"]) -> Dict[str, ArtifactResult]:
        """Store the artifact in every backend that keeps files (each gets the files, the
        serialised objects and a manifest with every file's sha256). A path logs that one file.
        Waits until every backend has stored it.

        Returns:
            ``{backend name: ArtifactResult}`` for the backends that stored it.

        Raises:
            ConfigurationError: not running, or an invalid artifact (a file changed since added).
            BackendError: every backend that keeps files failed to store it (the others' failures
                are counted in ``backend_stats()``).
        """
        if isinstance(artifact, (str, os.PathLike)):
            return self.log_file_artifact(os.fspath(artifact))
        self._require_running("log_artifact")
        if not isinstance(artifact, TraceletArtifact):
            raise ConfigurationError(f"artifact = {artifact!r} is invalid: expected a TraceletArtifact or a path")
        staging = Path(tempfile.mkdtemp(prefix="hf-eco2ai-artifact-"))
        try:
            folder = staging / artifact.name
            write_artifact_folder(artifact, folder)
            futures = self._orchestrator.call("log_artifact_dir", folder, artifact.name)
            results, errors = self._collect(futures)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if errors and not results:
            raise BackendError(
                f"artifact {artifact.name!r} could not be stored: "
                + "; ".join(f"{name}: {error}" for name, error in errors.items())
            )
        self._artifacts.append({"artifact": artifact, "results": results})
        return results

    @staticmethod
    def _collect(futures: Mapping[str, "Future[Any]"]) -> Any:
        results: Dict[str, ArtifactResult] = {}
        errors: Dict[str, str] = {}
        for name, future in futures.items():
            try:
                stored = future.result(timeout=ARTIFACT_TIMEOUT_S)
            except Exception as error:  # noqa: BLE001 - reported per backend below
                errors[name] = f"{type(error).__name__}: {error}"
                continue
            if stored is not None:
                results[name] = ArtifactResult(name, stored.uri, stored.version, dict(stored.metadata))
        return results, errors

    def log_file_artifact(self, local_path: str, artifact_path: Optional[str] = None) -> Dict[str, ArtifactResult]:
        """Log one file as an artifact named after it (type ``CUSTOM``)."""
        path = Path(local_path)
        name = path.name.replace("/", "_") or "file"
        artifact = TraceletArtifact(name, ArtifactType.CUSTOM).add_file(str(path), artifact_path)
        return self.log_artifact(artifact)

    def get_artifact(
        self, name: str, version: str = "latest", backend: Optional[str] = None
    ) -> Optional[TraceletArtifact]:
        """Retrieve an artifact (from ``backend``, or the first backend that has it), verifying
        every file's sha256. Files are copied under ``<output_dir>/artifacts/retrieved/``.

        Raises:
            ArtifactChecksumError: a retrieved file differs from the checksum recorded when logged.
            ConfigurationError: ``backend`` is not attached.
        """
        names = [backend] if backend is not None else [b.name for b in self._backends]
        for backend_name in names:
            destination = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self._artifact_cache()))
            folder = self._fetch(backend_name, name, version, destination)
            if folder is not None:
                return read_artifact_folder(folder)
            shutil.rmtree(destination, ignore_errors=True)
        return None

    def _artifact_cache(self) -> str:
        cache = self._output_dir / "artifacts" / "retrieved"
        cache.mkdir(parents=True, exist_ok=True)
        return str(cache)

    def _fetch(self, backend_name: str, name: str, version: str, destination: Path) -> Optional[Path]:
        if self._state == "running":
            future = self._orchestrator.call_backend(backend_name, "fetch_artifact_dir", name, version, destination)
            return future.result(timeout=ARTIFACT_TIMEOUT_S)
        # Stopped (or never started): the workers are gone, so the backend is called here.
        matches = [b for b in self._backends if b.name == backend_name]
        if not matches:
            raise ConfigurationError(f"backend = {backend_name!r} is not attached to experiment {self._name!r}")
        return matches[0].fetch_artifact_dir(name, version, destination)

    def list_artifacts(
        self, type_filter: Optional[ArtifactType] = None, backend: Optional[str] = None
    ) -> List[TraceletArtifact]:
        """The artifacts this experiment logged, optionally of one type or stored by one backend."""
        return [
            entry["artifact"]
            for entry in self._artifacts
            if (type_filter is None or entry["artifact"].type == type_filter)
            and (backend is None or backend in entry["results"])
        ]

    def __repr__(self) -> str:
        return (
            f"Experiment(name={self._name!r}, project={self._project!r}, "
            f"backends={[b.name for b in self._backends]}, {self._state})"
        )


__all__ = ["Experiment"]
