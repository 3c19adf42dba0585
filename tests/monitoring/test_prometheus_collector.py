"""SnapshotCollector: reads snapshots at scrape time, survives bad providers, guards cardinality."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Dict, List, Optional

import pytest
from monitoring_helpers import make_snapshot
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.prometheus import OVERFLOW_PROJECT, SnapshotCollector
from hf_eco2ai.integrations.prometheus.labels import MAX_LABEL_CHARS, model_label
from hf_eco2ai.session.snapshot import SessionSnapshot


def samples(registry: CollectorRegistry, name: str) -> List[Dict[str, object]]:
    found = []
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name == name:
                found.append({**sample.labels, "value": sample.value})
    return found


def test_collect_before_sampling_starts_holds_only_the_version_metrics() -> None:
    registry = CollectorRegistry()
    SnapshotCollector(lambda: None, registry=registry)
    names = {family.name for family in registry.collect()}
    assert names == {"hf_training_plugin_version", "hf_training_build_info"}


def test_registering_does_not_call_the_provider() -> None:
    calls: List[int] = []

    def provider() -> Optional[SessionSnapshot]:
        calls.append(1)
        return make_snapshot()

    SnapshotCollector(provider, registry=CollectorRegistry())
    assert calls == []


def test_every_scrape_reads_a_fresh_snapshot() -> None:
    registry = CollectorRegistry()
    steps = iter(range(1, 100))
    calls: List[int] = []

    def provider() -> SessionSnapshot:
        calls.append(1)
        return make_snapshot(step_count=next(steps))

    SnapshotCollector(provider, registry=registry)
    assert samples(registry, "hf_training_step_count")[0]["value"] == 1
    assert samples(registry, "hf_training_step_count")[0]["value"] == 2
    assert len(calls) == 2


def test_a_failing_provider_is_counted_and_logged_once_and_the_scrape_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()

    def broken() -> SessionSnapshot:
        raise RuntimeError("sensor thread died")

    collector = SnapshotCollector(broken, registry=registry)
    collector.attach(lambda: make_snapshot(project_name="healthy"))
    with caplog.at_level(logging.WARNING, logger="hf_eco2ai.prometheus"):
        generate_latest(registry)
        energy = samples(registry, "hf_training_energy_kwh_total")
    assert [sample["project_name"] for sample in energy] == ["healthy"]
    errors = [
        s for s in samples(registry, "hf_training_monitoring_errors_total") if s["error_type"] == "snapshot_provider"
    ]
    # one failure per scrape: two above, and the one that read the counter
    assert errors == [{"error_type": "snapshot_provider", "project_name": "", "rank": "", "host": "", "value": 3.0}]
    assert len([r for r in caplog.records if "snapshot provider failed" in r.message]) == 1


def test_the_collector_registers_in_the_given_registry_once() -> None:
    registry = CollectorRegistry()
    SnapshotCollector(lambda: make_snapshot(), registry=registry)
    assert samples(registry, "hf_training_energy_kwh_total")
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        SnapshotCollector(lambda: make_snapshot(), registry=registry)


def test_projects_beyond_max_projects_are_folded_into_other_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    collector = SnapshotCollector(registry=registry, max_projects=2)
    for index, project in enumerate(["alpha", "beta", "gamma", "delta"]):
        collector.attach(
            lambda project=project, index=index: make_snapshot(
                project_name=project, unix_time_s=1_700_000_000.0 - index
            )
        )
    with caplog.at_level(logging.WARNING, logger="hf_eco2ai.prometheus"):
        first = samples(registry, "hf_training_energy_kwh_total")
        second = samples(registry, "hf_training_energy_kwh_total")
    assert first == second
    assert sorted(sample["project_name"] for sample in first) == ["alpha", "beta", OVERFLOW_PROJECT]
    overflow = [
        s
        for s in samples(registry, "hf_training_monitoring_errors_total")
        if s["error_type"] == "project_label_overflow"
    ]
    assert [s["value"] for s in overflow] == [2.0]
    assert len([r for r in caplog.records if "max_projects=2" in r.message]) == 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "100"])
def test_max_projects_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(ConfigurationError, match=r"max_projects=.*integer >= 1"):
        SnapshotCollector(max_projects=bad)  # type: ignore[arg-type]


def test_label_cleanup_makes_free_text_labels_printable_single_line_and_bounded() -> None:
    registry = CollectorRegistry()
    SnapshotCollector(lambda: make_snapshot(project_name="my\nproject\t x", host="h" * 500), registry=registry)
    (sample,) = samples(registry, "hf_training_step_count")
    assert sample["project_name"] == "my project x"
    assert sample["host"] == "h" * MAX_LABEL_CHARS


@pytest.mark.parametrize(
    "raw, label",
    [
        ("/runs/exp3/bert-tiny/checkpoint-500", "bert-tiny"),
        ("./outputs/bert-tiny", "bert-tiny"),
        ("C:\\models\\gpt2-small\\ckpt_20", "gpt2-small"),
        ("google-bert/bert-base-uncased", "google-bert/bert-base-uncased"),
        (None, ""),
    ],
)
def test_model_label_folds_local_checkpoints_of_one_model_into_one_series(raw: Optional[str], label: str) -> None:
    assert model_label(raw) == label


def test_without_label_cleanup_values_are_exported_as_given() -> None:
    registry = CollectorRegistry()
    SnapshotCollector(lambda: make_snapshot(project_name="my\nproject"), registry=registry, label_cleanup=False)
    assert samples(registry, "hf_training_energy_kwh_total")[0]["project_name"] == "my\nproject"


def test_without_model_aggregation_each_checkpoint_path_is_its_own_model() -> None:
    registry = CollectorRegistry()
    SnapshotCollector(
        lambda: make_snapshot(model_name="/runs/bert/checkpoint-5"), registry=registry, aggregate_similar_models=False
    )
    assert samples(registry, "hf_training_energy_kwh_total")[0]["model_name"] == "/runs/bert/checkpoint-5"


def test_when_two_snapshots_give_the_same_series_the_newer_wins() -> None:
    registry = CollectorRegistry()
    collector = SnapshotCollector(registry=registry)
    collector.attach(lambda: make_snapshot(unix_time_s=100.0, step_count=1))
    collector.attach(lambda: make_snapshot(unix_time_s=200.0, step_count=2))
    assert [s["value"] for s in samples(registry, "hf_training_step_count")] == [2.0]


def test_a_finished_run_keeps_its_final_figures_and_releases_its_provider() -> None:
    registry = CollectorRegistry()
    collector = SnapshotCollector(registry=registry)
    state = {"steps": 5}
    attachment = collector.attach(lambda: make_snapshot(step_count=state["steps"]))
    attachment.finish()
    state["steps"] = 99
    assert [s["value"] for s in samples(registry, "hf_training_step_count")] == [5.0]
    attachment.finish()
    assert [s["value"] for s in samples(registry, "hf_training_step_count")] == [5.0]
    attachment.detach()
    assert samples(registry, "hf_training_step_count") == []


def test_finished_runs_are_replaced_by_later_ones_with_the_same_labels_and_bounded() -> None:
    registry = CollectorRegistry()
    collector = SnapshotCollector(registry=registry, max_projects=2)
    base = make_snapshot()
    for index, project in enumerate(["a", "a", "b", "c"]):
        snapshot = replace(base, project_name=project, unix_time_s=100.0 + index, step_count=index)
        collector.attach(lambda snapshot=snapshot: snapshot).finish()
    kept = {(s["project_name"], s["value"]) for s in samples(registry, "hf_training_step_count")}
    # "a" (step 0) was replaced by the later "a" (step 1), which was then dropped as the oldest of
    # three finished runs when at most max_projects=2 are kept.
    assert kept == {("b", 2.0), ("c", 3.0)}
