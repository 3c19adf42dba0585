"""Fixtures for the monitoring tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest
from monitoring_helpers import PrometheusServer, launch_prometheus, stop_prometheus


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """``start(targets, rule_files=(), interval="250ms")`` launches a real Prometheus on 127.0.0.1.

    Every server started through it is stopped in teardown, whether the test passed or not.
    """
    servers: List[PrometheusServer] = []

    def start(*args: Any, **kwargs: Any) -> PrometheusServer:
        server = launch_prometheus(tmp_path / f"prometheus-{len(servers)}", *args, **kwargs)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            stop_prometheus(server)
