"""The exported metrics match the documented ``hf_training_*`` reference tables."""

from __future__ import annotations

from typing import Dict, List, Tuple

import pytest
from monitoring_helpers import bare_snapshot, make_snapshot
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hf_eco2ai.integrations.prometheus import CATALOGUE, NOT_EXPORTED, SnapshotCollector
from hf_eco2ai.integrations.prometheus.catalogue import RUN_LABELS, TWINS
from hf_eco2ai.session.snapshot import SessionSnapshot

# The guide's tables, as (name, type, labels). `instance` is attached by Prometheus at scrape time.
GUIDE_TABLES: List[Tuple[str, str, Tuple[str, ...]]] = [
    ("hf_training_co2_kg_total", "counter", ("project_name", "model_name")),
    ("hf_training_co2_rate_kg_per_hour", "gauge", ("project_name",)),
    ("hf_training_grid_carbon_intensity_g_per_kwh", "gauge", ("country", "region")),
    ("hf_training_carbon_budget_kg", "gauge", ("project_name",)),
    ("hf_training_carbon_budget_remaining_kg", "gauge", ("project_name",)),
    ("hf_training_energy_kwh_total", "counter", ("project_name", "model_name")),
    ("hf_training_energy_rate_kwh_per_hour", "gauge", ("project_name",)),
    ("hf_training_gpu_power_watts", "gauge", ("gpu_id", "gpu_model")),
    ("hf_training_cpu_power_watts", "gauge", ("instance",)),
    ("hf_training_samples_per_kwh", "gauge", ("project_name",)),
    ("hf_training_loss", "gauge", ("project_name", "model_name")),
    ("hf_training_eval_loss", "gauge", ("project_name", "model_name")),
    ("hf_training_learning_rate", "gauge", ("project_name",)),
    ("hf_training_step_count", "counter", ("project_name",)),
    ("hf_training_epoch_count", "counter", ("project_name",)),
    ("hf_training_samples_per_second", "gauge", ("project_name",)),
    ("hf_training_efficiency_score", "gauge", ("project_name",)),
    ("hf_training_gpu_temperature_celsius", "gauge", ("gpu_id", "gpu_model")),
    ("hf_training_gpu_memory_usage_bytes", "gauge", ("gpu_id", "gpu_model")),
    ("hf_training_gpu_memory_total_bytes", "gauge", ("gpu_id", "gpu_model")),
    ("hf_training_gpu_memory_usage_percent", "gauge", ("gpu_id", "gpu_model")),
    ("hf_training_gpu_utilization_percent", "gauge", ("gpu_id", "gpu_model")),
    ("hf_training_gpu_count", "gauge", ("instance",)),
    ("hf_training_estimated_cost_usd", "gauge", ("project_name", "currency")),
    ("hf_training_cost_rate_usd_per_hour", "gauge", ("project_name",)),
    ("hf_training_energy_cost_usd", "gauge", ("project_name",)),
    ("hf_training_compute_cost_usd", "gauge", ("project_name",)),
    ("hf_training_last_update_timestamp", "gauge", ("instance",)),
    ("hf_training_plugin_version", "info", ("version", "commit")),
    ("hf_training_monitoring_errors_total", "counter", ("error_type",)),
    ("hf_training_network_latency_ms", "gauge", ("target",)),
]
# Documented counters/info whose series name would change if exposed with that type (see
# prometheus_metrics' docstring): exposed as gauges so the documented series name holds.
EXPOSED_AS_GAUGE = {"hf_training_step_count", "hf_training_epoch_count", "hf_training_plugin_version"}
EXPORTED_FROM_GUIDE = [row for row in GUIDE_TABLES if row[0] not in NOT_EXPORTED]


def scrape(
    *snapshots: SessionSnapshot,
) -> Tuple[Dict[str, str], Dict[str, List[Dict[str, str]]], Dict[str, List[float]]]:
    """Types by series name, label sets and values by series name, from the text exposition."""
    registry = CollectorRegistry()
    collector = SnapshotCollector(registry=registry)
    for snapshot in snapshots:
        collector.attach(lambda snapshot=snapshot: snapshot)
    text = generate_latest(registry).decode()
    types: Dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
    labels: Dict[str, List[Dict[str, str]]] = {}
    values: Dict[str, List[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels.setdefault(sample.name, []).append(dict(sample.labels))
            values.setdefault(sample.name, []).append(sample.value)
    return types, labels, values


@pytest.mark.parametrize(
    "name, documented_type, documented_labels", EXPORTED_FROM_GUIDE, ids=[row[0] for row in EXPORTED_FROM_GUIDE]
)
def test_every_guide_metric_is_served_under_its_documented_name_type_and_labels(
    name: str, documented_type: str, documented_labels: Tuple[str, ...]
) -> None:
    types, labels, _ = scrape(make_snapshot())
    assert name in labels, f"{name} missing from a scrape of a fully populated snapshot"
    expected_type = "gauge" if name in EXPOSED_AS_GAUGE else documented_type
    assert types[name] == expected_type
    wanted = set(documented_labels) - {"instance"}
    for label_set in labels[name]:
        assert wanted <= set(label_set), f"{name} lacks documented labels {wanted - set(label_set)}"


def test_catalogue_records_the_documented_type_of_every_guide_metric() -> None:
    by_name = {spec.name: spec for spec in CATALOGUE}
    for name, documented_type, _ in EXPORTED_FROM_GUIDE:
        assert by_name[name].documented_kind == documented_type


def test_a_fully_populated_snapshot_yields_every_catalogue_metric() -> None:
    _, labels, _ = scrape(make_snapshot())
    assert {spec.name for spec in CATALOGUE} <= set(labels)


def test_the_only_unexported_guide_metric_is_compute_cost_which_has_no_price_source() -> None:
    _, labels, _ = scrape(make_snapshot())
    assert set(NOT_EXPORTED) == {"hf_training_compute_cost_usd"}
    assert "hf_training_compute_cost_usd" not in labels


def test_per_process_series_carry_rank_and_host_and_never_instance() -> None:
    _, labels, _ = scrape(make_snapshot(rank=3, host="node-b"))
    for spec in CATALOGUE:
        for label_set in labels[spec.name]:
            assert "instance" not in label_set
            if spec.name not in ("hf_training_plugin_version", "hf_training_build_info"):
                assert (label_set["rank"], label_set["host"]) == ("3", "node-b"), spec.name


def test_figures_that_cannot_be_measured_are_absent_not_zero() -> None:
    _, labels, _ = scrape(bare_snapshot())
    unmeasurable = {
        "hf_training_gpu_power_watts",
        "hf_training_gpu_temperature_celsius",
        "hf_training_gpu_memory_usage_bytes",
        "hf_training_gpu_memory_total_bytes",
        "hf_training_gpu_memory_usage_percent",
        "hf_training_gpu_utilization_percent",
        "hf_training_gpu_count",
        "hf_training_efficiency_score",
        "hf_training_carbon_budget_kg",
        "hf_training_carbon_budget_remaining_kg",
        "hf_training_samples_per_kwh",
        "hf_training_samples_per_second",
        "hf_training_loss",
        "hf_training_eval_loss",
        "hf_training_learning_rate",
        "hf_training_estimated_cost_usd",
        "hf_training_energy_cost_usd",
        "hf_training_cost_rate_usd_per_hour",
        "hf_training_network_latency_ms",
        "hf_training_energy_rate_kwh_per_hour",
        "hf_training_co2_rate_kg_per_hour",
        "hf_training_power_watts",
        "hf_training_emissions_rate_grams_per_second",
        "hf_training_carbon_budget_grams",
        "hf_training_carbon_budget_remaining_grams",
        "hf_training_samples_total",
        "hf_training_efficiency_ratio",
        "hf_training_gpu_memory_usage_ratio",
        "hf_training_gpu_utilization_ratio",
        "hf_training_energy_cost_total",
        "hf_training_network_latency_seconds",
    }
    assert unmeasurable.isdisjoint(labels)
    for always in (
        "hf_training_energy_kwh_total",
        "hf_training_co2_kg_total",
        "hf_training_step_count",
        "hf_training_cpu_power_watts",
        "hf_training_last_update_timestamp",
        "hf_training_energy_joules_total",
        "hf_training_emissions_grams_total",
        "hf_training_steps_total",
        "hf_training_epochs_total",
        "hf_training_last_update_timestamp_seconds",
    ):
        assert always in labels


def test_values_are_the_snapshot_figures_in_the_units_the_names_promise() -> None:
    _, labels, values = scrape(make_snapshot())

    def only(name: str) -> float:
        assert len(values[name]) == 1, name
        return values[name][0]

    assert only("hf_training_energy_kwh_total") == pytest.approx(0.012)
    assert only("hf_training_co2_kg_total") == pytest.approx(0.0048)
    assert only("hf_training_network_latency_ms") == pytest.approx(45.0)
    assert only("hf_training_gpu_memory_usage_percent") == pytest.approx(25.0)
    assert only("hf_training_efficiency_score") == pytest.approx(0.75)
    assert only("hf_training_cost_rate_usd_per_hour") == pytest.approx(0.3 * 0.31)
    assert only("hf_training_step_count") == 12
    channel_joules = dict(
        zip(
            (s["channel"] for s in labels["hf_training_channel_energy_joules_total"]),
            values["hf_training_channel_energy_joules_total"],
        )
    )
    assert channel_joules == {"gpu:0": 36_000.0, "cpu:package-0": 7_200.0, "cpu:core-0": 3_600.0}


def test_cpu_power_covers_top_level_cpu_channels_only_with_their_provenance() -> None:
    _, labels, values = scrape(make_snapshot())
    assert labels["hf_training_cpu_power_watts"] == [
        {"channel": "cpu:package-0", "provenance": "measured", "rank": "0", "host": "node-a"}
    ]
    assert values["hf_training_cpu_power_watts"] == [60.0]


def test_cost_metrics_carry_the_configured_currency() -> None:
    _, labels, _ = scrape(make_snapshot(electricity_currency="EUR"))
    for name in ("hf_training_estimated_cost_usd", "hf_training_energy_cost_usd", "hf_training_cost_rate_usd_per_hour"):
        assert labels[name][0]["currency"] == "EUR"
    _, labels, _ = scrape(make_snapshot(electricity_currency=None))
    assert labels["hf_training_estimated_cost_usd"][0]["currency"] == "unspecified"


def test_monitoring_errors_are_split_by_type_with_the_rest_unclassified() -> None:
    _, labels, values = scrape(make_snapshot(monitoring_errors_total=3, monitoring_errors_by_type={"sensor": 2}))
    by_type = dict(
        zip(
            (s["error_type"] for s in labels["hf_training_monitoring_errors_total"]),
            values["hf_training_monitoring_errors_total"],
        )
    )
    assert by_type == {"sensor": 2.0, "unclassified": 1.0}


def test_a_run_without_errors_exports_a_zero_error_counter_so_increase_sees_the_first() -> None:
    _, labels, values = scrape(bare_snapshot())
    assert labels["hf_training_monitoring_errors_total"][0]["error_type"] == "unclassified"
    assert values["hf_training_monitoring_errors_total"] == [0.0]


# Each documented metric in a non-base unit (or a gauge that only grows), and its conventional twin
# with the factor from the documented value to the twin's.
TWIN_FACTORS = {
    "hf_training_energy_kwh_total": ("hf_training_energy_joules_total", 3.6e6),
    "hf_training_energy_rate_kwh_per_hour": ("hf_training_power_watts", 1000.0),
    "hf_training_co2_kg_total": ("hf_training_emissions_grams_total", 1000.0),
    "hf_training_co2_rate_kg_per_hour": ("hf_training_emissions_rate_grams_per_second", 1000.0 / 3600.0),
    "hf_training_carbon_budget_kg": ("hf_training_carbon_budget_grams", 1000.0),
    "hf_training_carbon_budget_remaining_kg": ("hf_training_carbon_budget_remaining_grams", 1000.0),
    "hf_training_step_count": ("hf_training_steps_total", 1.0),
    "hf_training_epoch_count": ("hf_training_epochs_total", 1.0),
    "hf_training_efficiency_score": ("hf_training_efficiency_ratio", 1.0),
    "hf_training_gpu_memory_usage_percent": ("hf_training_gpu_memory_usage_ratio", 0.01),
    "hf_training_gpu_utilization_percent": ("hf_training_gpu_utilization_ratio", 0.01),
    "hf_training_energy_cost_usd": ("hf_training_energy_cost_total", 1.0),
    "hf_training_last_update_timestamp": ("hf_training_last_update_timestamp_seconds", 1.0),
    "hf_training_network_latency_ms": ("hf_training_network_latency_seconds", 0.001),
    "hf_training_plugin_version": ("hf_training_build_info", 1.0),
}


def test_every_documented_metric_in_a_non_base_unit_has_its_conventional_twin() -> None:
    assert {documented: twin.name for documented, twin in TWINS.items()} == {
        documented: twin for documented, (twin, _) in TWIN_FACTORS.items()
    }


@pytest.mark.parametrize("documented, twin_and_factor", TWIN_FACTORS.items(), ids=list(TWIN_FACTORS))
def test_a_twin_holds_the_documented_figure_in_base_units(documented: str, twin_and_factor: Tuple[str, float]) -> None:
    twin, factor = twin_and_factor
    _, _, values = scrape(make_snapshot())
    assert len(values[twin]) == len(values[documented]) >= 1
    assert values[twin] == pytest.approx([value * factor for value in values[documented]])


def test_twin_names_follow_the_prometheus_conventions() -> None:
    base_unit_suffixes = (
        "_joules_total",
        "_grams_total",
        "_watts",
        "_grams_per_second",
        "_grams",
        "_ratio",
        "_seconds",
        "_total",
        "_info",
    )
    for spec in CATALOGUE:
        if spec.twin_of or spec.name in ("hf_training_samples_total", "hf_training_build_info"):
            assert spec.name.endswith(base_unit_suffixes), spec.name
            assert spec.name.endswith("_total") == (spec.kind == "counter"), spec.name
            for non_base in ("_kwh", "_kg", "_ms", "_percent", "_usd", "_score", "_count"):
                assert non_base not in spec.name, spec.name


def test_run_level_twins_share_one_label_set_so_they_divide_without_ignoring() -> None:
    _, labels, _ = scrape(make_snapshot())
    run_level = [spec for spec in CATALOGUE if spec.twin_of or spec.name == "hf_training_samples_total"]
    label_names = {spec.name: set(labels[spec.name][0]) for spec in run_level}
    extras = {name: names - set(RUN_LABELS) for name, names in label_names.items() if names != set(RUN_LABELS)}
    assert extras == {
        "hf_training_gpu_memory_usage_ratio": {"gpu_id", "gpu_model"},
        "hf_training_gpu_utilization_ratio": {"gpu_id", "gpu_model"},
        "hf_training_energy_cost_total": {"currency"},
        "hf_training_network_latency_seconds": {"target"},
        "hf_training_build_info": {"version", "commit"},
    }
    for name, names in label_names.items():
        if name != "hf_training_build_info":
            assert set(RUN_LABELS) <= names, name


def test_every_family_has_one_label_set_across_runs_and_the_exporters_own_errors() -> None:
    registry = CollectorRegistry()
    collector = SnapshotCollector(registry=registry)
    collector.attach(lambda: make_snapshot())
    collector.attach(lambda: bare_snapshot(project_name="other-project", rank=1))
    collector.attach(lambda: (_ for _ in ()).throw(RuntimeError("provider failed")))
    for family in registry.collect():
        label_sets = {frozenset(sample.labels) for sample in family.samples}
        assert len(label_sets) == 1, (family.name, label_sets)


def test_the_samples_counter_is_absent_until_the_loop_logs_samples() -> None:
    _, labels, values = scrape(make_snapshot(samples_total=384.0))
    assert values["hf_training_samples_total"] == [384.0]
    _, labels, _ = scrape(make_snapshot(samples_total=None))
    assert "hf_training_samples_total" not in labels
