"""A prometheus_client Collector that reads session snapshots at scrape time.

Nothing is updated on the training loop's hot path: each scrape calls the attached snapshot
providers (``TrackingSession.snapshot``, or any zero-argument callable returning a
``SessionSnapshot`` or None) and yields fresh metric families. No figure is cached between
scrapes. Before a session has its first reading a provider returns None and the scrape holds only
the exporter's own series.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from operator import itemgetter
from typing import Callable, Dict, Iterable, Iterator, Optional, Set, Tuple, Union

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from hf_eco2ai import __version__
from hf_eco2ai.integrations.prometheus.catalogue import BY_NAME, CATALOGUE, MetricSpec
from hf_eco2ai.integrations.prometheus.labels import ProjectLabelGuard, clean_label_value
from hf_eco2ai.integrations.prometheus.samples import snapshot_samples
from hf_eco2ai.session.snapshot import SessionSnapshot

SnapshotProvider = Callable[[], Optional[SessionSnapshot]]
Family = Union[CounterMetricFamily, GaugeMetricFamily]

PROVIDER_ERROR = "snapshot_provider"
PROJECT_OVERFLOW_ERROR = "project_label_overflow"

_logger = logging.getLogger("hf_eco2ai.prometheus")


@dataclass
class _Entry:
    provider: Optional[SnapshotProvider]
    final: Optional[SessionSnapshot] = None


class Attachment:
    """One provider's place in a collector, returned by ``SnapshotCollector.attach``.

    Call ``finish()`` when the run ends: the last snapshot stays exported (so Prometheus scrapes
    the final figures) and the provider, with the session it holds, is released. ``detach()``
    removes the run's series at once. Both are idempotent and thread-safe.
    """

    def __init__(self, collector: "SnapshotCollector", entry: _Entry) -> None:
        self._collector = collector
        self._entry = entry

    def finish(self) -> None:
        self._collector._finish(self._entry)

    def detach(self) -> None:
        self._collector._detach(self._entry)


def _family(spec: MetricSpec) -> Family:
    if spec.kind == "counter":
        return CounterMetricFamily(spec.family_name, spec.help, labels=spec.labels)
    return GaugeMetricFamily(spec.family_name, spec.help, labels=spec.labels)


def _label_values_getter(labels: Tuple[str, ...]) -> Callable[[Dict[str, str]], Tuple[str, ...]]:
    # itemgetter runs in C: this lookup runs once per sample on every scrape.
    getter = itemgetter(*labels)
    return getter if len(labels) > 1 else lambda mapping: (getter(mapping),)


_LABEL_VALUES = {spec.name: _label_values_getter(spec.labels) for spec in CATALOGUE}


def _series_key(snapshot: SessionSnapshot) -> Tuple[str, Optional[str], int, str]:
    return (snapshot.project_name, snapshot.model_name, snapshot.rank, snapshot.host)


class SnapshotCollector(Collector):
    """Exports every attached session's snapshot as the ``hf_training_*`` metrics.

    Args:
        provider: optional first provider to attach (see ``attach``).
        registry: a ``CollectorRegistry`` to register with; None registers nowhere.
        max_projects: cap on distinct ``project_name`` label values (>= 1); later projects are
            exported as ``project_name="other"``.
        label_cleanup: make free-text label values printable, single-line and bounded.
        aggregate_similar_models: label a model given as a local path by its own directory name,
            so that its checkpoints share one series (see ``prometheus_labels.model_label``).
        commit: source commit shown on ``hf_training_plugin_version`` and ``hf_training_build_info``.

    Raises:
        ConfigurationError: ``max_projects`` is not an integer >= 1.
        ValueError: ``registry`` already holds a collector exporting these names.

    ``collect()`` runs on the scraping thread; it is cheap, never raises because of a provider
    and is safe before any sampling started. When two snapshots give the same series (same
    labels), the newer one wins.
    """

    def __init__(
        self,
        provider: Optional[SnapshotProvider] = None,
        *,
        registry: Optional[CollectorRegistry] = None,
        max_projects: int = 100,
        label_cleanup: bool = True,
        aggregate_similar_models: bool = True,
        commit: str = "unknown",
    ) -> None:
        self._guard = ProjectLabelGuard(max_projects)
        self._label_cleanup = label_cleanup
        self._aggregate_similar_models = aggregate_similar_models
        self._commit = commit
        self._lock = threading.Lock()
        self._entries: Tuple[_Entry, ...] = ()
        self._provider_failures = 0
        if provider is not None:
            self.attach(provider)
        if registry is not None:
            registry.register(self)

    def attach(self, provider: SnapshotProvider) -> Attachment:
        """Starts exporting what ``provider`` returns; see ``Attachment`` for ending it."""
        entry = _Entry(provider)
        with self._lock:
            self._entries = (*self._entries, entry)
        return Attachment(self, entry)

    def describe(self) -> Iterable[Metric]:
        """The catalogue's families, empty: lets a registry check names without calling providers."""
        return [_family(spec) for spec in CATALOGUE]

    def collect(self) -> Iterator[Metric]:
        snapshots = [snapshot for snapshot in map(self._read, self._entries) if snapshot is not None]
        snapshots.sort(key=lambda snapshot: snapshot.unix_time_s, reverse=True)
        families: Dict[str, Family] = {}
        seen: Set[Tuple[str, Tuple[str, ...]]] = set()

        def add(name: str, labels: Dict[str, str], value: float) -> None:
            label_values = _LABEL_VALUES[name](labels)
            key = (name, label_values)
            if key in seen:
                return
            seen.add(key)
            family = families.get(name)
            if family is None:
                family = families[name] = _family(BY_NAME[name])
            family.add_metric(label_values, float(value))

        for snapshot in snapshots:
            project_name = clean_label_value(snapshot.project_name) if self._label_cleanup else snapshot.project_name
            project_label = self._guard.label_for(project_name)
            for name, labels, value in snapshot_samples(
                snapshot, project_label, self._label_cleanup, self._aggregate_similar_models
            ):
                if value is not None:
                    add(name, labels, value)
        build = {"version": __version__, "commit": self._commit}
        add("hf_training_plugin_version", build, 1)
        add("hf_training_build_info", build, 1)
        # The exporter's own errors belong to no run, so they carry no run labels; they appear
        # once they happen, which keeps a pushed group free of series without those labels.
        for error_type, count in (
            (PROVIDER_ERROR, self._provider_failures),
            (PROJECT_OVERFLOW_ERROR, self._guard.folded_count),
        ):
            if count:
                add(
                    "hf_training_monitoring_errors_total",
                    {"error_type": error_type, "project_name": "", "rank": "", "host": ""},
                    count,
                )
        for spec in CATALOGUE:
            if spec.name in families:
                yield families[spec.name]

    def _read(self, entry: _Entry) -> Optional[SessionSnapshot]:
        provider = entry.provider
        if provider is None:
            return entry.final
        try:
            return provider()
        except Exception:
            with self._lock:
                self._provider_failures += 1
                first_failure = self._provider_failures == 1
            if first_failure:
                _logger.warning(
                    "hf-eco2ai: Prometheus exporter: a snapshot provider failed; its series are left out "
                    "of this scrape (counted in hf_training_monitoring_errors_total)",
                    exc_info=True,
                )
            return None

    def _finish(self, entry: _Entry) -> None:
        final = self._read(entry)
        with self._lock:
            if entry not in self._entries:
                return
            # final first: a scrape reading the entry meanwhile must find one or the other
            entry.final = final
            entry.provider = None
            if final is None:
                self._entries = tuple(other for other in self._entries if other is not entry)
                return
            # A finished run's series stay until a later run with the same labels finishes, and at
            # most max_projects finished runs are kept, so a long sweep cannot grow memory forever.
            key = _series_key(final)

            def superseded(other: _Entry) -> bool:
                return other is not entry and other.final is not None and _series_key(other.final) == key

            kept = [other for other in self._entries if not superseded(other)]
            finished = [other for other in kept if other.provider is None]
            excess = set(map(id, finished[: max(0, len(finished) - self._guard.max_projects)]))
            self._entries = tuple(other for other in kept if id(other) not in excess)

    def _detach(self, entry: _Entry) -> None:
        with self._lock:
            self._entries = tuple(other for other in self._entries if other is not entry)
