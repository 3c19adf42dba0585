"""What the Hugging Face and Lightning callbacks share: their options, their run lifecycle and
their results. Each framework's callback adds only its hooks, which translate that framework's
events into ``RunLifecycle`` calls. Imports no framework."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Dict, Optional, Sequence

from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.integrations.run_lifecycle import RunLifecycle, RunObserver, RunOptions
from hf_eco2ai.reporting.files import DEFAULT_REPORT_FORMATS
from hf_eco2ai.session import TrackingSession


class TrackedRunCallback:
    """Base of the training-framework callbacks.

    Args:
        config: the settings (``CarbonConfig``); ``None`` reads them from the environment and
            ``eco2ai.yaml``.
        tracking_mode: overrides ``config.tracking_mode`` (``minimal``, ``simple``, ``detailed``).
        output_dir: overrides ``config.output_dir``; reports and the run store go there.
        tracking_frequency: ``step`` (one record per optimiser step), ``batch`` (one per
            micro-batch when accumulating gradients) or ``epoch`` (one per epoch, and a log at
            every epoch end).
        include_infrastructure: also measure the node's CPU and DRAM (RAPL or the CPU estimate);
            ``False`` measures GPUs only.
        detailed_gpu_tracking: add per-channel power (``power/gpu:0_watts``, ...) to the logs.
        wandb_integration, mlflow_integration: also log the figures and the final report (with
            its provenance) to the active W&B / MLflow run.
        meter: an ``EnergyMeter`` to use instead of one built from ``config`` (tests, custom
            sources); it measures one run.
        store: where the run store lives, as ``TrackingSession`` takes it.
        report_formats: the report files written to ``output_dir`` at the end of a run.
        observers: further followers of the run (``hf_eco2ai.integrations.run_lifecycle.RunObserver``).
        phase_windows: open ``forward``, ``backward`` and ``optimizer`` windows around each phase
            of every step (torch hooks), so the report's ``window_estimates`` estimates each
            phase's energy, also for phases shorter than the GPU's energy counter update period.

    Raises:
        ConfigurationError: an invalid option, or an integration whose package is not installed
            (the message names the package to install).
    """

    framework: ClassVar[str]

    def __init__(
        self,
        config: Optional[CarbonConfig] = None,
        tracking_mode: Optional[str] = None,
        output_dir: Optional[str] = None,
        tracking_frequency: str = "step",
        include_infrastructure: bool = True,
        detailed_gpu_tracking: bool = True,
        wandb_integration: bool = False,
        mlflow_integration: bool = False,
        *,
        meter: Any = None,
        store: Any = True,
        report_formats: Sequence[str] = DEFAULT_REPORT_FORMATS,
        observers: Sequence[RunObserver] = (),
        phase_windows: bool = False,
    ) -> None:
        self.options = RunOptions.build(
            config=config,
            tracking_mode=tracking_mode,
            output_dir=output_dir,
            tracking_frequency=tracking_frequency,
            include_infrastructure=include_infrastructure,
            detailed_gpu_tracking=detailed_gpu_tracking,
            wandb_integration=wandb_integration,
            mlflow_integration=mlflow_integration,
            report_formats=report_formats,
            phase_windows=phase_windows,
        )
        self.lifecycle = RunLifecycle(
            self.options, framework=self.framework, meter=meter, store=store, observers=observers
        )
        self.config = self.options.config
        self.tracking_frequency = self.options.tracking_frequency

    @property
    def session(self) -> Optional[TrackingSession]:
        """The current (or last) run's session; None before training."""
        return self.lifecycle.session

    @property
    def report_paths(self) -> Dict[str, Path]:
        """The report files written at the end of the run, by format."""
        return self.lifecycle.report_paths

    def get_carbon_report(self) -> Dict[str, Any]:
        """The ``tracking_data`` dict (docs/reports.md): ``total_co2_kg``, ``energy``, ``intensity``...

        After training it is the final report (combined over ranks in a distributed job); during
        training it is this process's report so far.

        Raises:
            ConfigurationError: called before training started.
        """
        return self.lifecycle.carbon_report()
