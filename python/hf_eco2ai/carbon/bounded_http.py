"""One bounded HTTP request: the network client of the carbon layer and the Pushgateway push.

urllib's timeout bounds each socket operation, not the whole exchange (a server sending one byte
per second holds it forever), and it follows redirects with every header (the API token included)
to whatever host the redirect names. This helper bounds the whole exchange, headers and body, by
one monotonic deadline, never follows redirects, and caps the body.

``http.client``, ``ssl`` and ``urllib.request`` are imported by the first request: most runs make
none (a fixed or tabled intensity), and importing them is a visible part of a process's start.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from hf_eco2ai.carbon.hosts import is_loopback_host

MAX_BODY_BYTES = 64 * 1024


class ResponseTooLarge(ValueError):
    """The body was longer than the cap; a carbon-intensity answer is a few hundred bytes."""


class NotHttp(ValueError):
    """The answer was not HTTP (a bad status line, an overlong header...): ``http.client``'s
    error, as a ``ValueError`` that callers catch without importing ``http.client``."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    content_type: str
    body: bytes
    headers: Dict[str, str]


def _is_link_local(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_link_local
    except ValueError:
        return False


def _proxy_for(scheme: str, host: str) -> Optional[Tuple[str, int]]:
    import urllib.request

    # Loopback and link-local (cloud metadata) addresses are never reached through a proxy.
    if is_loopback_host(host) or _is_link_local(host) or urllib.request.proxy_bypass(host):
        return None
    proxy_url = urllib.request.getproxies().get(scheme)
    if not proxy_url:
        return None
    proxy = urlsplit(proxy_url if "://" in proxy_url else "http://" + proxy_url)
    if not proxy.hostname:
        return None
    return proxy.hostname, proxy.port or 80


def _remaining(deadline_s: float) -> float:
    left = deadline_s - time.monotonic()
    if left <= 0:
        raise socket.timeout("deadline passed")
    return left


class _DeadlineReader(io.RawIOBase):
    """Reads the socket with the time left to the deadline as each read's timeout.

    A socket timeout alone bounds one read: a server trickling a byte at a time would never hit it.
    """

    def __init__(self, sock: socket.socket, deadline_s: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline_s = deadline_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(_remaining(self._deadline_s))
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """What ``http.client`` sees as the connection's socket: every send and read bounded by the deadline.

    ``close()`` does nothing: http.client closes the socket as soon as it knows the server will
    end the connection (HTTP/1.0, ``Connection: close``), before the body is read; ``request``
    closes the real socket once it has the whole answer.
    """

    def __init__(self, sock: socket.socket, deadline_s: float) -> None:
        self._sock = sock
        self._deadline_s = deadline_s

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(_remaining(self._deadline_s))
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline_s))

    def close(self) -> None:
        return None


def request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    deadline_s: float,
    max_body_bytes: int = MAX_BODY_BYTES,
    body: Optional[bytes] = None,
) -> HttpResponse:
    """Sends one request (with ``body``, if given) and reads the whole answer before ``deadline_s``
    (``time.monotonic()``).

    Redirects are returned as they are (status 3xx), never followed.

    Raises:
        socket.timeout: the deadline passed (connect, send or read).
        OSError: the connection failed.
        NotHttp: the answer was not HTTP.
        ResponseTooLarge: the body exceeded ``max_body_bytes``.
    """
    import http.client
    import ssl

    parts = urlsplit(url)
    scheme = parts.scheme
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    proxy = _proxy_for(scheme, host)
    timeout_s = _remaining(deadline_s)
    connection: http.client.HTTPConnection
    if scheme == "https":
        context = ssl.create_default_context()
        if proxy is None:
            connection = http.client.HTTPSConnection(host, port, timeout=timeout_s, context=context)
        else:
            connection = http.client.HTTPSConnection(proxy[0], proxy[1], timeout=timeout_s, context=context)
            connection.set_tunnel(host, port)
    else:
        if proxy is None:
            connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        else:
            connection = http.client.HTTPConnection(proxy[0], proxy[1], timeout=timeout_s)
            target = url
    real_sock: Optional[socket.socket] = None
    try:
        connection.connect()
        real_sock = connection.sock
        assert real_sock is not None
        connection.sock = _DeadlineSocket(real_sock, deadline_s)
        connection.request(method, target, body=body, headers=dict(headers))
        response = connection.getresponse()
        answer = bytearray()
        while True:
            chunk = response.read(4096)
            if not chunk:
                break
            answer += chunk
            if len(answer) > max_body_bytes:
                raise ResponseTooLarge(f"answer longer than {max_body_bytes} bytes")
        return HttpResponse(
            status=response.status,
            content_type=response.getheader("Content-Type", "") or "",
            body=bytes(answer),
            headers={name.lower(): value for name, value in response.getheaders()},
        )
    except http.client.HTTPException as error:
        if isinstance(error, OSError):  # a dropped connection (RemoteDisconnected) stays an OSError
            raise
        raise NotHttp(f"{type(error).__name__}: {error}") from error
    finally:
        connection.close()
        if real_sock is not None:
            real_sock.close()
