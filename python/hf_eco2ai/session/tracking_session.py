"""``TrackingSession``: one run's lifecycle over its meter, carbon figures, budget, store and exporters.

Every adapter (Trainer and Lightning callbacks, ``track``, the CarbonTracker API) talks to a
session and to nothing below it. The training loop only ever calls ``mark_step()``, which forwards
to the meter's lock-free mark. Everything else happens in ``log``/``drain``/``epoch_end`` at log
intervals, or on the session's background thread every ``measurement_interval_s`` seconds, through
the modules beside this one:

- ``drain``: the meter's records into the aggregates and out to the writer thread;
- ``run_records``/``downsample``: aggregates that stay bounded however long the run;
- ``health``: warnings and fault counts;
- ``figures``: the figures of one instant, for logs, the store and the snapshot;
- ``report_builder``: the report, and combining the ranks'.

This module never imports torch, transformers or lightning: ``report()`` reaches torch only
through ``hf_eco2ai.session.distributed``, and only when a process group is already initialised.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import uuid
import weakref
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from hf_eco2ai.background import LoopHandle, start_loop
from hf_eco2ai.carbon.budget import CarbonBudget
from hf_eco2ai.carbon.cloud import CloudLocation
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.carbon.recommendations import Recommendation, recommendations_for
from hf_eco2ai.carbon.resolve import IntensityResolver
from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.errors import CarbonTrackingError, ConfigurationError, SensorUnavailableError
from hf_eco2ai.logs import apply_log_level
from hf_eco2ai.meter import coverage
from hf_eco2ai.meter.channels import ChannelInfo
from hf_eco2ai.reporting.report_object import as_carbon_report
from hf_eco2ai.reporting.step_file import StepFileWriter, check_step_file_format, step_file_path
from hf_eco2ai.session import figures as live
from hf_eco2ai.session import fork_safety
from hf_eco2ai.session.distributed import (
    RankInfo,
    gather_across_ranks,
    own_gpu_devices,
    process_group_is_initialised,
    sources_for_rank,
)
from hf_eco2ai.session.drain import DrainPipeline
from hf_eco2ai.session.health import HealthLog
from hf_eco2ai.session.report_builder import REPORT_SCHEMA_VERSION, build_local_report, combine_rank_reports
from hf_eco2ai.session.run_records import RunRecords
from hf_eco2ai.session.snapshot import SessionSnapshot
from hf_eco2ai.store.run_store import RunIdentity, RunStore, RunWriter, default_store_path

__all__ = ["REPORT_SCHEMA_VERSION", "StoreSetting", "TrackingSession"]

_MIN_RATE_SPAN_S = 1.0

StoreSetting = Union[bool, str, "os.PathLike[str]", RunStore, None]

# What an absent meter (a rank with nothing of its own to measure) reports.
_NO_TOTALS: Dict[str, Any] = {
    "t_s": None,
    "first_reading_s": None,
    "joules": {},
    "watts": {},
    "errors_by_channel": {},
    "sensor_errors": 0,
    "steps_marked": 0,
    "boundaries_dropped": 0,
    "records_dropped": 0,
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
        step_file: in ``detailed`` mode, stream every step to
            ``<output_dir>/carbon_report_<run id>.steps.csv`` (``.steps.parquet`` with
            ``step_file_format="parquet"``) while the run goes; ``False`` keeps no such file.
        step_file_format: ``csv`` or ``parquet`` (needs pyarrow: the ``parquet`` extra); ``None``
            takes ``config.step_file_format``.
        cloud: ``"detect"`` locates this process when the intensity first needs it; a
            ``CloudLocation`` (or None: not in a cloud) found earlier is used as it is, so the
            location is never detected twice.

    Threading: ``mark_step`` may be called from the training thread while ``snapshot`` runs on an
    exporter thread; every other method takes the session's lock. The meter's records are drained
    into the aggregates and handed to the writer on the session's background thread, under a lock
    of their own, so ``log`` never waits for a drain. A session is one run: ``start`` after
    ``stop`` raises.

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
        step_file: bool = True,
        step_file_format: Optional[str] = None,
        cloud: Union[CloudLocation, None, str] = "detect",
    ) -> None:
        if config is not None and not isinstance(config, CarbonConfig):
            raise ConfigurationError(
                f"config = {type(config).__name__} is invalid: expected a hf_eco2ai.CarbonConfig or None"
            )
        if not isinstance(step_file, bool):
            raise ConfigurationError(f"step_file = {step_file!r} is invalid: expected True or False")
        self.config = CarbonConfig() if config is None else config
        apply_log_level(self.config)
        self._step_file_format = check_step_file_format(
            self.config.step_file_format if step_file_format is None else step_file_format
        )
        self._step_file_wanted = step_file and self.config.tracking_mode == "detailed"
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
        self._steps_file: Optional[Dict[str, Any]] = None
        if not (cloud is None or cloud == "detect" or isinstance(cloud, CloudLocation)):
            raise ConfigurationError(f"cloud = {cloud!r} is invalid: expected 'detect', a CloudLocation or None")
        self._resolver = IntensityResolver(
            self.config, cloud=cloud if isinstance(cloud, CloudLocation) else None, locate_cloud=cloud == "detect"
        )
        self._budget = (
            None
            if self.config.carbon_budget_kg is None
            else CarbonBudget(self.config.carbon_budget_kg, stop_on_exceeded=self.config.stop_on_budget_exceeded)
        )
        # Lock order: _records_lock (the drain pipeline and the aggregates) before _lock (the
        # small state a log reads and writes); the background drain holds only the first while
        # it drains, so a log on the training thread never waits for one.
        self._records_lock = threading.RLock()
        self._lock = threading.RLock()
        self._health = HealthLog(self._lock)
        fork_safety.register(self)
        self._state = "new"
        self._started_unix_s: Optional[float] = None
        self._ended_unix_s: Optional[float] = None
        self._channels: List[ChannelInfo] = []
        self._power_keys: List[str] = []
        self._meter_info: Optional[Dict[str, Any]] = None
        self._records = RunRecords([], [])
        self._pipeline: Optional[DrainPipeline] = None
        self._intensity: Optional[IntensityResult] = None
        self._intensity_stored: Optional[IntensityResult] = None
        self._samples_total: Optional[float] = None
        self._latest_metrics: Dict[str, Optional[float]] = {"loss": None, "eval_loss": None, "learning_rate": None}
        self._last_log_point = live.LogPoint()
        self._rate_point: Optional[tuple] = None
        self._anomalies_by_type: Optional[Dict[str, int]] = None
        self._energy_rate_kwh_per_hour: Optional[float] = None
        self._final_report: Dict[str, Any] = {}
        self._drainer: Optional[LoopHandle] = None
        self._drainer_stop = threading.Event()
        # Requests for a drain: one C-level put per log (an Event's set runs several Python
        # frames, which a log after many steps pays with cold caches).
        self._drain_wanted: "queue.SimpleQueue[None]" = queue.SimpleQueue()
        # Logged metrics waiting for the next drain to hand them to the writer: a log wakes one
        # thread (the session's), not two.
        self._pending_logs: List[tuple] = []
        self._pending_losses: List[tuple] = []
        self._exporter: Any = None

    # Construction helpers ------------------------------------------------------------------------

    def _build_meter(self, include_host: bool, environ: Optional[Mapping[str, str]]) -> Any:
        from hf_eco2ai.meter.energy_meter import EnergyMeter

        sources, host_allowed, self._left_to_local_rank_0 = sources_for_rank(
            self.config.sources, self.rank_info, include_host, self.config.cpu_scope
        )
        if not sources:
            self._nothing_to_measure_reason = "every configured source is node-wide and left to local rank 0"
            return None
        try:
            return EnergyMeter(
                sources=list(sources),
                rate_hz=self.config.rate_hz,
                devices=own_gpu_devices(self.rank_info, environ),
                include_host=host_allowed,
                cpu_scope=self.config.cpu_scope,
            )
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
        # A new store file is created by the writer's thread, off the training thread.
        if store is True:
            return RunStore(default_store_path(self.config.output_dir), create_later=True)
        if isinstance(store, (str, os.PathLike)):
            return RunStore(store, create_later=True)
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
    def steps_file(self) -> Optional[Path]:
        """The file that receives every step of this run (None when steps are not streamed).
        Complete once ``stop()`` returned and ``wait_closed()`` did."""
        return None if self._steps_file is None else Path(self._steps_file["path"])

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

    @property
    def cloud_location(self) -> Optional[CloudLocation]:
        """Where this process runs (provider, region, how it was found), or None outside a cloud.
        Detected once, on first need (at most 200 ms of metadata probes, none when offline or
        when the location is configured)."""
        return self._resolver.cloud

    def table_intensity(self) -> IntensityResult:
        """What the packaged tables say for this location, ignoring explicit and live values."""
        return self._resolver.table_answer()

    def recommendations(self) -> List[Recommendation]:
        """Advice for lowering this run's carbon: lower-carbon regions of this cloud provider or
        neighbouring grids (from the packaged tables), and, once the live API has answered across
        enough hours of the day, the hour with the lowest intensity. Empty without a location, and
        with an explicit intensity (the tables' savings would not compare with it; no location is
        probed for it).

        Raises:
            ConfigurationError: before ``start()``.
        """
        if self.intensity.source == "explicit":
            return []
        return recommendations_for(self._resolver, self.intensity)

    # Lifecycle -----------------------------------------------------------------------------------

    def start(self) -> "TrackingSession":
        """Start the meter, resolve the intensity, open the writer and the exporter. Idempotent.

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
                self._power_keys = live.power_keys([channel.name for channel in self._channels])
                self._meter_info = self._meter.info()
                # The hot path without a Python frame of ours: while running, the instance's
                # mark_step *is* the meter's (Rust) mark, shadowing the no-op method below.
                self.mark_step = self._meter.mark_step  # type: ignore[method-assign]
            elif self._nothing_to_measure_reason is not None:
                self._health.warn_once(
                    "nothing-measured", f"this process measures no energy: {self._nothing_to_measure_reason}"
                )
            for warning in coverage.coverage_warnings(self._meter_info):
                # Facts about the figures, not faults: kept for every report, not logged.
                self._health.warn_once(warning["code"], warning["message"], warning.get("channel"), log=False)
            self._records = RunRecords([c.name for c in self._channels], [c.parent is None for c in self._channels])
            self._records.set_origin(self._totals()["first_reading_s"])
            if self._records.origin_s is not None:
                # Stored times count from the first reading, so the run starts then: dated on the
                # Unix clock, they line up with other tools' traces (`hf-eco2ai trace --merge`).
                self._started_unix_s = time.time() - (time.monotonic() - self._records.origin_s)
            self._rate_point = (time.monotonic(), 0.0)
            self._writer = self._open_writer()
            if self._meter is not None:
                self._pipeline = DrainPipeline(
                    self._meter,
                    self._records,
                    self._writer,
                    self._health,
                    self.run_id,
                    stream_steps=self.config.tracking_mode == "detailed",
                    pue=self.config.pue,
                )
            self._state = "running"
            self._drainer_stop.clear()
            self._drainer = start_loop(self._drain_in_background, "hf-eco2ai-session")
        return self

    def _open_writer(self) -> Optional[RunWriter]:
        step_file = None
        if self._step_file_wanted and self._meter is not None:
            path = step_file_path(self.config.output_dir, self.run_id, self._step_file_format)
            # Opened by the writer thread on its first batch: nothing is created here.
            step_file = StepFileWriter(path, self._step_file_format, self.run_id, [c.name for c in self._channels])
            self._steps_file = {"path": str(path), "format": self._step_file_format, "rows": 0}
        if self._store is not None:
            writer = self._store.writer(
                on_error=self._on_store_error, step_file=step_file, batch_step_rows=self.config.export_batch_size
            )
            writer.begin_run(
                RunIdentity(
                    run_id=self.run_id,
                    project_name=self.config.project_name,
                    experiment_id=self.config.experiment_id,
                    model_name=self.model_name,
                    host=self.rank_info.host,
                    rank=self.rank_info.rank,
                    local_rank=self.rank_info.local_rank,
                    world_size=self.rank_info.world_size,
                    started_unix_s=self._started_unix_s or time.time(),
                    channels=[asdict(c) for c in self._channels],
                    intensity=asdict(self.intensity),
                    config=self.config.as_dict(),
                )
            )
            self._intensity_stored = self.intensity
            return writer
        if step_file is not None:
            return RunWriter(None, on_error=self._on_store_error, step_file=step_file)
        return None

    def mark_step(self) -> None:
        """Close the open step and open the next: the only call on the training hot path.

        While running this is the meter's lock-free mark itself (one clock read and one push);
        before ``start()`` and after ``stop()`` it does nothing. Never raises. Adapters may keep a
        reference to ``session.mark_step`` taken after ``start()``, until they stop the session.
        """

    def stop_measuring(self) -> None:
        """End the run's measurement now: the mark stops, the session's thread stops and the meter
        takes its last reading. The rest of ``stop()`` (the last drain, the final report, the
        store) may then run on another thread, with the run's energy already fixed. Idempotent;
        ``stop()`` calls it first.
        """
        with self._lock:
            if self._state in ("stopping", "stopped"):
                return
            if self._state == "new":
                self.start()
            self.__dict__.pop("mark_step", None)
            self._state = "stopping"
        self._drainer_stop.set()
        self._drain_wanted.put(None)
        if self._drainer is not None:
            self._drainer.join()
        with self._lock:
            if self._meter is not None:
                self._meter.stop()
            self._ended_unix_s = time.time()

    def stop(self, status: str = "finished", wait: bool = True) -> Dict[str, Any]:
        """Stop measuring, drain the last records, store the final report, and return it.

        ``status`` (``finished`` or ``failed``) is what the store records. With ``wait`` (the
        default) this returns once the store and the per-step file hold every row; with
        ``wait=False`` the writer thread finishes them in the background and ``wait_closed()``
        (or interpreter exit) waits for it. The time spent here does not grow with the run's
        length beyond the records of the last ``measurement_interval_s``. Idempotent: later calls
        return the same report. The report is this rank's alone (no collective call).
        """
        with self._lock:
            if self._state == "stopped":
                if wait:
                    self.wait_closed()
                return self._final_report
        self.stop_measuring()
        with self._records_lock, self._lock:
            if self._state == "stopped":
                return self._final_report
            self._drain_and_publish(final=True)
            self._final_report = as_carbon_report(self._local_report())
            self._state = "stopped"
            ended_unix_s = self._ended_unix_s if self._ended_unix_s is not None else time.time()
        # Outside the lock: the writer's thread reports a failed write through the health log,
        # which takes the lock, and waiting for that thread must not hold it.
        if self._writer is not None:
            if self._store is not None:
                self._writer.finish_run(self.run_id, status, ended_unix_s, self._final_report)
            self._writer.close(wait=wait)
        if self._exporter is not None:
            self._stop_exporter()
        if self.config.prometheus_pushgateway_url is not None:
            self._push_final_figures()
        return self._final_report

    def wait_closed(self, timeout_s: Optional[float] = None) -> bool:
        """Wait until the writer thread has written every row and closed the per-step file after
        ``stop()``; False if ``timeout_s`` ran out. True at once when there is nothing to wait for."""
        writer = self._writer
        if writer is None or self._state != "stopped":
            return True
        writer.close(wait=False)
        return writer.join(timeout_s)

    def __enter__(self) -> "TrackingSession":
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop("failed" if exc_type is not None else "finished")

    # Between steps -------------------------------------------------------------------------------

    def log(
        self, metrics: Optional[Mapping[str, Any]] = None, step: Optional[int] = None, channel_power: bool = False
    ) -> Dict[str, float]:
        """Record the training loop's metrics and return the energy figures for its logs.

        ``metrics`` may hold ``loss``, ``eval_loss``, ``learning_rate`` (kept for the snapshot) and
        ``samples``: the number of samples processed since the previous ``log`` (added to the run's
        total). Every numeric entry is stored with the run. The figures come from the meter's live
        cumulative totals (the interval's energy is the difference from the previous log's), so
        the cost does not depend on how many steps went by: the records of those steps are
        drained into the aggregates, the store and the per-step file on the session's background
        thread, which this call only wakes.

        Returns (units in the keys): ``energy/interval_joules`` and ``power/mean_watts`` (top-level
        channels, no PUE, since the previous ``log``), ``energy/step_joules`` (that energy per step
        marked since then), ``energy/total_kwh`` (PUE applied), ``carbon/co2_kg``,
        ``carbon/intensity_g_per_kwh``, and when known ``carbon/samples_per_kwh`` and
        ``carbon/budget_used_fraction``; with ``channel_power``, ``power/<channel>_watts`` (the
        sensor's latest power) for every channel. Empty when the session is not running.
        """
        numeric = {
            key: float(value)
            for key, value in (metrics or {}).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        with self._lock:
            if "samples" in numeric:
                self._samples_total = (self._samples_total or 0.0) + numeric["samples"]
            for key in self._latest_metrics:
                if key in numeric:
                    self._latest_metrics[key] = numeric[key]
            if "loss" in numeric and step is not None and self._state == "running":
                # Into the loss series by the next drain, so that a log does no numpy work.
                self._pending_losses.append((int(step), numeric["loss"]))
            if self._state != "running":
                return {}
            budget = self._budget
            figures, log_point = live.log_figures(
                self._log_point_now(),
                self._last_log_point,
                pue=self.config.pue,
                g_per_kwh=self.intensity.g_per_kwh,
                samples_total=self._samples_total,
                budget_kg=None if budget is None else budget.budget_kg,
                channel_power_keys=self._power_keys if channel_power else None,
            )
            # The meter's health and the energy rate are checked by the drain this log wakes;
            # the budget is checked here, against the figures returned, so that they agree.
            if budget is not None:
                self._update_rates_and_budget(figures["energy/total_kwh"], figures["carbon/co2_kg"])
            self._health.raise_strict_failure()
            self._last_log_point = log_point
            if self._writer is not None and self._store is not None:
                self._pending_logs.append((time.time(), step, {**numeric, **figures}))
        self._drain_wanted.put(None)
        return figures

    def epoch_end(self) -> None:
        """Close the current epoch: every step marked so far belongs to it or to an earlier one.
        Its steps are drained on the background thread (``report()`` drains what is left)."""
        with self._records_lock, self._lock:
            if self._state != "running":
                return
            totals = self._totals()
            self._records.end_epoch(int(totals["steps_marked"]), totals["t_s"])
        self._health.raise_strict_failure()
        self._drain_wanted.put(None)

    def window(self, name: str) -> Any:
        """A named span (context manager and decorator) recorded with its own energy, e.g.
        ``with session.window("eval"):``. Does nothing on a rank that measures nothing."""
        if self._meter is None:
            return contextlib.nullcontext()
        return self._meter.window(name)

    def energy_at(self, instant_s: float) -> Dict[str, float]:
        """Cumulative joules per channel at ``instant_s`` (``time.monotonic()``) since the run
        started: the newest reading carried to that instant at the power it reported, so asking
        costs no wait for the next reading. Empty before ``start()`` or on a rank that measures
        nothing. The energy of a span is the difference of two calls. Safe from any thread."""
        meter = self._meter
        if meter is None or self._state == "new":
            return {}
        totals = meter.totals()
        joules = {channel: float(value) for channel, value in totals["joules"].items()}
        if totals["t_s"] is None:
            return joules
        gap_s = instant_s - float(totals["t_s"])
        return {channel: value + float(totals["watts"].get(channel, 0.0)) * gap_s for channel, value in joules.items()}

    @property
    def epoch_count(self) -> int:
        return self._records.epoch_count

    def drain(self) -> None:
        """Pull the resolved step, window and power records; update carbon, budget, store, exporter.

        Raises:
            CarbonTrackingError: ``strict`` is set and a sensor failed since the last drain.
        """
        with self._records_lock, self._lock:
            if self._state in ("running", "stopping"):
                self._drain_and_publish()
                self._health.raise_strict_failure()

    def flush(self, timeout_s: Optional[float] = 30.0) -> bool:
        """Drain, then wait until the store and the per-step file hold everything so far (False
        on timeout).

        Off the hot path only: it waits for a disk write (for checkpoints, or before a risky step).
        """
        self.drain()
        writer = self._writer
        return True if writer is None else writer.flush(timeout_s)

    @property
    def stop_requested(self) -> bool:
        """True once the carbon budget is exceeded and ``stop_on_budget_exceeded`` is set.

        Updated at every drain; a plain attribute read, so adapters may check it anywhere."""
        return self._budget is not None and self._budget.should_stop

    @property
    def monitoring_errors_total(self) -> int:
        return self._health.errors_total

    # The work done off the hot path --------------------------------------------------------------

    def _totals(self) -> Dict[str, Any]:
        return self._meter.totals() if self._meter is not None else dict(_NO_TOTALS)

    def _drain_in_background(self) -> None:
        """The session's thread: drains whenever a log or an epoch end asks (``_drain_wanted``),
        and every ``measurement_interval_s`` refreshes the intensity and drains."""
        interval_s = float(self.config.measurement_interval_s)
        next_refresh_s = time.monotonic() + interval_s
        while True:
            try:
                self._drain_wanted.get(timeout=max(0.0, next_refresh_s - time.monotonic()))
            except queue.Empty:
                pass
            if self._drainer_stop.is_set():
                return
            # Requests that piled up are served by this one drain; one arriving during the drain
            # is served by the next.
            while not self._drain_wanted.empty():
                self._drain_wanted.get_nowait()
            try:
                if time.monotonic() >= next_refresh_s:
                    # The live API (when configured) answers from its cache or within its own
                    # timeout; asking here keeps any network wait off the training thread.
                    intensity = self._resolver.resolve()
                    with self._lock:
                        if self._state != "running":
                            return
                        self._intensity = intensity
                    next_refresh_s = time.monotonic() + interval_s
                with self._records_lock:
                    if self._state != "running":
                        return
                    self._drain_and_publish()
            except Exception as error:  # noqa: BLE001 - a background failure must never end training
                self._health.count_error("session", error)

    def _drain_and_publish(self, final: bool = False) -> live.LiveFigures:
        """Drain, check the meter's health, move the rate and the budget on, and publish the
        latest figures; returns the figures the drain ended with. The caller holds
        ``_records_lock`` (and may hold ``_lock``, taken after it); the drain itself runs
        without ``_lock``, so that a log is not kept waiting."""
        with self._lock:
            losses, self._pending_losses = self._pending_losses, []
        for step, loss in losses:
            self._records.add_loss(step, loss)
        pipeline = self._pipeline
        totals = pipeline.drain(self.intensity, final) if pipeline is not None else self._totals()
        with self._lock:
            return self._publish(totals)

    def _publish(self, totals: Mapping[str, Any]) -> live.LiveFigures:
        now = self._figures(totals)
        if self._meter is not None:
            self._health.check_meter(totals, now.t_s, self.config.strict)
        self._update_rates_and_budget(now.energy_kwh_total, now.co2_kg_total)
        if self._writer is not None and self._store is not None:
            logs, self._pending_logs = self._pending_logs, []
            for unix_time_s, step, metrics in logs:
                self._writer.add_log(self.run_id, unix_time_s, step, metrics)
            self._writer.update_latest(
                self.run_id,
                live.latest_figures(
                    now,
                    steps_resolved=self._records.steps_resolved,
                    epoch_count=self.epoch_count,
                    energy_rate_kwh_per_hour=self._energy_rate_kwh_per_hour,
                    samples_total=self._samples_total,
                    monitoring_errors_total=self.monitoring_errors_total,
                    latest_metrics=dict(self._latest_metrics),
                ),
                self._intensity_if_changed(),
            )
        return now

    def _intensity_if_changed(self) -> Optional[Dict[str, Any]]:
        """The intensity as the store keeps it when it changed since the last drain handed it to
        the writer, else None (the store keeps the one it has): ``asdict`` deep-copies, and a
        drain would pay for it every time."""
        intensity = self.intensity
        if intensity is self._intensity_stored:
            return None
        self._intensity_stored = intensity
        return asdict(intensity)

    def _figures(self, totals: Mapping[str, Any]) -> live.LiveFigures:
        return live.LiveFigures.from_totals(
            totals,
            self._records.relative(totals["t_s"]),
            self._channels,
            self.config.pue,
            self.intensity,
            None if self._budget is None else self._budget.budget_kg,
        )

    def _log_point_now(self) -> Tuple[float, int, float, Sequence[float]]:
        """The meter's log point (its totals without the dicts ``totals()`` builds), with its
        time relative to the run."""
        if self._meter is None:
            return 0.0, 0, 0.0, ()
        t_s, steps_marked, it_joules, watts = self._meter.log_point()
        return self._records.relative(t_s), steps_marked, it_joules, watts

    def _update_rates_and_budget(self, kwh: float, co2_kg: float) -> None:
        instant = time.monotonic()
        # Drains can follow each other within milliseconds (epoch end, then a log): a rate over
        # such a span says nothing, so the rate moves on only after at least a second.
        if self._rate_point is None or instant - self._rate_point[0] >= _MIN_RATE_SPAN_S:
            if self._rate_point is not None:
                self._energy_rate_kwh_per_hour = (kwh - self._rate_point[1]) / (instant - self._rate_point[0]) * 3600.0
            self._rate_point = (instant, kwh)
        if self._budget is None:
            return
        status = self._budget.record_total(co2_kg)
        if status.exceeded:
            action = (
                "training is asked to stop"
                if self._budget.stop_on_exceeded
                else "training goes on (stop_on_budget_exceeded is off)"
            )
            # CarbonBudget has logged this already; the report keeps it too.
            self._health.warn_once(
                "budget-exceeded",
                f"carbon budget of {status.budget_kg:g} kg CO2e exceeded ({status.used_kg:.6g} kg used); {action}",
                log=False,
            )

    def record_monitoring_error(self, error_type: str, error: BaseException, message: Optional[str] = None) -> None:
        """Count a failure that the run survives (a tracker backend, the report files...): every
        occurrence is counted under ``error_type`` in the monitoring errors; the first of each type
        is one warning, logged and kept for the report (``message``, or one built from ``error``)."""
        self._health.count_error(error_type, error, message)

    def _on_store_error(self, error: BaseException) -> None:
        self._health.count_error("store", error)

    def _identity(self) -> Dict[str, Any]:
        return {
            "run_id": self.run_id,
            "project_name": self.config.project_name,
            "experiment_id": self.config.experiment_id,
            "model_name": self.model_name,
            "host": self.rank_info.host,
            "rank": self.rank_info.rank,
            "local_rank": self.rank_info.local_rank,
            "world_size": self.rank_info.world_size,
        }

    def count_anomalies(self, anomaly_types: Sequence[str], counts: Mapping[str, int]) -> None:
        """Training anomalies seen so far (the Tracer API's), exported as
        ``hf_training_anomalies_total{type}``: every type in ``anomaly_types`` is exported, at 0 if
        it has no count. Cheap; call it only when anomalies were found."""
        with self._lock:
            self._anomalies_by_type = {kind: int(counts.get(kind, 0)) for kind in anomaly_types}

    def snapshot(self) -> Optional[SessionSnapshot]:
        """The session's figures now, as an immutable copy; None before ``start()``.

        Cheap (reads the meter's live totals, drains nothing) and safe from any thread: exporters
        call it at scrape time. Measured GPUs are read through NVML here, once per call.
        """
        from hf_eco2ai.meter.gpu_stats import read_gpu_stats

        try:
            gpus = read_gpu_stats(self._channels, self._environ)
        except CarbonTrackingError as error:
            self._health.count_error("gpu-stats", error)
            gpus = []
        with self._lock:
            if self._intensity is None or self._state == "new":
                return None
            return live.snapshot(
                self._figures(self._totals()),
                identity=self._identity(),
                config=self.config,
                channels=self._channels,
                epoch_count=self.epoch_count,
                energy_rate_kwh_per_hour=self._energy_rate_kwh_per_hour,
                samples_total=self._samples_total,
                latest_metrics=self._latest_metrics,
                errors_by_type=self._health.errors_by_type,
                api_latency_s=self._resolver.api_latency_s,
                gpus=gpus,
                anomalies_by_type=None if self._anomalies_by_type is None else dict(self._anomalies_by_type),
            )

    # Reports ---------------------------------------------------------------------------------------

    def report(self, combine_ranks: bool = True) -> Dict[str, Any]:
        """The ``tracking_data`` dict (docs/reports.md) of the run so far, or of the finished run.

        Its size is bounded whatever the run's length: the steps themselves are in the file that
        ``steps_file`` names. With ``combine_ranks`` and an initialised ``torch.distributed``
        process group this is a collective: every rank must call it. The result then covers the
        whole job: each rank's channels appear as ``rank<N>/<channel>``, energy and CO2 are sums
        over the ranks (node-wide sensors were read on local rank 0 only, so nothing is counted
        twice), and ``ranks`` lists each rank's share; the step series, epochs, windows and the
        power trace stay this rank's.

        Raises:
            ConfigurationError: called before ``start()``.
            CarbonTrackingError: ``strict`` is set and a sensor failed since the last drain.
        """
        with self._records_lock, self._lock:
            if self._state == "new":
                raise ConfigurationError("report() needs a started session: call start() first")
            if self._state == "stopped":
                local = self._final_report
            else:
                self._drain_and_publish()
                self._health.raise_strict_failure()
                local = self._local_report()
        if not combine_ranks or not self.report_is_collective:
            return as_carbon_report(local)
        return as_carbon_report(combine_rank_reports(gather_across_ranks(local), self.rank_info.rank))

    @property
    def report_is_collective(self) -> bool:
        """Whether ``report()`` gathers every rank's report (an initialised ``torch.distributed``
        process group in a distributed job): then every rank must call it, on the thread that
        makes the job's other collective calls."""
        return self.rank_info.is_distributed and process_group_is_initialised()

    def _local_report(self) -> Dict[str, Any]:
        warnings = self._resolver.warnings + self._health.warnings
        if self._left_to_local_rank_0:
            warnings.append(
                {
                    "code": "node-wide-on-local-rank-0",
                    "message": (
                        f"local rank {self.rank_info.local_rank} leaves RAPL and the CPU estimate to local rank 0, "
                        "so that the node is counted once"
                    ),
                }
            )
        steps_file = None if self._steps_file is None else {**self._steps_file, "rows": self._records.steps_resolved}
        report = build_local_report(
            identity={**self._identity(), "started_unix_s": self._started_unix_s, "ended_unix_s": self._ended_unix_s},
            config=self.config,
            channels=self._channels,
            totals=self._totals(),
            records=self._records,
            intensity=self.intensity,
            budget_kg=None if self._budget is None else self._budget.budget_kg,
            warnings=warnings,
            errors_total=self.monitoring_errors_total,
            samples_total=self._samples_total,
            steps_file=steps_file,
            recommendations=self.recommendations(),
            estimate_inputs={} if self._meter_info is None else coverage.estimate_inputs(self._meter_info),
            dram=(
                coverage.dram_coverage(self._meter_info)
                if self._meter_info is not None
                else {"measured": False, "channels": [], "note": coverage.dram_not_measured_note(None)}
            ),
        )
        # The meter layer's own figures: counter resets, and the energy of windows shorter than
        # the sensor (docs/gpu.md).
        report["counter_resets"] = int(self._totals().get("counter_resets", 0))
        report["window_estimates"] = self._window_estimates()
        return report

    def _window_estimates(self) -> Optional[Dict[str, Any]]:
        """Mean energy per window name for windows shorter than the sensor (None without named
        windows or counter channels); an estimator failure is counted, never raised."""
        if self._meter is None:
            return None
        try:
            return self._meter.window_estimates_section()
        except Exception as error:  # noqa: BLE001 - a report must not fail over an estimate
            self._health.count_error("session", error)
            return None

    # Exporters -------------------------------------------------------------------------------------

    def _start_exporter(self) -> Any:
        from hf_eco2ai.integrations import prometheus

        config = self.config
        return prometheus.start_session_exporter(
            self,
            host=config.prometheus_host,
            port=config.prometheus_port,
            max_projects=config.max_projects,
            label_cleanup=config.label_cleanup_enabled,
            aggregate_similar_models=config.aggregate_similar_models,
            compress=config.compression_enabled,
        )

    def _push_final_figures(self) -> None:
        from hf_eco2ai.integrations.prometheus.push import push_snapshot

        snapshot = self.snapshot()
        if snapshot is None or self.config.prometheus_pushgateway_url is None:
            return
        try:
            push_snapshot(
                self.config.prometheus_pushgateway_url,
                snapshot,
                label_cleanup=self.config.label_cleanup_enabled,
                aggregate_similar_models=self.config.aggregate_similar_models,
            )
        except CarbonTrackingError as error:
            self._health.count_error("pushgateway", error)

    def _stop_exporter(self) -> None:
        try:
            self._exporter.close()
        except Exception as error:  # noqa: BLE001 - closing an exporter must not fail the run's end
            self._health.count_error("exporter", error)


# Meters that a session has measured with: a meter's records and totals belong to one run.
_CLAIMED_METERS: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _claim_meter_for_one_run(meter: Any) -> None:
    if meter in _CLAIMED_METERS:
        raise ConfigurationError(
            "meter = this EnergyMeter already measured an earlier run; a meter measures one run: pass a new "
            "EnergyMeter for each run, or none (a meter is then built for each run from the config)"
        )
    _CLAIMED_METERS.add(meter)
