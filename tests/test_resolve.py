"""Resolution order and provenance: explicit > live API > cloud region > sub-national > country > world.

The live API is a real HTTP server on 127.0.0.1; the expected figures are read from the packaged
tables, so the tests check which step answered, not particular numbers.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from local_servers import IntensityServer, MetadataServer, clean_carbon_env, loopback_only  # noqa: F401

from hf_eco2ai import EnergyMeter
from hf_eco2ai.carbon import tables
from hf_eco2ai.carbon.live import LiveIntensityClient
from hf_eco2ai.carbon.resolve import IntensityResolver
from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.errors import APIError
from hf_eco2ai.session import TrackingSession
from hf_eco2ai.store import RunStore

pytestmark = [pytest.mark.usefixtures("loopback_only", "clean_carbon_env"), pytest.mark.timeout(30)]

TOKEN = "resolve-token-5d2e8a10c3f7"
FAILURES = ["401", "429", "500", "timeout", "malformed", "html", "redirect"]


@pytest.fixture
def api() -> Iterator[IntensityServer]:
    server = IntensityServer()
    server.stall_s = 3.0
    yield server
    server.close()


@pytest.fixture
def no_cloud() -> Iterator[MetadataServer]:
    """A metadata address on loopback that answers 404 to every provider: not in a cloud."""
    server = MetadataServer(provider=None)
    yield server
    server.close()


@pytest.fixture
def make_config(api: IntensityServer, no_cloud: MetadataServer) -> Any:
    def build(**settings: Any) -> CarbonConfig:
        settings.setdefault("intensity_api_url", api.url)
        settings.setdefault("cloud_metadata_url", no_cloud.url)
        return CarbonConfig(**settings)

    return build


def _warning_codes(resolver: IntensityResolver) -> list:
    return [warning["code"] for warning in resolver.warnings]


def test_explicit_intensity_beats_everything_and_asks_no_api(make_config: Any, api: IntensityServer) -> None:
    config = make_config(
        carbon_intensity_g_per_kwh=42.0,
        co2_signal_api_token=TOKEN,
        country_iso_code="FR",
        cloud_provider="gcp",
        cloud_region="us-west1",
    )
    result = IntensityResolver(config).resolve()
    assert (result.g_per_kwh, result.source) == (42.0, "explicit")
    assert "carbon_intensity_g_per_kwh (argument)" in result.dataset
    assert api.requests == []


def test_live_api_answers_when_a_token_is_set(make_config: Any, api: IntensityServer) -> None:
    api.intensity_by_zone["FR"] = 77.0
    resolver = IntensityResolver(make_config(co2_signal_api_token=TOKEN, country_iso_code="FR"))
    result = resolver.resolve()
    assert (result.g_per_kwh, result.source, result.zone, result.country, result.is_estimated) == (
        77.0,
        "live-api",
        "FR",
        "FR",
        True,
    )
    assert api.requests[-1]["query"] == {"zone": "FR"}
    assert resolver.api_latency_s is not None
    assert resolver.warnings == []


def test_live_api_is_asked_for_the_cloud_regions_zone(make_config: Any, api: IntensityServer) -> None:
    region = tables.cloud_region("aws", "eu-central-1")
    assert region is not None
    result = IntensityResolver(
        make_config(co2_signal_api_token=TOKEN, cloud_provider="aws", cloud_region="eu-central-1")
    ).resolve()
    assert result.source == "live-api"
    assert api.requests[-1]["query"] == {"zone": region.zone}
    assert result.region == "eu-central-1"


def test_grid_zone_setting_names_the_live_zone(make_config: Any, api: IntensityServer) -> None:
    IntensityResolver(make_config(co2_signal_api_token=TOKEN, country_iso_code="US", grid_zone="US-MIDA-PJM")).resolve()
    assert api.requests[-1]["query"] == {"zone": "US-MIDA-PJM"}


def test_offline_never_asks_the_api_even_with_a_token(make_config: Any, api: IntensityServer) -> None:
    result = IntensityResolver(make_config(co2_signal_api_token=TOKEN, country_iso_code="FR", offline=True)).resolve()
    assert result.source == "country-table"
    assert api.requests == []


@pytest.mark.parametrize("failure", FAILURES)
def test_live_failure_falls_back_to_the_table_with_one_warning(
    make_config: Any, api: IntensityServer, failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    api.behaviour = failure
    resolver = IntensityResolver(make_config(co2_signal_api_token=TOKEN, country_iso_code="FR"))
    first = resolver.resolve()
    second = resolver.resolve()
    expected = tables.country("FR")
    assert expected is not None
    for result in (first, second):
        assert (result.source, result.g_per_kwh, result.zone, result.year) == (
            "country-table",
            expected.g_per_kwh,
            "FR",
            expected.year,
        )
        assert result.is_estimated is None
    assert _warning_codes(resolver) == ["live-api-fallback"]
    fallback_lines = [record for record in caplog.records if "live carbon intensity unavailable" in record.getMessage()]
    assert len(fallback_lines) == 1 and fallback_lines[0].levelno == logging.WARNING
    assert resolver.api_failures_total == 2
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(resolver.warnings)
    assert TOKEN not in repr(resolver.live_client)


@pytest.mark.parametrize("failure", ["401", "500", "malformed"])
def test_strict_mode_raises_api_error_instead_of_falling_back(
    make_config: Any, api: IntensityServer, failure: str
) -> None:
    api.behaviour = failure
    resolver = IntensityResolver(make_config(co2_signal_api_token=TOKEN, country_iso_code="FR", strict=True))
    with pytest.raises(APIError) as caught:
        resolver.resolve()
    assert TOKEN not in str(caught.value)


def test_live_api_recovers_after_a_failure(make_config: Any, api: IntensityServer) -> None:
    now = [0.0]
    client = LiveIntensityClient(TOKEN, base_url=api.url, cache_s=0.0, backoff_initial_s=30.0, clock=lambda: now[0])
    api.behaviour = "500"
    resolver = IntensityResolver(make_config(co2_signal_api_token=TOKEN, country_iso_code="FR"), live_client=client)
    assert resolver.resolve().source == "country-table"
    api.behaviour = "ok"
    now[0] += 10.0
    assert resolver.resolve().source == "country-table"
    now[0] += 30.0
    assert resolver.resolve().source == "live-api"


def test_cloud_region_beats_subnational_and_country(make_config: Any) -> None:
    config = make_config(cloud_provider="gcp", cloud_region="us-west1", country_iso_code="US", region="CA")
    result = IntensityResolver(config).resolve()
    expected = tables.cloud_region("gcp", "us-west1")
    assert expected is not None
    assert (result.source, result.g_per_kwh, result.zone, result.region, result.country, result.dataset) == (
        "cloud-region-table",
        expected.g_per_kwh,
        expected.zone,
        "us-west1",
        expected.country,
        expected.dataset,
    )


def test_subnational_beats_country(make_config: Any) -> None:
    result = IntensityResolver(make_config(country_iso_code="USA", region="California")).resolve()
    expected = tables.subnational("US", "CA")
    assert expected is not None
    assert (result.source, result.g_per_kwh, result.zone, result.country, result.year) == (
        "subnational-table",
        expected.g_per_kwh,
        expected.zone,
        "US",
        expected.year,
    )


def test_country_table_answers_for_alpha3_codes(make_config: Any) -> None:
    result = IntensityResolver(make_config(country_iso_code="DEU")).resolve()
    expected = tables.country("DE")
    assert expected is not None
    assert (result.source, result.g_per_kwh, result.country, result.dataset) == (
        "country-table",
        expected.g_per_kwh,
        "DE",
        expected.dataset,
    )


def test_no_location_gives_the_world_average_and_says_how_to_fix_it(
    make_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = IntensityResolver(make_config())
    result = resolver.resolve()
    resolver.resolve()
    world = tables.world_average()
    assert (result.source, result.g_per_kwh, result.country, result.zone) == (
        "world-average",
        world.g_per_kwh,
        None,
        world.zone,
    )
    messages = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(messages) == 1
    assert "country_iso_code" in messages[0] and "HF_ECO2AI_COUNTRY_ISO_CODE" in messages[0]
    assert _warning_codes(resolver) == ["world-average-intensity"]


def test_without_a_zone_the_live_api_is_not_asked(make_config: Any, api: IntensityServer) -> None:
    resolver = IntensityResolver(make_config(co2_signal_api_token=TOKEN))
    assert resolver.resolve().source == "world-average"
    assert api.requests == []
    assert _warning_codes(resolver) == ["world-average-intensity", "live-api-no-zone"]


def test_unknown_cloud_region_warns_with_a_suggestion_and_falls_through(
    make_config: Any, caplog: pytest.LogCaptureFixture
) -> None:
    resolver = IntensityResolver(make_config(cloud_provider="gcp", cloud_region="us-west-1", country_iso_code="US"))
    assert resolver.resolve().source == "country-table"
    assert "did you mean 'us-west1'?" in caplog.text
    assert _warning_codes(resolver) == ["unknown-cloud-region"]


def test_unknown_region_falls_back_to_the_country(make_config: Any) -> None:
    resolver = IntensityResolver(make_config(country_iso_code="US", region="Atlantis"))
    assert resolver.resolve().source == "country-table"
    assert _warning_codes(resolver) == ["unknown-region"]


def test_unknown_country_is_never_replaced_by_another_country(make_config: Any) -> None:
    resolver = IntensityResolver(make_config(country_iso_code="ZZ"))
    result = resolver.resolve()
    assert (result.source, result.country) == ("world-average", None)
    assert _warning_codes(resolver) == ["unknown-country", "world-average-intensity"]


def test_detected_cloud_region_is_used(make_config: Any) -> None:
    server = MetadataServer(provider="gcp", region="europe-west1-b")
    try:
        resolver = IntensityResolver(make_config(cloud_metadata_url=server.url))
        result = resolver.resolve()
    finally:
        server.close()
    expected = tables.cloud_region("gcp", "europe-west1")
    assert expected is not None
    assert resolver.cloud is not None and resolver.cloud.detected_by == "metadata gcp"
    assert (result.source, result.region, result.g_per_kwh) == (
        "cloud-region-table",
        "europe-west1",
        expected.g_per_kwh,
    )


def test_the_run_store_follows_a_refreshed_live_intensity(
    make_config: Any, api: IntensityServer, tmp_path: Path
) -> None:
    api.default_intensity = 100.0
    config = make_config(
        co2_signal_api_token=TOKEN,
        country_iso_code="FR",
        output_dir=str(tmp_path),
        measurement_interval_s=0.1,
        intensity_cache_s=0.0,
    )
    meter = EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 50.0}, rate_hz=200)
    session = TrackingSession(config, meter=meter).start()
    store = RunStore(tmp_path / "runs.sqlite")
    assert session.flush()
    assert store.get_run(session.run_id).intensity["g_per_kwh"] == 100.0
    api.default_intensity = 250.0
    deadline = time.monotonic() + 10.0
    while session.intensity.g_per_kwh != 250.0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session.intensity.g_per_kwh == 250.0, "the background drain refreshes the live intensity"
    session.drain()
    assert session.flush()
    assert store.get_run(session.run_id).intensity["g_per_kwh"] == 250.0
    session.stop()
