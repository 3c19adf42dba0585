"""The Tracer tables of the run store: migration from version 1, a run killed by SIGKILL, a reader
while a run writes, retention, and the StorageBackend calls."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hf_eco2ai import CarbonConfig
from hf_eco2ai.store.run_store import STORE_SCHEMA_VERSION, RunIdentity, RunStore
from hf_eco2ai.tracer.analysis import QueryEngine
from hf_eco2ai.tracer.config import TracerConfig
from hf_eco2ai.tracer.storage import StorageBackend

DATA = Path(__file__).resolve().parent / "data"
PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"


def schema_version(path: Path) -> int:
    connection = sqlite3.connect(str(path))
    try:
        return int(connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    finally:
        connection.close()


def test_a_version_1_store_migrates_to_version_2_keeping_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    shutil.copy(DATA / "store_v1.sqlite", path)
    assert schema_version(path) == 1
    store = RunStore(path)
    assert STORE_SCHEMA_VERSION == 2 and schema_version(path) == 2
    run = store.get_run("v1-run-0001")
    assert (run.status, run.step_count, run.energy_kwh_total) == ("finished", 5, 0.001)
    assert store.steps("v1-run-0001").joules.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert store.logs("v1-run-0001")[0]["loss"] == 0.5
    storage = StorageBackend(TracerConfig(project_name="legacy", storage_path=str(tmp_path)))
    assert storage.get_checkpoints("v1-run-0001") == []
    assert storage.get_run("v1-run-0001")["layers"] == []
    storage.write_checkpoint("v1-run-0001", 4, 1.0, {"loss": 0.5}, {}, {})
    assert storage.flush()
    assert storage.get_checkpoints("v1-run-0001")[0]["metrics"] == {"loss": 0.5}
    storage.close()
    RunStore(path)
    assert schema_version(path) == 2


def test_a_store_of_an_unknown_newer_schema_is_refused(tmp_path: Path) -> None:
    from hf_eco2ai import ConfigurationError

    path = tmp_path / "runs.sqlite"
    RunStore(path)
    connection = sqlite3.connect(str(path))
    connection.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    connection.commit()
    connection.close()
    with pytest.raises(ConfigurationError, match="schema 7"):
        RunStore(path)


def test_the_storage_backend_calls_of_the_reference(tmp_path: Path) -> None:
    config = TracerConfig(project_name="test", storage_path=str(tmp_path), async_writes=False)
    storage = StorageBackend(config)
    storage.create_run(run_id="123", project_name="test", run_name="run1", start_time=1000.0, config={})
    storage.write_checkpoint(
        run_id="123", step=100, timestamp=1100.0, metrics={"loss": 0.5}, gradient_stats={}, system_metrics={}
    )
    runs = storage.list_runs(project_name="test")
    checkpoints = storage.get_checkpoints("123")
    assert [(r["run_id"], r["run_name"], r["start_time"]) for r in runs] == [("123", "run1", 1000.0)]
    assert [(c["step"], c["timestamp"], c["metrics"]) for c in checkpoints] == [(100, 1100.0, {"loss": 0.5})]
    assert storage.list_runs(project_name="other") == []
    storage.close()


def test_retention_deletes_the_projects_old_runs_at_init(tmp_path: Path) -> None:
    from hf_eco2ai import tracer

    store = RunStore(tmp_path / "runs.sqlite")
    writer = store.writer(flush_interval_s=0.05)
    now = time.time()
    for run_id, project, age_days in (("old-a", "kept", 40), ("new-a", "kept", 1), ("old-b", "other", 40)):
        writer.begin_run(
            RunIdentity(
                run_id=run_id,
                project_name=project,
                experiment_id=None,
                model_name=None,
                host="h",
                rank=0,
                local_rank=0,
                world_size=1,
                started_unix_s=now - age_days * 86400,
                channels=[],
                intensity=None,
                config=None,
            )
        )
        writer.finish_run(run_id, "finished", now - age_days * 86400 + 10, None)
    writer.add_rows(
        "INSERT INTO anomalies (run_id, step, anomaly_type, layer, value, threshold, statistic, "
        "unix_time_s) VALUES ('old-a', 1, 'nan_or_inf', 'total', 1, 0, NULL, 0)",
        [()],
    )
    writer.close()
    run = tracer.init(
        "kept",
        storage_path=str(tmp_path),
        retention_days=30,
        meter=_synthetic_meter(),
        carbon_config=CarbonConfig(carbon_intensity_g_per_kwh=100.0, output_dir=str(tmp_path)),
    )
    tracer.finish()
    remaining = {summary.run_id for summary in store.list_runs()}
    assert remaining == {"new-a", "old-b", run.run_id}
    assert store.get_run(run.run_id).project_name == "kept"
    connection = sqlite3.connect(str(tmp_path / "runs.sqlite"))
    assert connection.execute("SELECT COUNT(*) FROM anomalies WHERE run_id = 'old-a'").fetchone()[0] == 0
    connection.close()


def _synthetic_meter() -> object:
    from hf_eco2ai.meter import EnergyMeter

    return EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 50.0}, rate_hz=100.0)


def test_a_run_killed_by_sigkill_leaves_a_readable_store_with_every_flushed_batch(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os, signal, torch
        from hf_eco2ai import tracer, CarbonConfig
        config = CarbonConfig(carbon_intensity_g_per_kwh=100.0, sources=["cpu-estimate"], output_dir={str(tmp_path)!r})
        run = tracer.init("killed", storage_path={str(tmp_path)!r}, checkpoint_interval=20, write_buffer_size=10,
                          async_writes=False, carbon_config=config)
        model = torch.nn.Linear(4, 2)
        tracer.watch(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for step in range(1000):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            tracer.log({{"loss": loss.item()}})
            tracer.step()
            if step == 64:
                print(run.run_id, flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
    """)
    environment = {**os.environ, "PYTHONPATH": str(PYTHON_DIR)}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=environment
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    run_id = result.stdout.strip()
    storage = StorageBackend(TracerConfig(project_name="killed", storage_path=str(tmp_path)))
    # Checkpoints at steps 19, 39 and 59 were committed before training went on (async_writes=False);
    # each flushed the step rows before it.
    assert [c["step"] for c in storage.get_checkpoints(run_id)] == [19, 39, 59]
    statistics = storage.get_step_statistics(run_id)
    assert statistics.steps.tolist()[:60] == list(range(60))
    assert statistics.has_gradients[:60].all()
    summary = QueryEngine(str(tmp_path)).get_run_summary(run_id)
    assert summary["status"] == "interrupted"
    assert summary["total_steps"] >= 60
    connection = sqlite3.connect(str(tmp_path / "runs.sqlite"))
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    connection.close()


def test_a_reader_sees_consistent_figures_while_a_run_writes(tmp_path: Path) -> None:
    config = TracerConfig(project_name="live", storage_path=str(tmp_path))
    storage = StorageBackend(config)
    storage.create_run("live-run", "live", "live", time.time(), config.as_dict(), layers=["a", "b"])
    storage.flush()
    done = threading.Event()
    errors: list = []
    seen_counts: list = []

    def write() -> None:
        for batch in range(40):
            steps = np.arange(batch * 50, batch * 50 + 50)
            gradients = np.ones((50, 2, 3), dtype=np.float32)
            storage.write_step_statistics(
                "live-run",
                steps,
                np.ones(50, dtype=np.int64),
                steps * 0.01,
                np.full(50, np.nan),
                gradients,
                np.ones(50, dtype=bool),
            )
            storage.write_checkpoint("live-run", int(steps[-1]), time.time(), {"loss": float(batch)}, {}, {})
            time.sleep(0.005)
        storage.flush()
        done.set()

    def read() -> None:
        query = QueryEngine(str(tmp_path))
        try:
            while not done.is_set():
                checkpoints = query.storage.get_checkpoints("live-run")
                statistics = query.storage.get_step_statistics("live-run")
                count = len(statistics)
                assert statistics.steps.tolist() == list(range(count))
                # Each batch's rows are committed with or before its checkpoint.
                assert len(checkpoints) * 50 <= count
                seen_counts.append(count)
        except Exception as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    writer_thread = threading.Thread(target=write)
    reader_thread = threading.Thread(target=read)
    reader_thread.start()
    writer_thread.start()
    writer_thread.join(60)
    reader_thread.join(60)
    storage.close()
    assert errors == []
    assert seen_counts and seen_counts == sorted(seen_counts)
    assert len(storage.get_step_statistics("live-run")) == 2000


def test_the_read_commands_read_a_version_1_store_without_changing_it(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    shutil.copy(DATA / "store_v1.sqlite", path)
    environment = {**os.environ, "PYTHONPATH": str(PYTHON_DIR)}
    result = subprocess.run(
        [sys.executable, "-m", "hf_eco2ai.cli", "show", "v1-run-0001", "--store", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    assert "run v1-run-0001 (finished)" in result.stdout
    assert "gradient norms" not in result.stdout
    assert schema_version(path) == 1
