"""``Eco2AICallback``: energy and carbon tracking for the Hugging Face ``Trainer``.

```python
callback = Eco2AICallback(CarbonConfig(country_iso_code="FR"))
trainer = Trainer(..., callbacks=[callback])
trainer.train()
print(callback.get_carbon_report()["total_co2_kg"])
```

The training step costs one call: ``on_step_end`` marks the step boundary and does nothing else.
Draining records, carbon figures, the budget and logging happen in ``on_log``, ``on_epoch_end`` and
``on_train_end``. The callback adds its figures to the Trainer's ``logs`` dict and to
``state.log_history`` (so callbacks after it see them; ``install(trainer)`` puts it before the
``report_to`` integrations too), under these keys (units in the names):

- ``energy/step_joules``: mean energy per optimiser step since the previous log (J);
- ``energy/interval_joules``, ``power/mean_watts``: energy and mean power since the previous log;
- ``energy/total_kwh``: the run's energy so far, PUE applied;
- ``carbon/co2_kg``, ``carbon/intensity_g_per_kwh``: the run's CO2 so far and the intensity used;
- ``carbon/samples_per_kwh`` and, with a budget, ``carbon/budget_used_fraction``;
- with ``detailed_gpu_tracking``, ``power/<channel>_watts`` for every channel (``gpu:0``, ...).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as missing:
    raise ImportError(
        "Eco2AICallback needs the transformers package, which cannot be imported "
        f"({missing}): pip install 'hf-eco2ai[transformers]'"
    ) from missing

from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.integrations.run_lifecycle import RunLifecycle, RunObserver, RunOptions
from hf_eco2ai.reporting.files import DEFAULT_REPORT_FORMATS
from hf_eco2ai.session import TrackingSession

__all__ = ["Eco2AICallback"]

_LOGGED_METRICS = ("loss", "eval_loss", "learning_rate")


class Eco2AICallback(TrainerCallback):
    """Tracks the energy and carbon of ``Trainer.train()``.

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
            sources); it measures one ``train()``.
        store: where the run store lives, as ``TrackingSession`` takes it.
        report_formats: the report files written to ``output_dir`` at train end.
        observers: further followers of the run (``hf_eco2ai.integrations.run_lifecycle.RunObserver``).

    Raises:
        ConfigurationError: an invalid option, or an integration whose package is not installed
            (the message names the package to install).
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
        report_formats: Sequence[str] = DEFAULT_REPORT_FORMATS,
        observers: Sequence[RunObserver] = (),
    ) -> None:
        self.options = RunOptions.build(
            config=config, tracking_mode=tracking_mode, output_dir=output_dir,
            tracking_frequency=tracking_frequency, include_infrastructure=include_infrastructure,
            detailed_gpu_tracking=detailed_gpu_tracking, wandb_integration=wandb_integration,
            mlflow_integration=mlflow_integration, report_formats=report_formats,
        )
        self.lifecycle = RunLifecycle(self.options, framework="transformers", meter=meter, store=store,
                                      observers=observers)
        self.config = self.options.config
        self.tracking_frequency = self.options.tracking_frequency

    @property
    def session(self) -> Optional[TrackingSession]:
        """The current (or last) run's session; None before training."""
        return self.lifecycle.session

    @property
    def report_paths(self) -> Dict[str, Path]:
        """The report files written at train end, by format."""
        return self.lifecycle.report_paths

    def install(self, trainer: Any) -> "Eco2AICallback":
        """Add this callback to ``trainer`` ahead of every other one, and return it.

        The Trainer runs the ``report_to`` integrations (W&B, MLflow, TensorBoard...) before the
        callbacks passed to it, so those see a log before this callback adds the energy keys;
        installed first, it adds them in time for all of them. Use instead of ``callbacks=[...]``::

            Eco2AICallback(config).install(trainer)
        """
        callbacks = trainer.callback_handler.callbacks
        if self in callbacks:
            callbacks.remove(self)
        callbacks.insert(0, self)
        return self

    def setup(self, args: TrainingArguments, state: TrainerState, model: Any = None) -> TrackingSession:
        """Create and start this training run's session; idempotent within one ``train()`` call."""
        return self.lifecycle.start(model=model, global_step=state.global_step,
                                    samples_per_micro_batch=int(args.train_batch_size))

    # Hooks -------------------------------------------------------------------------------------------

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       model: Any = None, **kwargs: Any) -> None:
        """Start measuring: the first step opens here."""
        self.setup(args, state, model)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    **kwargs: Any) -> None:
        """Mark the optimiser step's end. Nothing else runs here."""
        self.lifecycle.mark_step()

    def on_substep_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       **kwargs: Any) -> None:
        """Count a micro-batch inside gradient accumulation (marks it when tracking per batch)."""
        self.lifecycle.substep_end()

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        """Add the energy and carbon figures to ``logs`` and ``state.log_history``."""
        logs = {} if logs is None else logs
        figures = self.lifecycle.log({key: logs[key] for key in _LOGGED_METRICS if key in logs}, state.global_step)
        _add_to_logs(figures, logs, state)
        control.should_training_stop |= self.lifecycle.stop_requested

    def on_epoch_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        """Close the epoch (its energy is reported per epoch) and check the budget."""
        control.should_log |= self.lifecycle.epoch_end()
        control.should_training_stop |= self.lifecycle.stop_requested

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        """Stop measuring, build the report (combined over ranks) and write it on the main process."""
        self.lifecycle.finish({"global_step_end": state.global_step,
                               "gradient_accumulation_steps": int(args.gradient_accumulation_steps)},
                              write_outputs=state.is_world_process_zero)

    # Results -----------------------------------------------------------------------------------------

    def get_carbon_report(self) -> Dict[str, Any]:
        """The ``tracking_data`` dict (docs/reports.md): ``total_co2_kg``, ``energy``, ``intensity``...

        After training it is the final report (combined over ranks in a distributed job); during
        training it is this process's report so far.

        Raises:
            ConfigurationError: called before training started.
        """
        return self.lifecycle.carbon_report()


def _add_to_logs(figures: Mapping[str, float], logs: Dict[str, Any], state: TrainerState) -> None:
    logs.update(figures)
    if figures and state.log_history and state.log_history[-1].get("step") == state.global_step:
        # The Trainer copied logs into its history before calling us: keep the two in step.
        state.log_history[-1].update(figures)
