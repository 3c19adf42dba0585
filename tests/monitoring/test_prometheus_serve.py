"""serve_run (`hf-eco2ai serve --run RUN`): a stored run's figures on a scrape endpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from monitoring_helpers import scrape_text
from prometheus_client.parser import text_string_to_metric_families

from hf_eco2ai import CarbonConfig, ConfigurationError, EnergyMeter, TrackingSession
from hf_eco2ai.integrations.prometheus.stored_run import serve_run
from hf_eco2ai.store.run_store import RunStore

Series = Dict[str, List[Tuple[Dict[str, str], float]]]


def scrape(url: str) -> Series:
    series: Series = {}
    for family in text_string_to_metric_families(scrape_text(url)):
        for sample in family.samples:
            series.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return series


@pytest.fixture
def session(tmp_path: Path) -> Iterator[TrackingSession]:
    config = CarbonConfig(
        project_name="stored",
        output_dir=str(tmp_path),
        offline=True,
        country_iso_code="FR",
        carbon_budget_kg=1.0,
        electricity_price_per_kwh=0.2,
        electricity_currency="EUR",
    )
    tracked = TrackingSession(
        config,
        meter=EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 100}),
        store=tmp_path / "runs.sqlite",
        model_name="tiny-mlp",
    )
    tracked.start()
    try:
        yield tracked
    finally:
        tracked.stop()


def stored_steps(store: RunStore, run_id: str) -> int:
    """Steps in the run's stored figures; -1 until the store's writer has committed the run."""
    try:
        return int(store.latest(run_id).get("steps_marked", -1))
    except KeyError:
        return -1


def wait_for(what: str, condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_finished_run_is_served_with_its_final_totals_and_no_power(session: TrackingSession, tmp_path: Path) -> None:
    for _ in range(7):
        session.mark_step()
        time.sleep(0.01)
    session.log({"loss": 0.25, "samples": 64})
    session.stop()
    final = session.snapshot()
    assert final is not None
    with serve_run(session.run_id[:8], tmp_path / "runs.sqlite", port=0) as exporter:
        series = scrape(exporter.url)
    ((labels, kwh),) = series["hf_training_energy_kwh_total"]
    assert kwh == pytest.approx(final.energy_kwh_total, rel=1e-12) and kwh > 0
    assert labels["project_name"] == "stored" and labels["model_name"] == "tiny-mlp"
    assert series["hf_training_step_count"][0][1] == 7
    assert series["hf_training_loss"][0][1] == 0.25
    assert series["hf_training_carbon_budget_kg"][0][1] == 1.0
    assert series["hf_training_estimated_cost_usd"][0][0]["currency"] == "EUR"
    assert series["hf_training_estimated_cost_usd"][0][1] == pytest.approx(0.2 * kwh)
    for drawing_power in (
        "hf_training_cpu_power_watts",
        "hf_training_channel_power_watts",
        "hf_training_energy_rate_kwh_per_hour",
        "hf_training_co2_rate_kg_per_hour",
    ):
        assert drawing_power not in series
    updated = RunStore(tmp_path / "runs.sqlite").get_run(session.run_id).updated_unix_s
    assert series["hf_training_last_update_timestamp"][0][1] == pytest.approx(updated)


def test_a_running_run_is_served_as_its_session_writes_it(session: TrackingSession, tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    for _ in range(3):
        session.mark_step()
    session.drain()
    wait_for("the first figures in the store", lambda: stored_steps(store, session.run_id) == 3)
    with serve_run(session.run_id, tmp_path / "runs.sqlite", port=0) as exporter:
        first = scrape(exporter.url)
        assert first["hf_training_step_count"][0][1] == 3
        assert first["hf_training_channel_power_watts"][0][1] == 100.0
        for _ in range(4):
            session.mark_step()
        session.drain()
        wait_for("the next figures in the store", lambda: stored_steps(store, session.run_id) == 7)
        second = scrape(exporter.url)
    assert second["hf_training_step_count"][0][1] == 7
    assert second["hf_training_energy_kwh_total"][0][1] > first["hf_training_energy_kwh_total"][0][1]


def test_an_unknown_run_is_a_configuration_error_naming_how_to_list_runs(
    session: TrackingSession, tmp_path: Path
) -> None:
    assert session.flush(10.0)  # the store exists and holds the session's run
    with pytest.raises(ConfigurationError, match=r"--run 'nope'.*hf-eco2ai runs"):
        serve_run("nope", tmp_path / "runs.sqlite", port=0)


def test_a_missing_store_is_a_configuration_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "runs.sqlite"
    with pytest.raises(ConfigurationError, match="does not exist"):
        serve_run("abc", missing, port=0)
    assert not missing.exists()
