"""``TransformersCallback``: ``Eco2AICallback`` (energy, carbon, reports: the run lifecycle) plus the
Tracer API (gradient statistics, anomalies, metrics and checkpoints) for the Hugging Face
``Trainer``.

```python
trainer = Trainer(model=model, args=training_args,
                  callbacks=[TransformersCallback(project="my-project", checkpoint_interval=100)])
trainer.train()
```

The Trainer logs its loss at ``logging_steps``, so the loss-spike detector sees one loss per log;
the gradient statistics are taken at every optimiser step. A traced step is closed after the
Trainer's log for it (or when the next step begins), so its metrics belong to it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

from transformers import TrainerControl, TrainerState, TrainingArguments

from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.integrations.transformers import Eco2AICallback
from hf_eco2ai.reporting.files import DEFAULT_REPORT_FORMATS
from hf_eco2ai.tracer.config import DEFAULT_STORAGE_PATH
from hf_eco2ai.tracer.core.tracer import TrainingTracer
from hf_eco2ai.tracer.integrations.observer import TracerObserver, energy_config, tracer_config

__all__ = ["TransformersCallback"]


class TransformersCallback(Eco2AICallback):
    """Energy tracking and the Tracer API for ``Trainer.train()``.

    Args:
        project: the Tracer project (default: ``carbon_config``'s ``project_name``).
        checkpoint_interval: optimiser steps between checkpoints.
        carbon_config: the energy settings (``CarbonConfig``); default: the environment's, with
            report files in ``<storage_path>/reports``.
        meter, report_formats, tracking_frequency: as for ``Eco2AICallback``.
        **tracer_settings: further ``TracerConfig`` fields (``storage_path``, ``gradient_layers``,
            ``stop_on_anomaly``, the thresholds...). The run store is ``<storage_path>/runs.sqlite``.

    Raises:
        ConfigurationError: an invalid setting, at construction.
    """

    def __init__(
        self,
        project: Optional[str] = None,
        checkpoint_interval: int = 1000,
        *,
        carbon_config: Optional[CarbonConfig] = None,
        meter: Any = None,
        report_formats: Sequence[str] = DEFAULT_REPORT_FORMATS,
        tracking_frequency: str = "step",
        **tracer_settings: Any,
    ) -> None:
        carbon = energy_config(carbon_config, project, Path(tracer_settings.get("storage_path", DEFAULT_STORAGE_PATH)))
        config = tracer_config(project, checkpoint_interval, tracer_settings, carbon.project_name)
        self.tracer_observer = TracerObserver(config)
        super().__init__(
            carbon,
            tracking_frequency=tracking_frequency,
            meter=meter,
            store=config.store_file,
            report_formats=report_formats,
            observers=[self.tracer_observer],
        )
        self.tracer_config = config
        self._step_open = False

    @property
    def tracer(self) -> Optional[TrainingTracer]:
        """The current (or last) run's ``TrainingTracer``; None before training."""
        return self.tracer_observer.tracer

    def _close_step(self) -> None:
        if self._step_open:
            self._step_open = False
            self.tracer_observer.step()

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any = None, **kwargs: Any
    ) -> None:
        """Start the run, and watch the model's gradients."""
        super().on_train_begin(args, state, control, model=model, **kwargs)
        self.tracer_observer.watch(model)

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Close the previous traced step if no log closed it."""
        self._close_step()

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        """Mark the energy step; the traced step stays open for the Trainer's log."""
        super().on_step_end(args, state, control, **kwargs)
        self._step_open = True

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        """Energy figures into ``logs``; the logs to the traced step, which closes here."""
        super().on_log(args, state, control, logs=logs, **kwargs)
        self.tracer_observer.log(logs or {})
        self._close_step()
        control.should_training_stop |= self.tracer_observer.stop_requested

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """The last checkpoint while measuring, then the lifecycle's end (report with gradients).

        Waits until the run is in the store: the Tracer's queries read it as soon as ``train()``
        returns."""
        self._close_step()
        self.tracer_observer.close_steps()
        super().on_train_end(args, state, control, **kwargs)
        self.lifecycle.wait_finished()
