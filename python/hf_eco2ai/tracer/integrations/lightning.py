"""``LightningCallback``: ``Eco2AILightningCallback`` (energy, carbon, reports: the run lifecycle)
plus the Tracer API (gradient statistics, anomalies, metrics and checkpoints) for Lightning.

```python
trainer = lightning.pytorch.Trainer(callbacks=[LightningCallback(project="my-project", checkpoint_interval=100)])
trainer.fit(model)
```

It subclasses the ``Callback`` of every Lightning package installed (``lightning.pytorch`` and
``pytorch_lightning``), so either package's ``Trainer`` accepts it. The loss is read from the
batch outputs at the trainer's ``log_every_n_steps`` (when Lightning reads it itself); the
gradient statistics are taken at every optimiser step, in ``on_before_optimizer_step``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional, Sequence

from typing_extensions import override

from hf_eco2ai.integrations.lightning_hooks import Eco2AILightningTracking
from hf_eco2ai.reporting.files import DEFAULT_REPORT_FORMATS
from hf_eco2ai.tracer.config import DEFAULT_STORAGE_PATH
from hf_eco2ai.tracer.core.tracer import TrainingTracer
from hf_eco2ai.tracer.integrations.observer import TracerObserver, energy_config, tracer_config

__all__ = ["LightningCallback"]


def _callback_bases() -> List[type]:
    bases: List[type] = []
    try:
        from lightning.pytorch import Callback as LightningBase

        bases.append(LightningBase)
    except ImportError:
        pass
    try:
        from pytorch_lightning import Callback as PyTorchLightningBase

        if PyTorchLightningBase not in bases:
            bases.append(PyTorchLightningBase)
    except ImportError:
        pass
    if not bases:
        raise ImportError(
            "LightningCallback needs the lightning (or pytorch_lightning) package, which cannot be "
            "imported: pip install 'hf-eco2ai[lightning]'"
        )
    return bases


class LightningCallback(Eco2AILightningTracking, *_callback_bases()):  # type: ignore[misc]
    """Energy tracking and the Tracer API for ``Trainer.fit``.

    Args:
        project: the Tracer project (default: ``carbon_config``'s ``project_name``).
        checkpoint_interval: optimiser steps between checkpoints.
        carbon_config: the energy settings (``CarbonConfig``); default: the environment's, with
            report files in ``<storage_path>/reports``.
        meter, report_formats, tracking_frequency: as for ``Eco2AILightningCallback``.
        **tracer_settings: further ``TracerConfig`` fields (``storage_path``, ``gradient_layers``,
            ``stop_on_anomaly``, the thresholds...).

    Raises:
        ConfigurationError: an invalid setting, at construction.
    """

    def __init__(
        self,
        project: Optional[str] = None,
        checkpoint_interval: int = 1000,
        *,
        carbon_config: Any = None,
        meter: Any = None,
        report_formats: Sequence[str] = DEFAULT_REPORT_FORMATS,
        tracking_frequency: str = "step",
        **tracer_settings: Any,
    ) -> None:
        carbon = energy_config(carbon_config, project, Path(tracer_settings.get("storage_path", DEFAULT_STORAGE_PATH)))
        config = tracer_config(project, checkpoint_interval, tracer_settings, carbon.project_name)
        # Lightning's optimisers run the backward pass inside step() (a closure), so the
        # gradients are read in on_before_optimizer_step rather than by the optimiser pre-hook.
        self.tracer_observer = TracerObserver(config, optimizer_hook=False)
        super().__init__(
            carbon,
            tracking_frequency=tracking_frequency,
            meter=meter,
            store=config.store_file,
            report_formats=report_formats,
            observers=[self.tracer_observer],
        )
        self.tracer_config = config

    @property
    def tracer(self) -> Optional[TrainingTracer]:
        """The current (or last) run's ``TrainingTracer``; None before ``fit``."""
        return self.tracer_observer.tracer

    @override
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Start the run, and watch the module's gradients."""
        super().on_fit_start(trainer, pl_module)
        self.tracer_observer.watch(pl_module)

    @override
    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        """Read the gradients: complete, and not yet applied."""
        self.tracer_observer.capture_gradients()

    @override
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Mark the energy step; close the traced step when an optimiser step ended."""
        stepped = trainer.global_step != self._last_global_step
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if stepped:
            self._trace_step(trainer, outputs)

    def _trace_step(self, trainer: Any, outputs: Any) -> None:
        interval = trainer.log_every_n_steps
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and interval and trainer.global_step % interval == 0:
            self.tracer_observer.log({"loss": loss})
        self.tracer_observer.step()
        if self.tracer_observer.stop_requested:
            trainer.should_stop = True

    @override
    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """The last checkpoint while measuring, then the lifecycle's end (report with gradients).

        Waits until the run is in the store: the Tracer's queries read it as soon as ``fit()``
        returns."""
        self.tracer_observer.close_steps()
        super().on_fit_end(trainer, pl_module)
        self.lifecycle.wait_finished()

    @override
    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Keep what was traced (status ``failed``) and stop the sampler; the exception goes on."""
        self.tracer_observer.abort()
        super().on_exception(trainer, pl_module, exception)

    @override
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Keep what was traced if the run ended without ``on_fit_end``."""
        self.tracer_observer.abort()
        super().teardown(trainer, pl_module, stage)
