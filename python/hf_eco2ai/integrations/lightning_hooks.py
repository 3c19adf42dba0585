"""The Lightning callback's behaviour, written once for both ``lightning`` and ``pytorch_lightning``.

``Eco2AILightningTracking`` holds every hook; ``hf_eco2ai.integrations.lightning`` and
``hf_eco2ai.integrations.pytorch_lightning`` each combine it with their package's ``Callback``
base, because a Trainer accepts only callbacks of its own package. Nothing here imports a
framework (``override`` comes from typing_extensions, which both depend on).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional

from typing_extensions import override

from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.tracking_options import (
    REPORT_FORMATS, TrackingOptions, model_name_of, write_reports,
)
from hf_eco2ai.session.tracking_session import TrackingSession


if TYPE_CHECKING:
    # For the type checker the hooks below override Lightning's; at run time the base comes from
    # whichever package's Callback the concrete class also inherits.
    from lightning.pytorch import Callback as _HookBase
else:
    _HookBase = object


def _noop() -> None:
    return None


class Eco2AILightningTracking(_HookBase):
    """Energy and carbon tracking for ``Trainer.fit`` (options as ``Eco2AICallback``'s).

    Each optimiser step is marked in ``on_train_batch_end`` (once per step when gradients
    accumulate; every micro-batch is counted). At the trainer's logging interval
    (``log_every_n_steps``) the figures go through ``pl_module.log_dict`` to every logger the
    Trainer has. The report is built and written at ``on_fit_end``; ``teardown`` and
    ``on_exception`` stop the sampler whatever happens.

    Logged metrics (units in the names):
        ``energy/step_joules``, ``energy/interval_joules``, ``power/mean_watts``,
        ``energy/total_kwh``, ``carbon/co2_kg``, ``carbon/intensity_g_per_kwh``,
        ``carbon/samples_per_kwh`` (when the batch size is known), ``carbon/budget_used_fraction``
        (with a budget) and, with ``detailed_gpu_tracking``, ``power/<channel>_watts``.

    Args:
        config, tracking_mode, output_dir, tracking_frequency, include_infrastructure,
        detailed_gpu_tracking, wandb_integration, mlflow_integration, meter, store,
        report_formats: as for ``hf_eco2ai.Eco2AICallback``.

    Raises:
        ConfigurationError: an invalid option or a missing integration package, at construction.

    Example::

        trainer = lightning.pytorch.Trainer(callbacks=[Eco2AILightningCallback(CarbonConfig(country_iso_code="DE"))])
        trainer.fit(model, datamodule)
    """

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
        report_formats: Any = REPORT_FORMATS,
    ) -> None:
        super().__init__()
        self.options = TrackingOptions.build(
            config=config, tracking_mode=tracking_mode, output_dir=output_dir,
            tracking_frequency=tracking_frequency, include_infrastructure=include_infrastructure,
            detailed_gpu_tracking=detailed_gpu_tracking, wandb_integration=wandb_integration,
            mlflow_integration=mlflow_integration, report_formats=report_formats,
        )
        self.config = self.options.config
        self.tracking_frequency = self.options.tracking_frequency
        self._meter = meter
        self._store = store
        self.session: Optional[TrackingSession] = None
        self._mark_step = _noop
        self._last_global_step = 0
        self._step_at_start = 0
        self._micro_batches = 0
        self._micro_batches_at_last_log = 0
        self._batch_size: Optional[int] = None
        self._validation_window: Any = None
        self._report: Optional[Dict[str, Any]] = None
        self.report_paths: Dict[str, Path] = {}

    # Shared helpers ----------------------------------------------------------------------------------

    def _start(self, trainer: Any, pl_module: Any) -> None:
        if self.session is not None and self.session.running:
            return
        if self._meter is not None and self.session is not None:
            raise ConfigurationError(
                "meter = the EnergyMeter given to the callback was used by a previous fit(); a meter "
                "measures one run, so pass a new callback (or no meter) for each fit()"
            )
        self.session = TrackingSession(self.config, meter=self._meter, store=self._store,
                                       model_name=model_name_of(pl_module),
                                       include_host=self.options.include_infrastructure)
        self.session.start()
        self._report = None
        self.report_paths = {}
        self._step_at_start = self._last_global_step = int(trainer.global_step)
        self._micro_batches = self._micro_batches_at_last_log = 0
        self._mark_step = _noop if self.tracking_frequency == "epoch" else self.session.mark_step

    def _log_figures(self, trainer: Any, pl_module: Any, on_epoch: bool) -> None:
        session = self.session
        if session is None or not session.running:
            return
        micro_batches = self._micro_batches - self._micro_batches_at_last_log
        self._micro_batches_at_last_log = self._micro_batches
        metrics: Dict[str, Any] = {}
        if self._batch_size is not None:
            metrics["samples"] = micro_batches * self._batch_size
        for name in ("loss", "train_loss", "val_loss"):
            value = trainer.callback_metrics.get(name)
            if value is not None:
                metrics["eval_loss" if name == "val_loss" else "loss"] = float(value)
        figures = session.log(metrics, step=int(trainer.global_step),
                              channel_power=self.options.detailed_gpu_tracking)
        if figures:
            pl_module.log_dict(figures, on_step=not on_epoch, on_epoch=on_epoch, logger=bool(trainer.loggers),
                               prog_bar=False)
        self.options.log_to_integrations(figures, int(trainer.global_step))
        if session.stop_requested:
            trainer.should_stop = True

    def _close_validation_window(self) -> None:
        if self._validation_window is not None:
            window, self._validation_window = self._validation_window, None
            window.__exit__(None, None, None)

    def _finish(self, trainer: Any, status: str) -> None:
        session = self.session
        if session is None or not session.running:
            return
        self._mark_step = _noop
        self._close_validation_window()
        session.stop(status)

    # Hooks -------------------------------------------------------------------------------------------

    @override
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Start measuring; the first step opens here."""
        self._start(trainer, pl_module)

    @override
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Mark the optimiser step (once per step when accumulating) and log at the interval."""
        self._micro_batches += 1
        if self._batch_size is None:
            self._batch_size = _batch_size_of(batch)
        global_step = trainer.global_step
        if global_step == self._last_global_step:
            if self.tracking_frequency == "batch":
                self._mark_step()
            return
        self._mark_step()
        self._last_global_step = global_step
        interval = trainer.log_every_n_steps
        if interval and global_step % interval == 0 and self.tracking_frequency != "epoch":
            self._log_figures(trainer, pl_module, on_epoch=False)

    @override
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Close the epoch; log its figures when tracking per epoch; check the budget."""
        session = self.session
        if session is None or not session.running:
            return
        if self.tracking_frequency == "epoch":
            session.mark_step()
        session.epoch_end()
        if self.tracking_frequency == "epoch":
            self._log_figures(trainer, pl_module, on_epoch=True)
        elif session.stop_requested:
            trainer.should_stop = True

    @override
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        """Open a ``validation`` window, so validation energy is recorded on its own."""
        if self.session is not None and self.session.running:
            self._validation_window = self.session.window("validation")
            self._validation_window.__enter__()

    @override
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Close the ``validation`` window."""
        self._close_validation_window()

    @override
    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Stop measuring, build the report (combined over ranks) and write it on global rank 0."""
        session = self.session
        if session is None or not session.running:
            return
        self._finish(trainer, "finished")
        report = session.report()
        report["training"] = {
            "framework": "lightning",
            "global_step_start": self._step_at_start,
            "global_step_end": int(trainer.global_step),
            "optimizer_steps": int(trainer.global_step) - self._step_at_start,
            "micro_batches": self._micro_batches,
            "accumulate_grad_batches": int(trainer.accumulate_grad_batches),
            "tracking_frequency": self.tracking_frequency,
            "stopped_by_budget": session.stop_requested,
        }
        self._report = report
        if trainer.is_global_zero:
            self.report_paths = write_reports(report, self.config.output_dir, self.options.report_formats)
            self.options.log_report_to_integrations(report, self.report_paths)

    @override
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Stop the sampler and record the run as failed; the exception goes on."""
        self._finish(trainer, "failed")

    @override
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Stop the sampler if the run ended without ``on_fit_end`` (interrupted, or only tested)."""
        self._finish(trainer, "failed")

    # Results -----------------------------------------------------------------------------------------

    def get_carbon_report(self) -> Dict[str, Any]:
        """The ``tracking_data`` dict: the final one after ``fit``, this process's so far during it.

        Raises:
            ConfigurationError: called before ``fit`` started.
        """
        if self._report is not None:
            return self._report
        if self.session is None:
            raise ConfigurationError("get_carbon_report() was called before fit() started; call it after trainer.fit()")
        return self.session.report(combine_ranks=False)


def _batch_size_of(batch: Any) -> Optional[int]:
    """The leading dimension of the batch's first tensor-like item, or None."""
    if hasattr(batch, "shape") and len(batch.shape) > 0:
        return int(batch.shape[0])
    if isinstance(batch, dict):
        items = list(batch.values())
    elif isinstance(batch, (list, tuple)):
        items = list(batch)
    else:
        return None
    for item in items:
        size = _batch_size_of(item)
        if size is not None:
            return size
    return None
