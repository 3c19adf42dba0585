"""``Eco2AICallback``: energy and carbon tracking for the Hugging Face ``Trainer``.

```python
callback = Eco2AICallback(CarbonConfig(country_iso_code="FR"))
trainer = Trainer(..., callbacks=[callback])
trainer.train()
print(callback.get_carbon_report()["total_co2_kg"])
```

The training step costs one call: ``on_step_end`` marks the step boundary and does nothing else.
Carbon figures, the budget and logging happen in ``on_log``, ``on_epoch_end`` and ``on_train_end``;
the step records are drained on the session's background thread, which those hooks wake. The
callback adds its figures to the Trainer's ``logs`` dict and to
``state.log_history`` (so callbacks after it see them; ``install(trainer)`` puts it before the
``report_to`` integrations too), under these keys (units in the names):

- ``energy/step_joules``: mean energy per optimiser step since the previous log (J);
- ``energy/interval_joules``, ``power/mean_watts``: energy and mean power since the previous log;
- ``energy/total_kwh``: the run's energy so far, PUE applied;
- ``carbon/co2_kg``, ``carbon/intensity_g_per_kwh``: the run's CO2 so far and the intensity used;
- ``carbon/samples_per_kwh`` and, with a budget, ``carbon/budget_used_fraction``;
- with ``detailed_gpu_tracking``, ``power/<channel>_watts`` for every channel (``gpu:0``, ...).

``trainer.evaluate()`` runs inside an ``evaluate`` window and ``trainer.predict()`` inside a
``predict`` window, so the report shows their energy apart from training. The Trainer sends no
event before a loop's first batch, so the window opens when that batch ends and misses it. Called
outside ``train()``, each is a run of its own, with its own report and ``get_carbon_report()``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Dict, Mapping, Optional

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
except ImportError as missing:
    raise ImportError(
        "Eco2AICallback needs the transformers package, which cannot be imported "
        f"({missing}): pip install 'hf-eco2ai[transformers]'"
    ) from missing

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.tracked_callback import TrackedRunCallback
from hf_eco2ai.session import TrackingSession

__all__ = ["Eco2AICallback"]

logger = logging.getLogger(__name__)

_LOGGED_METRICS = ("loss", "eval_loss", "learning_rate")
EVALUATE_WINDOW = "evaluate"
PREDICT_WINDOW = "predict"
# How far up the stack the Trainer's evaluate()/predict() lies from a callback hook: hook,
# CallbackHandler.call_event, its on_prediction_step, evaluation_loop, evaluate or predict, with
# room for subclasses that wrap them.
_STACK_FRAMES_SEARCHED = 12


def _evaluation_loop_name() -> str:
    """``predict`` inside ``Trainer.predict()``, else ``evaluate``: the callback events of the two
    loops are the same, so the Trainer method on the stack tells them apart."""
    from transformers import Trainer

    frame = sys._getframe(1)
    for _ in range(_STACK_FRAMES_SEARCHED):
        if frame.f_back is None:
            break
        frame = frame.f_back
        if frame.f_code.co_name in (EVALUATE_WINDOW, PREDICT_WINDOW) and isinstance(
            frame.f_locals.get("self"), Trainer
        ):
            return frame.f_code.co_name
    return EVALUATE_WINDOW


class Eco2AICallback(TrainerCallback, TrackedRunCallback):
    """Tracks the energy and carbon of ``Trainer.train()``; the options are ``TrackedRunCallback``'s.

    Args:
        config, tracking_mode, output_dir, tracking_frequency, include_infrastructure,
        detailed_gpu_tracking, wandb_integration, mlflow_integration, meter, store,
        report_formats, observers: see ``hf_eco2ai.integrations.tracked_callback.TrackedRunCallback``.

    Raises:
        ConfigurationError: an invalid option, or an integration whose package is not installed
            (the message names the package to install).
    """

    framework = "transformers"
    _evaluation_window: Optional[str] = None
    _evaluation_run = False

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
        """Create and start this training run's session; idempotent within one ``train()`` call.

        Reports and the run store go to ``args.output_dir`` unless ``output_dir`` was set."""
        return self.lifecycle.start(
            model=model,
            global_step=state.global_step,
            samples_per_micro_batch=int(args.train_batch_size),
            framework_output_dir=args.output_dir,
        )

    # Hooks -------------------------------------------------------------------------------------------

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any = None, **kwargs: Any
    ) -> None:
        """Start measuring: the first step opens here."""
        if self._evaluation_window is not None:
            # An evaluate()/predict() that raised never sent its end event: end its window (and run) now.
            self._close_evaluation_window(state)
        self.setup(args, state, model)
        self.lifecycle.watch_phases(model, kwargs.get("optimizer"))

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        """Mark the optimiser step's end. Nothing else runs here."""
        self.lifecycle.mark_step()

    def on_substep_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Count a micro-batch inside gradient accumulation (marks it when tracking per batch)."""
        self.lifecycle.substep_end()

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        """Add the energy and carbon figures to ``logs`` and ``state.log_history``."""
        logs = {} if logs is None else logs
        figures = self.lifecycle.log({key: logs[key] for key in _LOGGED_METRICS if key in logs}, state.global_step)
        _add_to_logs(figures, logs, state)
        control.should_training_stop |= self.lifecycle.stop_requested

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Close the epoch (its energy is reported per epoch) and check the budget."""
        control.should_log |= self.lifecycle.epoch_end()
        control.should_training_stop |= self.lifecycle.stop_requested

    def on_prediction_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Open the ``evaluate`` or ``predict`` window at the loop's first batch (the first event a
        Trainer sends inside ``evaluate()``/``predict()``). Outside ``train()`` the loop is a run of
        its own, with its own report."""
        if self._evaluation_window is not None:
            return
        name = _evaluation_loop_name()
        if not self.lifecycle.running:
            try:
                self.lifecycle.start(
                    model=kwargs.get("model"), global_step=state.global_step, framework_output_dir=args.output_dir
                )
            except ConfigurationError as error:
                # The meter given at construction measured train() already: nothing to measure with.
                logger.warning("hf-eco2ai: %s() is not measured: %s", name, error)
                self._evaluation_window = name
                return
            self._evaluation_run = True
        self._evaluation_window = name
        self.lifecycle.open_window(name)

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        """Close the ``evaluate`` window (and the run of its own, outside ``train()``)."""
        self._close_evaluation_window(state)

    def on_predict(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, metrics: Any = None, **kwargs: Any
    ) -> None:
        """Close the ``predict`` window (and the run of its own, outside ``train()``)."""
        self._close_evaluation_window(state)

    def _close_evaluation_window(self, state: TrainerState) -> None:
        name, self._evaluation_window = self._evaluation_window, None
        if name is not None:
            self.lifecycle.close_window(name)
        if self._evaluation_run:
            self._evaluation_run = False
            self.lifecycle.finish_in_background(
                {"global_step_end": state.global_step, "loop": name or EVALUATE_WINDOW},
                write_outputs=state.is_world_process_zero,
            )

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Stop measuring; the report is built (combined over ranks) and written on the main
        process in the background: ``get_carbon_report()`` and ``report_paths`` wait for it."""
        self.lifecycle.finish_in_background(
            {
                "global_step_end": state.global_step,
                "gradient_accumulation_steps": int(args.gradient_accumulation_steps),
            },
            write_outputs=state.is_world_process_zero,
        )


def _add_to_logs(figures: Mapping[str, float], logs: Dict[str, Any], state: TrainerState) -> None:
    logs.update(figures)
    if figures and state.log_history and state.log_history[-1].get("step") == state.global_step:
        # The Trainer copied logs into its history before calling us: keep the two in step.
        state.log_history[-1].update(figures)
