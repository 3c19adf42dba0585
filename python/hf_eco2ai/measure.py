"""The CarbonTracker face (seed "cookbook.measure"): named tracking sessions with carbon figures.

A thin layer over ``TrackingSession``. From the moment the first named session starts until the
last open one stops, one ``TrackingSession`` runs (one run in the store, one report). Each named
session is a span within it: its energy is the difference of the meter's cumulative energy at its
two ends (the newest reading carried to the instant at its power), so sessions may follow each other or nest and each gets
its own figures. Carbon, comparisons, cost, budget and recommendations come from the carbon layer.

```python
from hf_eco2ai.measure import CarbonTracker

tracker = CarbonTracker(project_name="sustainable-ml", experiment_name="carbon-demo")
with tracker.start_tracking("model_training"):
    model.fit(X_train, y_train)
metrics = tracker.stop_tracking("model_training")
print(f"Emissions: {metrics.emissions_kg_co2 * 1000:.2f}g CO2eq")
```
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from hf_eco2ai.carbon.budget import BudgetStatus, CarbonBudget
from hf_eco2ai.carbon.comparisons import Comparison, compute_comparisons, describe_comparisons
from hf_eco2ai.carbon.impact import carbon_impact_from_joules
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.carbon.recommendations import Recommendation, regional_recommendations
from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.observer import BackendObserver, backend_factory
from hf_eco2ai.meter.channels import ChannelInfo
from hf_eco2ai.reporting.files import DEFAULT_REPORT_FORMATS
from hf_eco2ai.reporting.run_outputs import check_report_formats, log_run_summary, write_run_outputs
from hf_eco2ai.session.tracking_session import StoreSetting, TrackingSession

NETWORK_MODES = ("machine", "offline")
_TABLE_SOURCES = ("cloud-region-table", "subnational-table", "country-table")


@dataclass(frozen=True, repr=False)
class CarbonMetrics:
    """The figures of one named tracking session.

    ``energy_consumed_kwh`` has the PUE applied; ``emissions_kg_co2`` is that energy times
    ``carbon_intensity_g_per_kwh``, whose provenance is ``intensity``. ``energy_provenance`` is
    ``measured``, ``estimated`` or ``mixed`` over the channels summed. ``parent`` names the session
    this one was nested in.
    """

    name: str
    emissions_kg_co2: float
    energy_consumed_kwh: float
    carbon_intensity_g_per_kwh: float
    duration_s: float
    intensity: IntensityResult
    energy_joules_by_channel: Dict[str, float]
    energy_provenance: str
    pue: float
    started_unix_s: float
    ended_unix_s: float
    run_id: str
    parent: Optional[str] = None
    cost: Optional[float] = None
    electricity_currency: Optional[str] = None

    def __repr__(self) -> str:
        """One line: name, CO2e, energy, duration and the intensity with its source."""
        from hf_eco2ai.reporting import numbers

        intensity = self.intensity
        where = intensity.zone or intensity.country or intensity.region
        source = " ".join(str(part) for part in (intensity.source, where, intensity.year) if part)
        return (
            f"CarbonMetrics({self.name!r}: {numbers.mass_kg(self.emissions_kg_co2)} CO2e, "
            f"{numbers.energy_kwh(self.energy_consumed_kwh)} ({self.energy_provenance}), "
            f"{numbers.duration(self.duration_s)}, "
            f"{numbers.significant(self.carbon_intensity_g_per_kwh)} gCO2e/kWh from {source}, run {self.run_id[:12]})"
        )

    def _repr_html_(self) -> str:
        """Headline cards and each channel's energy, for Jupyter."""
        from hf_eco2ai.reporting.notebook import metrics_fragment

        return metrics_fragment(self)

    def comparisons(self) -> List[Comparison]:
        """Everyday equivalents, computed from the cited factor table."""
        return compute_comparisons(self.emissions_kg_co2, self.energy_consumed_kwh)

    def emissions_comparison(self) -> Dict[str, str]:
        """``{kind: text}``, e.g. ``{"smartphone_charges": "2.30 smartphone charges", ...}``."""
        return describe_comparisons(self.emissions_kg_co2, self.energy_consumed_kwh)

    def to_dict(self) -> Dict[str, Any]:
        """JSON types only, with the comparisons added."""
        return {**asdict(self), "comparisons": [comparison.to_dict() for comparison in self.comparisons()]}


@dataclass
class _OpenSpan:
    name: str
    started_monotonic_s: float
    started_unix_s: float
    joules_at_start: Dict[str, float]
    parent: Optional[str]
    run_id: str


class TrackingHandle:
    """Returned by ``start_tracking``: the session is already running; leaving the ``with`` block
    stops it (``metrics`` then holds its figures). ``stop()`` stops it early."""

    def __init__(self, tracker: "CarbonTracker", name: str) -> None:
        self._tracker = tracker
        self.name = name
        self.metrics: Optional[CarbonMetrics] = None

    def stop(self) -> CarbonMetrics:
        if self.metrics is None:
            self.metrics = self._tracker._stop(self.name, failed=False)
        return self.metrics

    def __enter__(self) -> "TrackingHandle":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self.metrics is None:
            self.metrics = self._tracker._stop(self.name, failed=exc_type is not None)


@dataclass
class _Totals:
    co2_kg: float = 0.0
    energy_kwh: float = 0.0
    duration_s: float = 0.0
    cost: Optional[float] = None
    run_ids: List[str] = field(default_factory=list)


class CarbonTracker:
    """Tracks named sessions of work and turns their energy into carbon figures.

    Args:
        project_name, experiment_name, output_dir: identity and where the run store goes.
        cloud_provider, cloud_region: force a provider (``aws``, ``gcp``, ``azure``) and region;
            otherwise detected (environment, then metadata endpoints within 200 ms) unless offline.
        country_iso_code: the machine's country, for the intensity tables.
        network_mode: ``machine`` (may use the network: live intensity, cloud detection) or
            ``offline`` (air-gapped); ``None`` keeps the configured ``offline`` setting.
            ``tracking_mode``, the CarbonTracker API's spelling, is the same argument (it is not
            ``CarbonConfig.tracking_mode``, the level of detail).
        config: a ``CarbonConfig`` for every other setting; the arguments above override it.
        store: passed to ``TrackingSession`` (``True``: ``<output_dir>/runs.sqlite``).
        backends: trackers that also receive the figures (``"mlflow"``, ``"wandb"``,
            ``"tensorboard"``, ``"local"``, a plugin's name, or ``Backend`` objects): each named
            session's emissions, energy and duration as ``session/<name>/...`` metrics when it
            stops, and the run's totals, provenance and report when the last open one stops.
        backend_options: their options (``mlflow_tracking_uri``, ``wandb_mode``...).
        cpu_scope: ``machine`` (the whole node's CPU energy) or ``process`` (this process and its
            children's share of it); ``None`` keeps ``config.cpu_scope``.
        report_formats: the report files written to ``output_dir`` when the last open session
            stops, named ``carbon_report_<run id>`` (default json, html, csv, markdown; ``()``
            writes none). Each run also appends a row to ``<output_dir>/emissions.csv`` and logs
            one summary line at INFO, as the callbacks do.

    Threading: all methods may be called from any thread; one lock serialises them.

    Raises:
        ConfigurationError: an invalid argument or setting.
        SensorUnavailableError: a sensor source named in the config cannot run here.
    """

    def __init__(
        self,
        project_name: Optional[str] = None,
        experiment_name: Optional[str] = None,
        output_dir: Optional[str] = None,
        cloud_provider: Optional[str] = None,
        cloud_region: Optional[str] = None,
        country_iso_code: Optional[str] = None,
        tracking_mode: Optional[str] = None,
        *,
        network_mode: Optional[str] = None,
        config: Optional[CarbonConfig] = None,
        store: StoreSetting = True,
        backends: Sequence[Any] = (),
        backend_options: Optional[Mapping[str, Any]] = None,
        cpu_scope: Optional[str] = None,
        report_formats: Sequence[str] = DEFAULT_REPORT_FORMATS,
    ) -> None:
        if tracking_mode is not None and network_mode is not None and tracking_mode != network_mode:
            raise ConfigurationError(
                f"network_mode = {network_mode!r} and tracking_mode = {tracking_mode!r} name the same setting: "
                "give one of them"
            )
        spelling = "network_mode" if network_mode is not None else "tracking_mode"
        network_mode = network_mode if network_mode is not None else tracking_mode
        if network_mode is not None and network_mode not in NETWORK_MODES:
            raise ConfigurationError(
                f"{spelling} = {network_mode!r} is invalid: expected 'machine' or 'offline' (or None); it says "
                "whether the tracker may use the network, not the level of detail (CarbonConfig.tracking_mode)"
            )
        overrides = {
            "project_name": project_name,
            "experiment_id": experiment_name,
            "output_dir": output_dir,
            "cloud_provider": cloud_provider,
            "cloud_region": cloud_region,
            "country_iso_code": country_iso_code,
            "offline": None if network_mode is None else network_mode == "offline",
            "cpu_scope": cpu_scope,
        }
        given = {name: value for name, value in overrides.items() if value is not None}
        self._report_formats = check_report_formats(report_formats)
        base = config if config is not None else CarbonConfig()
        self.config = base.replace(**given) if given else base
        # No budget for the sessions: the tracker's budget spans all of its runs.
        self._session_config = self.config.replace(carbon_budget_kg=None)
        self._store = store
        self._budget = (
            None
            if self.config.carbon_budget_kg is None
            else CarbonBudget(self.config.carbon_budget_kg, stop_on_exceeded=self.config.stop_on_budget_exceeded)
        )
        self._lock = threading.RLock()
        self._session: Optional[TrackingSession] = None
        self._next_session: Optional[TrackingSession] = TrackingSession(self._session_config, store=store)
        # Located once, by the first run; every later run is handed the answer.
        self._location = self._next_session.cloud_location
        self._latest_session: TrackingSession = self._next_session
        self._open: Dict[str, _OpenSpan] = {}
        self._finished: List[CarbonMetrics] = []
        self._latest_by_name: Dict[str, CarbonMetrics] = {}
        self._reports: List[Dict[str, Any]] = []
        self._last_intensity: Optional[IntensityResult] = None
        make_backends = backend_factory(backends, backend_options, self.config.output_dir)
        self._observer = None if make_backends is None else BackendObserver(make_backends)

    # Identity and location ---------------------------------------------------------------------

    @property
    def project_name(self) -> str:
        return str(self.config.project_name)

    @property
    def experiment_name(self) -> Optional[str]:
        return self.config.experiment_id

    @property
    def cloud_provider(self) -> Optional[str]:
        """``aws``, ``gcp`` or ``azure`` when configured or detected; None outside a cloud."""
        return None if self._location is None else self._location.provider

    @property
    def cloud_region(self) -> Optional[str]:
        return None if self._location is None else self._location.region

    @property
    def cloud_detected_by(self) -> Optional[str]:
        """``config``, ``env <VARIABLE>`` or ``metadata <provider>``; None outside a cloud."""
        return None if self._location is None else self._location.detected_by

    # Sessions ------------------------------------------------------------------------------------

    def start_tracking(self, name: str) -> TrackingHandle:
        """Starts the named session now; use the result as a context manager to stop it.

        Raises:
            ConfigurationError: ``name`` is empty or a session of that name is already open.
        """
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"name = {name!r} is invalid: expected a non-empty string")
        with self._lock:
            if name in self._open:
                raise ConfigurationError(
                    f"name = {name!r} is invalid: a session of that name is already open; stop it first or use another name"
                )
            session = self._running_session()
            instant = time.monotonic()
            parent = next(reversed(self._open)) if self._open else None
            self._open[name] = _OpenSpan(
                name=name,
                started_monotonic_s=instant,
                started_unix_s=time.time(),
                joules_at_start=session.energy_at(instant),
                parent=parent,
                run_id=session.run_id,
            )
        return TrackingHandle(self, name)

    def stop_tracking(self, name: Optional[str] = None) -> CarbonMetrics:
        """Stops the named session (default: the most recently started open one) and returns its
        metrics. A session that has already stopped, for instance by leaving its ``with`` block,
        returns its metrics again; with no name and nothing open, the last finished session's.

        Raises:
            ConfigurationError: no session of that name was started, or none at all.
        """
        with self._lock:
            if name is None:
                if self._open:
                    return self._stop(next(reversed(self._open)), failed=False)
                if self._finished:
                    return self._finished[-1]
                raise ConfigurationError("name = None is invalid: no tracking session was started")
            if name in self._open:
                return self._stop(name, failed=False)
            if name in self._latest_by_name:
                return self._latest_by_name[name]
            known = sorted(set(self._open) | set(self._latest_by_name))
            raise ConfigurationError(
                f"name = {name!r} is invalid: no session of that name was started (known: {', '.join(known) or 'none'})"
            )

    def close(self) -> None:
        """Stops every open session (innermost first) and the run under them. Idempotent."""
        with self._lock:
            while self._open:
                self._stop(next(reversed(self._open)), failed=False)

    def _running_session(self) -> TrackingSession:
        if self._session is None:
            session = self._next_session or TrackingSession(
                self._session_config, store=self._store, cloud=self._location
            )
            self._next_session = None
            self._latest_session = session
            session.start()
            self._session = session
            self._notify(session, "on_run_start", session)
        return self._session

    def _notify(self, session: TrackingSession, method: str, *args: Any) -> None:
        if self._observer is None:
            return
        try:
            getattr(self._observer, method)(*args)
        except Exception as error:  # noqa: BLE001 - a tracker backend must never fail the tracked work
            session.record_monitoring_error("observer-BackendObserver", error)

    def _stop(self, name: str, failed: bool) -> CarbonMetrics:
        with self._lock:
            span = self._open.get(name)
            if span is None:
                return self._latest_by_name[name]
            session = self._running_session()
            instant = time.monotonic()
            joules_at_end = session.energy_at(instant)
            snapshot = session.snapshot()
            assert snapshot is not None, "the session was started by _running_session"
            intensity = snapshot.intensity
            del self._open[name]
            metrics = self._metrics(span, session.channels, joules_at_end, instant, intensity)
            self._finished.append(metrics)
            self._latest_by_name[name] = metrics
            self._last_intensity = intensity
            self._notify(
                session,
                "on_log",
                {
                    f"session/{name}/emissions_kg_co2": metrics.emissions_kg_co2,
                    f"session/{name}/energy_kwh": metrics.energy_consumed_kwh,
                    f"session/{name}/duration_s": metrics.duration_s,
                },
                len(self._finished),
            )
            if not self._open:
                status = "failed" if failed else "finished"
                report = session.stop(status)
                self._reports.append(report)
                self._session = None
                paths = self._write_outputs(session, report, status)
                self._notify(session, "on_run_end", report, paths)
                log_run_summary(report, paths)
            if self._budget is not None:
                self._budget.record_total(self.get_total_emissions())
            return metrics

    def _write_outputs(self, session: TrackingSession, report: Dict[str, Any], status: str) -> Dict[str, Path]:
        def failed(error: OSError) -> None:
            session.record_monitoring_error(
                "report-files",
                error,
                f"could not write the report files to {self.config.output_dir} ({type(error).__name__}: {error}); "
                "the report is kept in the run store (hf-eco2ai report RUN)",
            )

        return write_run_outputs(report, self.config.output_dir, self._report_formats, status, failed)

    def _metrics(
        self,
        span: _OpenSpan,
        channels: List[ChannelInfo],
        joules_at_end: Dict[str, float],
        ended_monotonic_s: float,
        intensity: IntensityResult,
    ) -> CarbonMetrics:
        joules_by_channel = {
            channel: max(joules_at_end.get(channel, 0.0) - span.joules_at_start.get(channel, 0.0), 0.0)
            for channel in joules_at_end
        }
        top_level = [channel for channel in channels if channel.parent is None]
        top_level_joules = sum(joules_by_channel.get(channel.name, 0.0) for channel in top_level)
        duration_s = ended_monotonic_s - span.started_monotonic_s
        impact = carbon_impact_from_joules(
            top_level_joules,
            intensity,
            self.config.pue,
            duration_s=duration_s,
            electricity_price_per_kwh=self.config.electricity_price_per_kwh,
            electricity_currency=self.config.electricity_currency,
        )
        kinds = {channel.provenance for channel in top_level}
        provenance = kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "none")
        return CarbonMetrics(
            name=span.name,
            emissions_kg_co2=impact.co2_kg,
            energy_consumed_kwh=impact.energy_kwh,
            carbon_intensity_g_per_kwh=impact.carbon_intensity_g_per_kwh,
            duration_s=duration_s,
            intensity=intensity,
            energy_joules_by_channel=joules_by_channel,
            energy_provenance=provenance,
            pue=impact.pue,
            started_unix_s=span.started_unix_s,
            ended_unix_s=span.started_unix_s + duration_s,
            run_id=span.run_id,
            parent=span.parent,
            cost=impact.cost,
            electricity_currency=impact.electricity_currency,
        )

    # Figures -------------------------------------------------------------------------------------

    def _totals(self) -> _Totals:
        totals = _Totals()
        reports = list(self._reports)
        if self._session is not None:
            reports.append(self._session.report(combine_ranks=False))
        for report in reports:
            totals.co2_kg += float(report["total_co2_kg"])
            totals.energy_kwh += float(report["energy"]["total_kwh"])
            totals.duration_s += float(report["duration_s"])
            totals.run_ids.append(str(report["run"]["run_id"]))
            if report["cost"] is not None:
                totals.cost = (totals.cost or 0.0) + float(report["cost"]["total"])
        return totals

    def get_total_emissions(self) -> float:
        """kg CO2e of every run of this tracker, the running one included. Time covered by nested
        or overlapping sessions counts once."""
        with self._lock:
            return self._totals().co2_kg

    @property
    def sessions(self) -> List[CarbonMetrics]:
        """Every finished named session, in the order they stopped."""
        with self._lock:
            return list(self._finished)

    @property
    def reports(self) -> List[Dict[str, Any]]:
        """The ``tracking_data`` of every finished run (see docs/reports.md), for ``generate_carbon_report``."""
        with self._lock:
            return list(self._reports)

    def get_budget_status(self) -> Optional[BudgetStatus]:
        """The budget over all runs (``carbon_budget_kg``), or None when no budget is set."""
        with self._lock:
            if self._budget is None:
                return None
            return self._budget.record_total(self._totals().co2_kg)

    @property
    def stop_requested(self) -> bool:
        """True once the budget is exceeded and ``stop_on_budget_exceeded`` is set."""
        return self._budget is not None and self._budget.should_stop

    def get_regional_recommendations(self) -> List[Recommendation]:
        """Lower-carbon regions of this provider (in a cloud) or neighbouring grids (elsewhere),
        each with its saving computed from the packaged tables; empty when the location is unknown.
        ``str()`` of each is a sentence."""
        with self._lock:
            last = self._last_intensity
            if last is not None and last.source in _TABLE_SOURCES:
                baseline = last
            elif self._location is not None or self.config.country_iso_code is not None:
                baseline = self._latest_session.table_intensity()
            else:
                return []
            return regional_recommendations(baseline, self._location)

    def get_summary_report(self) -> Dict[str, Any]:
        """All figures so far as JSON types: ``summary`` (totals), ``sessions`` (each named
        session's metrics), ``comparisons``, ``budget``, ``cloud``, ``recommendations`` and ``run_ids``."""
        with self._lock:
            totals = self._totals()
            status = None if self._budget is None else self._budget.record_total(totals.co2_kg)
            intensity = self._last_intensity
            return {
                "project_name": self.project_name,
                "experiment_name": self.experiment_name,
                "summary": {
                    "total_emissions_kg_co2": totals.co2_kg,
                    "total_energy_kwh": totals.energy_kwh,
                    "total_duration_s": totals.duration_s,
                    "sessions_tracked": len(self._finished),
                    "sessions_open": list(self._open),
                    "carbon_intensity_g_per_kwh": None if intensity is None else intensity.g_per_kwh,
                    "intensity": None if intensity is None else asdict(intensity),
                    "pue": self.config.pue,
                    "cost_total": totals.cost,
                    "electricity_currency": self.config.electricity_currency,
                },
                "sessions": [metrics.to_dict() for metrics in self._finished],
                "comparisons": describe_comparisons(totals.co2_kg, totals.energy_kwh),
                "budget": None if status is None else status.to_dict(),
                "cloud": None if self._location is None else asdict(self._location),
                "recommendations": [recommendation.to_dict() for recommendation in self.get_regional_recommendations()],
                "run_ids": totals.run_ids,
            }
