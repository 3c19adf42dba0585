"""The CarbonTracker face: named sessions (sequential, nested, overlapping), figures, budget, cloud.

The meter runs the synthetic source at a constant 100 W, so a span's energy must be 100 W times
its duration; the intensity comes from the packaged tables.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from local_servers import MetadataServer, clean_carbon_env, loopback_only  # noqa: F401

from hf_eco2ai.carbon import tables
from hf_eco2ai.carbon.comparisons import describe_comparisons
from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.measure import CarbonMetrics, CarbonTracker
from hf_eco2ai.reporting.generate import generate_carbon_report
from hf_eco2ai.store.run_store import RunStore, default_store_path

pytestmark = [pytest.mark.usefixtures("loopback_only", "clean_carbon_env"), pytest.mark.timeout(60)]

WATTS = 100.0


@pytest.fixture
def config(clean_carbon_env: Path) -> CarbonConfig:
    return CarbonConfig(
        sources="synthetic", offline=True, country_iso_code="FR", output_dir=clean_carbon_env / "reports"
    )


@pytest.fixture
def tracker(config: CarbonConfig) -> Iterator[CarbonTracker]:
    made = CarbonTracker(project_name="sustainable-ml", experiment_name="carbon-demo", config=config)
    yield made
    made.close()


def _expected_kwh(metrics: CarbonMetrics) -> float:
    return WATTS * metrics.duration_s / 3.6e6 * metrics.pue


def test_seed_simple_usage_gives_energy_and_emissions_of_the_span(tracker: CarbonTracker) -> None:
    with tracker.start_tracking("model_training"):
        time.sleep(0.2)
    metrics = tracker.stop_tracking("model_training")
    france = tables.country("FR")
    assert france is not None
    assert metrics.duration_s >= 0.2
    assert metrics.ended_unix_s - metrics.started_unix_s == pytest.approx(metrics.duration_s)
    assert metrics.energy_consumed_kwh == pytest.approx(_expected_kwh(metrics), rel=0.02)
    assert metrics.carbon_intensity_g_per_kwh == france.g_per_kwh
    assert metrics.intensity.source == "country-table" and metrics.intensity.year == france.year
    assert metrics.emissions_kg_co2 == pytest.approx(metrics.energy_consumed_kwh * france.g_per_kwh / 1000)
    assert metrics.energy_joules_by_channel["synthetic:0"] == pytest.approx(WATTS * metrics.duration_s, rel=0.02)
    assert metrics.energy_provenance == "measured"
    assert tracker.stop_tracking() is metrics


def test_emissions_comparison_is_computed_from_the_metrics(tracker: CarbonTracker) -> None:
    with tracker.start_tracking("pipeline"):
        time.sleep(0.05)
    metrics = tracker.stop_tracking()
    comparison = metrics.emissions_comparison()
    assert comparison == describe_comparisons(metrics.emissions_kg_co2, metrics.energy_consumed_kwh)
    assert list(comparison) == ["smartphone_charges", "car_distance", "tree_absorption", "led_bulb"]
    assert metrics.to_dict()["comparisons"][0]["citation"].startswith("US EPA")


def test_sessions_one_after_another_each_get_their_own_figures(tracker: CarbonTracker) -> None:
    durations = {}
    for name, seconds in (("short", 0.05), ("long", 0.25)):
        with tracker.start_tracking(name):
            time.sleep(seconds)
        durations[name] = tracker.stop_tracking().duration_s
    short, long_ = tracker.stop_tracking("short"), tracker.stop_tracking("long")
    assert (short.duration_s, long_.duration_s) == (durations["short"], durations["long"])
    for metrics in (short, long_):
        assert metrics.energy_consumed_kwh == pytest.approx(_expected_kwh(metrics), rel=0.05)
    assert long_.emissions_kg_co2 > 3 * short.emissions_kg_co2
    assert short.run_id != long_.run_id
    # Each run covers its span plus the moments of starting and stopping the session around it,
    # and the total is the runs' sum.
    assert len(tracker.reports) == 2
    for metrics, report in zip((short, long_), tracker.reports):
        assert report["run"]["run_id"] == metrics.run_id
        assert report["total_co2_kg"] >= metrics.emissions_kg_co2
        assert report["duration_s"] >= metrics.duration_s
    assert tracker.get_total_emissions() == pytest.approx(sum(report["total_co2_kg"] for report in tracker.reports))


def test_nested_sessions_count_the_shared_time_once_in_the_total(tracker: CarbonTracker) -> None:
    with tracker.start_tracking("outer"):
        time.sleep(0.1)
        with tracker.start_tracking("inner"):
            time.sleep(0.2)
        time.sleep(0.1)
    outer, inner = tracker.stop_tracking("outer"), tracker.stop_tracking("inner")
    assert inner.parent == "outer" and outer.parent is None
    assert inner.run_id == outer.run_id
    assert inner.energy_consumed_kwh == pytest.approx(_expected_kwh(inner), rel=0.05)
    assert outer.energy_consumed_kwh == pytest.approx(_expected_kwh(outer), rel=0.05)
    assert outer.duration_s > inner.duration_s + 0.19
    # One run under both spans: the time they share is in the total once.
    (run,) = tracker.reports
    assert run["run"]["run_id"] == outer.run_id and run["duration_s"] >= outer.duration_s
    assert tracker.get_total_emissions() == pytest.approx(run["total_co2_kg"])
    assert outer.emissions_kg_co2 <= tracker.get_total_emissions()
    assert [metrics.name for metrics in tracker.sessions] == ["inner", "outer"]


def test_overlapping_sessions_stop_in_any_order(tracker: CarbonTracker) -> None:
    first = tracker.start_tracking("first")
    time.sleep(0.1)
    tracker.start_tracking("second")
    time.sleep(0.1)
    a = first.stop()
    time.sleep(0.1)
    b = tracker.stop_tracking()
    assert (a.name, b.name) == ("first", "second")
    for metrics in (a, b):
        assert metrics.energy_consumed_kwh == pytest.approx(_expected_kwh(metrics), rel=0.05)
    assert len(tracker.reports) == 1


def test_stop_without_a_name_stops_the_most_recent_open_session(tracker: CarbonTracker) -> None:
    tracker.start_tracking("a")
    tracker.start_tracking("b")
    assert tracker.stop_tracking().name == "b"
    assert tracker.stop_tracking().name == "a"


def test_exception_inside_the_block_still_records_the_session(tracker: CarbonTracker) -> None:
    with pytest.raises(RuntimeError, match="diverged"):
        with tracker.start_tracking("doomed"):
            time.sleep(0.02)
            raise RuntimeError("diverged")
    assert tracker.stop_tracking("doomed").duration_s >= 0.02
    runs = RunStore(default_store_path(tracker.config.output_dir)).list_runs()
    assert [run.status for run in runs] == ["failed"]


@pytest.mark.parametrize("name", ["", "  ", None, 3])
def test_session_names_must_be_non_empty_strings(tracker: CarbonTracker, name: Any) -> None:
    with pytest.raises(ConfigurationError, match="^name = "):
        tracker.start_tracking(name)


def test_reusing_an_open_name_or_stopping_an_unknown_one_is_an_error(tracker: CarbonTracker) -> None:
    with pytest.raises(ConfigurationError, match="nothing|no tracking session was started"):
        tracker.stop_tracking()
    tracker.start_tracking("busy")
    with pytest.raises(ConfigurationError, match="already open"):
        tracker.start_tracking("busy")
    with pytest.raises(
        ConfigurationError, match=r"'nope' is invalid: no session of that name was started \(known: busy\)"
    ):
        tracker.stop_tracking("nope")


def test_tracking_mode_is_machine_or_offline(config: CarbonConfig) -> None:
    with pytest.raises(
        ConfigurationError, match="tracking_mode = 'detailed' is invalid: expected 'machine' or 'offline'"
    ):
        CarbonTracker(project_name="x", tracking_mode="detailed", config=config)
    assert CarbonTracker(project_name="x", tracking_mode="offline", config=config.replace(offline=False)).config.offline
    assert CarbonTracker(project_name="x", network_mode="offline", config=config.replace(offline=False)).config.offline
    with pytest.raises(
        ConfigurationError, match="network_mode = 'offline' and tracking_mode = 'machine' name the same"
    ):
        CarbonTracker(project_name="x", tracking_mode="machine", network_mode="offline", config=config)


def test_forced_cloud_region_gives_cloud_table_intensity_and_recommendations(config: CarbonConfig) -> None:
    tracker = CarbonTracker(project_name="enterprise-ml", cloud_provider="gcp", cloud_region="us-east1", config=config)
    assert (tracker.cloud_provider, tracker.cloud_region, tracker.cloud_detected_by) == ("gcp", "us-east1", "config")
    with tracker.start_tracking("training_in_us-east1"):
        time.sleep(0.02)
    metrics = tracker.stop_tracking()
    region = tables.cloud_region("gcp", "us-east1")
    assert region is not None
    assert (metrics.intensity.source, metrics.carbon_intensity_g_per_kwh) == ("cloud-region-table", region.g_per_kwh)
    recommendations = tracker.get_regional_recommendations()
    assert recommendations and all(rec.kind == "cloud-region" for rec in recommendations)
    assert recommendations[0].target_g_per_kwh == min(entry.g_per_kwh for entry in tables.cloud_regions("gcp").values())
    assert "Consider migrating to gcp" in str(recommendations[0])


def test_machine_mode_detects_the_cloud_once(config: CarbonConfig) -> None:
    server = MetadataServer(provider="azure", region="westeurope")
    try:
        tracker = CarbonTracker(
            project_name="cloud-optimization",
            tracking_mode="machine",
            config=config.replace(cloud_metadata_url=server.url),
        )
        with tracker.start_tracking("work"):
            time.sleep(0.02)
        metrics = tracker.stop_tracking()
        with tracker.start_tracking("second run"):
            time.sleep(0.02)
        tracker.stop_tracking()
    finally:
        server.close()
    assert (tracker.cloud_provider, tracker.cloud_region, tracker.cloud_detected_by) == (
        "azure",
        "westeurope",
        "metadata azure",
    )
    # Each detection asks every provider concurrently, GCP's zone exactly once: one round for
    # the tracker and its two runs, however late the slower probes of that round arrive.
    assert [path for _, path in server.requests if path.startswith("/computeMetadata")] == [
        "/computeMetadata/v1/instance/zone"
    ]
    assert metrics.intensity.source == "cloud-region-table" and metrics.intensity.region == "westeurope"


def test_offline_tracker_outside_a_cloud_has_no_provider(tracker: CarbonTracker) -> None:
    assert (tracker.cloud_provider, tracker.cloud_region) == (None, None)


def test_pue_and_price_flow_into_the_metrics(config: CarbonConfig) -> None:
    tracker = CarbonTracker(config=config.replace(pue=1.5, electricity_price_per_kwh=0.3, electricity_currency="EUR"))
    with tracker.start_tracking("priced"):
        time.sleep(0.05)
    metrics = tracker.stop_tracking()
    assert metrics.pue == 1.5
    assert metrics.energy_consumed_kwh == pytest.approx(WATTS * metrics.duration_s / 3.6e6 * 1.5, rel=0.05)
    assert metrics.cost == pytest.approx(metrics.energy_consumed_kwh * 0.3)
    assert tracker.get_summary_report()["summary"]["cost_total"] is not None


def test_budget_spans_all_sessions_and_raises_the_stop_flag(
    config: CarbonConfig, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = CarbonTracker(config=config.replace(carbon_budget_kg=3e-7, stop_on_budget_exceeded=True))
    with tracker.start_tracking("first"):
        time.sleep(0.01)
    assert not tracker.stop_requested
    with tracker.start_tracking("second"):
        time.sleep(0.3)
    status = tracker.get_budget_status()
    assert status is not None and status.exceeded
    assert status.used_kg == pytest.approx(tracker.get_total_emissions())
    assert tracker.stop_requested
    assert sum("carbon budget exceeded" in record.getMessage() for record in caplog.records) == 1


def test_summary_report_has_the_seed_shape_and_is_json(tracker: CarbonTracker) -> None:
    for name in ("morning_experiments", "model_evaluation"):
        with tracker.start_tracking(name):
            time.sleep(0.03)
    report = tracker.get_summary_report()
    json.dumps(report)
    assert report["summary"]["total_emissions_kg_co2"] == pytest.approx(tracker.get_total_emissions())
    assert report["summary"]["sessions_tracked"] == 2
    assert [session["name"] for session in report["sessions"]] == ["morning_experiments", "model_evaluation"]
    assert report["summary"]["intensity"]["source"] == "country-table"
    assert report["budget"] is None and report["cloud"] is None
    assert len(report["run_ids"]) == 2


def test_each_run_report_renders_as_a_carbon_report(tracker: CarbonTracker) -> None:
    with tracker.start_tracking("rendered"):
        time.sleep(0.03)
    text = generate_carbon_report(tracker.reports[0], output_format="json")
    assert json.loads(text)["run"]["project_name"] == "sustainable-ml"


def test_runs_are_kept_in_the_store_under_output_dir(tracker: CarbonTracker) -> None:
    with tracker.start_tracking("stored"):
        time.sleep(0.02)
    metrics = tracker.stop_tracking()
    runs = RunStore(default_store_path(tracker.config.output_dir)).list_runs()
    assert [run.run_id for run in runs] == [metrics.run_id]
    assert runs[0].project_name == "sustainable-ml"
