"""Helpers for the monitoring tests: snapshots, free ports, and a client for a real Prometheus server."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import pytest
import yaml

from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.integrations.prometheus import PrometheusExporter
from hf_eco2ai.meter.channels import ChannelInfo
from hf_eco2ai.session.snapshot import GpuStats, SessionSnapshot

REPO = Path(__file__).resolve().parents[2]
MONITORING_DOCS = REPO / "docs" / "monitoring"
DASHBOARD = MONITORING_DOCS / "grafana-dashboard.json"
RULES = MONITORING_DOCS / "alert_rules.yml"


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_snapshot(**changes: Any) -> SessionSnapshot:
    """A snapshot in which every optional figure is set, so every catalogue metric has a sample."""
    base = SessionSnapshot(
        run_id="run-1",
        project_name="sentiment",
        experiment_id="exp-1",
        model_name="bert-tiny",
        host="node-a",
        rank=0,
        local_rank=0,
        world_size=1,
        unix_time_s=1_700_000_000.0,
        step_count=12,
        epoch_count=2,
        channels=[
            ChannelInfo("gpu:0", "counter", "measured", "nvml"),
            ChannelInfo("cpu:package-0", "counter", "measured", "rapl"),
            ChannelInfo("cpu:core-0", "counter", "measured", "rapl", parent="cpu:package-0"),
        ],
        energy_joules_by_channel={"gpu:0": 36_000.0, "cpu:package-0": 7_200.0, "cpu:core-0": 3_600.0},
        power_watts_by_channel={"gpu:0": 250.0, "cpu:package-0": 60.0, "cpu:core-0": 30.0},
        energy_kwh_total=0.012,
        energy_rate_kwh_per_hour=0.31,
        co2_kg_total=0.0048,
        co2_rate_kg_per_hour=0.124,
        intensity=IntensityResult(400.0, "country-table", "Our World in Data", country="DE", region="BY", year=2023),
        pue=1.0,
        budget_kg=0.01,
        budget_remaining_kg=0.0052,
        budget_used_fraction=0.48,
        samples_total=384.0,
        samples_per_second=32.0,
        samples_per_kwh=32_000.0,
        loss=0.7,
        eval_loss=0.8,
        learning_rate=1e-4,
        cost_total=0.0036,
        electricity_price_per_kwh=0.3,
        electricity_currency="EUR",
        monitoring_errors_total=3,
        monitoring_errors_by_type={"sensor": 2},
        api_latency_s=0.045,
        gpus=[
            GpuStats(
                0,
                "NVIDIA H100",
                "GPU-0000",
                temperature_c=61.0,
                memory_used_bytes=20 * 2**30,
                memory_total_bytes=80 * 2**30,
                utilization_percent=75.0,
                power_watts=250.0,
            )
        ],
        anomalies_by_type={"gradient_explosion": 1, "nan_or_inf": 0},
    )
    return replace(base, **changes)


def bare_snapshot(**changes: Any) -> SessionSnapshot:
    """A snapshot from a machine without GPUs, price, budget or logged metrics."""
    bare: Dict[str, Any] = dict(
        gpus=[],
        budget_kg=None,
        budget_remaining_kg=None,
        budget_used_fraction=None,
        samples_total=None,
        samples_per_second=None,
        samples_per_kwh=None,
        loss=None,
        eval_loss=None,
        learning_rate=None,
        cost_total=None,
        electricity_price_per_kwh=None,
        electricity_currency=None,
        api_latency_s=None,
        energy_rate_kwh_per_hour=None,
        co2_rate_kg_per_hour=None,
        channels=[ChannelInfo("cpu:estimate", "power", "estimated", "cpu-estimate")],
        energy_joules_by_channel={"cpu:estimate": 900.0},
        power_watts_by_channel={"cpu:estimate": 15.0},
        monitoring_errors_total=0,
        monitoring_errors_by_type={},
        anomalies_by_type=None,
    )
    return make_snapshot(**{**bare, **changes})


def dashboard_exprs() -> Dict[str, List[str]]:
    """PromQL expressions of the dashboard by panel title (plus its variable and annotation queries)."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = {panel["title"]: [target["expr"] for target in panel["targets"]] for panel in dashboard["panels"]}
    exprs["variables"] = [variable["definition"] for variable in dashboard["templating"]["list"]]
    exprs["annotations"] = [annotation["expr"] for annotation in dashboard["annotations"]["list"]]
    return exprs


def rule_exprs() -> Dict[str, str]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}


class PrometheusServer:
    """A real ``prometheus`` process on 127.0.0.1 and helpers for its HTTP API."""

    def __init__(self, process: "subprocess.Popen[bytes]", url: str, log_path: Path) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> List[Any]:
        """The instant vector of ``expr`` now, as Prometheus's JSON ``result`` list."""
        return list(self.api("query", query=expr)["result"])

    def firing_alerts(self) -> List[Any]:
        return [alert for alert in self.api("alerts")["alerts"] if alert["state"] == "firing"]

    def wait_until(self, what: str, condition: Callable[[], Any], timeout_s: float = 15.0) -> Any:
        """Polls ``condition`` until it returns something truthy; fails with ``what`` on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(
                    f"timed out after {timeout_s} s waiting for {what}; Prometheus log:\n"
                    + self.log_path.read_text(errors="replace")[-2000:]
                )
            time.sleep(0.1)


@dataclass(frozen=True)
class LiveEndpoint:
    """A shared exporter on 127.0.0.1 and a real Prometheus scraping it every 250 ms.

    Sessions configured with ``prometheus_port=exporter.port`` attach to this very exporter
    (``shared_exporter`` hands it to them), so Prometheus scrapes them with no new target.
    Prometheus also evaluates ``docs/monitoring/alert_rules.yml`` every 250 ms. Tests tell their
    series apart by ``project_name``.
    """

    exporter: PrometheusExporter
    prometheus: PrometheusServer


def launch_prometheus(
    directory: Path, targets: Sequence[str], rule_files: Sequence[Path] = (), interval: str = "250ms"
) -> PrometheusServer:
    """Starts ``prometheus`` scraping ``targets`` every ``interval`` and waits until it is ready.

    The config, the TSDB and the log live under ``directory``; rules are evaluated every
    ``interval`` too. Stop it with ``stop_prometheus``.
    """
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: run `bash scripts/install_system_deps.sh` (make test does)")
    directory.mkdir(parents=True)
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": "hf-eco2ai", "static_configs": [{"targets": list(targets)}]}],
    }
    (directory / "prometheus.yml").write_text(json.dumps(config))  # JSON is YAML
    log_path = directory / "prometheus.log"
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(process, f"http://127.0.0.1:{port}", log_path)
    try:
        server.wait_until("Prometheus to become ready", lambda: _ready(server), timeout_s=30.0)
    except BaseException:
        stop_prometheus(server)
        raise
    return server


def stop_prometheus(server: PrometheusServer) -> None:
    """Terminates the server (SIGTERM, then SIGKILL after 10 s)."""
    process = server.process
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(server: PrometheusServer) -> bool:
    if server.process.poll() is not None:
        pytest.fail("prometheus exited at start:\n" + server.log_path.read_text(errors="replace"))
    try:
        with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def scrape_text(url: str, accept: Optional[str] = None) -> str:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return str(response.read().decode("utf-8"))
