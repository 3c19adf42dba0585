"""``TracerObserver``: the Tracer API as a follower of the run lifecycle (``RunObserver``).

The lifecycle owns the session, marks the energy steps and writes the reports; the observer
attaches a ``TrainingTracer`` to that session when the run starts, is driven by the callbacks'
hooks (``watch``, ``log``, ``step``, ``close_steps``) and, when the run ends, adds the
``gradients`` section to the report the lifecycle built and rewrites the report files with it.
Nothing here imports a framework.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from hf_eco2ai.tracer.config import TracerConfig
from hf_eco2ai.tracer.core.tracer import TrainingTracer

__all__ = ["TracerObserver", "energy_config", "tracer_config"]


def energy_config(carbon_config: Any, project: Optional[str], storage_path: Path) -> Any:
    """The energy side's ``CarbonConfig``: the one given, or the environment's with the Tracer's
    project and the report files under ``<storage_path>/reports``."""
    if carbon_config is not None:
        return carbon_config
    from hf_eco2ai.config import CarbonConfig

    changes: Dict[str, Any] = {"output_dir": str(storage_path / "reports")}
    if project:
        changes["project_name"] = project
    return CarbonConfig(**changes)


def tracer_config(
    project: Optional[str], checkpoint_interval: int, settings: Dict[str, Any], carbon_project: str
) -> TracerConfig:
    """The callbacks' ``TracerConfig``: ``project`` (default: the energy config's project)."""
    return TracerConfig(project_name=project or carbon_project, checkpoint_interval=checkpoint_interval, **settings)


class TracerObserver:
    """Follows one run after another; ``tracer`` is the current run's (None between runs)."""

    def __init__(self, config: TracerConfig, optimizer_hook: bool = True) -> None:
        self.config = config
        self.optimizer_hook = optimizer_hook
        self.tracer: Optional[TrainingTracer] = None
        self._model: Any = None

    def on_run_start(self, session: Any) -> None:
        tracer = TrainingTracer(self.config, session=session).start()
        if self._model is not None:
            tracer.watch(self._model, self.optimizer_hook)
        self.tracer = tracer

    def on_log(self, figures: Mapping[str, float], step: int) -> None:
        """The energy figures are the lifecycle's; the checkpoints read the session themselves."""

    def on_run_end(self, report: Mapping[str, Any], report_paths: Mapping[str, Path]) -> None:
        tracer = self.tracer
        if tracer is None:
            return
        if not isinstance(report, dict):
            report = dict(report)
        tracer.finish(report=report)
        if "gradients" in report and report_paths:
            from hf_eco2ai.reporting.generate import generate_carbon_report

            for output_format, path in report_paths.items():
                generate_carbon_report(report, output_format=output_format, output_path=path)

    def watch(self, model: Any) -> None:
        """Watch ``model`` in this run and in the next ones."""
        self._model = model
        if self.tracer is not None and not self.tracer.finished:
            self.tracer.watch(model, self.optimizer_hook)

    def capture_gradients(self) -> None:
        if self.tracer is not None and not self.tracer.finished:
            self.tracer.capture_gradients()

    def log(self, metrics: Mapping[str, Any]) -> None:
        if self.tracer is not None and not self.tracer.finished:
            self.tracer.log(metrics)

    def step(self) -> None:
        if self.tracer is not None and not self.tracer.finished:
            self.tracer.step()

    def close_steps(self) -> None:
        """The run's last checkpoint, while the session still measures."""
        if self.tracer is not None and not self.tracer.finished:
            self.tracer.close_steps()

    def abort(self) -> None:
        """The run failed: keep what was traced, with status ``failed``."""
        if self.tracer is not None and not self.tracer.finished:
            self.tracer.finish(status="failed")

    @property
    def stop_requested(self) -> bool:
        return self.tracer is not None and self.tracer.stop_requested
