"""Hostile or unusual answers from the live intensity API and the cloud-metadata service.

A hostile answer never reaches training: it becomes an ``APIError``, the table answers instead,
one warning is logged and the client backs off. Servers that end the connection after each
answer (HTTP/1.0, ``Connection: close``) are read to the end like any other.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from local_servers import IntensityServer, MetadataServer, clean_carbon_env, loopback_only  # noqa: F401
from stalling_server import StallingServer

from hf_eco2ai import CarbonConfig, EnergyMeter, generate_carbon_report
from hf_eco2ai.carbon import bounded_http
from hf_eco2ai.carbon.cloud import CloudLocation, locate
from hf_eco2ai.carbon.live import LiveIntensityClient
from hf_eco2ai.carbon.resolve import IntensityResolver
from hf_eco2ai.errors import APIError
from hf_eco2ai.session.tracking_session import TrackingSession

pytestmark = [pytest.mark.usefixtures("loopback_only", "clean_carbon_env"), pytest.mark.timeout(30)]

TOKEN = "hostile-token-7f3a91c0d2"
HUGE_INTEGER = "9" * 400
DEEP_NESTING = "[" * 20_000 + "]" * 20_000  # well under the body cap, far over any recursion limit


@pytest.fixture
def api() -> Iterator[IntensityServer]:
    server = IntensityServer()
    yield server
    server.close()


@pytest.fixture
def no_cloud() -> Iterator[MetadataServer]:
    server = MetadataServer(provider=None)
    yield server
    server.close()


def _client(api: IntensityServer, **overrides: Any) -> LiveIntensityClient:
    options: dict = {"base_url": api.url, "timeout_s": 1.0, "cache_s": 0.0}
    options.update(overrides)
    return LiveIntensityClient(TOKEN, **options)


HOSTILE_BODIES = [
    pytest.param(200, ('{"zone": "FR", "carbonIntensity": %s}' % HUGE_INTEGER).encode(), id="400-digit-integer"),
    pytest.param(200, ('{"zone": "FR", "carbonIntensity": -%s}' % HUGE_INTEGER).encode(), id="negative-400-digits"),
    pytest.param(200, ('{"zone": "FR", "carbonIntensity": 1%s.5}' % ("0" * 400)).encode(), id="400-digit-float"),
    pytest.param(200, b'{"zone": "FR", "carbonIntensity": NaN}', id="nan"),
    pytest.param(200, b'{"zone": "FR", "carbonIntensity": Infinity}', id="infinity"),
    pytest.param(200, ('{"zone": "FR", "carbonIntensity": 50, "x": %s}' % DEEP_NESTING).encode(), id="deep-200"),
    pytest.param(500, DEEP_NESTING.encode(), id="deep-500"),
    pytest.param(500, ('{"message": %s}' % DEEP_NESTING).encode(), id="deep-message-500"),
    pytest.param(200, b"[" * 40 + b"]" * 40, id="nested-array-200"),
]


@pytest.mark.parametrize("status, body", HOSTILE_BODIES)
def test_hostile_answer_is_an_api_error_and_starts_a_backoff(api: IntensityServer, status: int, body: bytes) -> None:
    api.behaviour, api.raw_status, api.raw_body = "raw", status, body
    now = [1000.0]
    client = _client(api, clock=lambda: now[0], backoff_initial_s=30.0)
    with pytest.raises(APIError) as caught:
        client.latest("FR")
    assert caught.value.__cause__ is None
    assert len(str(caught.value)) < 500
    sent = len(api.requests)
    now[0] += 29.0
    with pytest.raises(APIError, match="backing off"):
        client.latest("FR")
    assert len(api.requests) == sent
    assert client.failures_total == 1


@pytest.mark.parametrize("status, body", HOSTILE_BODIES[:2] + HOSTILE_BODIES[5:7])
def test_hostile_answer_never_stops_a_session_from_starting(
    tmp_path: Path,
    api: IntensityServer,
    no_cloud: MetadataServer,
    status: int,
    body: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.behaviour, api.raw_status, api.raw_body = "raw", status, body
    config = CarbonConfig(
        output_dir=str(tmp_path),
        country_iso_code="FR",
        co2_signal_api_token=TOKEN,
        strict=False,
        intensity_api_url=api.url,
        cloud_metadata_url=no_cloud.url,
        measurement_interval=0.05,
    )
    session = TrackingSession(
        config, meter=EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 50.0}), store=False
    )
    session.start()
    try:
        assert session.intensity.source == "country-table"
        # The background drain asks again at every interval: the back-off keeps it from re-sending.
        time.sleep(0.4)
    finally:
        report = session.stop()
    assert len(api.requests) == 1
    assert [warning["code"] for warning in report["warnings"]].count("live-api-fallback") == 1
    fallback_lines = [r for r in caplog.records if "live carbon intensity unavailable" in r.getMessage()]
    assert len(fallback_lines) == 1
    assert TOKEN not in caplog.text


def test_json_nesting_limit_allows_ordinary_answers_with_brackets_in_strings(api: IntensityServer) -> None:
    api.behaviour, api.raw_status = "raw", 200
    api.raw_body = json.dumps({"zone": "FR", "carbonIntensity": 61, "note": "[[[[" * 100 + '\\"{{{{' * 50}).encode()
    assert _client(api).latest("FR").g_per_kwh == 61.0


def test_connection_closing_intensity_server_is_read_to_the_end(api: IntensityServer) -> None:
    api.closes_connections = True
    api.intensity_by_zone["FR"] = 44.0
    result = _client(api).latest("FR")
    assert (result.source, result.g_per_kwh) == ("live-api", 44.0)


@pytest.mark.parametrize(
    "provider, served, expected",
    [
        ("aws", "eu-west-3", "eu-west-3"),
        ("gcp", "europe-west1-b", "europe-west1"),
        ("azure", "northeurope", "northeurope"),
    ],
)
def test_connection_closing_metadata_server_is_detected(provider: str, served: str, expected: str) -> None:
    server = MetadataServer(provider=provider, region=served)
    server.closes_connections = True
    try:
        found = locate(cloud_provider=None, cloud_region=None, offline=False, metadata_url=server.url, environ={})
    finally:
        server.close()
    assert found == CloudLocation(provider, expected, f"metadata {provider}")


def test_bounded_request_reads_a_closed_connection_to_its_end() -> None:
    server = IntensityServer()
    server.closes_connections = True
    server.behaviour, server.raw_status, server.raw_body = "raw", 200, b'{"carbonIntensity": 1}' * 100
    try:
        response = bounded_http.request("GET", server.url + "/x", {}, time.monotonic() + 2.0)
    finally:
        server.close()
    assert (response.status, response.body) == (200, b'{"carbonIntensity": 1}' * 100)


def test_token_echoed_in_the_zone_field_is_redacted_everywhere_it_is_kept(
    tmp_path: Path,
    api: IntensityServer,
    no_cloud: MetadataServer,
) -> None:
    api.answered_zone = f"FR-{TOKEN}"
    config = CarbonConfig(
        output_dir=str(tmp_path),
        country_iso_code="FR",
        co2_signal_api_token=TOKEN,
        intensity_api_url=api.url,
        cloud_metadata_url=no_cloud.url,
    )
    store_path = tmp_path / "runs.sqlite"
    session = TrackingSession(
        config,
        meter=EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 50.0}),
        store=str(store_path),
    )
    session.start()
    assert session.intensity.source == "live-api"
    snapshot = session.snapshot()
    report = session.stop()
    session.flush()
    kept = [
        repr(session.intensity),
        repr(snapshot),
        json.dumps(report),
        generate_carbon_report(report, "markdown"),
        generate_carbon_report(report, "csv"),
    ]
    with sqlite3.connect(store_path) as connection:
        kept += [
            repr(row)
            for (table,) in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            for row in connection.execute(f"SELECT * FROM {table}")
        ]
    for text in kept:
        assert TOKEN not in text
    assert session.intensity.zone == "FR-***"


def test_token_echoed_in_the_zone_field_is_redacted_in_the_answer_and_history(api: IntensityServer) -> None:
    api.answered_zone = f"{TOKEN}"
    client = _client(api)
    result = client.latest("FR")
    assert result.zone == "***"
    assert [reading.zone for reading in client.history("FR")] == ["***"]


def test_token_echoed_as_a_metadata_region_is_redacted(no_cloud: MetadataServer) -> None:
    lowercase_token = "zq81mw04vx7rt5"
    server = MetadataServer(provider="azure", region=lowercase_token)
    try:
        config = CarbonConfig(
            co2_signal_api_token=lowercase_token, cloud_metadata_url=server.url, intensity_api_url=no_cloud.url
        )
        resolver = IntensityResolver(config)
        location = resolver.cloud  # located on first use, while the endpoint still answers
        table_answer = resolver.table_answer()
    finally:
        server.close()
    assert location is not None and location.region == "***"
    assert lowercase_token not in repr(table_answer) + repr(resolver.warnings)


def test_server_trickling_its_headers_is_cut_off_at_the_deadline() -> None:
    server = StallingServer()
    try:
        with pytest.raises(APIError, match="no answer for zone FR within 0.5 s"):
            LiveIntensityClient(TOKEN, base_url=server.url, timeout_s=0.5).latest("FR")
    finally:
        server.close()
