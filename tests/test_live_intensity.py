"""The live intensity client against a real HTTP server on 127.0.0.1 that speaks both APIs."""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
from local_servers import IntensityServer, loopback_only  # noqa: F401

from hf_eco2ai.carbon.live import LiveIntensityClient
from hf_eco2ai.errors import APIError, ConfigurationError

pytestmark = [pytest.mark.usefixtures("loopback_only"), pytest.mark.timeout(30)]

TOKEN = "emaps-9c1d0e7f44ab4e21b5c6"


class SteppedClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[IntensityServer]:
    running = IntensityServer()
    yield running
    running.close()


def _client(server: IntensityServer, **overrides: object) -> LiveIntensityClient:
    options: dict = {"base_url": server.url, "timeout_s": 0.5, "cache_s": 60.0}
    options.update(overrides)
    return LiveIntensityClient(TOKEN, **options)  # type: ignore[arg-type]


def _assert_no_token(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text


def test_electricity_maps_v3_answer_keeps_is_estimated(server: IntensityServer) -> None:
    server.intensity_by_zone["FR"] = 56.0
    result = _client(server).latest("FR")
    assert (result.g_per_kwh, result.source, result.zone, result.is_estimated) == (56.0, "live-api", "FR", True)
    assert result.dataset == "Electricity Maps API v3 (live)"
    assert result.year is None
    request = server.requests[-1]
    assert request["path"] == "/v3/carbon-intensity/latest"
    assert request["query"] == {"zone": "FR"}
    assert request["token"] == TOKEN


def test_is_estimated_false_is_kept_not_dropped(server: IntensityServer) -> None:
    server.is_estimated = False
    assert _client(server).latest("DE").is_estimated is False


def test_legacy_co2_signal_uses_country_code_and_has_no_estimate_flag(server: IntensityServer) -> None:
    server.intensity_by_zone["SE"] = 31.0
    result = _client(server, api="co2signal").latest("SE")
    assert (result.g_per_kwh, result.zone, result.is_estimated) == (31.0, "SE", None)
    assert "CO2 Signal" in result.dataset
    assert server.requests[-1]["path"] == "/v1/latest"
    assert server.requests[-1]["query"] == {"countryCode": "SE"}
    assert server.requests[-1]["token"] == TOKEN


def test_token_travels_only_in_the_header(server: IntensityServer) -> None:
    _client(server).latest("FR")
    request = server.requests[-1]
    assert TOKEN not in request["path"] and TOKEN not in str(request["query"])


@pytest.mark.parametrize(
    "behaviour, expected",
    [
        ("401", "HTTP 401 for zone FR: the token was rejected (Invalid auth-token); check co2_signal_api_token"),
        ("429", "HTTP 429 for zone FR: rate limited (Too many requests)"),
        ("500", "HTTP 500 for zone FR (Internal error)"),
        ("malformed", "answer for zone FR is malformed JSON"),
        ("html", "answer for zone FR has content type 'text/html', expected application/json"),
        ("redirect", "HTTP 302 for zone FR: redirect not followed"),
        ("timeout", "no answer for zone FR within 0.5 s"),
    ],
)
def test_each_failure_raises_api_error_that_says_what_happened(
    server: IntensityServer, behaviour: str, expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.behaviour = behaviour
    client = _client(server)
    with pytest.raises(APIError) as caught:
        client.latest("FR")
    assert expected in str(caught.value)
    assert caught.value.__cause__ is None
    _assert_no_token(str(caught.value), repr(caught.value), repr(client), caplog.text)
    assert client.failures_total == 1


def test_server_that_echoes_the_token_has_it_masked(server: IntensityServer) -> None:
    server.behaviour = "echo-token"
    with pytest.raises(APIError) as caught:
        _client(server).latest("FR")
    assert "bad token ***" in str(caught.value)
    _assert_no_token(str(caught.value))


def test_default_timeout_bounds_a_stalled_server_to_two_seconds(server: IntensityServer) -> None:
    server.behaviour = "timeout"
    server.stall_s = 6.0
    client = LiveIntensityClient(TOKEN, base_url=server.url)
    with pytest.raises(APIError, match="within 2 s"):
        client.latest("FR")
    # It waited for the whole 2 s deadline and gave up long before the server would have answered;
    # how close to 2 s it returns is measured by benches/bench_deadlines.py.
    assert client.last_latency_s is not None and 2.0 <= client.last_latency_s < server.stall_s


def test_connection_refused_is_an_api_error(server: IntensityServer) -> None:
    base_url = server.url
    server.close()
    with pytest.raises(APIError, match="request for zone FR failed"):
        LiveIntensityClient(TOKEN, base_url=base_url, timeout_s=0.5).latest("FR")


def test_answers_are_cached_per_zone_for_cache_s(server: IntensityServer) -> None:
    clock = SteppedClock()
    client = _client(server, clock=clock, cache_s=300.0)
    client.latest("FR")
    client.latest("FR")
    client.latest("DE")
    assert [request["query"]["zone"] for request in server.requests] == ["FR", "DE"]
    clock.now += 301.0
    server.intensity_by_zone["FR"] = 99.0
    assert client.latest("FR").g_per_kwh == 99.0
    assert len(server.requests) == 3


def test_backoff_grows_exponentially_and_sends_nothing_while_it_lasts(server: IntensityServer) -> None:
    clock = SteppedClock()
    server.behaviour = "500"
    client = _client(server, clock=clock, backoff_initial_s=10.0, backoff_max_s=35.0)
    with pytest.raises(APIError, match="HTTP 500"):
        client.latest("FR")
    sent_at = [clock.now]
    while len(sent_at) < 5:
        clock.now += 1.0
        before = len(server.requests)
        with pytest.raises(APIError) as caught:
            client.latest("FR")
        if len(server.requests) > before:
            assert "HTTP 500" in str(caught.value)
            sent_at.append(clock.now)
        else:
            assert "backing off" in str(caught.value)
    pauses = [later - earlier for earlier, later in zip(sent_at, sent_at[1:])]
    assert pauses == [10.0, 20.0, 35.0, 35.0]


def test_success_after_backoff_resets_it(server: IntensityServer) -> None:
    clock = SteppedClock()
    server.behaviour = "500"
    client = _client(server, clock=clock, backoff_initial_s=10.0)
    with pytest.raises(APIError):
        client.latest("FR")
    clock.now += 10.0
    server.behaviour = "ok"
    assert client.latest("FR").source == "live-api"
    server.behaviour = "500"
    clock.now += 61.0
    with pytest.raises(APIError, match="HTTP 500"):
        client.latest("FR")
    clock.now += 10.0
    with pytest.raises(APIError, match="HTTP 500"):
        client.latest("FR")


def test_rate_limit_honours_retry_after(server: IntensityServer) -> None:
    clock = SteppedClock()
    server.behaviour = "429"
    client = _client(server, clock=clock, backoff_initial_s=5.0)
    with pytest.raises(APIError, match="429"):
        client.latest("FR")
    server.behaviour = "ok"
    clock.now += 100.0
    with pytest.raises(APIError, match="backing off"):
        client.latest("FR")
    clock.now += 21.0
    assert client.latest("FR").source == "live-api"


def test_latency_of_the_last_request_is_recorded(server: IntensityServer) -> None:
    client = _client(server)
    assert client.last_latency_s is None
    client.latest("FR")
    assert client.last_latency_s is not None and client.last_latency_s > 0


def test_history_keeps_each_answer_with_its_datetime(server: IntensityServer) -> None:
    clock = SteppedClock()
    client = _client(server, clock=clock, cache_s=0.0)
    server.datetime = "2026-01-15T03:00:00Z"
    client.latest("FR")
    server.datetime = "2026-01-15T04:00:00.000Z"
    client.latest("FR")
    history = client.history("FR")
    assert [reading.observed_at.hour for reading in history if reading.observed_at] == [3, 4]
    assert client.history("DE") == []


@pytest.mark.parametrize(
    "arguments, field",
    [({"timeout_s": 3.0}, "timeout_s"), ({"timeout_s": 0}, "timeout_s"), ({"api": "watttime"}, "intensity_api")],
)
def test_bad_client_arguments_are_configuration_errors(arguments: dict, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        LiveIntensityClient(TOKEN, **arguments)


def test_bad_token_is_rejected_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as caught:
        LiveIntensityClient(TOKEN + "\r\nX-Injected: 1")
    _assert_no_token(str(caught.value))
