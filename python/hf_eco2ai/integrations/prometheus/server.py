"""The scrape endpoint: an HTTP server on its own daemon threads serving one SnapshotCollector.

Prometheus pulls ``GET /metrics`` (text format, or OpenMetrics when asked) and keeps the
connection open between scrapes, so a steady scraper costs one parked thread, not a thread and a
TCP handshake per scrape. The server binds to 127.0.0.1 unless told otherwise, so metrics never
leave the machine by accident. One process serves each address once: ``shared_exporter`` hands
the running exporter to every later session that asks for the same address, so a second
``trainer.train()`` in a notebook attaches to the endpoint instead of failing on a port its own
process holds.

Limits, so that no client can starve the training process of threads, memory or file
descriptors: at most ``max_connections`` (default 32) connections are served at once, and one
beyond that is answered 503 and closed at once, without a thread; a request's line and headers
must arrive within ``header_deadline_s`` (default 5 s) of its first byte, however slowly they
trickle; a kept-alive connection may sit idle for ``idle_keepalive_s`` (default 60 s) between
requests; an answer must be taken within ``SEND_TIMEOUT_S``. The listen backlog is
``LISTEN_BACKLOG`` so that a burst of connects waits in the kernel instead of being retried.
"""

from __future__ import annotations

import errno
import gzip
import io
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional, Set, Tuple

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.prometheus.collector import Attachment, SnapshotCollector, SnapshotProvider

DEFAULT_HOST = "127.0.0.1"
MAX_PORT = 65535
DEFAULT_MAX_CONNECTIONS = 32
DEFAULT_HEADER_DEADLINE_S = 5.0
DEFAULT_IDLE_KEEPALIVE_S = 60.0
SEND_TIMEOUT_S = 10.0
LISTEN_BACKLOG = 128
_REFUSAL = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
# Scrapes closer together than this share one rendering of the registry.
RENDER_TTL_S = 0.1

_logger = logging.getLogger("hf_eco2ai.prometheus")


class _RequestDeadlineReader(io.RawIOBase):
    """Reads a connection under two whole-phase deadlines instead of a per-read timeout.

    Waiting for a request's first byte may take ``idle_s``; from that byte on, the request line and
    headers must be complete within ``header_s``. A per-read timeout restarts at every byte, so a
    client sending one byte per interval would hold its thread forever.
    """

    def __init__(self, sock: socket.socket, idle_s: float, header_s: float) -> None:
        super().__init__()
        self._sock = sock
        self._idle_s = idle_s
        self._header_s = header_s
        self._deadline_s = 0.0
        self._awaiting_first_byte = True

    def next_request(self) -> None:
        self._deadline_s = time.monotonic() + self._idle_s
        self._awaiting_first_byte = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left_s = self._deadline_s - time.monotonic()
        if left_s <= 0:
            raise socket.timeout("request deadline passed")
        self._sock.settimeout(left_s)
        count = self._sock.recv_into(buffer)
        if count and self._awaiting_first_byte:
            self._awaiting_first_byte = False
            self._deadline_s = time.monotonic() + self._header_s
        return count


class _MetricsHandler(BaseHTTPRequestHandler):
    """Answers every GET with the registry's exposition, in the format the Accept header asks for."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on a kept-alive connection the
    # body would wait for the client's delayed ACK, about 40 ms per scrape.
    disable_nagle_algorithm = True
    server: "_MetricsServer"

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self._reader = _RequestDeadlineReader(
            self.connection, self.server.idle_keepalive_s, self.server.header_deadline_s
        )
        self.rfile = io.BufferedReader(self._reader)

    def handle_one_request(self) -> None:
        self._reader.next_request()
        super().handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        # The reads left the socket with whatever was left of the header deadline.
        self.connection.settimeout(SEND_TIMEOUT_S)
        body, content_type = self.server.exposition(self.headers.get("Accept", ""))
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        if self.server.compress and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Scrapes arrive many times a minute; logging each would flood the training log."""


class _MetricsServer(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self,
        address: Tuple[str, int],
        registry: CollectorRegistry,
        family: socket.AddressFamily,
        compress: bool,
        limits: "_Limits",
    ) -> None:
        self.address_family = family
        self.registry = registry
        self.compress = compress
        self.max_connections, self.header_deadline_s, self.idle_keepalive_s = limits
        self.refused_connections_total = 0
        self._rendered: Dict[str, Tuple[float, bytes]] = {}
        self._render_lock = threading.Lock()
        self._connections: Set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _MetricsHandler)

    def exposition(self, accept: str) -> Tuple[bytes, str]:
        """The registry rendered in the format ``accept`` asks for, at most RENDER_TTL_S old.

        Rendering holds the GIL for ~150 µs, time the training thread waits for. Scrapers that
        come faster than the TTL share one rendering: a 50/s scraper costs 10 renderings a second,
        and the figures it gets are never older than the TTL.
        """
        encode, content_type = choose_encoder(accept)
        with self._render_lock:
            now = time.monotonic()
            cached = self._rendered.get(content_type)
            if cached is None or now - cached[0] >= RENDER_TTL_S:
                cached = (now, encode(self.registry))
                self._rendered[content_type] = cached
            return cached[1], content_type

    def forget_renderings(self) -> None:
        """The next scrape renders afresh: a run's end must reach its very next scrape."""
        with self._render_lock:
            self._rendered.clear()

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, a reverse DNS query that can stall
        # start-up on a machine without DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            full = len(self._connections) >= self.max_connections
            if not full:
                self._connections.add(request)
        if full:
            self._refuse(request)
            return
        super().process_request(request, client_address)

    def _refuse(self, request: socket.socket) -> None:
        """Answers 503 without blocking or starting a thread, then closes the connection."""
        self.refused_connections_total += 1
        try:
            request.setblocking(False)
            request.send(_REFUSAL)
        except OSError:
            pass
        self.shutdown_request(request)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A scraper hanging up mid-request is routine (Prometheus restarts, timeouts); anything
        # else is logged once per failure instead of printed to the training's stderr.
        if isinstance(sys.exc_info()[1], OSError):
            return
        _logger.warning("hf-eco2ai: Prometheus exporter: a request from %s failed", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Ends open keep-alive connections, so that nothing answers once the exporter is closed."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def port_for_rank(base_port: int, local_rank: int) -> int:
    """The port of one process of a multi-process job: ``base_port + local_rank``.

    Processes on one node cannot share a port, so each adds its local rank; 0 (any free port)
    stays 0. Raises ConfigurationError when the result leaves the TCP port range.
    """
    _check_port(base_port)
    if base_port == 0:
        return 0
    port = base_port + local_rank
    if port > MAX_PORT:
        raise ConfigurationError(
            f"prometheus_port={base_port} with local rank {local_rank} gives port {port}, beyond {MAX_PORT}: "
            f"choose a prometheus_port of at most {MAX_PORT - local_rank}"
        )
    return port


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= MAX_PORT:
        raise ConfigurationError(
            f"prometheus_port={port!r} is invalid: use an integer TCP port from 0 to {MAX_PORT} "
            "(0 lets the OS pick a free port)"
        )


_Limits = Tuple[int, float, float]


def _check_limits(max_connections: int, header_deadline_s: float, idle_keepalive_s: float) -> _Limits:
    if isinstance(max_connections, bool) or not isinstance(max_connections, int) or max_connections < 1:
        raise ConfigurationError(
            f"max_connections={max_connections!r} is invalid: use an integer >= 1 (default {DEFAULT_MAX_CONNECTIONS})"
        )
    for name, value, default in (
        ("header_deadline_s", header_deadline_s, DEFAULT_HEADER_DEADLINE_S),
        ("idle_keepalive_s", idle_keepalive_s, DEFAULT_IDLE_KEEPALIVE_S),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ConfigurationError(f"{name}={value!r} is invalid: use seconds > 0 (default {default:g})")
    return max_connections, float(header_deadline_s), float(idle_keepalive_s)


def _bind(host: str, port: int, registry: CollectorRegistry, compress: bool, limits: _Limits) -> _MetricsServer:
    if not isinstance(host, str) or not host.strip():
        raise ConfigurationError(f"prometheus_host={host!r} is invalid: use an address such as 127.0.0.1")
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as error:
        raise ConfigurationError(
            f"prometheus_host={host!r} does not resolve ({error.strerror}): use an address of this "
            "machine, such as 127.0.0.1 (loopback only) or 0.0.0.0 (every interface)"
        ) from None
    try:
        return _MetricsServer((host, port), registry, family, compress, limits)
    except OSError as error:
        raise _bind_error(host, port, error) from None


def _bind_error(host: str, port: int, error: OSError) -> ConfigurationError:
    where = f"{host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return ConfigurationError(
            f"prometheus_port={port}: {where} is already in use. Fix: set "
            "prometheus_port to a free port (CarbonConfig(prometheus_port=...) or monitoring.prometheus_port "
            f"in eco2ai.yaml), or to 0 to let the OS pick one; `ss -ltnp 'sport = :{port}'` shows "
            "which process holds it"
        )
    if error.errno == errno.EACCES:
        return ConfigurationError(
            f"prometheus_port={port}: binding {where} was refused (ports below 1024 need privileges). "
            "Fix: set prometheus_port to a port of 1024 or above, e.g. 8000"
        )
    return ConfigurationError(
        f"prometheus_host={host!r}: cannot listen on {where} ({error.strerror or error}). Fix: use an "
        "address of this machine, such as 127.0.0.1 (loopback only) or 0.0.0.0 (every interface)"
    )


class PrometheusExporter:
    """A running scrape endpoint serving the ``hf_training_*`` metrics.

    Binds at construction and serves from a daemon thread until ``close()`` (or process exit).

    Args:
        host: address to bind; 127.0.0.1 keeps the endpoint on this machine.
        port: TCP port, or 0 for a free one (read it back from ``port``).
        registry: serve this registry (e.g. ``prometheus_client.REGISTRY`` to join an app's own
            metrics); None uses a private one.
        max_projects, label_cleanup, aggregate_similar_models, commit: see ``SnapshotCollector``.
        compress: gzip answers for scrapers that accept it (``compression_enabled``): fewer bytes
            on the wire for some CPU on every scrape.
        max_connections: connections served at once; more are answered 503 and closed.
        header_deadline_s: time from a request's first byte to the end of its headers.
        idle_keepalive_s: time a kept-alive connection may wait for its next request.

    Raises:
        ConfigurationError: the port is in use, privileged, or out of range; the host is not an
            address of this machine; ``max_projects`` or a limit is invalid. The message names
            the fix.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 8000,
        registry: Optional[CollectorRegistry] = None,
        max_projects: int = 100,
        label_cleanup: bool = True,
        aggregate_similar_models: bool = True,
        commit: str = "unknown",
        compress: bool = False,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        header_deadline_s: float = DEFAULT_HEADER_DEADLINE_S,
        idle_keepalive_s: float = DEFAULT_IDLE_KEEPALIVE_S,
    ) -> None:
        _check_port(port)
        limits = _check_limits(max_connections, header_deadline_s, idle_keepalive_s)
        self.registry = CollectorRegistry() if registry is None else registry
        self.collector = SnapshotCollector(
            registry=self.registry,
            max_projects=max_projects,
            label_cleanup=label_cleanup,
            aggregate_similar_models=aggregate_similar_models,
            commit=commit,
        )
        try:
            self._server = _bind(host, port, self.registry, compress, limits)
        except ConfigurationError:
            self.registry.unregister(self.collector)
            raise
        self.host = host
        self.port: int = self._server.server_address[1]
        self._closed = False
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"hf-eco2ai-prometheus-{self.port}", daemon=True
        )
        self._thread.start()
        _logger.info("hf-eco2ai: Prometheus metrics at %s", self.url)

    @property
    def url(self) -> str:
        """The scrape URL, e.g. ``http://127.0.0.1:8000/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    @property
    def refused_connections_total(self) -> int:
        """Connections answered 503 because ``max_connections`` were already open."""
        return self._server.refused_connections_total

    def refresh(self) -> None:
        """Drops the shared rendering, so the next scrape shows the figures as they are now."""
        self._server.forget_renderings()

    def attach(self, provider: SnapshotProvider) -> Attachment:
        """Starts exporting a session's snapshots; see ``SnapshotCollector.attach``."""
        return self.collector.attach(provider)

    def close(self) -> None:
        """Stops serving, ends open connections and frees the port.

        Idempotent; blocks for at most about half a second.
        """
        with _shared_lock:
            if self._closed:
                return
            self._closed = True
            if _shared.get((self.host, self.port)) is self:
                del _shared[(self.host, self.port)]
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join()
        self.registry.unregister(self.collector)

    def __enter__(self) -> "PrometheusExporter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving"
        return f"PrometheusExporter({self.url}, {state})"


_shared_lock = threading.Lock()
_shared: Dict[Tuple[str, int], PrometheusExporter] = {}


def shared_exporter(host: str = DEFAULT_HOST, port: int = 8000, **options: Any) -> PrometheusExporter:
    """The exporter this process already serves on ``host:port``, or a newly started one.

    ``options`` (``max_projects``, ``label_cleanup``, ``aggregate_similar_models``, ``commit``,
    ``registry``) apply only when a
    new exporter starts. Port 0 always starts a new exporter on a free port. Thread-safe.
    Raises ConfigurationError as ``PrometheusExporter`` does.
    """
    with _shared_lock:
        running = _shared.get((host, port)) if port else None
        if running is not None:
            return running
        exporter = PrometheusExporter(host=host, port=port, **options)
        _shared[(host, exporter.port)] = exporter
        return exporter
