"""docs/monitoring/: the dashboard and rules use only exported metrics, and the real tools accept them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import List

import pytest
from monitoring_helpers import DASHBOARD, MONITORING_DOCS, RULES, dashboard_exprs, rule_exprs

from hf_eco2ai.integrations.prometheus import CATALOGUE, NOT_EXPORTED
from hf_eco2ai.integrations.prometheus.catalogue import TWINS

PROMETHEUS_CONFIG = MONITORING_DOCS / "prometheus.yml"
ALERTMANAGER_CONFIG = MONITORING_DOCS / "alertmanager.yml"
RULE_TESTS = Path(__file__).with_name("alert_rules_test.yml")
METRIC_NAME = re.compile(r"\bhf_training_[a-zA-Z0-9_]+")
EXPORTED = {spec.name for spec in CATALOGUE}


def run_tool(*command: str) -> "subprocess.CompletedProcess[str]":
    if shutil.which(command[0]) is None:
        pytest.fail(f"{command[0]} is not installed: run `bash scripts/install_system_deps.sh` (make test does)")
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    used = {name for exprs in dashboard_exprs().values() for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert used, "no hf_training_* metric found in the dashboard"
    assert used <= EXPORTED, f"dashboard queries metrics the exporter does not serve: {used - EXPORTED}"
    assert used.isdisjoint(NOT_EXPORTED)


def test_every_metric_the_alert_rules_use_is_exported() -> None:
    used = {name for expr in rule_exprs().values() for name in METRIC_NAME.findall(expr)}
    assert used <= EXPORTED, f"alert rules use metrics the exporter does not serve: {used - EXPORTED}"
    assert {
        "hf_training_emissions_grams_total",
        "hf_training_carbon_budget_grams",
        "hf_training_monitoring_errors_total",
    } <= used


def test_the_dashboard_and_rules_use_the_base_unit_twin_wherever_one_exists() -> None:
    used = {name for exprs in dashboard_exprs().values() for expr in exprs for name in METRIC_NAME.findall(expr)}
    used |= {name for expr in rule_exprs().values() for name in METRIC_NAME.findall(expr)}
    assert used & set(TWINS) == set()
    assert {
        "hf_training_energy_joules_total",
        "hf_training_steps_total",
        "hf_training_samples_total",
        "hf_training_efficiency_ratio",
        "hf_training_network_latency_seconds",
    } <= used


def test_the_dashboard_holds_the_guides_panels() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = {panel["title"]: panel for panel in dashboard["panels"]}
    expected = {
        "Total CO₂ Emissions": ("stat", "hf_training_emissions_grams_total"),
        "Energy Consumption Over Time": ("timeseries", "hf_training_energy_joules_total"),
        "Training Efficiency by Hour": ("heatmap", "hf_training_samples_total"),
        "Live CO₂ Rate": ("gauge", "hf_training_emissions_grams_total"),
        "Energy per Step": ("timeseries", "hf_training_steps_total"),
    }
    for title, (panel_type, metric) in expected.items():
        assert panels[title]["type"] == panel_type
        assert any(metric in target["expr"] for target in panels[title]["targets"])
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def test_the_live_co2_rate_converts_grams_per_second_to_kg_per_hour() -> None:
    (expr,) = dashboard_exprs()["Live CO₂ Rate"]
    assert "rate(hf_training_emissions_grams_total" in expr and expr.rstrip().endswith("* 3600 / 1000")


def test_the_rules_define_the_guides_alerts_and_the_energy_and_monitoring_ones() -> None:
    assert {"HighCarbonEmissions", "CarbonBudgetExceeded", "EnergyEfficiencyDropped", "CarbonMonitoringErrors"} <= set(
        rule_exprs()
    )


def test_promtool_accepts_the_rules() -> None:
    assert re.search(r"SUCCESS: [1-9][0-9]* rules found", run_tool("promtool", "check", "rules", str(RULES)).stdout)


def test_promtool_accepts_the_example_prometheus_config_with_its_rules() -> None:
    output = run_tool("promtool", "check", "config", str(PROMETHEUS_CONFIG)).stdout
    assert "is valid prometheus config file" in output and "rules found" in output


def test_the_alerts_fire_as_specified_in_promtool_unit_tests() -> None:
    assert "SUCCESS" in run_tool("promtool", "test", "rules", str(RULE_TESTS)).stdout


def test_amtool_accepts_the_example_alertmanager_config() -> None:
    assert "SUCCESS" in run_tool("amtool", "check-config", str(ALERTMANAGER_CONFIG)).stdout


@pytest.mark.parametrize(
    "labels, receiver",
    [
        (["alertname=CarbonBudgetExceeded", "severity=critical", "category=carbon"], "carbon-on-call"),
        (["alertname=HighCarbonEmissions", "severity=warning", "category=carbon"], "sustainability-team"),
        (["alertname=LowGpuEfficiency", "severity=info", "category=energy"], "sustainability-email"),
    ],
)
def test_alertmanager_routes_each_severity_to_its_receiver(labels: List[str], receiver: str) -> None:
    result = run_tool("amtool", "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels)
    assert result.stdout.strip() == receiver
