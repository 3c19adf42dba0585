"""One tracked training run, written once for every adapter: options, start, counting, logging, end.

The Hugging Face and Lightning callbacks and ``hf_eco2ai.track`` translate their framework's
events into calls on a ``RunLifecycle``; each of their hooks is a line or three. Everything a run
does between those events lives here or below, in the session:

- ``start`` builds and starts the run's ``TrackingSession`` (one meter per run is the session's
  rule) and points ``mark_step`` at its lock-free mark;
- ``substep_end`` counts micro-batches that did not end an optimiser step (gradient
  accumulation), so that ``log`` knows how many samples went by;
- ``log`` returns the energy and carbon figures for the framework's logs (the session drains the
  step records on its own thread), and hands them to the observers (W&B, MLflow, ...);
- ``finish`` stops the session and builds the report (combined over ranks) on the training
  thread; writing the report files and telling the observers finish on a background thread
  (``report_paths``, ``carbon_report()`` and interpreter exit wait for it), so the time a run's
  end costs the training thread does not grow with the run's length. ``finish_in_background``
  leaves the training thread only the meter's stop: the last drain and the report are built on
  that thread too (unless the report is a collective over ranks).

Nothing here imports a training framework.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.reporting.files import DEFAULT_REPORT_FORMATS, REPORT_FILE_SUFFIXES
from hf_eco2ai.reporting.finishing import BackgroundFinish
from hf_eco2ai.reporting.run_outputs import log_run_summary, write_run_outputs
from hf_eco2ai.session import StoreSetting, TrackingSession
from hf_eco2ai.session.distributed import NODE_WIDE_SOURCES

__all__ = ["RunLifecycle", "RunObserver", "RunOptions", "TRACKING_FREQUENCIES", "model_name_of"]

logger = logging.getLogger(__name__)

TRACKING_FREQUENCIES = ("step", "epoch", "batch")
# How long a run's end waits for the writer thread before writing the reports anyway: its queue
# holds at most MAX_QUEUED_STEP_ROWS rows, seconds of work, so only a stuck disk reaches this.
_WRITER_CATCH_UP_S = 120.0
_INTEGRATION_PACKAGES = {"wandb_integration": "wandb", "mlflow_integration": "mlflow"}


class RunObserver(Protocol):
    """Something that follows a run: a tracker backend (W&B, MLflow, ...) or a face's own records.

    The lifecycle calls these off the hot path: ``on_run_start`` and ``on_log`` on the training
    thread, ``on_run_end`` on the thread that finishes the run's end. An exception from any of
    them is the observer's failure, not the run's: one warning per observer and method, and a
    count in the session's monitoring errors; training goes on.
    """

    def on_run_start(self, session: TrackingSession) -> None: ...

    def on_log(self, figures: Mapping[str, float], step: int) -> None: ...

    def on_run_end(self, report: Mapping[str, Any], report_paths: Mapping[str, Path]) -> None: ...


def _noop() -> None:
    return None


def _importable(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # ValueError: the module is blocked (None in sys.modules)
        return False


def _require_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} = {value!r} is invalid: expected True or False")
    return value


def _without_node_wide_sources(sources: Tuple[str, ...]) -> Tuple[str, ...]:
    """``sources`` without the node's CPU/DRAM sensors (``auto`` stays: the session then leaves
    the host out of it)."""
    if sources == ("auto",):
        return sources
    kept = tuple(source for source in sources if source not in NODE_WIDE_SOURCES)
    if not kept:
        raise ConfigurationError(
            f"include_infrastructure = False leaves no source of sources = {list(sources)!r}: "
            "add 'nvml' (GPUs) to sources, or keep include_infrastructure=True"
        )
    return kept


@dataclass(frozen=True)
class RunOptions:
    """A run's validated options (see ``Eco2AICallback`` for what each means)."""

    config: CarbonConfig
    tracking_frequency: str = "step"
    include_infrastructure: bool = True
    detailed_gpu_tracking: bool = True
    wandb_integration: bool = False
    mlflow_integration: bool = False
    report_formats: Tuple[str, ...] = DEFAULT_REPORT_FORMATS
    phase_windows: bool = False

    @classmethod
    def build(
        cls,
        *,
        config: Optional[CarbonConfig] = None,
        tracking_mode: Optional[str] = None,
        output_dir: Optional[Any] = None,
        tracking_frequency: str = "step",
        include_infrastructure: bool = True,
        detailed_gpu_tracking: bool = True,
        wandb_integration: bool = False,
        mlflow_integration: bool = False,
        report_formats: Sequence[str] = DEFAULT_REPORT_FORMATS,
        phase_windows: bool = False,
    ) -> "RunOptions":
        """Validate everything once, at construction, with errors that name the fix.

        Raises:
            ConfigurationError: a bad value, or an integration whose package is missing.
        """
        if config is None:
            config = CarbonConfig()
        elif not isinstance(config, CarbonConfig):
            raise ConfigurationError(
                f"config = {type(config).__name__} is invalid: expected a hf_eco2ai.CarbonConfig or None"
            )
        changes = {
            name: value
            for name, value in (("tracking_mode", tracking_mode), ("output_dir", output_dir))
            if value is not None
        }
        if changes:
            config = config.replace(**changes)
        if tracking_frequency not in TRACKING_FREQUENCIES:
            raise ConfigurationError(
                f"tracking_frequency = {tracking_frequency!r} is invalid: expected one of "
                + ", ".join(repr(option) for option in TRACKING_FREQUENCIES)
            )
        flags = {
            "include_infrastructure": include_infrastructure,
            "detailed_gpu_tracking": detailed_gpu_tracking,
            "wandb_integration": wandb_integration,
            "mlflow_integration": mlflow_integration,
            "phase_windows": phase_windows,
        }
        for name, value in flags.items():
            _require_bool(name, value)
        for flag, package in _INTEGRATION_PACKAGES.items():
            if flags[flag] and not _importable(package):
                raise ConfigurationError(
                    f"{flag} = True needs the {package!r} package, which is not installed: "
                    f"run `pip install 'hf-eco2ai[tracking]'` (or `pip install {package}`), or set {flag}=False"
                )
        if isinstance(report_formats, str) or not all(fmt in REPORT_FILE_SUFFIXES for fmt in report_formats):
            raise ConfigurationError(
                f"report_formats = {report_formats!r} is invalid: expected a list drawn from "
                + ", ".join(repr(fmt) for fmt in REPORT_FILE_SUFFIXES)
            )
        if not include_infrastructure:
            config = config.replace(sources=list(_without_node_wide_sources(tuple(config.sources))))
        return cls(
            config=config,
            tracking_frequency=tracking_frequency,
            include_infrastructure=include_infrastructure,
            detailed_gpu_tracking=detailed_gpu_tracking,
            wandb_integration=wandb_integration,
            mlflow_integration=mlflow_integration,
            report_formats=tuple(report_formats),
            phase_windows=phase_windows,
        )

    def integration_observers(self) -> List[RunObserver]:
        """The observer the W&B / MLflow flags ask for: it logs to the run the user has open,
        through the same backend classes as every other face."""
        from hf_eco2ai.integrations.backends.observer import active_run_observer

        observer = active_run_observer(wandb=self.wandb_integration, mlflow=self.mlflow_integration)
        return [] if observer is None else [observer]


class _RunEnd:
    """One run's end: its report once built, and the background work that writes it out."""

    report: Optional[Dict[str, Any]] = None
    finishing: "BackgroundFinish[Dict[str, Path]]"


def model_name_of(model: Any) -> Optional[str]:
    """The model's hub name when it has one, else its class name; None without a model."""
    if model is None:
        return None
    config = getattr(model, "config", None)
    name = getattr(model, "name_or_path", None) or getattr(config, "_name_or_path", None)
    return str(name) if name else type(model).__name__


class RunLifecycle:
    """One tracked training run, driven by an adapter's hooks.

    Args:
        options: the validated options (``RunOptions.build``).
        framework: recorded in the report's ``training`` section (``transformers``, ``lightning``...).
        meter: an ``EnergyMeter`` to measure with instead of one built from the config; it
            measures one run.
        store: the run store, as ``TrackingSession`` takes it.
        observers: followers of the run besides those the options' integration flags attach.

    Threading: every method runs on the training thread. ``mark_step`` is the hot path: while
    running it *is* the session's lock-free mark (one clock read, one push).

    A lifecycle may run several times (one ``train()`` after another); each run has its own
    session and report.
    """

    mark_step: Callable[[], Any]

    def __init__(
        self,
        options: RunOptions,
        *,
        framework: str,
        meter: Any = None,
        store: StoreSetting = True,
        observers: Sequence[RunObserver] = (),
    ) -> None:
        self.options = options
        self.framework = framework
        self._meter = meter
        self._store = store
        self._observers: List[RunObserver] = [*options.integration_observers(), *observers]
        self.session: Optional[TrackingSession] = None
        self._run_config = options.config
        self._end: Optional[_RunEnd] = None
        self._open_windows: Dict[str, Any] = {}
        self._phase_windows: Any = None
        self.mark_step = _noop
        self.samples_per_micro_batch: Optional[int] = None
        self._step_at_start = 0
        self._step_at_last_log = 0
        self._substeps = 0
        self._substeps_at_last_log = 0

    @property
    def config(self) -> CarbonConfig:
        """The settings of the current (or last) run: the options' config, with ``output_dir``
        taken from the framework when the options left it at its default."""
        return self._run_config

    @property
    def running(self) -> bool:
        return self.session is not None and self.session.running

    @property
    def report_paths(self) -> Dict[str, Path]:
        """The report files of the last finished run, per format (empty before, or when this
        process writes none). Waits until the run's end has finished writing them."""
        if self._end is None:
            return {}
        return self._end.finishing.result()

    def wait_finished(self, timeout_s: Optional[float] = None) -> bool:
        """Wait until the last run's end is fully written (store, per-step file, report files,
        observers); False if ``timeout_s`` ran out first."""
        if self._end is None:
            return True
        try:
            self._end.finishing.result(timeout_s)
        except TimeoutError:
            return False
        return True

    @property
    def stop_requested(self) -> bool:
        """True once the carbon budget is spent and ``stop_on_budget_exceeded`` is set."""
        return self.session is not None and self.session.stop_requested

    def add_observer(self, observer: RunObserver) -> None:
        """Follow the next runs with ``observer`` too (a running run's start is not replayed)."""
        self._observers.append(observer)

    # Start ---------------------------------------------------------------------------------------

    def start(
        self,
        *,
        model: Any = None,
        global_step: int = 0,
        samples_per_micro_batch: Optional[int] = None,
        framework_output_dir: Any = None,
    ) -> TrackingSession:
        """Build and start this run's session; does nothing while a run is going.

        ``framework_output_dir`` is where the framework writes its own outputs (the Trainer's
        ``args.output_dir``, Lightning's ``trainer.log_dir``): reports and the run store go there
        unless ``output_dir`` was set explicitly (argument, environment or ``eco2ai.yaml``).

        Raises:
            ConfigurationError: the meter given at construction already measured a run.
        """
        if self.session is not None and self.session.running:
            return self.session
        self._run_config = self.options.config
        if framework_output_dir and self._run_config.origin("output_dir") == "default":
            self._run_config = self._run_config.replace(output_dir=str(framework_output_dir))
        session = TrackingSession(
            self._run_config,
            meter=self._meter,
            store=self._store,
            model_name=model_name_of(model),
            include_host=self.options.include_infrastructure,
        )
        self.session = session.start()
        self._end = None
        self._step_at_start = self._step_at_last_log = int(global_step)
        self._substeps = self._substeps_at_last_log = 0
        self.samples_per_micro_batch = samples_per_micro_batch
        self.mark_step = _noop if self.options.tracking_frequency == "epoch" else session.mark_step
        self._notify("on_run_start", session)
        return session

    def watch_phases(self, model: Any, optimizer: Any) -> None:
        """With the ``phase_windows`` option, open ``forward``, ``backward`` and ``optimizer``
        windows around each phase of the model's training steps (torch hooks, taken off at the
        run's end), so the report's ``window_estimates`` can say what each phase costs even when
        it is shorter than the sensor's update period. Does nothing without the option, a run
        or a model."""
        if not self.options.phase_windows or not self.running or model is None or self._phase_windows is not None:
            return
        from hf_eco2ai.integrations.phase_windows import attach_phase_windows

        assert self.session is not None
        # Accelerate and similar wrappers keep the torch optimizer, whose step carries the hooks.
        inner = getattr(optimizer, "optimizer", None)
        self._phase_windows = attach_phase_windows(
            model, inner if hasattr(inner, "register_step_pre_hook") else optimizer, self.session.window
        )

    # Between steps -------------------------------------------------------------------------------

    def substep_end(self) -> None:
        """A micro-batch ended without an optimiser step (gradient accumulation): count it, and
        mark it when tracking per batch."""
        self._substeps += 1
        if self.options.tracking_frequency == "batch":
            self.mark_step()

    def log(self, metrics: Mapping[str, Any], step: int) -> Dict[str, float]:
        """Return the energy and carbon figures for the framework's logs (no drain on this thread).

        ``metrics`` are the training loop's (``loss``, ``eval_loss``, ``learning_rate`` are kept
        for the exporters); ``step`` is the optimiser step reached. The samples processed since
        the previous log are counted here from the optimiser steps and micro-batches in between.
        Observers receive the figures. Empty when no run is going.
        """
        session = self.session
        if session is None or not session.running:
            return {}
        micro_batches = (step - self._step_at_last_log) + (self._substeps - self._substeps_at_last_log)
        self._step_at_last_log, self._substeps_at_last_log = step, self._substeps
        session_metrics = dict(metrics)
        if self.samples_per_micro_batch is not None:
            session_metrics["samples"] = micro_batches * self.samples_per_micro_batch
        figures = session.log(session_metrics, step=step, channel_power=self.options.detailed_gpu_tracking)
        self._notify("on_log", figures, step)
        return figures

    def epoch_end(self) -> bool:
        """Close the epoch (its energy is reported per epoch) and check the budget.

        Returns True when the adapter should log now: tracking per epoch, each epoch is a step
        and its figures are logged at its end.
        """
        session = self.session
        if session is None or not session.running:
            return False
        per_epoch = self.options.tracking_frequency == "epoch"
        if per_epoch:
            session.mark_step()
        session.epoch_end()
        return per_epoch

    def window(self, name: str) -> ContextManager[Any]:
        """A named window (``with lifecycle.window("evaluate"):``); does nothing when no run is going."""
        if self.session is None or not self.session.running:
            return contextlib.nullcontext()
        return self.session.window(name)

    def open_window(self, name: str) -> None:
        """Open the window ``name`` for hooks that only see its start (closed by ``close_window``,
        or by the run's end); opening it again while open does nothing."""
        if name in self._open_windows or not self.running:
            return
        window = self.window(name)
        window.__enter__()
        self._open_windows[name] = window

    def close_window(self, name: str) -> None:
        window = self._open_windows.pop(name, None)
        if window is not None:
            window.__exit__(None, None, None)

    # End -----------------------------------------------------------------------------------------

    def finish(
        self, training: Mapping[str, Any], *, status: str = "finished", write_outputs: bool = True
    ) -> Dict[str, Any]:
        """Stop measuring and build the report (combined over ranks); write it in the background.

        ``training`` holds the framework's facts (``global_step_end`` and any of its own); the
        lifecycle adds the framework, the step counts, the tracking frequency and whether the
        budget stopped the run. The time spent here does not depend on the run's length. Then,
        on a background thread: the store and the per-step file catch up, and with
        ``write_outputs`` (the main process) the report files are written to ``output_dir`` and
        the observers get the final report. ``report_paths``, ``carbon_report()`` and interpreter
        exit wait for it. A report file that cannot be written is one warning naming the
        directory: the report is still in the run store and returned, and training ends normally.

        With an initialised ``torch.distributed`` process group every rank must call this.
        """
        session = self.session
        if session is None or not session.running:
            return self._last_report()
        facts = self._training_facts(training)
        self._stop_session(status, wait=False)
        end = _RunEnd()
        end.report = self._final_report(session, facts)
        end.finishing = BackgroundFinish(lambda: self._finish_outputs(session, end, status, write_outputs))
        self._end = end
        return end.report

    def finish_in_background(
        self, training: Mapping[str, Any], *, status: str = "finished", write_outputs: bool = True
    ) -> None:
        """``finish`` for a hook that does not need the report: the training thread only stops
        the meter (the run's energy ends here), and the last drain and the report are built on
        the background thread, before the files. ``carbon_report()`` waits for them. When the
        report is a collective over ranks it is built here, as ``finish`` does."""
        session = self.session
        if session is None or not session.running:
            return
        if session.report_is_collective:
            self.finish(training, status=status, write_outputs=write_outputs)
            return
        facts = self._training_facts(training)
        self._stop_session(status, wait=False, measurement_only=True)
        end = _RunEnd()

        def build_then_write() -> Dict[str, Path]:
            session.stop(status, wait=False)
            end.report = self._final_report(session, facts)
            return self._finish_outputs(session, end, status, write_outputs)

        end.finishing = BackgroundFinish(build_then_write)
        self._end = end

    def _training_facts(self, training: Mapping[str, Any]) -> Dict[str, Any]:
        """The report's ``training`` section, but for ``stopped_by_budget`` (known once the last
        drain is done)."""
        global_step_end = int(training.get("global_step_end", self._step_at_start))
        optimizer_steps = global_step_end - self._step_at_start
        return {
            "framework": self.framework,
            "global_step_start": self._step_at_start,
            "optimizer_steps": optimizer_steps,
            "micro_batches": optimizer_steps + self._substeps,
            **training,
            "global_step_end": global_step_end,
            "tracking_frequency": self.options.tracking_frequency,
        }

    @staticmethod
    def _final_report(session: TrackingSession, facts: Dict[str, Any]) -> Dict[str, Any]:
        report = session.report()
        report["training"] = {**facts, "stopped_by_budget": session.stop_requested}
        return report

    def _last_report(self) -> Dict[str, Any]:
        """The last finished run's report ({} before any), waiting for it to be built."""
        end = self._end
        if end is None:
            return {}
        try:
            end.finishing.result()
        except TimeoutError:
            # Asked by an observer of the run's end, on the thread writing it: built already.
            pass
        return end.report if end.report is not None else {}

    def _finish_outputs(
        self, session: TrackingSession, end: "_RunEnd", status: str, write_outputs: bool
    ) -> Dict[str, Path]:
        """The background part of ``finish``: never raises (a run's end never fails training)."""
        report = end.report
        assert report is not None
        if not session.wait_closed(_WRITER_CATCH_UP_S):
            session.record_monitoring_error(
                "store",
                TimeoutError(
                    f"the run store and the per-step file were still being written after {_WRITER_CATCH_UP_S:g} s"
                ),
            )
        if not write_outputs:
            return {}
        try:
            paths = self._write_outputs(report, status)
        except Exception as error:  # noqa: BLE001 - the report is still returned and stored
            session.record_monitoring_error("report-files", error)
            paths = {}
        self._notify("on_run_end", report, paths)
        log_run_summary(report, paths)
        return paths

    def abort(self, status: str = "failed") -> None:
        """Stop measuring without writing reports (an exception, or a run torn down early). The
        run store keeps what was measured, under ``status``."""
        if self.running:
            self._stop_session(status)

    def carbon_report(self) -> Dict[str, Any]:
        """The final report after ``finish``; this process's report so far during a run.

        Raises:
            ConfigurationError: no run has started yet (the message names the framework's call).
        """
        if self._end is not None:
            return self._last_report()
        if self.session is None:
            started_by = {"transformers": "trainer.train()", "lightning": "trainer.fit()"}.get(
                self.framework, "the tracked run"
            )
            raise ConfigurationError(
                f"get_carbon_report() was called before training started; call it after {started_by}"
            )
        return self.session.report(combine_ranks=False)

    def _stop_session(self, status: str, wait: bool = True, measurement_only: bool = False) -> None:
        assert self.session is not None
        self.mark_step = _noop
        if self._phase_windows is not None:
            self._phase_windows, phase_windows = None, self._phase_windows
            phase_windows.remove()
        for name in list(self._open_windows):
            self.close_window(name)
        if measurement_only:
            self.session.stop_measuring()
        else:
            self.session.stop(status, wait=wait)

    def _write_outputs(self, report: Dict[str, Any], status: str) -> Dict[str, Path]:
        """The report files and the run's ``emissions.csv`` row; the run store has the report already."""
        return write_run_outputs(
            report,
            self.config.output_dir,
            self.options.report_formats,
            status,
            lambda error: self._output_failed(report, error),
        )

    def _output_failed(self, report: Dict[str, Any], error: OSError) -> None:
        message = (
            f"could not write the report files to {self.config.output_dir} ({type(error).__name__}: "
            f"{error}); the report is kept in the run store (hf-eco2ai report RUN) and training goes on"
        )
        if self.session is not None:
            self.session.record_monitoring_error("report-files", error, message)
        report["warnings"] = [*report.get("warnings", []), {"code": "report-files-failed", "message": message}]
        report["monitoring_errors_total"] = report.get("monitoring_errors_total", 0) + 1

    def _notify(self, method: str, *args: Any) -> None:
        for observer in self._observers:
            try:
                getattr(observer, method)(*args)
            except Exception as error:  # noqa: BLE001 - an observer must never fail the training run
                self._observer_failed(observer, method, error)

    def _observer_failed(self, observer: Any, method: str, error: Exception) -> None:
        name = type(observer).__name__
        message = f"{name}.{method} failed ({type(error).__name__}: {error}); the run goes on without it"
        if self.session is not None:
            self.session.record_monitoring_error(f"observer-{name}", error, message)
        else:
            logger.warning("hf-eco2ai: %s", message)
