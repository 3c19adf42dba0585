"""What kind of host a URL names, without the HTTP client: settings are validated when a
configuration is built, which should not import ``http.client`` and ``ssl``."""

from __future__ import annotations

import ipaddress


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
