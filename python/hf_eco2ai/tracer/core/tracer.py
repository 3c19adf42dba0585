"""``TrainingTracer``: one traced run: metrics, gradient statistics, anomalies, checkpoints, energy.

It is a thin layer over a ``TrackingSession`` (energy, carbon, the run store, Prometheus): the
tracer adds the gradient ring (``hf_eco2ai._core.GradientRing``), the per-step rows and the
checkpoints. Per step (``step()``) it does: hand the watcher's finished gradient rows to the ring,
push the loss (and the device memory on a GPU), mark the session's step, and keep the row in a
preallocated buffer; the store sees rows in batches through its background writer. Anomalies,
checkpoints and the session's drains happen only when there is one, every
``checkpoint_interval`` steps, or at ``finish()``.

Failure policy: a tracking fault (store, ring, watcher) is one warning plus a count in the
session's monitoring errors, and training goes on. Bad settings raise ``ConfigurationError`` at
``init``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Any, Deque, Dict, List, Mapping, Optional, Tuple

import numpy as np

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.tracer.anomalies import as_records, log_anomalies, new_ring, series_names
from hf_eco2ai.tracer.config import ANOMALY_TYPES, TracerConfig
from hf_eco2ai.tracer.step_rows import StepRows
from hf_eco2ai.tracer.storage import StorageBackend

logger = logging.getLogger("hf_eco2ai.tracer")

__all__ = ["TrainingTracer"]


def _number(value: Any) -> Optional[float]:
    """A logged value as a float, or None when it is not a number (a tensor is read once)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "numel", lambda: 1)() == 1:
        try:
            return float(item())
        except (TypeError, ValueError):
            return None
    return None


class TrainingTracer:
    """One traced run. Build it with ``hf_eco2ai.tracer.init`` (or directly, for several runs in
    one process).

    Args:
        config: the ``TracerConfig``.
        session: a running ``TrackingSession`` to attach to (the Trainer and Lightning callbacks
            pass theirs, and mark its steps themselves); ``None`` creates one over
            ``<storage_path>/runs.sqlite``, owns it and marks its steps in ``step()``.
        carbon_config: the ``CarbonConfig`` of a session created here (default: the environment's);
            its ``project_name`` is replaced by ``config``'s.
        meter: an ``EnergyMeter`` for a session created here (tests, custom sources).

    Threading: ``log``, ``step``, ``watch`` and ``finish`` belong to the training thread.

    Raises:
        ConfigurationError: invalid settings, or a store that cannot be opened.
    """

    def __init__(
        self, config: TracerConfig, *, session: Any = None, carbon_config: Any = None, meter: Any = None
    ) -> None:
        if not isinstance(config, TracerConfig):
            raise ConfigurationError(f"config = {type(config).__name__} is invalid: expected a TracerConfig")
        self.config = config
        self._owns_session = session is None
        if session is None:
            from hf_eco2ai.config import CarbonConfig
            from hf_eco2ai.session.tracking_session import TrackingSession

            if carbon_config is None:
                carbon = CarbonConfig(project_name=config.project_name)
            else:
                # The run is filed under the Tracer's project, whatever the energy config says.
                carbon = carbon_config.replace(project_name=config.project_name)
            self.storage = StorageBackend(config)
            self.storage.delete_expired_runs(config.project_name, config.retention_days)
            session = TrackingSession(carbon, meter=meter, store=self.storage.store)
        else:
            store = session.store
            self.storage = StorageBackend(config, store=store) if store is not None else StorageBackend(config)
            self.storage.delete_expired_runs(config.project_name, config.retention_days)
        self.session = session
        # A session without a store of its own records no run: the tracer's store must.
        self._registers_run = session.store is None
        self.storage.on_error = lambda error: self._fault("store", error)
        self.run_id: str = session.run_id
        self.run_name = config.run_name or f"{config.project_name}-{time.strftime('%Y%m%d-%H%M%S')}-{self.run_id[:6]}"
        self.start_time = time.time()
        self._step = 0
        self._metrics: Dict[str, Any] = {}
        self._step_loss: Optional[float] = None
        self._layers: List[str] = []
        self._names = series_names([])
        self._ring = new_ring(config, [])
        self._rows = StepRows(0, config.write_buffer_size, self._write_rows)
        self._watcher: Any = None
        self._recent: Deque[Tuple[int, Optional[float], Optional[float]]] = deque(maxlen=max(config.capture_samples, 1))
        self._anomaly_counts: Dict[str, int] = {}
        self._stop_requested = False
        self._stop_reason: Optional[str] = None
        self._last_checkpoint_joules: Optional[float] = None
        self._last_checkpoint_step = -1
        self._memory_reader: Any = None
        self._finished = False
        self._report: Optional[Dict[str, Any]] = None

    # Lifecycle ----------------------------------------------------------------------------------

    def start(self) -> "TrainingTracer":
        """Start the session (when owned) and record the run. Idempotent."""
        if self._owns_session:
            self.session.start()
        # Every type is exported from the start, at 0, so that increase() sees the first anomaly.
        self.session.count_anomalies(ANOMALY_TYPES, self._anomaly_counts)
        self._record_run()
        return self

    def _record_run(self) -> None:
        self._guard(
            "store",
            lambda: self.storage.create_run(
                self.run_id,
                self.config.project_name,
                self.run_name,
                self.start_time,
                self.config.as_dict(),
                layers=self._layers,
                tags=self.config.tags,
                notes=self.config.notes,
                register=self._registers_run,
            ),
        )

    @property
    def step_count(self) -> int:
        """Steps completed (``step()`` calls)."""
        return self._step

    @property
    def layers(self) -> List[str]:
        """The watched layer (or group) names, in gradient-row order."""
        return list(self._layers)

    @property
    def ring(self) -> Any:
        """The live ``GradientRing`` (read its history and rolling figures between steps)."""
        return self._ring

    @property
    def stop_requested(self) -> bool:
        """True once an anomaly listed in ``stop_on_anomaly`` was seen; the callbacks stop training,
        a hand-written loop should check it after ``step()``."""
        return self._stop_requested

    @property
    def anomalies_by_type(self) -> Dict[str, int]:
        return dict(self._anomaly_counts)

    @property
    def finished(self) -> bool:
        return self._finished

    # The documented calls -----------------------------------------------------------------------

    def watch(self, model: Any, optimizer_hook: bool = True) -> None:
        """Watch ``model``'s gradients (see ``hf_eco2ai.tracer.watch``). A no-op with
        ``track_gradients=False``. Call before the first ``step()``: watching later restarts the
        rolling loss statistics. The gradients are read at every ``optimizer.step()``; with
        ``optimizer_hook=False`` call ``capture_gradients()`` after each backward pass instead.

        Raises:
            ConfigurationError: the model has no trainable parameters, or a ``gradient_layers``
                pattern matches none.
        """
        if not self.config.track_gradients:
            return
        from hf_eco2ai.tracer.watch import GradientWatcher

        if self._watcher is not None:
            self._watcher.drain()
            self._watcher.close()
        watcher = GradientWatcher(
            model,
            self.config.gradient_layers,
            self._on_gradient_row,
            optimizer_hook,
            on_error=lambda error: self._fault("tracer", error),
        )
        if self._step > 0:
            logger.warning("hf-eco2ai: tracer: watch() after %d steps: the rolling statistics start again", self._step)
        self._rows.flush()
        self._watcher = watcher
        self._layers = list(watcher.layer_names)
        self._names = series_names(self._layers)
        self._ring = new_ring(self.config, self._layers)
        self._rows = StepRows(len(self._layers), self.config.write_buffer_size, self._write_rows, self._step)
        if watcher.device.type == "cuda":
            import torch

            device = watcher.device
            self._memory_reader = lambda: float(torch.cuda.max_memory_allocated(device))
        self._record_run()

    def capture_gradients(self) -> None:
        """Read the watched gradients now (once they are complete, before the optimiser step);
        for ``watch(model, optimizer_hook=False)``."""
        if self._watcher is not None:
            self._guard("tracer", self._watcher.capture)

    def log(self, metrics: Mapping[str, Any]) -> None:
        """Record metrics of the current step. ``loss`` feeds the loss-spike detector; every
        numeric value is kept for the checkpoints (the latest value of each name)."""
        for name, value in metrics.items():
            number = _number(value)
            self._metrics[name] = number if number is not None else value
            if name == "loss" and number is not None:
                self._step_loss = number

    def step(self) -> None:
        """Close the current step: its gradient statistics, loss and memory go to the ring and the
        step's row to the store; every ``checkpoint_interval`` steps a checkpoint is written."""
        step = self._step
        try:
            loss = self._step_loss
            memory = self._memory_reader() if self._memory_reader is not None else None
            # The row first: the watcher may hand over this very step's gradients (on a CPU).
            self._rows.add(step, loss, memory)
            self._recent.append((step, loss, memory))
            if self._watcher is not None:
                self._watcher.collect(step)
            raised = 0
            if loss is not None:
                raised += self._ring.push_loss(step, loss)
            if memory is not None:
                raised += self._ring.push_memory(step, memory)
            if raised:
                self._take_anomalies()
        except Exception as error:  # noqa: BLE001 - tracking never ends training
            self._fault("tracer", error)
        if self._owns_session:
            self.session.mark_step()
        self._step_loss = None
        self._step = step + 1
        if self._step % self.config.checkpoint_interval == 0:
            self.checkpoint()

    def close_steps(self) -> None:
        """Write the last checkpoint (if steps went by since the previous one) and hand every row
        to the store. ``finish`` does this; the callbacks call it before the session stops, so
        that the last checkpoint has the run's final energy."""
        if self._step - 1 > self._last_checkpoint_step:
            self.checkpoint()
        else:
            self._flush_rows()

    def finish(self, status: str = "finished", report: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """Write the last checkpoint, flush every row, stop the session (when owned) and return the
        run's report (``tracking_data`` with a ``gradients`` section: norms per layer group and the
        anomalies), which is also kept in the store. An attached tracer is given the report the
        lifecycle built, and adds its section to that dict. Idempotent.
        """
        if self._finished:
            return self._report or {}
        self._finished = True
        self.close_steps()
        if self._watcher is not None:
            self._watcher.close()
        if self._owns_session:
            report = dict(self.session.stop(status))
        if report is not None:
            final = report
            self._guard("store", lambda: self._store_report(final, status))
        self._guard("store", self.storage.close)
        self._report = report or {}
        return self._report

    def _store_report(self, report: Dict[str, Any], status: str) -> None:
        from hf_eco2ai.tracer.report_section import gradient_section

        self.storage.flush()
        section = gradient_section(self.storage, self.run_id)
        if section is not None:
            report["gradients"] = section
        run = report.get("run") or {}
        self.storage.finish_run(self.run_id, status, run.get("ended_unix_s") or time.time(), report)
        self.storage.flush()

    # Checkpoints --------------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Write a checkpoint now: waits for the gradient rows still on the device, hands every
        held row to the store, and records the latest metrics, gradient statistics, system
        metrics and the energy since the previous checkpoint."""
        if self._step == 0:
            return
        step = self._step - 1
        self._flush_rows()
        self._guard("checkpoint", lambda: self._write_checkpoint(step))
        self._last_checkpoint_step = step

    def _flush_rows(self) -> None:
        def flush() -> None:
            if self._watcher is not None:
                self._watcher.drain()
            self._take_anomalies()
            self._rows.flush()

        self._guard("tracer", flush)

    def _write_checkpoint(self, step: int) -> None:
        metrics = {
            name: value
            for name, value in self._metrics.items()
            if isinstance(value, (int, float, str, bool)) or value is None
        }
        system: Dict[str, Any] = {}
        energy_joules: Optional[float] = None
        steps_covered = step - self._last_checkpoint_step
        if self.config.track_system_metrics:
            system, total_joules = self._system_metrics()
            if total_joules is not None:
                previous = self._last_checkpoint_joules or 0.0
                energy_joules = total_joules - previous
                self._last_checkpoint_joules = total_joules
                if steps_covered > 0:
                    system["energy_joules_per_step"] = energy_joules / steps_covered
        gradient_stats = self._gradient_stats()
        gradient_stats["recent_steps"] = (
            [{"step": s, "loss": loss, "memory_bytes": memory} for s, loss, memory in self._recent]
            if self.config.capture_samples
            else []
        )
        self.storage.write_checkpoint(self.run_id, step, time.time(), metrics, gradient_stats, system, energy_joules)
        if self._owns_session:
            # An attached session is logged by its lifecycle, whose interval figures a log here
            # would cut short.
            numeric = {
                name: value
                for name, value in metrics.items()
                if isinstance(value, (int, float)) and not isinstance(value, bool)
            }
            self.session.log(numeric, step=step)

    def _gradient_stats(self) -> Dict[str, Any]:
        ring = self._ring
        stats: Dict[str, Any] = {}
        names = self._names
        layer_series = list(range(len(self._layers))) + ([ring.total_series] if self._layers else [])
        for series in layer_series + [ring.loss_series]:
            steps, rows = ring.history(series)
            count, mean, std, median = ring.rolling(series)
            if not steps:
                continue
            norm, largest, nonfinite = rows[-1]
            entry = {"step": steps[-1], "window": count, "median": median, "mean": mean, "std": std}
            if series == ring.loss_series:
                entry["value"] = norm
            else:
                entry.update({"norm": norm, "max_abs": largest, "nonfinite": nonfinite})
            stats[names[series]] = entry
        return stats

    def _system_metrics(self) -> Tuple[Dict[str, Any], Optional[float]]:
        snapshot = self.session.snapshot()
        if snapshot is None:
            return {}, None
        top_level = sum(
            joules
            for channel in snapshot.channels
            if channel.is_top_level
            for name, joules in snapshot.energy_joules_by_channel.items()
            if name == channel.name
        )
        system = {
            "energy_joules_total": top_level,
            "energy_kwh_total": snapshot.energy_kwh_total,
            "co2_kg_total": snapshot.co2_kg_total,
            "power_watts_by_channel": dict(snapshot.power_watts_by_channel),
            "gpus": [
                {
                    "index": gpu.index,
                    "memory_used_bytes": gpu.memory_used_bytes,
                    "utilization_percent": gpu.utilization_percent,
                    "temperature_c": gpu.temperature_c,
                }
                for gpu in snapshot.gpus
            ],
        }
        if self._memory_reader is not None:
            system["max_memory_allocated_bytes"] = self._memory_reader()
        return system, top_level if snapshot.channels else None

    # Rows and anomalies -------------------------------------------------------------------------

    def _on_gradient_row(self, step: int, row: bytearray) -> None:
        if self._ring.push_gradients(step, row):
            self._take_anomalies()
        self._rows.set_gradients(step, row)

    def _write_rows(
        self,
        steps: np.ndarray,
        recorded: np.ndarray,
        loss: np.ndarray,
        memory: np.ndarray,
        gradients: Optional[np.ndarray],
        has_gradients: np.ndarray,
    ) -> None:
        self._guard(
            "store",
            lambda: self.storage.write_step_statistics(
                self.run_id, steps, recorded, loss, memory, gradients, has_gradients
            ),
        )

    def _take_anomalies(self) -> None:
        raw = self._ring.drain_anomalies()
        if not raw:
            return
        records = as_records(raw, self._names, self.run_id)
        for record in records:
            kind = record["type"]
            self._anomaly_counts[kind] = self._anomaly_counts.get(kind, 0) + 1
            if self.config.stops_on(kind) and not self._stop_requested:
                self._stop_requested = True
                self._stop_reason = f"{kind} at step {record['step']} in {record['layer']}"
                logger.warning("hf-eco2ai: tracer: training is asked to stop (stop_on_anomaly): %s", self._stop_reason)
        log_anomalies(records)
        self._guard("store", lambda: self.storage.write_anomalies(self.run_id, records))
        self.session.count_anomalies(ANOMALY_TYPES, self._anomaly_counts)

    # Failure policy -----------------------------------------------------------------------------

    def _guard(self, kind: str, action: Any) -> None:
        try:
            action()
        except Exception as error:  # noqa: BLE001 - tracking never ends training
            self._fault(kind, error)

    def _fault(self, kind: str, error: BaseException) -> None:
        self.session.record_monitoring_error(
            f"tracer-{kind}",
            error,
            f"the Tracer's {kind} update failed ({type(error).__name__}: {error}); training goes on",
        )
