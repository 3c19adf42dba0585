"""The Lightning callback's behaviour, written once for both ``lightning`` and ``pytorch_lightning``.

``Eco2AILightningTracking`` holds every hook; ``hf_eco2ai.integrations.lightning`` and
``hf_eco2ai.integrations.pytorch_lightning`` each combine it with their package's ``Callback``
base, because a Trainer accepts only callbacks of its own package. Nothing here imports a
framework (``override`` comes from typing_extensions, which both depend on).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Optional

from typing_extensions import override

from hf_eco2ai.integrations.tracked_callback import TrackedRunCallback
from hf_eco2ai.reporting.summary import final_figures

if TYPE_CHECKING:
    # For the type checker the hooks below override Lightning's; at run time the base comes from
    # whichever package's Callback the concrete class also inherits.
    from lightning.pytorch import Callback as _HookBase
else:
    _HookBase = object

_VALIDATION_WINDOW = "validation"


class Eco2AILightningTracking(TrackedRunCallback, _HookBase):
    """Energy and carbon tracking for ``Trainer.fit`` (options as ``Eco2AICallback``'s).

    Each optimiser step is marked in ``on_train_batch_end`` (once per step when gradients
    accumulate; every micro-batch is counted). At the trainer's logging interval
    (``log_every_n_steps``) the figures go through ``pl_module.log_dict`` to every logger the
    Trainer has. Validation runs inside a ``validation`` window. The report is built and written
    at ``on_fit_end``, with the run's totals logged to every logger; ``teardown`` and
    ``on_exception`` stop the sampler whatever happens. Reports and the run store go to
    ``trainer.log_dir`` unless ``output_dir`` was set.

    Logged metrics (units in the names):
        ``energy/step_joules``, ``energy/interval_joules``, ``power/mean_watts``,
        ``energy/total_kwh``, ``carbon/co2_kg``, ``carbon/intensity_g_per_kwh``,
        ``carbon/samples_per_kwh`` (when the batch size is known), ``carbon/budget_used_fraction``
        (with a budget) and, with ``detailed_gpu_tracking``, ``power/<channel>_watts``.

    Args:
        config, tracking_mode, output_dir, tracking_frequency, include_infrastructure,
        detailed_gpu_tracking, wandb_integration, mlflow_integration, meter, store,
        report_formats, observers: see ``hf_eco2ai.integrations.tracked_callback.TrackedRunCallback``.

    Raises:
        ConfigurationError: an invalid option or a missing integration package, at construction.

    Example::

        from hf_eco2ai import CarbonConfig
        from hf_eco2ai.integrations.lightning import Eco2AILightningCallback

        trainer = lightning.pytorch.Trainer(callbacks=[Eco2AILightningCallback(CarbonConfig(country_iso_code="DE"))])
        trainer.fit(model, datamodule)
    """

    framework = "lightning"
    _last_global_step = 0

    def _log_figures(self, trainer: Any, pl_module: Any, on_epoch: bool) -> None:
        figures = self.lifecycle.log(_training_losses(trainer.callback_metrics), int(trainer.global_step))
        if figures:
            pl_module.log_dict(
                figures, on_step=not on_epoch, on_epoch=on_epoch, logger=bool(trainer.loggers), prog_bar=False
            )
        self._stop_if_requested(trainer)

    def _stop_if_requested(self, trainer: Any) -> None:
        if self.lifecycle.stop_requested:
            trainer.should_stop = True

    # Hooks -------------------------------------------------------------------------------------------

    @override
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Start measuring; the first step opens here."""
        self.lifecycle.start(
            model=pl_module, global_step=int(trainer.global_step), framework_output_dir=trainer.log_dir
        )
        self.lifecycle.watch_phases(pl_module, trainer.optimizers[0] if trainer.optimizers else None)
        self._last_global_step = int(trainer.global_step)

    @override
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Mark the optimiser step (once per step when accumulating) and log at the interval."""
        lifecycle = self.lifecycle
        if lifecycle.samples_per_micro_batch is None:
            lifecycle.samples_per_micro_batch = _batch_size_of(batch)
        global_step = trainer.global_step
        if global_step == self._last_global_step:
            lifecycle.substep_end()
            return
        lifecycle.mark_step()
        self._last_global_step = global_step
        interval = trainer.log_every_n_steps
        if interval and global_step % interval == 0 and self.tracking_frequency != "epoch":
            self._log_figures(trainer, pl_module, on_epoch=False)

    @override
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        """Close the epoch; log its figures when tracking per epoch; check the budget."""
        if self.lifecycle.epoch_end():
            self._log_figures(trainer, pl_module, on_epoch=True)
        self._stop_if_requested(trainer)

    @override
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        """Open a ``validation`` window, so validation energy is recorded on its own."""
        self.lifecycle.open_window(_VALIDATION_WINDOW)

    @override
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Close the ``validation`` window."""
        self.lifecycle.close_window(_VALIDATION_WINDOW)

    @override
    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Stop measuring, build the report (combined over ranks), write it on global rank 0, and
        log the run's totals to every logger (runs shorter than the logging interval included)."""
        report = self.lifecycle.finish(
            {
                "global_step_end": int(trainer.global_step),
                "accumulate_grad_batches": int(trainer.accumulate_grad_batches),
            },
            write_outputs=trainer.is_global_zero,
        )
        if report:
            for logger in trainer.loggers:
                logger.log_metrics(final_figures(report), step=int(trainer.global_step))

    @override
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Stop the sampler and record the run as failed; the exception goes on."""
        self.lifecycle.abort("failed")

    @override
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Stop the sampler if the run ended without ``on_fit_end`` (interrupted, or only tested)."""
        self.lifecycle.abort("failed")


def _training_losses(callback_metrics: Any) -> Dict[str, float]:
    """``loss`` (from ``loss`` or ``train_loss``) and ``eval_loss`` (from ``val_loss``), as logged."""
    losses: Dict[str, float] = {}
    for name in ("loss", "train_loss", "val_loss"):
        value = callback_metrics.get(name)
        if value is not None:
            losses["eval_loss" if name == "val_loss" else "loss"] = float(value)
    return losses


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
