"""A real Prometheus scrapes the exporter of a real EnergyMeter and evaluates the shipped rules."""

from __future__ import annotations

import socket
import time
import uuid
from typing import Iterator, Optional

import pytest
from monitoring_helpers import LiveEndpoint, PrometheusServer, dashboard_exprs, make_snapshot

from hf_eco2ai.meter.energy_meter import EnergyMeter
from hf_eco2ai.session.snapshot import SessionSnapshot
from hf_eco2ai.units import JOULES_PER_KWH

INTENSITY_G_PER_KWH = 400.0
BUDGET_KG = 1e-6  # 100 W at 400 g/kWh uses it up in about 0.1 s
STEPS = 25


class MeterProvider:
    """The snapshot a session would give for a bare meter: energy, carbon, budget and steps."""

    def __init__(self, meter: EnergyMeter, project_name: str) -> None:
        self.meter = meter
        self.project_name = project_name

    def __call__(self) -> Optional[SessionSnapshot]:
        totals = self.meter.totals()
        if totals["t_s"] is None:
            return None
        kwh = sum(totals["joules"].values()) / JOULES_PER_KWH
        co2_kg = kwh * INTENSITY_G_PER_KWH / 1000.0
        return make_snapshot(
            project_name=self.project_name,
            model_name="tiny",
            host=socket.gethostname(),
            unix_time_s=time.time(),
            step_count=totals["steps_marked"],
            epoch_count=0,
            channels=self.meter.channels(),
            energy_joules_by_channel=dict(totals["joules"]),
            power_watts_by_channel=dict(totals["watts"]),
            energy_kwh_total=kwh,
            co2_kg_total=co2_kg,
            budget_kg=BUDGET_KG,
            budget_remaining_kg=BUDGET_KG - co2_kg,
            budget_used_fraction=co2_kg / BUDGET_KG,
            gpus=[],
            monitoring_errors_total=0,
            monitoring_errors_by_type={},
        )


@pytest.fixture
def meter() -> Iterator[EnergyMeter]:
    energy_meter = EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 100}, rate_hz=200)
    try:
        yield energy_meter
    finally:
        energy_meter.stop()


def scalar(server: PrometheusServer, expr: str) -> Optional[float]:
    result = server.query(expr)
    return float(result[0]["value"][1]) if len(result) == 1 else None


@pytest.fixture
def metered_run(live_endpoint: LiveEndpoint, meter: EnergyMeter) -> Iterator[MeterProvider]:
    """A started meter whose snapshots the live endpoint serves under ``project_name``."""
    provider = MeterProvider(meter, project_name=f"live-{uuid.uuid4().hex[:8]}")
    attachment = live_endpoint.exporter.attach(provider)
    meter.start()
    try:
        yield provider
    finally:
        attachment.detach()


def test_prometheus_scrapes_a_metered_run_and_fires_the_budget_alert(
    live_endpoint: LiveEndpoint, metered_run: MeterProvider
) -> None:
    server, project = live_endpoint.prometheus, metered_run.project_name
    selector = f'{{project_name="{project}"}}'
    first_seen = server.wait_until(
        "a first energy sample", lambda: scalar(server, f"hf_training_energy_kwh_total{selector}")
    )
    for _ in range(STEPS):
        metered_run.meter.mark_step()
        time.sleep(0.04)
    metered_run.meter.stop()
    final = metered_run()
    assert final is not None and final.step_count == STEPS

    server.wait_until(
        f"hf_training_step_count == {STEPS}", lambda: scalar(server, f"hf_training_step_count{selector}") == STEPS
    )
    assert scalar(server, f"hf_training_steps_total{selector}") == STEPS
    stored_kwh = server.wait_until(
        "the final energy figure",
        lambda: scalar(server, f"hf_training_energy_kwh_total{selector} == {final.energy_kwh_total!r}"),
    )
    assert stored_kwh > first_seen
    assert scalar(server, f"hf_training_energy_joules_total{selector}") == pytest.approx(stored_kwh * JOULES_PER_KWH)
    (series,) = server.query(f"hf_training_energy_kwh_total{selector}")
    assert series["metric"]["instance"] == f"127.0.0.1:{live_endpoint.exporter.port}"
    assert series["metric"]["job"] == "hf-eco2ai" and series["metric"]["rank"] == "0"

    def budget_alert() -> object:
        return [
            alert
            for alert in server.firing_alerts()
            if alert["labels"]["alertname"] == "CarbonBudgetExceeded" and alert["labels"]["project_name"] == project
        ]

    (alert,) = server.wait_until("CarbonBudgetExceeded to fire", budget_alert)
    assert alert["labels"]["severity"] == "critical"


def test_every_dashboard_query_is_valid_promql_and_the_carbon_panels_have_data(
    live_endpoint: LiveEndpoint, metered_run: MeterProvider
) -> None:
    server = live_endpoint.prometheus
    # rate() over the panels' windows needs two samples of the counters
    server.wait_until(
        "two scrapes",
        lambda: scalar(
            server, f'count_over_time(hf_training_co2_kg_total{{project_name="{metered_run.project_name}"}}[1m]) >= 2'
        ),
    )
    for title, exprs in dashboard_exprs().items():
        for expr in exprs:
            promql = expr.replace("$__rate_interval", "1m").replace("$project", metered_run.project_name)
            if promql.startswith("label_values("):
                metric, label = promql[len("label_values(") : -1].split(", ")
                assert label in server.query(metric)[0]["metric"], title
                continue
            result = server.query(promql)  # fails the test on a PromQL error
            if title in (
                "Total CO₂ Emissions",
                "Live CO₂ Rate",
                "Energy Consumption Over Time",
                "Carbon Budget Used",
                "Power by Channel",
            ):
                assert result, f"panel {title!r} has no data: {promql}"


def test_prometheus_divides_one_twin_by_another_with_no_ignoring(
    live_endpoint: LiveEndpoint, metered_run: MeterProvider
) -> None:
    server, project = live_endpoint.prometheus, metered_run.project_name
    selector = f'{{project_name="{project}"}}'
    server.wait_until("a first energy sample", lambda: scalar(server, f"hf_training_energy_joules_total{selector} > 0"))
    # grams over joules is the intensity the provider applied, in g/J
    grams_per_joule = scalar(
        server, f"hf_training_emissions_grams_total{selector} / hf_training_energy_joules_total{selector}"
    )
    assert grams_per_joule == pytest.approx(INTENSITY_G_PER_KWH / JOULES_PER_KWH)
    for _ in range(5):
        metered_run.meter.mark_step()
        time.sleep(0.05)
    joules_per_step = server.wait_until(
        "energy per step",
        lambda: scalar(server, f"hf_training_energy_joules_total{selector} / hf_training_steps_total{selector}"),
    )
    assert joules_per_step > 0
    used = scalar(server, f"hf_training_emissions_grams_total{selector} / hf_training_carbon_budget_grams{selector}")
    assert used is not None and used > 0
