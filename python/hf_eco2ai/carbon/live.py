"""Live grid carbon intensity from Electricity Maps (v3) or the legacy CO2 Signal API (v1).

Both take the token in the ``auth-token`` header. One request is bounded by ``timeout_s``
(at most 2 s) in total; answers are cached per zone for ``cache_s``; after a failure no request is
sent until an exponentially growing back-off has passed (``Retry-After`` is honoured on 429).
Every failure raises ``APIError``; falling back to the tables is the resolver's job.

The token is never part of a message, a ``repr`` or a log line: every text that leaves this module
passes through ``_redact`` first.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple
from urllib.parse import urlencode

from hf_eco2ai.carbon import bounded_http
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.carbon.redaction import redact
from hf_eco2ai.errors import APIError, ConfigurationError

MAX_TIMEOUT_S = 2.0
MAX_PLAUSIBLE_G_PER_KWH = 3_000.0
HISTORY_LENGTH = 7 * 24 * 12  # a week of readings at the shortest sensible cache time (5 min)
# A carbon-intensity answer is a few hundred bytes and three levels deep.
MAX_ANSWER_BYTES = 16 * 1024
MAX_JSON_DEPTH = 16

DEFAULT_BASE_URLS = {
    "electricitymaps": "https://api.electricitymap.org",
    "co2signal": "https://api.co2signal.com",
}
DATASETS = {
    "electricitymaps": "Electricity Maps API v3 (live)",
    "co2signal": "CO2 Signal API v1 by Electricity Maps (live)",
}
_TOKEN_HINT = "check co2_signal_api_token (env HF_ECO2AI_CO2_SIGNAL_API_TOKEN or CO2_SIGNAL_API_TOKEN)"


@dataclass(frozen=True)
class LiveReading:
    """One successful answer, kept for time-of-day analysis. ``observed_at`` is the API's datetime."""

    zone: str
    g_per_kwh: float
    observed_at: Optional[datetime]
    is_estimated: Optional[bool]


class LiveIntensityClient:
    """Fetches the latest intensity of a grid zone.

    Thread-safe: one lock guards the cache and the back-off state and is held during the request,
    so concurrent callers for a zone cause one request, not a stampede. Call it from a background
    thread (the session's drain), never from the training step.

    Args:
        token: the API token (secret).
        api: ``electricitymaps`` (``/v3/carbon-intensity/latest?zone=``) or ``co2signal``
            (``/v1/latest?countryCode=``).
        base_url: scheme and host (and optional path prefix); ``None`` uses the public endpoint.
        timeout_s: total time for one request, 0 < timeout_s <= 2.
        cache_s: how long an answer is reused for the same zone.
        backoff_initial_s, backoff_max_s: first and largest pause after consecutive failures.
        clock: monotonic seconds; replaceable so that cache and back-off can be tested without sleeping.

    Raises:
        ConfigurationError: an invalid argument (the token is never echoed).
    """

    def __init__(
        self,
        token: str,
        *,
        api: str = "electricitymaps",
        base_url: Optional[str] = None,
        timeout_s: float = MAX_TIMEOUT_S,
        cache_s: float = 600.0,
        backoff_initial_s: float = 30.0,
        backoff_max_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(token, str) or not token.strip() or not all(33 <= ord(char) <= 126 for char in token.strip()):
            # It goes into a header: control characters would let it split the request.
            raise ConfigurationError(
                "co2_signal_api_token = <hidden> is invalid: expected a non-empty string of printable ASCII without spaces"
            )
        if api not in DEFAULT_BASE_URLS:
            raise ConfigurationError(
                f"intensity_api = {api!r} is invalid: expected one of {', '.join(DEFAULT_BASE_URLS)}"
            )
        if not 0 < timeout_s <= MAX_TIMEOUT_S:
            raise ConfigurationError(
                f"timeout_s = {timeout_s!r} is invalid: expected seconds > 0 and <= {MAX_TIMEOUT_S:g}"
            )
        if cache_s < 0 or backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ConfigurationError(
                f"cache_s = {cache_s!r}, backoff_initial_s = {backoff_initial_s!r}, backoff_max_s = "
                f"{backoff_max_s!r} are invalid: expected cache_s >= 0 and 0 < initial <= max"
            )
        self._token = token.strip()
        self.api = api
        self.base_url = (base_url or DEFAULT_BASE_URLS[api]).rstrip("/")
        self.dataset = DATASETS[api]
        self._timeout_s = float(timeout_s)
        self._cache_s = float(cache_s)
        self._backoff_initial_s = float(backoff_initial_s)
        self._backoff_max_s = float(backoff_max_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: Dict[str, Tuple[float, IntensityResult]] = {}
        self._history: Dict[str, Deque[LiveReading]] = {}
        self._consecutive_failures = 0
        self._retry_at = -math.inf
        self.failures_total = 0
        self.requests_total = 0
        self.last_latency_s: Optional[float] = None

    def __repr__(self) -> str:
        return f"LiveIntensityClient(api={self.api!r}, base_url={self.base_url!r}, token='***')"

    def _redact(self, text: str) -> str:
        return redact(text, (self._token,))

    def latest(self, zone: str) -> IntensityResult:
        """The zone's current intensity (``source='live-api'``, ``is_estimated`` from the API).

        Raises:
            APIError: the API failed, answered nonsense, or the client is backing off after a failure.
        """
        with self._lock:
            now = self._clock()
            cached = self._cache.get(zone)
            if cached is not None and now - cached[0] < self._cache_s:
                return cached[1]
            if now < self._retry_at:
                raise APIError(
                    f"{self.dataset}: not asked for zone {zone}, backing off for {self._retry_at - now:.0f} s more "
                    f"after {self._consecutive_failures} consecutive failure(s)"
                )
            try:
                result, reading = self._fetch(zone)
            except _Failure as failure:
                self._record_failure(failure.retry_after_s)
                raise APIError(self._redact(f"{self.dataset}: {failure.reason}")) from None
            except Exception as unexpected:  # noqa: BLE001 - whatever the answer, the caller falls back
                self._record_failure(None)
                raise APIError(
                    self._redact(
                        f"{self.dataset}: answer for zone {zone} could not be read ({type(unexpected).__name__})"
                    )
                ) from None
            self._consecutive_failures = 0
            self._retry_at = -math.inf
            self._cache[zone] = (self._clock(), result)
            self._history.setdefault(zone, deque(maxlen=HISTORY_LENGTH)).append(reading)
            return result

    def history(self, zone: str) -> List[LiveReading]:
        """Successful answers for ``zone``, oldest first (at most a week's worth)."""
        with self._lock:
            return list(self._history.get(zone, ()))

    def _record_failure(self, retry_after_s: Optional[float]) -> None:
        self.failures_total += 1
        self._consecutive_failures += 1
        pause_s = min(self._backoff_initial_s * 2 ** (self._consecutive_failures - 1), self._backoff_max_s)
        if retry_after_s is not None:
            pause_s = min(max(pause_s, retry_after_s), self._backoff_max_s)
        self._retry_at = self._clock() + pause_s

    def _url(self, zone: str) -> str:
        if self.api == "electricitymaps":
            return f"{self.base_url}/v3/carbon-intensity/latest?{urlencode({'zone': zone})}"
        return f"{self.base_url}/v1/latest?{urlencode({'countryCode': zone})}"

    def _fetch(self, zone: str) -> Tuple[IntensityResult, LiveReading]:
        headers = {"auth-token": self._token, "Accept": "application/json", "User-Agent": "hf-eco2ai"}
        started = time.monotonic()
        self.requests_total += 1
        try:
            response = bounded_http.request(
                "GET", self._url(zone), headers, deadline_s=started + self._timeout_s, max_body_bytes=MAX_ANSWER_BYTES
            )
        except socket.timeout:
            raise _Failure(f"no answer for zone {zone} within {self._timeout_s:g} s") from None
        except bounded_http.ResponseTooLarge as exc:
            raise _Failure(f"answer for zone {zone} rejected: {exc}") from None
        except (OSError, ValueError) as exc:
            raise _Failure(f"request for zone {zone} failed: {type(exc).__name__}: {exc}") from None
        finally:
            self.last_latency_s = time.monotonic() - started
        self._check_status(zone, response)
        payload = self._decode(zone, response)
        return self._interpret(zone, payload)

    def _check_status(self, zone: str, response: bounded_http.HttpResponse) -> None:
        status = response.status
        if status == 200:
            return
        detail = _server_message(response)
        if status in (401, 403):
            raise _Failure(f"HTTP {status} for zone {zone}: the token was rejected{detail}; {_TOKEN_HINT}")
        if status == 429:
            raise _Failure(
                f"HTTP 429 for zone {zone}: rate limited{detail}", _retry_after_s(response.headers.get("retry-after"))
            )
        if 300 <= status < 400:
            raise _Failure(
                f"HTTP {status} for zone {zone}: redirect not followed, so the token stays with {self.base_url}"
            )
        if status == 404:
            raise _Failure(f"HTTP 404 for zone {zone}: the API does not know this zone{detail}")
        raise _Failure(f"HTTP {status} for zone {zone}{detail}")

    def _decode(self, zone: str, response: bounded_http.HttpResponse) -> Dict[str, Any]:
        media_type = response.content_type.split(";")[0].strip().lower()
        if media_type != "application/json":
            raise _Failure(
                f"answer for zone {zone} has content type {media_type or 'none'!r}, expected application/json"
            )
        try:
            payload = _parse_json(response.body)
        except ValueError as exc:
            raise _Failure(f"answer for zone {zone} is malformed JSON ({exc})") from None
        if not isinstance(payload, dict):
            raise _Failure(f"answer for zone {zone} is a JSON {type(payload).__name__}, expected an object")
        return payload

    def _interpret(self, zone: str, payload: Dict[str, Any]) -> Tuple[IntensityResult, LiveReading]:
        if self.api == "co2signal":
            if payload.get("status") != "ok" or not isinstance(payload.get("data"), dict):
                raise _Failure(f"answer for zone {zone} has no data (status {str(payload.get('status'))[:40]!r})")
            record: Dict[str, Any] = payload["data"]
            answered_zone = str(payload.get("countryCode") or zone)
        else:
            record = payload
            answered_zone = str(payload.get("zone") or zone)
        # Kept in results, history, reports and the store: a server echoing the token must not put it there.
        answered_zone = self._redact(answered_zone[:256])[:64]
        value = record.get("carbonIntensity")
        # Numbers arrive as floats (see _parse_json): an enormous integer is inf, never an OverflowError.
        if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
            raise _Failure(f"answer for zone {zone} has no finite numeric carbonIntensity")
        if not 0 <= value <= MAX_PLAUSIBLE_G_PER_KWH:
            raise _Failure(f"answer for zone {zone} has an implausible carbonIntensity of {value:.6g} g/kWh")
        estimated = record.get("isEstimated")
        is_estimated = estimated if isinstance(estimated, bool) else None
        result = IntensityResult(
            g_per_kwh=float(value),
            source="live-api",
            dataset=self.dataset,
            zone=answered_zone,
            is_estimated=is_estimated,
        )
        reading = LiveReading(answered_zone, float(value), _parse_datetime(record.get("datetime")), is_estimated)
        return result, reading


class _Failure(Exception):
    def __init__(self, reason: str, retry_after_s: Optional[float] = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


def _server_message(response: bounded_http.HttpResponse) -> str:
    try:
        payload = _parse_json(response.body)
    except ValueError:
        return ""
    if isinstance(payload, dict):
        message = payload.get("message") or payload.get("error")
        if isinstance(message, str) and message.strip():
            return f" ({message.strip()[:200]})"
    return ""


def _json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text``, brackets inside strings ignored."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _parse_json(body: bytes) -> Any:
    """The JSON value of ``body``, every number as a float (``inf`` when out of range).

    The nesting is checked before parsing, so no answer can exhaust the recursion limit.

    Raises:
        ValueError: not UTF-8, not JSON, NaN/Infinity literals, or nested deeper than MAX_JSON_DEPTH.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8") from None
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_int=float, parse_float=float, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"JSONDecodeError at character {exc.pos}") from None


def _retry_after_s(header: Optional[str]) -> Optional[float]:
    if header is None:
        return None
    try:
        seconds = float(header.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _parse_datetime(raw: Any) -> Optional[datetime]:
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
