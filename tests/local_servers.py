"""Real HTTP servers on 127.0.0.1 for the carbon layer's tests, and a guard against other hosts.

``IntensityServer`` speaks Electricity Maps v3 and legacy CO2 Signal v1 and can be told to answer
200, 401, 429, 500, a redirect, to stall (timeout), or to send malformed JSON or HTML.
``MetadataServer`` plays the AWS, GCP or Azure instance-metadata service.
``loopback_only`` makes any connection or name lookup to a non-loopback host fail the test.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import pytest

_guard = {"on": False}


def _is_loopback(host: Any) -> bool:
    if host in ("localhost", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _audit(event: str, args: Tuple[Any, ...]) -> None:
    if not _guard["on"]:
        return
    if event == "socket.connect":
        address = args[1]
        if isinstance(address, tuple) and not _is_loopback(address[0]):
            raise ConnectionRefusedError(f"test tried to reach non-loopback address {address!r}")
    elif event == "socket.getaddrinfo" and not _is_loopback(args[0]):
        raise ConnectionRefusedError(f"test tried to resolve non-loopback host {args[0]!r}")


sys.addaudithook(_audit)


@pytest.fixture
def loopback_only() -> Iterator[None]:
    """Fails any attempt to reach a host other than 127.0.0.1/::1 while the test runs."""
    _guard["on"] = True
    try:
        yield
    finally:
        _guard["on"] = False


CLOUD_HINT_VARIABLES = (
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "ECS_CONTAINER_METADATA_URI_V4",
    "ECS_CONTAINER_METADATA_URI",
    "AWS_BATCH_JOB_ID",
    "TRAINING_JOB_NAME",
    "SM_CURRENT_HOST",
    "CLOUD_ML_REGION",
    "GOOGLE_CLOUD_REGION",
    "CLOUD_RUN_REGION",
    "FUNCTION_REGION",
    "AZURE_REGION",
    "REGION_NAME",
    "WEBSITE_SITE_NAME",
    "FUNCTIONS_WORKER_RUNTIME",
)


@pytest.fixture
def clean_carbon_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No HF_ECO2AI_* settings, token or cloud hints from the caller's environment, and a working
    directory without eco2ai.yaml; yields that directory."""
    for name in list(os.environ):
        if name.startswith("HF_ECO2AI_") or name == "CO2_SIGNAL_API_TOKEN" or name in CLOUD_HINT_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield tmp_path


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout, budget) closes its end first: expected, not a failure.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _QuietHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    closes_connections = False

    def _send(self, status: int, body: bytes, content_type: str, extra: Optional[Dict[str, str]] = None) -> None:
        self.send_response(status)
        if self.closes_connections:
            # As an HTTP/1.0 server or a proxy does: the server ends the connection after the answer.
            self.send_header("Connection", "close")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _LoopbackServer:
    """Serves ``handler_class`` on a free port of 127.0.0.1 from a daemon thread until ``close()``.

    ``closes_connections=True`` makes every answer carry ``Connection: close`` and end the connection.
    """

    closes_connections = False

    def _serve(self, handler_class: type) -> None:
        server = self

        class Closing(handler_class):  # type: ignore[valid-type, misc]
            @property
            def closes_connections(self) -> bool:  # type: ignore[override]
                return server.closes_connections

        handler_class = Closing
        self._httpd = _Server(("127.0.0.1", 0), handler_class)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class IntensityServer(_LoopbackServer):
    """Electricity Maps v3 + CO2 Signal v1 on 127.0.0.1, one behaviour at a time.

    ``behaviour``: ``ok``, ``401``, ``429``, ``500``, ``redirect``, ``timeout`` (stall
    ``stall_s``), ``malformed`` (broken JSON), ``html`` (wrong content type), ``echo-token``
    (an error message that repeats the token, as a hostile or buggy server might), ``raw``
    (``raw_status`` with ``raw_body`` as application/json, for hostile answers).
    """

    def __init__(self) -> None:
        self.behaviour = "ok"
        self.intensity_by_zone: Dict[str, float] = {}
        self.default_intensity = 123.0
        self.is_estimated = True
        self.stall_s = 5.0
        self.raw_status = 200
        self.raw_body = b""
        self.answered_zone: Optional[str] = None
        self.datetime = "2026-01-15T10:00:00.000Z"
        self.requests: List[Dict[str, Any]] = []
        server = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                server._handle(self)

        self._serve(Handler)

    def _handle(self, handler: _QuietHandler) -> None:
        parts = urlsplit(handler.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        token = handler.headers.get("auth-token")
        self.requests.append({"path": parts.path, "query": query, "token": token})
        behaviour = self.behaviour
        if behaviour == "timeout":
            time.sleep(self.stall_s)
            return
        if behaviour in ("401", "429", "500", "echo-token"):
            status = {"401": 401, "429": 429, "500": 500, "echo-token": 400}[behaviour]
            message = {"401": "Invalid auth-token", "429": "Too many requests", "500": "Internal error"}.get(
                behaviour, f"bad token {token}"
            )
            extra = {"Retry-After": "120"} if behaviour == "429" else None
            handler._send(status, json.dumps({"message": message}).encode(), "application/json", extra)
            return
        if behaviour == "redirect":
            handler._send(302, b"", "text/plain", {"Location": "http://127.0.0.2:9/steal"})
            return
        if behaviour == "malformed":
            handler._send(200, b'{"zone": "FR", "carbonIntensity": 10', "application/json")
            return
        if behaviour == "raw":
            handler._send(self.raw_status, self.raw_body, "application/json")
            return
        if behaviour == "html":
            handler._send(200, b"<html><body>maintenance</body></html>", "text/html; charset=utf-8")
            return
        if parts.path == "/v3/carbon-intensity/latest" and "zone" in query:
            zone = query["zone"]
            body = {
                "zone": self.answered_zone or zone,
                "carbonIntensity": self.intensity_by_zone.get(zone, self.default_intensity),
                "datetime": self.datetime,
                "updatedAt": self.datetime,
                "emissionFactorType": "lifecycle",
                "isEstimated": self.is_estimated,
                "estimationMethod": "TIME_SLICER_AVERAGE",
            }
        elif parts.path == "/v1/latest" and "countryCode" in query:
            zone = query["countryCode"]
            body = {
                "status": "ok",
                "countryCode": zone,
                "data": {
                    "datetime": self.datetime,
                    "carbonIntensity": self.intensity_by_zone.get(zone, self.default_intensity),
                    "fossilFuelPercentage": 13.6,
                },
                "units": {"carbonIntensity": "gCO2eq/kWh"},
            }
        else:
            handler._send(404, json.dumps({"error": "not found"}).encode(), "application/json")
            return
        handler._send(200, json.dumps(body).encode(), "application/json; charset=utf-8")


class MetadataServer(_LoopbackServer):
    """One cloud provider's instance-metadata service on 127.0.0.1 (``provider`` None: answers 404).

    ``stall_s`` > 0 delays every answer, to check the detection budget; ``google_header=False``
    answers the GCP path without Google's ``Metadata-Flavor`` header, as an impostor would.
    """

    def __init__(
        self, provider: Optional[str], region: str = "", stall_s: float = 0.0, google_header: bool = True
    ) -> None:
        self.provider = provider
        self.google_header = google_header
        self.region = region
        self.stall_s = stall_s
        self.requests: List[Tuple[str, str]] = []
        server = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_PUT(self) -> None:
                server._handle(self, "PUT")

        self._serve(Handler)

    def _handle(self, handler: _QuietHandler, method: str) -> None:
        self.requests.append((method, handler.path))
        if self.stall_s:
            time.sleep(self.stall_s)
        path = urlsplit(handler.path).path
        if self.provider == "aws":
            if method == "PUT" and path == "/latest/api/token":
                handler._send(200, b"imds-session-token", "text/plain")
                return
            if (
                path == "/latest/meta-data/placement/region"
                and handler.headers.get("X-aws-ec2-metadata-token") == "imds-session-token"
            ):
                handler._send(200, self.region.encode(), "text/plain")
                return
        if self.provider == "gcp" and path == "/computeMetadata/v1/instance/zone":
            if handler.headers.get("Metadata-Flavor") == "Google":
                body = f"projects/123456/zones/{self.region}".encode()
                handler._send(
                    200, body, "application/text", {"Metadata-Flavor": "Google"} if self.google_header else None
                )
                return
        if self.provider == "azure" and path == "/metadata/instance/compute/location":
            if handler.headers.get("Metadata") == "true":
                handler._send(200, self.region.encode(), "text/plain")
                return
        handler._send(404, b"not found", "text/plain")
