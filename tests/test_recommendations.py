"""Regional and time-of-day recommendations, each saving computed from the tables or live readings."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from hf_eco2ai import CarbonConfig, EnergyMeter, TrackingSession, generate_carbon_report
from hf_eco2ai.carbon import tables
from hf_eco2ai.carbon.cloud import CloudLocation
from hf_eco2ai.carbon.live import LiveReading
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.carbon.recommendations import regional_recommendations, time_of_day_recommendation


def _cloud_baseline(provider: str, region: str) -> IntensityResult:
    entry = tables.cloud_region(provider, region)
    assert entry is not None
    return IntensityResult(
        entry.g_per_kwh, "cloud-region-table", entry.dataset, zone=entry.zone, region=region, year=entry.year
    )


def test_cloud_recommendations_are_the_providers_cleanest_regions_with_computed_savings() -> None:
    baseline = _cloud_baseline("gcp", "us-east1")
    found = regional_recommendations(baseline, CloudLocation("gcp", "us-east1", "config"), limit=3)
    cleanest = sorted(
        (entry.g_per_kwh, name) for name, entry in tables.cloud_regions("gcp").items() if name != "us-east1"
    )[:3]
    assert [recommendation.target for recommendation in found] == [name for _, name in cleanest]
    for recommendation, (g_per_kwh, name) in zip(found, cleanest):
        expected = (baseline.g_per_kwh - g_per_kwh) / baseline.g_per_kwh * 100
        assert recommendation.saving_percent == pytest.approx(expected)
        assert recommendation.kind == "cloud-region"
        assert f"gcp {name} for {expected:.0f}% lower carbon intensity" in str(recommendation)


def test_the_cleanest_region_gets_no_regional_advice() -> None:
    regions = tables.cloud_regions("gcp")
    cleanest = min(regions, key=lambda name: regions[name].g_per_kwh)
    assert regional_recommendations(_cloud_baseline("gcp", cleanest), CloudLocation("gcp", cleanest, "config")) == []


def test_small_savings_are_not_recommended() -> None:
    baseline = _cloud_baseline("aws", "eu-central-1")
    for recommendation in regional_recommendations(baseline, CloudLocation("aws", "eu-central-1", "config"), limit=100):
        assert recommendation.saving_percent >= 5.0
        assert recommendation.target_g_per_kwh < baseline.g_per_kwh


def test_outside_the_cloud_neighbouring_grids_are_compared() -> None:
    germany = tables.country("DE")
    assert germany is not None
    baseline = IntensityResult(
        germany.g_per_kwh, "country-table", germany.dataset, zone="DE", country="DE", year=germany.year
    )
    found = regional_recommendations(baseline, None, limit=10)
    lower = sorted(
        (
            (entry.g_per_kwh, entry.zone)
            for entry in tables.neighbours("DE")
            if (germany.g_per_kwh - entry.g_per_kwh) / germany.g_per_kwh >= 0.05
        ),
    )
    assert [recommendation.target for recommendation in found] == [zone for _, zone in lower]
    assert all(recommendation.kind == "neighbouring-grid" for recommendation in found)
    assert found and "neighbouring grid" in found[0].text


def test_no_regional_advice_without_a_location() -> None:
    world = tables.world_average()
    baseline = IntensityResult(world.g_per_kwh, "world-average", world.dataset, zone=world.zone, year=world.year)
    assert regional_recommendations(baseline, None) == []


def _live(g_per_kwh: float) -> IntensityResult:
    return IntensityResult(g_per_kwh, "live-api", "Electricity Maps API v3 (live)", zone="DE", is_estimated=False)


def _day_of_readings(hours: int, low_hour: int) -> list:
    start = datetime(2026, 1, 15, tzinfo=timezone.utc)
    return [
        LiveReading("DE", 150.0 if hour == low_hour else 400.0, start + timedelta(hours=hour), False)
        for hour in range(hours)
    ]


def test_time_of_day_advice_comes_from_a_days_live_readings() -> None:
    recommendation = time_of_day_recommendation(_day_of_readings(24, low_hour=3), _live(400.0))
    assert recommendation is not None
    assert recommendation.target == "03:00 UTC"
    assert recommendation.saving_percent == pytest.approx(62.5)
    assert "24 live readings over 24 hours" in recommendation.text


def test_no_time_of_day_advice_without_enough_hours_or_without_live_data() -> None:
    assert time_of_day_recommendation(_day_of_readings(6, low_hour=3), _live(400.0)) is None
    table_value = IntensityResult(400.0, "country-table", "OWID", zone="DE", year=2023)
    assert time_of_day_recommendation(_day_of_readings(24, low_hour=3), table_value) is None
    assert time_of_day_recommendation(_day_of_readings(24, low_hour=3), _live(155.0)) is None


def test_a_runs_report_carries_the_regional_advice_in_every_human_format(tmp_path: Path) -> None:
    session = TrackingSession(
        CarbonConfig(offline=True, country_iso_code="PL", output_dir=str(tmp_path)),
        meter=EnergyMeter(sources="synthetic"),
        store=False,
    )
    with session:
        session.mark_step()
    report = session.report()
    advice = report["recommendations"]
    assert advice and all(item["target_g_per_kwh"] < item["current_g_per_kwh"] for item in advice)
    assert "## Recommendations" in generate_carbon_report(report, "markdown")
    assert advice[0]["text"].split(" (")[0] in generate_carbon_report(report, "html").replace("&#x27;", "'")


def test_an_explicit_intensity_gets_no_regional_advice(tmp_path: Path) -> None:
    session = TrackingSession(
        CarbonConfig(offline=True, carbon_intensity_g_per_kwh=700.0, country_iso_code="PL", output_dir=str(tmp_path)),
        meter=EnergyMeter(sources="synthetic"),
        store=False,
    )
    with session:
        session.mark_step()
    assert session.report()["recommendations"] == []
