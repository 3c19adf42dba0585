"""Pushing a snapshot to a Prometheus Pushgateway, for jobs too short to be scraped.

A batch job may end before Prometheus's next scrape; pushing its final snapshot to a Pushgateway
keeps the figures. Each push replaces the group of the same project, host and rank (HTTP PUT), so
the gateway holds the latest run of each process rather than an ever-growing pile.
"""

from __future__ import annotations

import socket
import time
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from prometheus_client import push_to_gateway
from prometheus_client.registry import CollectorRegistry

from hf_eco2ai.carbon import bounded_http
from hf_eco2ai.errors import CarbonTrackingError, ConfigurationError
from hf_eco2ai.integrations.prometheus.collector import SnapshotCollector
from hf_eco2ai.integrations.prometheus.labels import clean_label_value
from hf_eco2ai.session.snapshot import SessionSnapshot

DEFAULT_JOB = "hf-eco2ai"


def _checked_gateway(gateway_url: str) -> str:
    parts = urlsplit(gateway_url) if isinstance(gateway_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"gateway_url={gateway_url!r} is invalid: use the Pushgateway's base URL, e.g. http://127.0.0.1:9091"
        )
    if parts.username or parts.password:
        raise ConfigurationError(
            "gateway_url holds credentials: pass a URL without user:password (put an authenticating "
            "proxy in front of the Pushgateway instead), so they never reach logs or error messages"
        )
    return gateway_url.rstrip("/")


def _deadline_handler(
    url: str, method: str, timeout: Optional[float], headers: List[Tuple[str, str]], data: bytes
) -> Callable[[], None]:
    """A ``push_to_gateway`` handler whose timeout bounds the whole push, not each socket read.

    urllib's timeout restarts at every byte, so a gateway trickling its answer held a push (and
    the session's ``stop()``) for as long as it liked.
    """

    def handle() -> None:
        deadline_s = time.monotonic() + (2.0 if timeout is None else timeout)
        try:
            response = bounded_http.request(method, url, dict(headers), deadline_s, body=data)
        except socket.timeout:
            raise OSError(f"no complete answer within {timeout:g} s") from None
        except ValueError as error:
            raise OSError(f"{type(error).__name__}: {error}") from None
        if not 200 <= response.status < 300:
            raise OSError(f"HTTP {response.status}: {response.body[:200].decode('utf-8', 'replace')}")

    return handle


def grouping_key(snapshot: SessionSnapshot, label_cleanup: bool = True) -> Dict[str, str]:
    """The Pushgateway group of a snapshot: one per project, host and rank."""
    label = clean_label_value if label_cleanup else str
    return {"project_name": label(snapshot.project_name), "host": label(snapshot.host), "rank": str(snapshot.rank)}


def push_snapshot(
    gateway_url: str,
    snapshot: SessionSnapshot,
    *,
    job: str = DEFAULT_JOB,
    timeout_s: float = 2.0,
    label_cleanup: bool = True,
    aggregate_similar_models: bool = True,
    commit: str = "unknown",
) -> None:
    """Pushes ``snapshot`` as the ``hf_training_*`` metrics to a Pushgateway (blocking, one request).

    ``label_cleanup``, ``aggregate_similar_models`` and ``commit`` are as in
    ``SnapshotCollector``. Call it at the end of a run (and, if wanted, at log intervals) from the session, never on the
    hot path. Raises ConfigurationError for a malformed ``gateway_url``, and CarbonTrackingError
    when the push fails (unreachable, timeout after ``timeout_s`` seconds, HTTP error); callers
    that must not fail turn that into a warning and a counter. ``timeout_s`` bounds the whole push
    (connect, send, answer), however slowly the gateway answers.
    """
    gateway = _checked_gateway(gateway_url)
    registry = CollectorRegistry()
    SnapshotCollector(
        lambda: snapshot,
        registry=registry,
        label_cleanup=label_cleanup,
        aggregate_similar_models=aggregate_similar_models,
        commit=commit,
    )
    try:
        push_to_gateway(
            gateway,
            job=job,
            registry=registry,
            grouping_key=grouping_key(snapshot, label_cleanup),
            timeout=timeout_s,
            handler=_deadline_handler,
        )
    except OSError as error:
        raise CarbonTrackingError(f"pushing metrics to the Pushgateway at {gateway} failed: {error}") from error
