"""``BackendObserver``: a run lifecycle observer that logs a run's energy and carbon figures to
tracker backends. It is what the callbacks' ``wandb_integration``/``mlflow_integration`` flags and
``track(backends=...)`` attach: every face logs to other trackers through the same backends.

Each run gets its own ``Orchestrator``, so the lifecycle's calls (on the training thread) only
queue: backend I/O happens on the backends' worker threads, and a backend's failure is counted in
the session's monitoring errors (one warning per backend) instead of reaching the training loop.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from hf_eco2ai.integrations.backends.base import SOURCE_ENERGY, Backend, BackendRun, Metric
from hf_eco2ai.integrations.backends.figures import split_summary, start_provenance
from hf_eco2ai.integrations.backends.orchestrator import Orchestrator

REPORT_FILES_FOLDER = "carbon_reports"

BackendFactory = Callable[[], Sequence[Backend]]


class BackendObserver:
    """Follows runs (``RunObserver``) and logs them to the backends ``make_backends()`` builds.

    Args:
        make_backends: called at each run's start for that run's backends (fresh objects, or the
            same ones when they can open one run after another).
        run_name: the run's name in the backends; None uses the config's ``experiment_id``, else
            the model's name, else the run id.

    Per run: params with the measurement's provenance at the start; the figures of every log as
    metrics at that step; at the end the report's totals as metrics, its provenance as tags, and
    the report files under ``carbon_reports``. Then the backends are drained and stopped.
    """

    def __init__(self, make_backends: BackendFactory, *, run_name: Optional[str] = None) -> None:
        self._make_backends = make_backends
        self._run_name = run_name
        self._orchestrator: Optional[Orchestrator] = None
        self._last_step: Optional[int] = None

    @property
    def orchestrator(self) -> Optional[Orchestrator]:
        """The current (or last) run's orchestrator: its ``stats()`` say what each backend did."""
        return self._orchestrator

    def on_run_start(self, session: Any) -> None:
        if self._orchestrator is not None and self._orchestrator.running:
            self._orchestrator.stop("failed")  # the previous run ended without on_run_end

        def count_fault(backend_name: str, error: BaseException) -> None:
            session.record_monitoring_error(
                f"backend-{backend_name}",
                error,
                f"tracking backend {backend_name!r} failed ({type(error).__name__}: {error}); the other "
                "backends and training go on",
            )

        config = session.config
        name = self._run_name or config.experiment_id or session.model_name or session.run_id[:12]
        self._orchestrator = Orchestrator(self._make_backends(), on_fault=count_fault)
        self._orchestrator.start(
            BackendRun(
                name=name, project=config.project_name, run_id=session.run_id, output_dir=Path(config.output_dir)
            )
        )
        self._orchestrator.log_params(start_provenance(session))
        self._last_step = None

    def on_log(self, figures: Mapping[str, float], step: int) -> None:
        orchestrator = self._orchestrator
        if orchestrator is None:
            return
        orchestrator.prepare_backends()
        now = time.time()
        for name, value in figures.items():
            orchestrator.route_metric(Metric(name, float(value), step, now, SOURCE_ENERGY))
        self._last_step = step

    def on_run_end(self, report: Mapping[str, Any], report_paths: Mapping[str, Path]) -> None:
        orchestrator = self._orchestrator
        if orchestrator is None:
            return
        orchestrator.prepare_backends()
        numbers, texts = split_summary(report)
        step = self._last_step if self._last_step is not None else int(report.get("steps_marked") or 0)
        now = time.time()
        for name, value in numbers.items():
            orchestrator.route_metric(Metric(name, value, step, now, SOURCE_ENERGY))
        orchestrator.set_tags(texts)
        if report_paths:
            orchestrator.call("log_files", [Path(p) for p in report_paths.values()], REPORT_FILES_FOLDER)
        orchestrator.stop("finished")


def active_run_observer(wandb: bool, mlflow: bool) -> Optional[BackendObserver]:
    """The observer of the callbacks' ``wandb_integration``/``mlflow_integration`` flags: it logs
    into the W&B / MLflow run the user (or the Trainer's own integration) has open."""
    if not (wandb or mlflow):
        return None

    def make_backends() -> Sequence[Backend]:
        backends: list = []
        if wandb:
            from hf_eco2ai.integrations.backends.wandb_backend import WandbBackend

            backends.append(WandbBackend(active_run=True))
        if mlflow:
            from hf_eco2ai.integrations.backends.mlflow_backend import MlflowBackend

            backends.append(MlflowBackend(active_run=True))
        return backends

    return BackendObserver(make_backends)


def backend_factory(
    backends: Sequence[Any], options: Optional[Mapping[str, Any]], output_dir: Any
) -> Optional[BackendFactory]:
    """What builds a run's backends from ``backends=[...]`` (names and/or ``Backend`` objects)
    given to ``track`` or the CarbonTracker API; None for none. Each name is checked here, at once:
    an unknown name or a missing library raises ``ConfigurationError`` naming the fix.

    Names are built afresh for every run (``BackendObserver(factory)``); ``Backend`` objects given
    are reused, run after run.
    """
    from hf_eco2ai.integrations.backends.registry import create_backend

    if isinstance(backends, (str, Backend)):
        backends = [backends]
    specs = list(backends)
    if not specs:
        return None
    chosen = dict(options or {})
    for spec in specs:
        if not isinstance(spec, Backend):
            create_backend(spec, chosen, Path(output_dir))

    def make_backends() -> Sequence[Backend]:
        return [spec if isinstance(spec, Backend) else create_backend(spec, chosen, Path(output_dir)) for spec in specs]

    return make_backends
