"""Prometheus integration: the documented ``hf_training_*`` metrics and their base-unit twins.

Three ways to get the metrics out, all reading a session's snapshot, never the training loop:

* a scrape endpoint (``shared_exporter`` / ``PrometheusExporter``), bound to 127.0.0.1 by
  default, which the session starts when ``CarbonConfig.prometheus_enabled`` is set;
* a ``SnapshotCollector`` to register in an application's own ``prometheus_client`` registry;
* ``push_snapshot`` to a Pushgateway, for jobs that end before Prometheus scrapes them.

Example (what ``TrackingSession`` does when ``prometheus_enabled`` is set)::

    export = start_session_exporter(session, host=config.prometheus_host, port=config.prometheus_port)
    ...                                  # training; Prometheus scrapes export.exporter.url
    export.close()                       # at the session's end: the final figures stay served

The metric catalogue is ``prometheus_metrics.CATALOGUE``; ``docs/monitoring/`` holds the
dashboard, alert rules and scrape configuration that use it. Needs the ``prometheus-client``
package (``pip install 'hf-eco2ai[prometheus]'``).
"""

from __future__ import annotations

from typing import Any

try:
    import prometheus_client  # noqa: F401 - imported first so a missing package gets a clear error
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hf_eco2ai.integrations.prometheus needs the prometheus-client package: pip install 'hf-eco2ai[prometheus]'"
    ) from error

from hf_eco2ai.integrations.prometheus.catalogue import CATALOGUE, NOT_EXPORTED, MetricSpec
from hf_eco2ai.integrations.prometheus.collector import Attachment, SnapshotCollector, SnapshotProvider
from hf_eco2ai.integrations.prometheus.labels import OVERFLOW_PROJECT
from hf_eco2ai.integrations.prometheus.push import push_snapshot
from hf_eco2ai.integrations.prometheus.server import (
    DEFAULT_HOST,
    PrometheusExporter,
    port_for_rank,
    shared_exporter,
)


class SessionExport:
    """A session's place on a scrape endpoint, returned by ``start_session_exporter``."""

    def __init__(self, exporter: PrometheusExporter, attachment: Attachment) -> None:
        self.exporter = exporter
        self._attachment = attachment

    def close(self) -> None:
        """Ends the session's live export; its final snapshot stays on the endpoint.

        The endpoint itself keeps serving (so Prometheus still scrapes the run's last figures)
        until the process exits or ``exporter.close()``. Idempotent, thread-safe.
        """
        self._attachment.finish()
        self.exporter.refresh()


def start_session_exporter(
    session: Any,
    *,
    host: str = DEFAULT_HOST,
    port: int = 8000,
    max_projects: int = 100,
    label_cleanup: bool = True,
    aggregate_similar_models: bool = True,
    compress: bool = False,
) -> SessionExport:
    """Serves ``session.snapshot()`` on ``host:port + local rank`` until ``close()``.

    ``session`` is a ``TrackingSession`` (anything with ``snapshot()`` and
    ``rank_info.local_rank``). The endpoint is shared by every session of this process that asks
    for the same address. Raises ConfigurationError when the port is taken by another process or
    the address is unusable; the message names the fix.
    """
    exporter = shared_exporter(
        host,
        port_for_rank(port, session.rank_info.local_rank),
        max_projects=max_projects,
        label_cleanup=label_cleanup,
        aggregate_similar_models=aggregate_similar_models,
        compress=compress,
    )
    return SessionExport(exporter, exporter.attach(session.snapshot))


__all__ = [
    "CATALOGUE",
    "DEFAULT_HOST",
    "NOT_EXPORTED",
    "OVERFLOW_PROJECT",
    "Attachment",
    "MetricSpec",
    "PrometheusExporter",
    "SessionExport",
    "SnapshotCollector",
    "SnapshotProvider",
    "port_for_rank",
    "push_snapshot",
    "shared_exporter",
    "start_session_exporter",
]
