"""Fixtures for the monitoring tests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest
from monitoring_helpers import RULES, LiveEndpoint, launch_prometheus, stop_prometheus

from hf_eco2ai.integrations.prometheus import shared_exporter

# The tiny Trainer set-up the adapters' tests use (tests/tiny_training.py) serves the end-to-end
# test here too; pytest puts only this folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture(scope="session")
def live_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveEndpoint]:
    # One Prometheus for every live test: it takes about 5 s to scrape its first target.
    exporter = shared_exporter("127.0.0.1", 0)
    try:
        server = launch_prometheus(
            tmp_path_factory.mktemp("prometheus") / "server", [f"127.0.0.1:{exporter.port}"], rule_files=[RULES]
        )
        try:
            server.wait_until(
                "the first scrape of the exporter", lambda: server.query('up{job="hf-eco2ai"} == 1'), timeout_s=30.0
            )
            yield LiveEndpoint(exporter, server)
        finally:
            stop_prometheus(server)
    finally:
        exporter.close()
