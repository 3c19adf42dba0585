"""The scrape endpoint under hostile clients: a connection cap, whole-request deadlines, a bounded push."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Iterator, List

import pytest
from monitoring_helpers import make_snapshot, scrape_text
from stalling_server import StallingServer

from hf_eco2ai import CarbonConfig, EnergyMeter, TrackingSession
from hf_eco2ai.errors import CarbonTrackingError, ConfigurationError
from hf_eco2ai.integrations.prometheus import PrometheusExporter, push_snapshot
from hf_eco2ai.integrations.prometheus.server import DEFAULT_MAX_CONNECTIONS, LISTEN_BACKLOG

pytestmark = pytest.mark.timeout(60)

SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.fixture
def exporter() -> Iterator[PrometheusExporter]:
    running = PrometheusExporter(port=0, max_connections=4, header_deadline_s=0.5, idle_keepalive_s=0.5)
    yield running
    running.close()


def _connect(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10.0)
    return connection


def _read_answer_head(connection: socket.socket) -> bytes:
    """The status line and headers of one answer; its body is read and dropped."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(4096)
        if not chunk:
            return received
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:
        chunk = connection.recv(4096)
        if not chunk:
            break
        body += chunk
    return head


def _wait_until_closed_by_server(connection: socket.socket) -> bool:
    """True once the server ends the connection (EOF or reset) within the socket's 10 s timeout."""
    try:
        while connection.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return True


def _wait_for(condition, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_connections_beyond_the_cap_are_refused_without_a_thread() -> None:
    exporter = PrometheusExporter(port=0, max_connections=4, idle_keepalive_s=30.0)
    held: List[socket.socket] = []
    threads_before = threading.active_count()
    try:
        for _ in range(4):
            held.append(_connect(exporter.port))
        assert _wait_for(lambda: len(exporter._server._connections) == 4)
        extra = [_connect(exporter.port) for _ in range(20)]
        for connection in extra:
            assert _refused(connection)
            connection.close()
        assert threading.active_count() <= threads_before + 4
        assert exporter.refused_connections_total == 20
        for connection in held:
            connection.close()
        assert _wait_for(lambda: "hf_training" in _try_scrape(exporter.url))
    finally:
        for connection in held:
            connection.close()
        exporter.close()


def _refused(connection: socket.socket) -> bool:
    """True when the server answered 503 and closed, or reset the connection (it may close before
    the request arrives, and then the kernel answers the request with a reset)."""
    try:
        connection.sendall(SCRAPE)
        head = _read_answer_head(connection)
    except (ConnectionResetError, BrokenPipeError):
        return True
    return head.startswith(b"HTTP/1.1 503") and _wait_until_closed_by_server(connection)


def _try_scrape(url: str) -> str:
    try:
        return scrape_text(url)
    except OSError:
        return ""


def test_default_cap_and_backlog_are_documented_values() -> None:
    exporter = PrometheusExporter(port=0)
    try:
        assert exporter._server.max_connections == DEFAULT_MAX_CONNECTIONS == 32
        assert exporter._server.request_queue_size == LISTEN_BACKLOG >= 128
    finally:
        exporter.close()


def test_request_trickled_one_byte_at_a_time_is_cut_off_at_the_header_deadline(exporter: PrometheusExporter) -> None:
    connection = _connect(exporter.port)
    request = b"GET /metrics HTTP/1.1\r\n" + b"X-Padding: " + b"a" * 200 + b"\r\n\r\n"
    answer = b""
    try:
        for byte in request:
            connection.sendall(bytes([byte]))
            time.sleep(0.02)
        answer = connection.recv(4096)
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        connection.close()
    # 230 bytes at 20 ms take about 4.6 s; the headers were due 0.5 s after the first byte.
    assert not answer.startswith(b"HTTP/1.1 200")


def test_idle_kept_alive_connection_is_closed_after_the_idle_time(exporter: PrometheusExporter) -> None:
    connection = _connect(exporter.port)
    try:
        connection.sendall(SCRAPE)
        assert _read_answer_head(connection).startswith(b"HTTP/1.1 200")
        assert _wait_until_closed_by_server(connection)
    finally:
        connection.close()


def test_connection_that_never_sends_is_closed_after_the_idle_time(exporter: PrometheusExporter) -> None:
    connection = _connect(exporter.port)
    try:
        assert _wait_until_closed_by_server(connection)
    finally:
        connection.close()


def test_scrapes_in_time_keep_the_connection_alive(exporter: PrometheusExporter) -> None:
    connection = _connect(exporter.port)
    try:
        for _ in range(5):
            connection.sendall(SCRAPE)
            assert _read_answer_head(connection).startswith(b"HTTP/1.1 200")
            time.sleep(0.1)
    finally:
        connection.close()


@pytest.mark.parametrize(
    "setting, value",
    [("max_connections", 0), ("max_connections", 2.5), ("header_deadline_s", 0), ("idle_keepalive_s", float("nan"))],
)
def test_invalid_limits_are_configuration_errors(setting: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=setting):
        PrometheusExporter(port=0, **{setting: value})  # type: ignore[arg-type]


def test_push_to_a_trickling_gateway_fails_at_its_timeout() -> None:
    gateway = StallingServer(read_request=True)
    outcome: List[BaseException] = []

    def push() -> None:
        try:
            push_snapshot(gateway.url, make_snapshot(), timeout_s=0.5)
        except CarbonTrackingError as error:
            outcome.append(error)

    pusher = threading.Thread(target=push, daemon=True)
    try:
        pusher.start()
        # Far beyond the 0.5 s timeout; with a per-read timeout the push would still be running.
        pusher.join(timeout=10.0)
        assert not pusher.is_alive()
        assert len(outcome) == 1 and "within 0.5 s" in str(outcome[0])
    finally:
        gateway.close()


def test_session_stop_with_a_trickling_gateway_returns_and_counts_one_error(tmp_path: Path) -> None:
    gateway = StallingServer(read_request=True)
    config = CarbonConfig(
        output_dir=str(tmp_path), offline=True, country_iso_code="FR", prometheus_pushgateway_url=gateway.url
    )
    session = TrackingSession(
        config, meter=EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 5.0}), store=False
    )
    session.start()
    reports: List[dict] = []
    stopper = threading.Thread(target=lambda: reports.append(session.stop()), daemon=True)
    try:
        stopper.start()
        stopper.join(timeout=15.0)  # a hang detector: the push gives up at its 2 s deadline
        assert not stopper.is_alive()
    finally:
        gateway.close()
    snapshot = session.snapshot()
    assert snapshot is not None and snapshot.monitoring_errors_by_type == {"pushgateway": 1}
