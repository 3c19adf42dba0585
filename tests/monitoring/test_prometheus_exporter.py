"""The scrape endpoint and the Pushgateway push, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import http.client
import socket
import struct
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from monitoring_helpers import free_port, make_snapshot, scrape_text
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from hf_eco2ai import CarbonConfig, EnergyMeter, TrackingSession
from hf_eco2ai.errors import CarbonTrackingError, ConfigurationError
from hf_eco2ai.integrations.prometheus import (
    PrometheusExporter,
    port_for_rank,
    push_snapshot,
    shared_exporter,
)
from hf_eco2ai.integrations.prometheus.server import RENDER_TTL_S


def listening_addresses(port: int) -> List[str]:
    """The IPv4 addresses with a socket listening on ``port``, as the kernel lists them."""
    addresses = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address_hex, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
            addresses.append(socket.inet_ntoa(struct.pack("<I", int(address_hex, 16))))
    return addresses


@pytest.fixture
def exporter() -> Iterator[PrometheusExporter]:
    with PrometheusExporter(port=0) as running:
        yield running


def test_the_endpoint_binds_to_loopback_by_default_and_serves_the_metrics(exporter: PrometheusExporter) -> None:
    exporter.attach(lambda: make_snapshot(step_count=7))
    assert exporter.host == "127.0.0.1"
    assert listening_addresses(exporter.port) == ["127.0.0.1"]
    text = scrape_text(exporter.url)
    assert 'hf_training_step_count{host="node-a",project_name="sentiment",rank="0"} 7.0' in text


def test_the_endpoint_speaks_openmetrics_when_asked(exporter: PrometheusExporter) -> None:
    exporter.attach(lambda: make_snapshot())
    text = scrape_text(exporter.url, accept="application/openmetrics-text; version=1.0.0")
    assert "# TYPE hf_training_energy_kwh counter" in text
    assert text.rstrip().endswith("# EOF")


def test_scrapes_reuse_one_connection_and_close_ends_it() -> None:
    running = PrometheusExporter(port=0)
    steps = iter(range(1, 10))
    running.attach(lambda: make_snapshot(step_count=next(steps)))
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
    try:
        bodies = []
        for _ in range(2):
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            assert response.status == 200 and response.getheader("Connection") != "close"
            bodies.append(response.read().decode())
        assert "} 1.0" in bodies[0] and "} 2.0" in bodies[1]
        local_port = connection.sock.getsockname()[1]
        connection.request("GET", "/metrics")
        connection.getresponse().read()
        assert connection.sock.getsockname()[1] == local_port, "the client had to reconnect"
        running.close()
        with pytest.raises((http.client.HTTPException, OSError)):
            connection.request("GET", "/metrics")
            connection.getresponse().read()
    finally:
        connection.close()
        running.close()


def test_a_port_taken_by_another_process_is_a_configuration_error_naming_the_fix() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigurationError) as caught:
            PrometheusExporter(port=port)
    message = str(caught.value)
    assert f"prometheus_port={port}" in message
    assert "already in use" in message
    assert "free port" in message and "0 to let the OS pick" in message


@pytest.mark.parametrize("port", [-1, 65536, 80.5, "8000"])
def test_a_port_outside_the_tcp_range_is_rejected(port: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"prometheus_port=.* from 0 to 65535"):
        PrometheusExporter(port=port)


def test_an_address_that_does_not_resolve_is_rejected_naming_prometheus_host() -> None:
    with pytest.raises(ConfigurationError, match=r"prometheus_host='no-such-host\.invalid'"):
        PrometheusExporter(host="no-such-host.invalid", port=0)


def test_an_address_of_another_machine_is_rejected_naming_prometheus_host() -> None:
    with pytest.raises(ConfigurationError, match=r"prometheus_host='192\.0\.2\.1': cannot listen"):
        PrometheusExporter(host="192.0.2.1", port=0)


def test_a_failed_bind_leaves_the_given_registry_free_for_a_retry() -> None:
    registry = CollectorRegistry()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(ConfigurationError):
            PrometheusExporter(port=holder.getsockname()[1], registry=registry)
    with PrometheusExporter(port=0, registry=registry):
        pass


def test_the_endpoint_can_serve_an_applications_own_registry() -> None:
    registry = CollectorRegistry()
    Gauge("app_queue_depth", "The application's own metric", registry=registry).set(4)
    with PrometheusExporter(port=0, registry=registry) as running:
        running.attach(lambda: make_snapshot())
        text = scrape_text(running.url)
    assert "app_queue_depth 4.0" in text and "hf_training_co2_kg_total" in text


def test_sessions_asking_for_the_same_address_share_one_endpoint_and_close_frees_the_port() -> None:
    port = free_port()
    first = shared_exporter("127.0.0.1", port)
    try:
        assert shared_exporter("127.0.0.1", port) is first
        first.attach(lambda: make_snapshot(project_name="one"))
        first.attach(lambda: make_snapshot(project_name="two"))
        text = scrape_text(first.url)
        assert 'project_name="one"' in text and 'project_name="two"' in text
    finally:
        first.close()
    first.close()
    second = shared_exporter("127.0.0.1", port)
    try:
        assert second is not first
    finally:
        second.close()


def test_port_zero_always_starts_a_new_endpoint_on_a_free_port() -> None:
    first, second = shared_exporter("127.0.0.1", 0), shared_exporter("127.0.0.1", 0)
    try:
        assert first is not second and 0 not in (first.port, second.port) and first.port != second.port
    finally:
        first.close()
        second.close()


def test_each_local_rank_gets_its_own_port() -> None:
    assert [port_for_rank(8000, rank) for rank in range(3)] == [8000, 8001, 8002]
    assert port_for_rank(0, 5) == 0
    with pytest.raises(ConfigurationError, match="at most 65532"):
        port_for_rank(65535, 3)


def test_the_endpoint_serves_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6 stack; the endpoint's IPv6 path cannot be exercised")
    with PrometheusExporter(host="::1", port=0) as running:
        running.attach(lambda: make_snapshot())
        assert running.url.startswith("http://[::1]:")
        assert "hf_training_co2_kg_total" in scrape_text(running.url)


class _RecordingGateway(BaseHTTPRequestHandler):
    """Plays a Pushgateway: records each request and answers with the status it is told."""

    requests: List[Tuple[str, str, bytes]] = []
    status = 200

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).requests.append((self.command, self.path, body))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_POST = _record

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def _grouping_labels(path: str) -> Dict[str, str]:
    """The Pushgateway's reading of a push URL: /metrics/<name>[@base64]/<value>/..."""
    parts = [urllib.parse.unquote(part) for part in path.split("/")[2:]]
    labels = {}
    for name, value in zip(parts[::2], parts[1::2]):
        if name.endswith("@base64"):
            name, value = name[: -len("@base64")], base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        labels[name] = value
    return labels


@pytest.fixture
def gateway() -> Iterator[Tuple[str, type]]:
    handler = type("Gateway", (_RecordingGateway,), {"requests": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_push_replaces_the_group_of_the_runs_project_host_and_rank(gateway: Tuple[str, Any]) -> None:
    url, handler = gateway
    push_snapshot(url, make_snapshot(project_name="short job", rank=2, step_count=40))
    ((method, path, body),) = handler.requests
    assert method == "PUT"
    assert _grouping_labels(path) == {"job": "hf-eco2ai", "project_name": "short job", "host": "node-a", "rank": "2"}
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    (steps,) = families["hf_training_step_count"].samples
    assert steps.value == 40 and steps.labels["project_name"] == "short job"
    assert "hf_training_energy_kwh" in families


def test_a_failed_push_raises_carbon_tracking_error_naming_the_gateway(gateway: Tuple[str, Any]) -> None:
    url, handler = gateway
    handler.status = 500
    with pytest.raises(CarbonTrackingError, match=f"Pushgateway at {url} failed"):
        push_snapshot(url, make_snapshot())
    unreachable = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(CarbonTrackingError, match="Pushgateway"):
        push_snapshot(unreachable, make_snapshot(), timeout_s=1.0)


@pytest.mark.parametrize("bad", ["127.0.0.1:9091", "ftp://gateway:9091", "http://", ""])
def test_a_malformed_gateway_url_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(ConfigurationError, match="gateway_url="):
        push_snapshot(bad, make_snapshot())


def test_a_gateway_url_with_credentials_is_refused_without_echoing_them() -> None:
    with pytest.raises(ConfigurationError) as caught:
        push_snapshot("http://user:s3cret@127.0.0.1:9091", make_snapshot())
    assert "s3cret" not in str(caught.value)


def step_count_series(text: str) -> List[Tuple[str, float]]:
    """(rank label, value) of every hf_training_step_count sample in an exposition."""
    return [
        (sample.labels["rank"], sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "hf_training_step_count"
    ]


def test_a_sessions_endpoint_is_on_the_base_port_plus_its_local_rank_and_keeps_its_final_figures(
    tmp_path: Path,
) -> None:
    served_port = free_port()
    config = CarbonConfig(
        project_name="ranked",
        output_dir=str(tmp_path),
        offline=True,
        country_iso_code="FR",
        prometheus_enabled=True,
        prometheus_port=served_port - 1,
    )
    session = TrackingSession(
        config,
        meter=EnergyMeter(sources="synthetic"),
        store=False,
        environ={"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"},
    )
    url = f"http://127.0.0.1:{served_port}/metrics"
    try:
        session.start()
        for _ in range(5):
            session.mark_step()
        assert step_count_series(scrape_text(url)) == [("3", 5.0)]
        session.mark_step()
        session.stop()
        assert step_count_series(scrape_text(url)) == [("3", 6.0)], "the final figures left at the session's end"
    finally:
        session.stop()
        shared_exporter("127.0.0.1", served_port).close()


def _session(tmp_path: Path, **settings: Any) -> TrackingSession:
    config = CarbonConfig(output_dir=str(tmp_path), country_iso_code="FR", offline=True, **settings)
    return TrackingSession(config, meter=EnergyMeter(sources="synthetic", rate_hz=200), store=False)


def test_a_session_with_a_pushgateway_pushes_its_final_figures_at_stop(
    gateway: Tuple[str, Any], tmp_path: Path
) -> None:
    url, handler = gateway
    session = _session(tmp_path, prometheus_pushgateway_url=url, project_name="short job")
    session.start()
    session.mark_step()
    session.stop()
    ((method, _, body),) = handler.requests
    assert method == "PUT"
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    (steps,) = families["hf_training_step_count"].samples
    assert steps.value == 1 and steps.labels["project_name"] == "short job"


def test_a_failed_push_at_stop_is_counted_and_the_run_still_ends(gateway: Tuple[str, Any], tmp_path: Path) -> None:
    url, handler = gateway
    handler.status = 500
    session = _session(tmp_path, prometheus_pushgateway_url=url)
    session.start()
    report = session.stop()
    assert report["total_co2_kg"] >= 0
    assert session.snapshot().monitoring_errors_by_type.get("pushgateway") == 1


def test_compression_gzips_answers_only_for_scrapers_that_accept_it(tmp_path: Path) -> None:
    import gzip

    session = _session(tmp_path, prometheus_enabled=True, prometheus_port=0, compression_enabled=True)
    session.start()
    try:
        url = session.exporter.exporter.url
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.headers["Content-Encoding"] == "gzip"
            assert b"hf_training_energy_kwh_total" in gzip.decompress(answer.read())
        with urllib.request.urlopen(url, timeout=10) as plain:
            assert plain.headers["Content-Encoding"] is None
            assert b"hf_training_energy_kwh_total" in plain.read()
    finally:
        session.stop()


def test_scrapes_closer_than_the_ttl_share_one_rendering_and_later_ones_see_new_figures(tmp_path: Path) -> None:
    session = _session(tmp_path, prometheus_enabled=True, prometheus_port=0)
    session.start()
    try:
        url = session.exporter.exporter.url
        started = time.monotonic()
        first = step_count_series(scrape_text(url))
        session.mark_step()
        second = step_count_series(scrape_text(url))
        if time.monotonic() - started < RENDER_TTL_S:
            assert second == first
        time.sleep(RENDER_TTL_S)
        assert step_count_series(scrape_text(url))[0][1] == first[0][1] + 1
    finally:
        session.stop()
