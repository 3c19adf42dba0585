"""Fixtures for the monitoring tests."""

from __future__ import annotations

from typing import Iterator

import pytest
from monitoring_helpers import RULES, LiveEndpoint, launch_prometheus, stop_prometheus

from hf_eco2ai.integrations.prometheus import shared_exporter


@pytest.fixture(scope="session")
def live_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEndpoint]:
    # One Prometheus for every live test: it takes about 5 s to apply its first targets.
    exporter = shared_exporter("127.0.0.1", 0)
    try:
        server = launch_prometheus(tmp_path_factory.mktemp("prometheus") / "server", [f"127.0.0.1:{exporter.port}"],
                                   rule_files=[RULES])
        try:
            yield LiveEndpoint(exporter, server)
        finally:
            stop_prometheus(server)
    finally:
        exporter.close()
