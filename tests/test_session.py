"""TrackingSession: records that add up, epochs, figures, budget, failures, snapshots, the store."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict

import pytest
from fake_powercap import make_tree

from hf_eco2ai import CarbonConfig, CarbonTrackingError, ConfigurationError, EnergyMeter, generate_carbon_report
from hf_eco2ai.carbon import tables
from hf_eco2ai.meter.flags import FLAG_SENSOR_ERROR, FLAG_TAIL
from hf_eco2ai.reporting.schema import incomplete_reason
from hf_eco2ai.reporting.step_file import read_step_file
from hf_eco2ai.session.tracking_session import TrackingSession
from hf_eco2ai.store.run_store import RunStore

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"
FRANCE_G_PER_KWH = tables.country("FR").g_per_kwh


def config(tmp_path: Path, **settings: Any) -> CarbonConfig:
    settings.setdefault("country_iso_code", "FR")
    return CarbonConfig(output_dir=str(tmp_path), offline=True, **settings)


def constant_meter(watts: float = 100.0, **kwargs: Any) -> EnergyMeter:
    return EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": watts}, **kwargs)


def streamed_steps(session: TrackingSession) -> list:
    """Every step of a stopped run, from the per-step file the writer streamed."""
    assert session.steps_file is not None
    return list(read_step_file(session.steps_file))


def run_steps(session: TrackingSession, count: int, step_s: float = 0.002) -> None:
    for _ in range(count):
        time.sleep(step_s)
        session.mark_step()


def test_step_records_add_up_to_the_run_total(tmp_path: Path) -> None:
    session = TrackingSession(
        config(tmp_path),
        meter=EnergyMeter(
            sources="synthetic", synthetic={"kind": "square", "low_watts": 50, "high_watts": 250, "period_s": 0.03}
        ),
    )
    session.start()
    run_steps(session, 60)
    report = session.stop()
    steps = streamed_steps(session)
    training = [step for step in steps if not step["flags"] & FLAG_TAIL]
    assert len(training) == 60 and report["steps_marked"] == 60
    assert [step["index"] for step in steps] == list(range(61))
    assert report["steps_file"] == {"path": str(session.steps_file), "format": "csv", "rows": 61}
    step_joules = sum(step["joules"] for step in steps)
    assert step_joules == pytest.approx(report["energy"]["it_kwh"] * 3.6e6, rel=1e-6)
    assert report["total_co2_kg"] == pytest.approx(report["energy"]["total_kwh"] * FRANCE_G_PER_KWH / 1000, rel=1e-9)
    assert json.loads(generate_carbon_report(report, "json")) == json.loads(json.dumps(report))


def test_epochs_partition_the_steps_and_their_energy(tmp_path: Path) -> None:
    session = TrackingSession(config(tmp_path), meter=constant_meter(), store=False)
    session.start()
    for _ in range(3):
        run_steps(session, 10)
        session.epoch_end()
    report = session.stop()
    streamed = streamed_steps(session)
    assert [(e["epoch"], e["first_step"], e["last_step"]) for e in report["epochs"]] == [
        (0, 0, 9),
        (1, 10, 19),
        (2, 20, 29),
    ]
    for epoch in report["epochs"]:
        steps = [s for s in streamed if s["epoch"] == epoch["epoch"]]
        assert epoch["joules"] == pytest.approx(sum(s["joules"] for s in steps), rel=1e-9)
    assert streamed[-1]["epoch"] is None and streamed[-1]["flags"] & FLAG_TAIL


def test_log_returns_figures_of_the_interval_since_the_previous_log(tmp_path: Path) -> None:
    session = TrackingSession(config(tmp_path, pue=1.5), meter=constant_meter(200.0), store=False)
    session.start()
    run_steps(session, 20, step_s=0.005)
    first = session.log({"loss": 2.0, "samples": 640})
    run_steps(session, 20, step_s=0.005)
    second = session.log({"loss": 1.0, "samples": 640})
    session.stop()
    for figures in (first, second):
        assert figures["power/mean_watts"] == pytest.approx(200.0, rel=1e-6)
        assert figures["carbon/co2_kg"] == pytest.approx(
            figures["energy/total_kwh"] * FRANCE_G_PER_KWH / 1000, rel=1e-9
        )
    assert second["energy/total_kwh"] > first["energy/total_kwh"]
    assert second["carbon/samples_per_kwh"] == pytest.approx(1280 / second["energy/total_kwh"], rel=1e-9)
    kwh_from_intervals = (first["energy/interval_joules"] + second["energy/interval_joules"]) / 3.6e6 * 1.5
    assert second["energy/total_kwh"] == pytest.approx(kwh_from_intervals, rel=1e-9)
    assert 0 < second["energy/step_joules"] < second["energy/interval_joules"]


def test_a_log_leaves_the_drain_to_the_session_thread_and_every_step_still_arrives(tmp_path: Path) -> None:
    meter = constant_meter(100.0)
    drained_on = []
    drained_on_names = []
    drain_in_chunks = meter.drain_in_chunks

    def recording_drain_in_chunks() -> Any:
        drained_on.append(threading.current_thread())
        drained_on_names.append(threading.current_thread().name)
        return drain_in_chunks()

    meter.drain_in_chunks = recording_drain_in_chunks  # type: ignore[method-assign]
    session = TrackingSession(config(tmp_path, pue=1.0), meter=meter, store=False)
    session.start()
    intervals = []
    for _ in range(5):
        run_steps(session, 20)
        during_log = len(drained_on)
        figures = session.log()
        # The log itself drained nothing on the calling thread...
        assert threading.current_thread() not in drained_on[during_log:]
        intervals.append(figures["energy/interval_joules"])
    deadline = time.monotonic() + 10.0
    while not any(thread is not threading.current_thread() for thread in drained_on):
        assert time.monotonic() < deadline, "no drain ran on the session's thread after the logs"
        time.sleep(0.01)
    logged_joules = sum(intervals)
    report = session.stop()
    # ...the session's thread did, and the figures still add up: the logs' intervals are the
    # run's energy up to the last log, and every step reached the per-step file.
    assert logged_joules == pytest.approx(figures["energy/total_kwh"] * 3.6e6, rel=1e-9)
    assert "hf-eco2ai-session" in drained_on_names
    streamed = streamed_steps(session)
    assert [row["index"] for row in streamed] == list(range(101))
    assert sum(row["joules"] for row in streamed) == pytest.approx(report["energy"]["it_kwh"] * 3.6e6, rel=1e-9)


def test_snapshot_is_none_before_start_then_tracks_the_meter(tmp_path: Path) -> None:
    session = TrackingSession(
        config(tmp_path, carbon_budget_kg=1.0, electricity_price_per_kwh=0.2, electricity_currency="EUR"),
        meter=constant_meter(),
        store=False,
    )
    assert session.snapshot() is None
    session.start()
    run_steps(session, 15)
    session.log({"loss": 0.25, "learning_rate": 1e-3, "samples": 150})
    snapshot = session.snapshot()
    session.stop()
    assert snapshot is not None and snapshot.step_count == 15 and snapshot.loss == 0.25
    assert snapshot.channels[0].name == "synthetic:0" and snapshot.intensity.source == "country-table"
    assert snapshot.energy_kwh_total == pytest.approx(snapshot.energy_joules_by_channel["synthetic:0"] / 3.6e6)
    assert snapshot.budget_remaining_kg == pytest.approx(1.0 - snapshot.co2_kg_total)
    assert snapshot.cost_total == pytest.approx(snapshot.energy_kwh_total * 0.2)
    assert snapshot.samples_per_kwh == pytest.approx(150 / snapshot.energy_kwh_total)


def test_snapshot_is_safe_while_another_thread_marks_steps(tmp_path: Path) -> None:
    session = TrackingSession(config(tmp_path, measurement_interval=0.05), meter=constant_meter(), store=False)
    session.start()
    counts = []
    stop = threading.Event()

    def scrape() -> None:
        while not stop.is_set():
            counts.append(session.snapshot().step_count)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    run_steps(session, 200, step_s=0.0005)
    stop.set()
    scraper.join()
    session.stop()
    assert counts and counts == sorted(counts) and counts[-1] <= 200


def test_an_exceeded_budget_asks_to_stop_only_when_stopping_is_enabled(tmp_path: Path) -> None:
    outcomes = []
    for stop_enabled in (False, True):
        session = TrackingSession(
            config(
                tmp_path, carbon_intensity_g_per_kwh=2000, carbon_budget_kg=1e-6, stop_on_budget_exceeded=stop_enabled
            ),
            meter=constant_meter(1e5),
            store=False,
        )
        session.start()
        run_steps(session, 10)
        session.drain()
        outcomes.append(session.stop_requested)
        report = session.stop()
        assert report["budget"]["exceeded"] and report["budget"]["remaining_kg"] < 0
        assert any(w["code"] == "budget-exceeded" for w in report["warnings"])
    assert outcomes == [False, True]


def test_a_rapl_counter_that_stops_reading_mid_run_warns_once_and_marks_the_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    zones = make_tree(tmp_path / "powercap", {"intel-rapl:0": ("package-0", 2**40, 0)})
    session = TrackingSession(
        config(tmp_path), meter=EnergyMeter(sources="rapl", rapl_root=tmp_path / "powercap"), store=False
    )
    caplog.set_level(logging.WARNING, logger="hf_eco2ai")
    session.start()
    for step in range(20):
        zones["intel-rapl:0"].write((step + 1) * 100_000)
        run_steps(session, 1, step_s=0.01)
    # The source keeps its file open, so the failure must come through the file: an empty
    # energy_uj is what a zone whose driver went away gives.
    os.truncate(zones["intel-rapl:0"].energy_file, 0)
    for _ in range(4):
        run_steps(session, 10, step_s=0.01)
        session.drain()
    report = session.stop()
    zones["intel-rapl:0"].close()
    warned = [r for r in caplog.records if "failed during the run" in r.getMessage()]
    assert len(warned) == 1 and "cpu:package-0" in warned[0].getMessage()
    assert report["steps_marked"] == 60
    assert report["monitoring_errors_total"] > 0
    assert [w["channel"] for w in report["warnings"] if w["code"] == "sensor-failed"] == ["cpu:package-0"]
    assert any(step["flags"] & FLAG_SENSOR_ERROR for step in streamed_steps(session))
    assert "failed during the run" in incomplete_reason(report)
    assert "incomplete" in generate_carbon_report(report, "markdown").lower()


def test_strict_mode_raises_a_mid_run_sensor_failure_at_drain_never_at_mark(tmp_path: Path) -> None:
    session = TrackingSession(
        config(tmp_path, strict=True), meter=EnergyMeter(sources="synthetic", synthetic_fail_after_s=0.05), store=False
    )
    session.start()
    run_steps(session, 40)
    with pytest.raises(CarbonTrackingError, match="synthetic:0"):
        session.drain()
    session.stop()


def test_a_session_is_one_run(tmp_path: Path) -> None:
    session = TrackingSession(config(tmp_path), meter=constant_meter(), store=False)
    with pytest.raises(ConfigurationError, match="start"):
        session.report()
    with session:
        run_steps(session, 3)
    assert session.stop() is session.stop()
    with pytest.raises(CarbonTrackingError, match="create a new one"):
        session.start()
    session.mark_step()


def test_the_store_receives_steps_latest_figures_and_the_final_report(tmp_path: Path) -> None:
    session = TrackingSession(config(tmp_path, experiment_id="exp-7"), meter=constant_meter(), model_name="Tiny")
    session.start()
    run_steps(session, 25)
    session.log({"loss": 0.5, "samples": 10}, step=25)
    report = session.stop()
    store = RunStore(tmp_path / "runs.sqlite")
    run = store.get_run(session.run_id[:8])
    # Twenty-five steps; the tail record (energy after the last step) is stored but is not a step.
    assert (run.status, run.experiment_id, run.model_name, run.step_count) == ("finished", "exp-7", "Tiny", 25)
    assert len(store.steps(session.run_id).index) == 26
    assert store.steps(session.run_id).joules.sum() == pytest.approx(report["energy"]["it_kwh"] * 3.6e6, rel=1e-9)
    assert run.latest["energy_kwh_total"] == pytest.approx(report["energy"]["total_kwh"], rel=1e-9)
    assert store.logs(session.run_id)[0]["loss"] == 0.5
    assert store.report(session.run_id)["total_co2_kg"] == report["total_co2_kg"]


def test_a_killed_training_process_leaves_its_run_on_disk(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(PYTHON_DIR)!r})
        from hf_eco2ai import CarbonConfig, EnergyMeter
        from hf_eco2ai.session.tracking_session import TrackingSession
        session = TrackingSession(CarbonConfig(output_dir={str(tmp_path)!r}, offline=True, country_iso_code="FR",
                                               measurement_interval=0.05), meter=EnergyMeter(sources="synthetic"))
        session.start()
        print(session.run_id, flush=True)
        while True:
            for _ in range(20):
                time.sleep(0.002)
                session.mark_step()
            time.sleep(0.05)  # a step resolves one sampler period after its mark
            session.flush()
            print(session.snapshot().step_count, flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        run_id = child.stdout.readline().strip()
        steps_before_flush = 0
        while steps_before_flush < 100:
            steps_before_flush = int(child.stdout.readline())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    store = RunStore(tmp_path / "runs.sqlite")
    run = store.get_run(run_id)
    assert run.status == "interrupted" and run.host == socket.gethostname()
    steps = store.steps(run_id)
    assert len(steps) >= steps_before_flush
    assert run.latest["energy_kwh_total"] > 0 and store.report(run_id) is None


def test_a_bad_config_type_is_named(tmp_path: Path) -> None:
    bad: Dict[str, Any] = {"country_iso_code": "FR"}
    with pytest.raises(ConfigurationError, match="CarbonConfig"):
        TrackingSession(bad)  # type: ignore[arg-type]


def test_prometheus_serves_the_live_figures_while_running_and_the_final_ones_after(tmp_path: Path) -> None:
    session = TrackingSession(
        config(tmp_path, prometheus_enabled=True, prometheus_port=0, project_name="prometheus-session-test"),
        meter=constant_meter(),
        store=False,
    )
    session.start()
    run_steps(session, 7)
    url = session.exporter.exporter.url
    assert url.startswith("http://127.0.0.1:")
    live = urllib.request.urlopen(url, timeout=10).read().decode()
    report = session.stop()
    final = urllib.request.urlopen(url, timeout=10).read().decode()

    def value(text: str, metric: str) -> float:
        lines = [
            line
            for line in text.splitlines()
            if line.startswith(metric + "{") and 'project_name="prometheus-session-test"' in line
        ]
        assert lines, f"{metric} missing for the run"
        return float(lines[0].rsplit(" ", 1)[1])

    assert value(live, "hf_training_step_count") == 7
    assert value(final, "hf_training_energy_kwh_total") == pytest.approx(report["energy"]["total_kwh"], rel=1e-9)
