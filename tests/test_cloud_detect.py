"""Cloud detection: configuration, then environment hints, then metadata endpoints within 200 ms."""

from __future__ import annotations

from typing import Iterator, Optional

import pytest
from local_servers import MetadataServer, clean_carbon_env, loopback_only  # noqa: F401

from hf_eco2ai.carbon.cloud import CloudLocation, forget_metadata_answers, from_environment, locate, normalise_region

pytestmark = [pytest.mark.usefixtures("loopback_only", "clean_carbon_env"), pytest.mark.timeout(30)]


@pytest.fixture
def not_a_cloud() -> Iterator[MetadataServer]:
    server = MetadataServer(provider=None)
    yield server
    server.close()


def _detect(url: str, environ: Optional[dict] = None, offline: bool = False) -> Optional[CloudLocation]:
    return locate(cloud_provider=None, cloud_region=None, offline=offline, metadata_url=url, environ=environ or {})


@pytest.mark.parametrize(
    "provider, served_region, expected_region",
    [
        ("aws", "eu-central-1", "eu-central-1"),
        ("gcp", "us-central1-a", "us-central1"),
        ("azure", "westeurope", "westeurope"),
    ],
)
def test_each_providers_metadata_endpoint_is_recognised(
    provider: str, served_region: str, expected_region: str
) -> None:
    server = MetadataServer(provider=provider, region=served_region)
    try:
        found = _detect(server.url)
    finally:
        server.close()
    assert found == CloudLocation(provider, expected_region, f"metadata {provider}")


def test_aws_probe_uses_an_imdsv2_session_token() -> None:
    server = MetadataServer(provider="aws", region="us-east-1")
    try:
        _detect(server.url)
    finally:
        server.close()
    assert ("PUT", "/latest/api/token") in server.requests
    assert ("GET", "/latest/meta-data/placement/region") in server.requests


def test_gcp_answer_without_googles_header_is_not_trusted() -> None:
    server = MetadataServer(provider="gcp", region="us-central1-a", google_header=False)
    try:
        assert _detect(server.url) is None
    finally:
        server.close()


def test_a_machine_outside_any_cloud_is_detected_as_none(not_a_cloud: MetadataServer) -> None:
    assert _detect(not_a_cloud.url) is None
    assert len(not_a_cloud.requests) >= 3


def test_stalled_metadata_service_is_given_up_at_the_budget_not_waited_for() -> None:
    # The server would name its region after 1 s; detection ends at its 200 ms budget without it.
    # How close to the budget detection returns is measured by benches/bench_deadlines.py.
    server = MetadataServer(provider="aws", region="us-east-1", stall_s=1.0)
    try:
        found = _detect(server.url)
    finally:
        server.close()
    assert found is None


def test_closed_port_is_detected_as_none(not_a_cloud: MetadataServer) -> None:
    url = not_a_cloud.url
    not_a_cloud.close()
    assert _detect(url) is None


def test_offline_detects_nothing_and_sends_nothing() -> None:
    server = MetadataServer(provider="aws", region="us-east-1")
    try:
        assert _detect(server.url, {"AWS_REGION": "us-east-1"}, offline=True) is None
    finally:
        server.close()
    assert server.requests == []


def test_configured_provider_wins_without_any_probe() -> None:
    server = MetadataServer(provider="aws", region="us-east-1")
    try:
        found = locate(
            cloud_provider="gcp", cloud_region="us-west1", offline=False, metadata_url=server.url, environ={}
        )
    finally:
        server.close()
    assert found == CloudLocation("gcp", "us-west1", "config")
    assert server.requests == []


def test_environment_hint_is_used_before_the_metadata_endpoints(not_a_cloud: MetadataServer) -> None:
    found = _detect(not_a_cloud.url, {"AWS_REGION": "ap-southeast-2"})
    assert found == CloudLocation("aws", "ap-southeast-2", "env AWS_REGION")
    assert not_a_cloud.requests == []


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"AWS_DEFAULT_REGION": "us-east-1"}, None),
        (
            {"AWS_DEFAULT_REGION": "us-east-1", "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE"},
            CloudLocation("aws", "us-east-1", "env AWS_DEFAULT_REGION"),
        ),
        ({"CLOUD_ML_REGION": "europe-west4"}, CloudLocation("gcp", "europe-west4", "env CLOUD_ML_REGION")),
        ({"GOOGLE_CLOUD_REGION": "us-central1-f"}, CloudLocation("gcp", "us-central1", "env GOOGLE_CLOUD_REGION")),
        ({"CLOUD_RUN_REGION": "asia-southeast1"}, CloudLocation("gcp", "asia-southeast1", "env CLOUD_RUN_REGION")),
        ({"REGION_NAME": "West Europe"}, None),
        (
            {"REGION_NAME": "West Europe", "WEBSITE_SITE_NAME": "app"},
            CloudLocation("azure", "westeurope", "env REGION_NAME"),
        ),
        ({"AZURE_REGION": "eastus2"}, CloudLocation("azure", "eastus2", "env AZURE_REGION")),
        ({"AWS_REGION": "not a region"}, None),
    ],
)
def test_environment_hints(environ: dict, expected: Optional[CloudLocation]) -> None:
    assert from_environment(environ) == expected


@pytest.mark.parametrize(
    "provider, raw, expected",
    [
        ("aws", "us-east-1a", "us-east-1"),
        ("aws", " EU-WEST-2 ", "eu-west-2"),
        ("gcp", "europe-west1-b", "europe-west1"),
        ("gcp", "us-west1", "us-west1"),
        ("azure", "West Europe", "westeurope"),
        ("aws", "<html>", None),
        ("gcp", "", None),
    ],
)
def test_region_names_are_normalised(provider: str, raw: str, expected: Optional[str]) -> None:
    assert normalise_region(provider, raw) == expected


def test_the_loopback_guard_itself_refuses_other_hosts() -> None:
    import socket

    with pytest.raises(ConnectionRefusedError, match="non-loopback"):
        socket.create_connection(("169.254.169.254", 80), timeout=0.05)


def test_a_process_asks_the_metadata_endpoints_once_and_keeps_the_answer() -> None:
    server = MetadataServer(provider="aws", region="eu-west-1")
    try:
        first = _detect(server.url)
        asked = len(server.requests)
        second = _detect(server.url)
    finally:
        server.close()
    assert first == second == CloudLocation("aws", "eu-west-1", "metadata aws")
    assert asked > 0 and len(server.requests) == asked, "the second detection asks nothing"


def test_not_being_in_a_cloud_is_kept_too_until_the_answers_are_forgotten(not_a_cloud: MetadataServer) -> None:
    assert _detect(not_a_cloud.url) is None
    asked = len(not_a_cloud.requests)
    assert _detect(not_a_cloud.url) is None and len(not_a_cloud.requests) == asked
    forget_metadata_answers()
    assert _detect(not_a_cloud.url) is None and len(not_a_cloud.requests) > asked
