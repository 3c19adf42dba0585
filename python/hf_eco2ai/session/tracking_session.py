"""``TrackingSession``: one run's meter, carbon figures, budget, store and exporters.

Every adapter (Trainer and Lightning callbacks, ``track``, the seed faces) talks to a session and
to nothing below it. The training loop only ever calls ``mark_step()``, which forwards to the
meter's lock-free mark. Everything else (draining records, carbon arithmetic, the budget, store
writes, exporter state) happens in ``log``/``drain``/``epoch_end`` at log intervals, or on the
session's background thread every ``measurement_interval`` seconds.

This module never imports torch, transformers or lightning: ``report()`` reaches torch only
through ``hf_eco2ai.session.distributed``, and only when a process group is already initialised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import sys
import threading
import time
import uuid
import weakref
from dataclasses import asdict
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from hf_eco2ai import __version__
from hf_eco2ai.carbon.budget import CarbonBudget
from hf_eco2ai.carbon.comparisons import compute_comparisons
from hf_eco2ai.carbon.impact import JOULES_PER_KWH
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.carbon.resolve import IntensityResolver
from hf_eco2ai.meter.channels import ChannelInfo
from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.session.distributed import (
    RankInfo, gather_across_ranks, own_gpu_devices, process_group_is_initialised, sources_for_rank,
)
from hf_eco2ai.errors import CarbonTrackingError, ConfigurationError, SensorUnavailableError
from hf_eco2ai.meter.gpu_stats import read_gpu_stats
from hf_eco2ai.meter.flags import FLAG_BOUNDARIES_DROPPED
from hf_eco2ai.session import fork_safety
from hf_eco2ai.session.run_records import RunRecords
from hf_eco2ai.session.snapshot import SessionSnapshot
from hf_eco2ai.store.run_store import RunIdentity, RunStore, RunWriter, default_store_path

logger = logging.getLogger(__name__)

REPORT_SCHEMA_VERSION = 1
_MIN_RATE_SPAN_S = 1.0

StoreSetting = Union[bool, str, "os.PathLike[str]", RunStore, None]

# What an absent meter (a rank with nothing of its own to measure) reports.
_NO_TOTALS: Dict[str, Any] = {
    "t_s": None, "first_reading_s": None, "joules": {}, "watts": {}, "errors_by_channel": {},
    "sensor_errors": 0, "steps_marked": 0, "boundaries_dropped": 0, "records_dropped": 0,
    "trace_dropped": 0,
}


class TrackingSession:
    """One tracked run.

    Args:
        config: the settings; ``None`` reads them from the environment and ``eco2ai.yaml``.
        meter: an ``EnergyMeter`` to use (not yet started); ``None`` builds one from
            ``config.sources``/``config.rate_hz`` for this rank: node-wide sensors on local rank 0
            only, and only the GPUs this rank owns.
        store: ``True`` keeps the run in ``<output_dir>/runs.sqlite``; ``False``/``None`` keeps no
            store; a path or a ``RunStore`` chooses the file.
        model_name: recorded with the run (adapters pass the model's name).
        include_host: measure the node's CPU and DRAM too (``False``: GPUs only).
        environ: where RANK/LOCAL_RANK/WORLD_SIZE are read (``os.environ`` by default).

    Threading: ``mark_step`` may be called from the training thread while ``snapshot`` runs on an
    exporter thread; every other method takes the session's lock. A session is one run:
    ``start`` after ``stop`` raises.

    Raises:
        ConfigurationError: invalid settings or distributed environment.
        SensorUnavailableError: a source named explicitly in ``config.sources`` cannot run here.
    """

    def __init__(
        self,
        config: Optional[CarbonConfig] = None,
        meter: Any = None,
        *,
        store: StoreSetting = True,
        model_name: Optional[str] = None,
        include_host: bool = True,
        environ: Optional[Mapping[str, str]] = None,
    ) -> None:
        if config is not None and not isinstance(config, CarbonConfig):
            raise ConfigurationError(
                f"config = {type(config).__name__} is invalid: expected a hf_eco2ai.CarbonConfig or None"
            )
        self.config = CarbonConfig() if config is None else config
        self.rank_info = RankInfo.from_env(environ)
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self.model_name = model_name
        self.run_id = uuid.uuid4().hex
        self._left_to_local_rank_0 = False
        self._nothing_to_measure_reason: Optional[str] = None
        if meter is not None:
            _claim_meter_for_one_run(meter)
        self._meter = meter if meter is not None else self._build_meter(include_host, environ)
        self._store = self._open_store(store)
        self._writer: Optional[RunWriter] = None
        self._resolver = IntensityResolver(self.config)
        self._budget = (None if self.config.carbon_budget_kg is None else CarbonBudget(
            self.config.carbon_budget_kg, stop_on_exceeded=self.config.stop_on_budget_exceeded))
        self._lock = threading.RLock()
        fork_safety.register(self)
        self._state = "new"
        self._started_unix_s: Optional[float] = None
        self._ended_unix_s: Optional[float] = None
        self._channels: List[ChannelInfo] = []
        self._records = RunRecords([], [])
        self._intensity: Optional[IntensityResult] = None
        self._samples_total: Optional[float] = None
        self._latest_metrics: Dict[str, Optional[float]] = {"loss": None, "eval_loss": None, "learning_rate": None}
        self._warnings: List[Dict[str, Any]] = []
        self._warned: set = set()
        self._errors_by_type: Dict[str, int] = {}
        self._sensor_errors_seen: Dict[str, int] = {}
        self._last_log_point = (0.0, 0.0, 0)
        self._rate_point: Optional[Tuple[float, float]] = None
        self._energy_rate_kwh_per_hour: Optional[float] = None
        self._final_report: Dict[str, Any] = {}
        self._strict_failure: Optional[str] = None
        self._drainer: Optional[threading.Thread] = None
        self._drainer_stop = threading.Event()
        self._exporter: Any = None

    # Construction helpers ------------------------------------------------------------------------

    def _build_meter(self, include_host: bool, environ: Optional[Mapping[str, str]]) -> Any:
        from hf_eco2ai.meter.energy_meter import EnergyMeter

        sources, host_allowed, self._left_to_local_rank_0 = sources_for_rank(
            self.config.sources, self.rank_info, include_host)
        if not sources:
            self._nothing_to_measure_reason = "every configured source is node-wide and left to local rank 0"
            return None
        try:
            return EnergyMeter(sources=list(sources), rate_hz=self.config.rate_hz,
                               devices=own_gpu_devices(self.rank_info, environ), include_host=host_allowed)
        except SensorUnavailableError as unavailable:
            if sources != ("auto",) or self.config.strict:
                raise
            # "auto" names no source in particular: a rank without a GPU of its own (or a CPU run
            # asked to leave the host out) has nothing to measure, which is no reason to fail.
            self._nothing_to_measure_reason = str(unavailable)
            return None

    def _open_store(self, store: StoreSetting) -> Optional[RunStore]:
        if store is False or store is None:
            return None
        if isinstance(store, RunStore):
            return store
        if store is True:
            return RunStore(default_store_path(self.config.output_dir))
        if isinstance(store, (str, os.PathLike)):
            return RunStore(store)
        raise ConfigurationError(
            f"store = {store!r} is invalid: expected True (runs.sqlite in output_dir), False, a path or a RunStore"
        )

    @property
    def meter(self) -> Any:
        """The ``EnergyMeter`` this session owns (None on a rank that has nothing to measure)."""
        return self._meter

    @property
    def store(self) -> Optional[RunStore]:
        return self._store

    @property
    def exporter(self) -> Any:
        """The Prometheus export (``prometheus.SessionExport``) when ``prometheus_enabled``, else None."""
        return self._exporter

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def channels(self) -> List[ChannelInfo]:
        return list(self._channels)

    @property
    def intensity(self) -> IntensityResult:
        """The grid intensity in use, with its provenance (resolved at ``start()``, refreshed by the
        background drain when a live API is configured).

        Raises:
            ConfigurationError: before ``start()``.
        """
        if self._intensity is None:
            raise ConfigurationError("the intensity is resolved by start(): call start() first")
        return self._intensity

    # Lifecycle -----------------------------------------------------------------------------------

    def start(self) -> "TrackingSession":
        """Start the meter, resolve the intensity, open the store and the exporter. Idempotent.

        Raises:
            CarbonTrackingError: the session was stopped already (a session is one run), or
                ``strict`` is set and the live intensity API failed.
        """
        with self._lock:
            if self._state == "running":
                return self
            if self._state != "new":
                raise CarbonTrackingError("this TrackingSession has stopped; create a new one for another run")
            self._intensity = self._resolver.resolve()
            if self.config.prometheus_enabled:
                # First, so that a taken port fails the start before anything runs.
                self._exporter = self._start_exporter()
            self._started_unix_s = time.time()
            if self._meter is not None:
                self._meter.start()
                self._channels = list(self._meter.channels())
                # The hot path without a Python frame of ours: while running, the instance's
                # mark_step *is* the meter's (Rust) mark, shadowing the no-op method below.
                self.mark_step = self._meter.mark_step  # type: ignore[method-assign]
            elif self._nothing_to_measure_reason is not None:
                self._warn_once("nothing-measured", f"this process measures no energy: {self._nothing_to_measure_reason}")
            self._records = RunRecords([c.name for c in self._channels], [c.parent is None for c in self._channels])
            self._records.set_origin(self._totals()["first_reading_s"])
            self._rate_point = (time.monotonic(), 0.0)
            if self._store is not None:
                self._writer = self._store.writer(on_error=self._on_store_error)
                self._writer.begin_run(RunIdentity(
                    run_id=self.run_id, project_name=self.config.project_name,
                    experiment_id=self.config.experiment_id, model_name=self.model_name,
                    host=self.rank_info.host, rank=self.rank_info.rank,
                    local_rank=self.rank_info.local_rank, world_size=self.rank_info.world_size,
                    started_unix_s=self._started_unix_s, channels=[asdict(c) for c in self._channels],
                    intensity=asdict(self.intensity), config=self.config.as_dict(),
                ))
            self._state = "running"
            self._drainer_stop.clear()
            self._drainer = threading.Thread(target=self._drain_periodically, name="hf-eco2ai-session",
                                             daemon=True)
            self._drainer.start()
        return self

    def mark_step(self) -> None:
        """Close the open step and open the next: the only call on the training hot path.

        While running this is the meter's lock-free mark itself (one clock read and one push);
        before ``start()`` and after ``stop()`` it does nothing. Never raises. Adapters may keep a
        reference to ``session.mark_step`` taken after ``start()``, until they stop the session.
        """

    def stop(self, status: str = "finished") -> Dict[str, Any]:
        """Stop measuring, drain the last records, store the final report, and return it.

        ``status`` (``finished`` or ``failed``) is what the store records. Idempotent: later calls
        return the same report. The report is this rank's alone (no collective call).
        """
        with self._lock:
            if self._state == "stopped":
                return self._final_report
            if self._state == "new":
                self.start()
            self.__dict__.pop("mark_step", None)
            self._state = "stopping"
        self._drainer_stop.set()
        if self._drainer is not None:
            self._drainer.join()
        with self._lock:
            if self._meter is not None:
                self._meter.stop()
            self._ended_unix_s = time.time()
            self._drain_locked(final=True)
            self._final_report = self._local_report()
            self._state = "stopped"
        # Outside the lock: the writer's thread reports a failed commit through _count_error,
        # which takes the lock, and close() waits for that thread.
        if self._writer is not None:
            self._writer.finish_run(self.run_id, status, self._ended_unix_s, self._final_report)
            self._writer.close()
        if self._exporter is not None:
            self._stop_exporter()
        if self.config.prometheus_pushgateway_url is not None:
            self._push_final_figures()
        return self._final_report

    def __enter__(self) -> "TrackingSession":
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop("failed" if exc_type is not None else "finished")

    # Between steps -------------------------------------------------------------------------------

    def log(self, metrics: Optional[Mapping[str, Any]] = None, step: Optional[int] = None,
            channel_power: bool = False) -> Dict[str, float]:
        """Record the training loop's metrics and return the energy figures for its logs.

        ``metrics`` may hold ``loss``, ``eval_loss``, ``learning_rate`` (kept for the snapshot) and
        ``samples``: the number of samples processed since the previous ``log`` (added to the run's
        total). Every numeric entry is stored with the run. Drains first, so figures are fresh.

        Returns (units in the keys): ``energy/interval_joules`` and ``power/mean_watts`` (top-level
        channels, no PUE, since the previous ``log``), ``energy/step_joules`` (that energy per step
        marked since then), ``energy/total_kwh`` (PUE applied), ``carbon/co2_kg``,
        ``carbon/intensity_g_per_kwh``, and when known ``carbon/samples_per_kwh`` and
        ``carbon/budget_used_fraction``; with ``channel_power``, ``power/<channel>_watts`` (the
        sensor's latest power) for every channel. Empty when the session is not running.
        """
        numeric = {key: float(value) for key, value in (metrics or {}).items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool)}
        with self._lock:
            if "samples" in numeric:
                self._samples_total = (self._samples_total or 0.0) + numeric["samples"]
            for key in self._latest_metrics:
                if key in numeric:
                    self._latest_metrics[key] = numeric[key]
            if self._state != "running":
                return {}
            totals = self._drain_locked()
            self._raise_strict_failure()
            # The totals the budget was just checked against, so the figures and the stop agree.
            figures = self._interval_figures(totals, channel_power)
            if self._writer is not None:
                self._writer.add_log(self.run_id, time.time(), step, {**numeric, **figures})
            return figures

    def epoch_end(self) -> None:
        """Close the current epoch: every step marked so far belongs to it or to an earlier one."""
        with self._lock:
            if self._state != "running":
                return
            totals = self._totals()
            self._records.end_epoch(int(totals["steps_marked"]), totals["t_s"])
            self._drain_locked()
            self._raise_strict_failure()

    def window(self, name: str) -> Any:
        """A named span (context manager and decorator) recorded with its own energy, e.g.
        ``with session.window("eval"):``. Does nothing on a rank that measures nothing."""
        if self._meter is None:
            return contextlib.nullcontext()
        return self._meter.window(name)

    @property
    def epoch_count(self) -> int:
        return self._records.epoch_count

    def drain(self) -> None:
        """Pull the resolved step, window and power records; update carbon, budget, store, exporter.

        Raises:
            CarbonTrackingError: ``strict`` is set and a sensor failed since the last drain.
        """
        with self._lock:
            if self._state in ("running", "stopping"):
                self._drain_locked()
                self._raise_strict_failure()

    def flush(self, timeout_s: Optional[float] = 30.0) -> bool:
        """Drain, then wait until the store has committed everything so far (False on timeout).

        Off the hot path only: it waits for a disk write (for checkpoints, or before a risky step).
        """
        self.drain()
        writer = self._writer
        return True if writer is None else writer.flush(timeout_s)

    def _raise_strict_failure(self) -> None:
        """With ``strict``, a mid-run sensor failure (seen by any drain, the background one
        included) is raised by the next drain on the caller's thread: never by mark_step, never
        by stop(), and once."""
        failure, self._strict_failure = self._strict_failure, None
        if failure is not None:
            raise CarbonTrackingError(failure)

    @property
    def stop_requested(self) -> bool:
        """True once the carbon budget is exceeded and ``stop_on_budget_exceeded`` is set.

        Updated at every drain; a plain attribute read, so adapters may check it anywhere."""
        return self._budget is not None and self._budget.should_stop

    # The work done off the hot path --------------------------------------------------------------

    def _totals(self) -> Dict[str, Any]:
        return self._meter.totals() if self._meter is not None else dict(_NO_TOTALS)

    def _drain_periodically(self) -> None:
        while not self._drainer_stop.wait(float(self.config.measurement_interval)):
            try:
                # The live API (when configured) answers from its cache or within its own timeout;
                # asking here keeps any network wait off the training thread.
                intensity = self._resolver.resolve()
                with self._lock:
                    if self._state != "running":
                        return
                    self._intensity = intensity
                    self._drain_locked()
            except Exception as error:  # noqa: BLE001 - a background failure must never end training
                self._count_error("session", error)

    def _drain_locked(self, final: bool = False) -> Dict[str, Any]:
        """Returns the meter totals the drain ended with."""
        if self._meter is None:
            return self._totals()
        steps = self._meter.drain_steps()
        windows = self._meter.drain_windows()
        trace = self._meter.drain_trace()
        totals = self._meter.totals()
        self._records.set_origin(totals["first_reading_s"])
        if len(steps):
            self._take_steps(steps)
        power_bins = self._records.add_power(trace.t_s, trace.watts)
        if final:
            power_bins += self._records.flush_power()
        if self._writer is not None:
            if len(windows):
                top = self._records.top_level
                self._writer.add_windows(
                    self.run_id, windows.name, windows.t0_s - (self._records.origin_s or 0.0),
                    windows.t1_s - (self._records.origin_s or 0.0), windows.joules[:, top].sum(axis=1),
                    windows.flags, windows.joules)
            for t_s, watts in power_bins:
                self._writer.add_power(self.run_id, t_s, watts.tolist())
        self._check_meter_health(totals)
        self._update_rates_and_budget(totals)
        if self._writer is not None:
            self._writer.update_latest(self.run_id, self._latest_figures(totals), asdict(self.intensity))
        return totals

    def _take_steps(self, steps: Any) -> None:
        batch = self._records.add_steps(steps)
        if np.any(batch.flags & FLAG_BOUNDARIES_DROPPED):
            self._warn_once("ring-overflow", "step boundaries were dropped because the meter's queue filled "
                            "up between drains; lower measurement_interval")
        if self._writer is not None and self.config.tracking_mode == "detailed":
            self._writer.add_steps(self.run_id, batch.index, batch.epoch, batch.t0_s, batch.t1_s,
                                   batch.joules, batch.flags, batch.joules_by_channel)

    def _check_meter_health(self, totals: Mapping[str, Any]) -> None:
        failed_now = []
        for channel, count in totals["errors_by_channel"].items():
            seen = self._sensor_errors_seen.get(channel, 0)
            if count > seen:
                self._errors_by_type["sensor"] = self._errors_by_type.get("sensor", 0) + count - seen
                self._sensor_errors_seen[channel] = count
                failed_now.append(channel)
        for channel in failed_now:
            self._warn_once(
                "sensor-failed",
                f"sensor channel {channel} failed during the run; its readings since are missing, the "
                "steps concerned are flagged sensor-error and the report is marked incomplete; "
                "training goes on", channel=channel, t_s=self._records.relative(totals["t_s"]))
        if failed_now and self.config.strict:
            self._strict_failure = f"strict=True and sensor channel(s) {', '.join(failed_now)} failed mid-run"
        dropped = int(totals.get("records_dropped", 0)) + int(totals.get("boundaries_dropped", 0))
        if dropped:
            self._warn_once("ring-overflow", f"{dropped} step boundaries or records were dropped because "
                            "the meter's queues filled up between drains; lower measurement_interval")

    def _update_rates_and_budget(self, totals: Mapping[str, Any]) -> None:
        now = time.monotonic()
        kwh = self._kwh(totals)
        # Drains can follow each other within milliseconds (epoch end, then a log): a rate over
        # such a span says nothing, so the rate moves on only after at least a second.
        if self._rate_point is None or now - self._rate_point[0] >= _MIN_RATE_SPAN_S:
            if self._rate_point is not None:
                self._energy_rate_kwh_per_hour = (kwh - self._rate_point[1]) / (now - self._rate_point[0]) * 3600.0
            self._rate_point = (now, kwh)
        if self._budget is None:
            return
        status = self._budget.record_total(kwh * self.intensity.g_per_kwh / 1000.0)
        if status.exceeded:
            action = ("training is asked to stop" if self._budget.stop_on_exceeded
                      else "training goes on (stop_on_budget_exceeded is off)")
            # CarbonBudget has logged this already; the report keeps it too.
            self._warn_once("budget-exceeded", f"carbon budget of {status.budget_kg:g} kg CO2e exceeded "
                            f"({status.used_kg:.6g} kg used); {action}", log=False)

    def _warn_once(self, code: str, message: str, channel: Optional[str] = None,
                   t_s: Optional[float] = None, log: bool = True) -> None:
        if (code, channel) in self._warned:
            return
        self._warned.add((code, channel))
        entry: Dict[str, Any] = {"code": code, "message": message}
        if channel is not None:
            entry["channel"] = channel
        if t_s is not None:
            entry["t_s"] = t_s
        self._warnings.append(entry)
        if log:
            logger.warning("hf_eco2ai: %s", message)

    def _count_error(self, error_type: str, error: BaseException, message: Optional[str] = None) -> None:
        with self._lock:
            self._errors_by_type[error_type] = self._errors_by_type.get(error_type, 0) + 1
            self._warn_once(f"{error_type}-failed", message or (
                f"the {error_type} update failed ({type(error).__name__}: {error}); tracking goes on"))

    def record_monitoring_error(self, error_type: str, error: BaseException, message: Optional[str] = None) -> None:
        """Count a failure that the run survives (a tracker backend, the report files...): every
        occurrence is counted under ``error_type`` in the monitoring errors; the first of each type
        is one warning, logged and kept for the report (``message``, or one built from ``error``)."""
        self._count_error(error_type, error, message)

    def _on_store_error(self, error: BaseException) -> None:
        self._count_error("store", error)

    # Figures ---------------------------------------------------------------------------------------

    def _top_level_joules(self, joules_by_channel: Mapping[str, float]) -> float:
        return float(sum(joules_by_channel.get(c.name, 0.0) for c in self._channels if c.parent is None))

    def _kwh(self, totals: Mapping[str, Any]) -> float:
        return self._top_level_joules(totals["joules"]) / JOULES_PER_KWH * self.config.pue

    def _interval_figures(self, totals: Mapping[str, Any], channel_power: bool) -> Dict[str, float]:
        t_s = self._records.relative(totals["t_s"])
        joules = self._top_level_joules(totals["joules"])
        kwh = joules / JOULES_PER_KWH * self.config.pue
        previous_t_s, previous_joules, previous_steps = self._last_log_point
        steps = int(totals["steps_marked"]) - previous_steps
        co2_kg = kwh * self.intensity.g_per_kwh / 1000.0
        figures: Dict[str, float] = {
            "energy/interval_joules": joules - previous_joules,
            "energy/total_kwh": kwh,
            "carbon/co2_kg": co2_kg,
            "carbon/intensity_g_per_kwh": self.intensity.g_per_kwh,
        }
        if t_s > previous_t_s:
            figures["power/mean_watts"] = (joules - previous_joules) / (t_s - previous_t_s)
        if steps > 0:
            # From the live totals rather than the step records, which resolve one sampler period
            # late: at the first log of a fast loop none may have resolved yet.
            figures["energy/step_joules"] = (joules - previous_joules) / steps
        if self._samples_total is not None and kwh > 0:
            figures["carbon/samples_per_kwh"] = self._samples_total / kwh
        if self._budget is not None:
            figures["carbon/budget_used_fraction"] = co2_kg / self._budget.budget_kg
        if channel_power:
            figures.update({f"power/{name}_watts": float(watts) for name, watts in totals["watts"].items()})
        self._last_log_point = (t_s, joules, int(totals["steps_marked"]))
        return figures

    def _latest_figures(self, totals: Mapping[str, Any]) -> Dict[str, Any]:
        kwh = self._kwh(totals)
        return {
            "t_s": self._records.relative(totals["t_s"]),
            "steps_marked": int(totals["steps_marked"]),
            "steps_resolved": self._records.steps_resolved,
            "epoch_count": self.epoch_count,
            "energy_joules_by_channel": {k: float(v) for k, v in totals["joules"].items()},
            "power_watts_by_channel": {k: float(v) for k, v in totals["watts"].items()},
            "energy_kwh_total": kwh,
            "co2_kg_total": kwh * self.intensity.g_per_kwh / 1000.0,
            "energy_rate_kwh_per_hour": self._energy_rate_kwh_per_hour,
            "samples_total": self._samples_total,
            "monitoring_errors_total": self.monitoring_errors_total,
            **self._latest_metrics,
        }

    @property
    def monitoring_errors_total(self) -> int:
        return int(sum(self._errors_by_type.values()))

    def snapshot(self) -> Optional[SessionSnapshot]:
        """The session's figures now, as an immutable copy; None before ``start()``.

        Cheap (reads the meter's live totals, drains nothing) and safe from any thread: exporters
        call it at scrape time. Measured GPUs are read through NVML here, once per call.
        """
        try:
            gpus = read_gpu_stats(self._channels, self._environ)
        except CarbonTrackingError as error:
            self._count_error("gpu-stats", error)
            gpus = []
        with self._lock:
            if self._intensity is None or self._state == "new":
                return None
            totals = self._totals()
            kwh = self._kwh(totals)
            intensity = self.intensity
            co2_kg = kwh * intensity.g_per_kwh / 1000.0
            budget_kg = None if self._budget is None else self._budget.budget_kg
            elapsed_s = self._records.relative(totals["t_s"])
            samples = self._samples_total
            price = self.config.electricity_price_per_kwh
            rate = self._energy_rate_kwh_per_hour
            return SessionSnapshot(
                run_id=self.run_id, project_name=self.config.project_name,
                experiment_id=self.config.experiment_id, model_name=self.model_name,
                host=self.rank_info.host, rank=self.rank_info.rank, local_rank=self.rank_info.local_rank,
                world_size=self.rank_info.world_size, unix_time_s=time.time(),
                step_count=int(totals["steps_marked"]), epoch_count=self.epoch_count,
                channels=list(self._channels),
                energy_joules_by_channel={k: float(v) for k, v in totals["joules"].items()},
                power_watts_by_channel={k: float(v) for k, v in totals["watts"].items()},
                energy_kwh_total=kwh, energy_rate_kwh_per_hour=rate, co2_kg_total=co2_kg,
                co2_rate_kg_per_hour=None if rate is None else rate * intensity.g_per_kwh / 1000.0,
                intensity=intensity, pue=self.config.pue, budget_kg=budget_kg,
                budget_remaining_kg=None if budget_kg is None else budget_kg - co2_kg,
                budget_used_fraction=None if budget_kg is None else co2_kg / budget_kg,
                samples_total=samples,
                samples_per_second=None if samples is None or elapsed_s <= 0 else samples / elapsed_s,
                samples_per_kwh=None if samples is None or kwh <= 0 else samples / kwh,
                loss=self._latest_metrics["loss"], eval_loss=self._latest_metrics["eval_loss"],
                learning_rate=self._latest_metrics["learning_rate"],
                cost_total=None if price is None else kwh * price,
                electricity_price_per_kwh=price, electricity_currency=self.config.electricity_currency,
                monitoring_errors_total=self.monitoring_errors_total,
                monitoring_errors_by_type=dict(self._errors_by_type),
                api_latency_s=self._resolver.api_latency_s, gpus=gpus,
            )

    # Reports ---------------------------------------------------------------------------------------

    def report(self, combine_ranks: bool = True) -> Dict[str, Any]:
        """The ``tracking_data`` dict (docs/reports.md) of the run so far, or of the finished run.

        With ``combine_ranks`` and an initialised ``torch.distributed`` process group this is a
        collective: every rank must call it. The result then covers the whole job: each rank's
        channels appear as ``rank<N>/<channel>``, energy and CO2 are sums over the ranks (node-wide
        sensors were read on local rank 0 only, so nothing is counted twice), and ``ranks`` lists
        each rank's share; ``steps`` and ``power_trace`` stay this rank's.

        Raises:
            ConfigurationError: called before ``start()``.
            CarbonTrackingError: ``strict`` is set and a sensor failed since the last drain.
        """
        with self._lock:
            if self._state == "new":
                raise ConfigurationError("report() needs a started session: call start() first")
            if self._state == "stopped":
                local = self._final_report
            else:
                self._drain_locked()
                self._raise_strict_failure()
                local = self._local_report()
        if not combine_ranks or not self.rank_info.is_distributed or not process_group_is_initialised():
            return local
        return _combine_rank_reports(gather_across_ranks(local), self.rank_info.rank)

    def _local_report(self) -> Dict[str, Any]:
        totals = self._totals()
        duration_s = self._records.relative(totals["t_s"])
        joules_by_channel = {c.name: float(totals["joules"].get(c.name, 0.0)) for c in self._channels}
        it_kwh = self._top_level_joules(joules_by_channel) / JOULES_PER_KWH
        total_kwh = it_kwh * self.config.pue
        intensity = self.intensity
        co2_kg = total_kwh * intensity.g_per_kwh / 1000.0
        price = self.config.electricity_price_per_kwh
        warnings = [dict(entry) for entry in self._resolver.warnings] + [dict(e) for e in self._warnings]
        if self._left_to_local_rank_0:
            warnings.append({"code": "node-wide-on-local-rank-0", "message": (
                f"local rank {self.rank_info.local_rank} leaves RAPL and the CPU estimate to local rank 0, "
                "so that the node is counted once")})
        mode = self.config.tracking_mode
        return {
            "schema_version": REPORT_SCHEMA_VERSION,
            "generated_unix_s": time.time(),
            "run": {
                "run_id": self.run_id, "project_name": self.config.project_name,
                "experiment_id": self.config.experiment_id, "model_name": self.model_name,
                "host": self.rank_info.host, "rank": self.rank_info.rank,
                "local_rank": self.rank_info.local_rank, "world_size": self.rank_info.world_size,
                "started_unix_s": self._started_unix_s, "ended_unix_s": self._ended_unix_s,
            },
            "duration_s": duration_s,
            "channels": [asdict(channel) for channel in self._channels],
            "energy": {
                "by_channel": {
                    name: {"joules": joules, "kwh": joules / JOULES_PER_KWH,
                           "mean_watts": joules / duration_s if duration_s > 0 else None}
                    for name, joules in joules_by_channel.items()
                },
                "it_kwh": it_kwh, "pue": self.config.pue, "total_kwh": total_kwh,
            },
            "intensity": asdict(intensity),
            "total_co2_kg": co2_kg,
            "comparisons": _comparisons(co2_kg, total_kwh),
            "budget": None if self._budget is None else _budget_section(self._budget.budget_kg, co2_kg),
            "cost": None if price is None else {
                "price_per_kwh": price, "currency": self.config.electricity_currency, "total": total_kwh * price,
            },
            "steps": self._records.step_dicts() if mode == "detailed" else [],
            "epochs": self._records.epoch_dicts(self.config.pue, intensity.g_per_kwh) if mode != "minimal" else [],
            "power_trace": self._records.power_trace(),
            "monitoring_errors_total": self.monitoring_errors_total,
            "warnings": warnings,
            "config": self.config.as_dict(),
            "versions": _versions(),
            "steps_marked": int(totals["steps_marked"]),
            "samples_total": self._samples_total,
            "counter_resets": int(totals.get("counter_resets", 0)),
            "window_estimates": self._window_estimates(),
        }

    def _window_estimates(self) -> Optional[Dict[str, Any]]:
        """Mean energy per window name for windows shorter than the sensor (None without named
        windows or counter channels); an estimator failure is counted, never raised."""
        if self._meter is None:
            return None
        try:
            return self._meter.window_estimates_section()
        except Exception as error:  # noqa: BLE001 - a report must not fail over an estimate
            self._count_error("session", error)
            return None

    # Exporters -------------------------------------------------------------------------------------

    def _start_exporter(self) -> Any:
        from hf_eco2ai.integrations import prometheus

        config = self.config
        return prometheus.start_session_exporter(
            self, host=config.prometheus_host, port=config.prometheus_port, max_projects=config.max_projects,
            label_cleanup=config.label_cleanup_enabled, aggregate_similar_models=config.aggregate_similar_models,
            compress=config.compression_enabled)

    def _push_final_figures(self) -> None:
        from hf_eco2ai.integrations.prometheus.push import push_snapshot

        snapshot = self.snapshot()
        if snapshot is None or self.config.prometheus_pushgateway_url is None:
            return
        try:
            push_snapshot(self.config.prometheus_pushgateway_url, snapshot,
                          label_cleanup=self.config.label_cleanup_enabled,
                          aggregate_similar_models=self.config.aggregate_similar_models)
        except CarbonTrackingError as error:
            self._count_error("pushgateway", error)

    def _stop_exporter(self) -> None:
        try:
            self._exporter.close()
        except Exception as error:  # noqa: BLE001 - closing an exporter must not fail the run's end
            self._count_error("exporter", error)


# Meters that a session has measured with: a meter's records and totals belong to one run.
_CLAIMED_METERS: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _claim_meter_for_one_run(meter: Any) -> None:
    if meter in _CLAIMED_METERS:
        raise ConfigurationError(
            "meter = this EnergyMeter already measured an earlier run; a meter measures one run: pass a new "
            "EnergyMeter for each run, or none (a meter is then built for each run from the config)")
    _CLAIMED_METERS.add(meter)


def _budget_section(budget_kg: float, co2_kg: float) -> Dict[str, Any]:
    return {"budget_kg": budget_kg, "used_kg": co2_kg, "remaining_kg": budget_kg - co2_kg,
            "used_fraction": co2_kg / budget_kg, "exceeded": co2_kg > budget_kg}


def _comparisons(co2_kg: float, kwh: float) -> List[Dict[str, Any]]:
    return [comparison.to_dict() for comparison in compute_comparisons(co2_kg, kwh)]


def _versions() -> Dict[str, Optional[str]]:
    versions: Dict[str, Optional[str]] = {
        "hf_eco2ai": __version__, "python": platform.python_version(), "platform": platform.platform(),
    }
    for module_name in ("numpy", "torch", "transformers", "lightning"):
        module = sys.modules.get(module_name)
        if module is not None:
            versions[module_name] = str(getattr(module, "__version__", None))
    return versions


def _prefixed(mapping: Mapping[str, Any], prefix: str) -> Dict[str, Any]:
    return {prefix + key: value for key, value in mapping.items()}


def _combine_rank_reports(reports: List[Dict[str, Any]], own_rank: int) -> Dict[str, Any]:
    """One job-wide report from every rank's local one (see ``TrackingSession.report``)."""
    own = next(report for report in reports if report["run"]["rank"] == own_rank)
    channels: List[Dict[str, Any]] = []
    by_channel: Dict[str, Dict[str, Any]] = {}
    ranks = []
    for report in sorted(reports, key=lambda r: r["run"]["rank"]):
        prefix = f"rank{report['run']['rank']}/"
        for channel in report["channels"]:
            parent = channel["parent"]
            channels.append({**channel, "name": prefix + channel["name"],
                             "parent": None if parent is None else prefix + parent})
        by_channel.update(_prefixed(report["energy"]["by_channel"], prefix))
        ranks.append({
            "rank": report["run"]["rank"], "local_rank": report["run"]["local_rank"],
            "host": report["run"]["host"], "run_id": report["run"]["run_id"],
            "it_kwh": report["energy"]["it_kwh"], "total_kwh": report["energy"]["total_kwh"],
            "total_co2_kg": report["total_co2_kg"], "steps_marked": report["steps_marked"],
            "samples_total": report["samples_total"],
        })
    it_kwh = sum(rank["it_kwh"] for rank in ranks)
    total_kwh = sum(rank["total_kwh"] for rank in ranks)
    co2_kg = total_kwh * own["intensity"]["g_per_kwh"] / 1000.0
    own_prefix = f"rank{own_rank}/"
    combined = dict(own)
    combined.update({
        "channels": channels,
        "energy": {"by_channel": by_channel, "it_kwh": it_kwh, "pue": own["energy"]["pue"], "total_kwh": total_kwh},
        "total_co2_kg": co2_kg,
        "comparisons": _comparisons(co2_kg, total_kwh),
        "budget": None if own["budget"] is None else _budget_section(own["budget"]["budget_kg"], co2_kg),
        "cost": None if own["cost"] is None else {**own["cost"], "total": total_kwh * own["cost"]["price_per_kwh"]},
        "steps": [{**step, "joules_by_channel": _prefixed(step["joules_by_channel"], own_prefix)}
                  for step in own["steps"]],
        "epochs": [{**epoch, "joules_by_channel": _prefixed(epoch["joules_by_channel"], own_prefix)}
                   for epoch in own["epochs"]],
        "power_trace": None if own["power_trace"] is None else {
            **own["power_trace"], "watts": _prefixed(own["power_trace"]["watts"], own_prefix)},
        "monitoring_errors_total": sum(report["monitoring_errors_total"] for report in reports),
        "warnings": [warning for report in reports for warning in report["warnings"]],
        "samples_total": (None if all(rank["samples_total"] is None for rank in ranks)
                          else sum(rank["samples_total"] or 0.0 for rank in ranks)),
        "ranks": ranks,
    })
    return combined
