"""The Tracer API on real training on a CPU: planted faults are found at their step, a healthy run
has none, and the offline pass over the store agrees with the live ring."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from tracer_training import train

from hf_eco2ai.tracer.analysis import AnomalyDetector, QueryEngine

PLANT_STEP = 60


def keys(anomalies: List[Dict[str, Any]]) -> List[Tuple[int, str, str]]:
    return sorted((a["step"], a["type"], a["layer"]) for a in anomalies)


def live_anomalies(run: Any) -> List[Dict[str, Any]]:
    return run.storage.get_anomalies(run.run_id)


def test_a_healthy_run_has_no_anomalies(tmp_path: Path) -> None:
    result = train(tmp_path, steps=300)
    run = result["tracer"]
    assert live_anomalies(run) == []
    assert AnomalyDetector(run.storage).detect_all_anomalies(run.run_id) == []
    summary = QueryEngine(str(tmp_path / "tracer")).get_run_summary(run.run_id)
    assert summary["total_steps"] == 300
    assert summary["anomalies"] == {}
    assert summary["final_metrics"]["loss"] < 0.4


def test_a_planted_gradient_explosion_is_found_at_its_step(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hf_eco2ai.tracer"):
        run = train(tmp_path, plant="explosion", plant_step=PLANT_STEP)["tracer"]
    explosions = [a for a in live_anomalies(run) if a["type"] == "gradient_explosion"]
    assert explosions and {a["step"] for a in explosions} == {PLANT_STEP}
    total = next(a for a in explosions if a["layer"] == "total")
    assert total["value"] > total["threshold"] == pytest.approx(10.0 * total["statistic"])
    assert min(a["step"] for a in live_anomalies(run)) == PLANT_STEP
    assert any("gradient_explosion at step 60" in record.getMessage() for record in caplog.records)


def test_a_planted_nan_is_found_at_its_step_in_gradients_and_loss(tmp_path: Path) -> None:
    run = train(tmp_path, plant="nan", plant_step=PLANT_STEP)["tracer"]
    nans = [a for a in live_anomalies(run) if a["type"] == "nan_or_inf"]
    assert {a["step"] for a in nans} == {PLANT_STEP}
    assert {"loss", "total"} <= {a["layer"] for a in nans}
    layer_counts = [a["value"] for a in nans if a["layer"] not in ("loss", "total")]
    assert layer_counts and all(count >= 1 for count in layer_counts)


def test_a_planted_loss_spike_is_found_at_its_step(tmp_path: Path) -> None:
    run = train(tmp_path, plant="loss_spike", plant_step=PLANT_STEP)["tracer"]
    spikes = [a for a in live_anomalies(run) if a["type"] == "loss_spike"]
    assert [a["step"] for a in spikes] == [PLANT_STEP]
    assert spikes[0]["value"] > spikes[0]["threshold"] > spikes[0]["statistic"]


@pytest.mark.parametrize("plant", ["explosion", "nan", "loss_spike"])
def test_the_offline_detector_finds_what_the_live_ring_found(tmp_path: Path, plant: str) -> None:
    run = train(tmp_path, plant=plant, plant_step=PLANT_STEP)["tracer"]
    live = live_anomalies(run)
    offline = AnomalyDetector(str(tmp_path / "tracer")).detect_all_anomalies(run.run_id)
    assert live and keys(offline) == keys(live)
    by_key = {(a["step"], a["type"], a["layer"]): a for a in live}
    for anomaly in offline:
        stored = by_key[(anomaly["step"], anomaly["type"], anomaly["layer"])]
        for field in ("value", "threshold", "statistic"):
            if stored[field] is None:
                assert anomaly[field] is None or anomaly[field] != anomaly[field]
            else:
                assert anomaly[field] == pytest.approx(stored[field], rel=1e-12)


def test_the_detector_methods_split_the_types_and_storing_twice_keeps_one_row(tmp_path: Path) -> None:
    run = train(tmp_path, plant="nan", plant_step=PLANT_STEP)["tracer"]
    detector = AnomalyDetector(run.storage)
    assert detector.detect_gradient_anomalies(run.run_id) == []
    assert {a["type"] for a in detector.detect_nan_inf(run.run_id)} == {"nan_or_inf"}
    assert detector.detect_loss_anomalies(run.run_id) == []
    assert detector.detect_memory_spikes(run.run_id) == []
    stored_before = len(live_anomalies(run))
    detector.store_anomalies(detector.detect_all_anomalies(run.run_id))
    assert len(run.storage.get_anomalies(run.run_id)) == stored_before


def test_stop_on_anomaly_asks_training_to_stop_at_the_nan(tmp_path: Path) -> None:
    result = train(tmp_path, plant="nan", plant_step=PLANT_STEP, stop_checked=True, stop_on_anomaly=["nan_or_inf"])
    assert result["tracer"].stop_requested
    assert result["steps"] == PLANT_STEP + 1


def test_anomalies_are_counted_for_prometheus(tmp_path: Path) -> None:
    run = train(tmp_path, plant="explosion", plant_step=PLANT_STEP)["tracer"]
    snapshot = run.session.snapshot()
    assert snapshot.anomalies_by_type["gradient_explosion"] == 5
    assert snapshot.anomalies_by_type["nan_or_inf"] == 0
    assert set(snapshot.anomalies_by_type) == {
        "gradient_explosion",
        "vanishing_gradient",
        "nan_or_inf",
        "loss_spike",
        "memory_spike",
    }


def test_checkpoints_hold_metrics_gradient_stats_and_energy(tmp_path: Path) -> None:
    run = train(tmp_path, steps=60, checkpoint_interval=25, capture_samples=3)["tracer"]
    checkpoints = run.storage.get_checkpoints(run.run_id)
    assert [c["step"] for c in checkpoints] == [24, 49, 59]
    last = checkpoints[-1]
    assert set(last["metrics"]) == {"loss", "lr"}
    assert set(last["gradient_stats"]) >= {"0", "2", "total", "loss"}
    assert last["gradient_stats"]["total"]["norm"] > 0
    assert [s["step"] for s in last["gradient_stats"]["recent_steps"]] == [57, 58, 59]
    assert all(c["energy_joules"] is not None and c["energy_joules"] >= 0 for c in checkpoints)
    assert last["system_metrics"]["energy_joules_per_step"] == pytest.approx(last["energy_joules"] / 10)
    statistics = run.storage.get_step_statistics(run.run_id)
    assert statistics.steps.tolist() == list(range(60))
    assert statistics.has_gradients.all() and statistics.loss_recorded.all()
