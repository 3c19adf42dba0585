"""The SQLite run store: what a writer enqueues is what a reader gets back, killed runs included."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hf_eco2ai import ConfigurationError
from hf_eco2ai.session.run_records import StepBatch
from hf_eco2ai.store.run_store import RunIdentity, RunStore

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"
CHANNELS = [
    {"name": "cpu:package-0", "kind": "counter", "provenance": "measured", "source": "rapl", "parent": None},
    {"name": "cpu:core-0", "kind": "counter", "provenance": "measured", "source": "rapl", "parent": "cpu:package-0"},
]


def identity(run_id: str, started_unix_s: float = 1000.0, project_name: str = "proj") -> RunIdentity:
    return RunIdentity(
        run_id=run_id,
        project_name=project_name,
        experiment_id="exp-1",
        model_name="TinyBert",
        host="host-a",
        rank=0,
        local_rank=0,
        world_size=1,
        started_unix_s=started_unix_s,
        channels=CHANNELS,
        intensity={"g_per_kwh": 56.0, "source": "country-table"},
        config={"pue": 1.0},
    )


def add_steps(writer, run_id: str, first: int, count: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    index = np.arange(first, first + count)
    by_channel = np.column_stack([index * 1.0 + 1.0, index * 0.5])
    writer.add_steps(
        run_id,
        StepBatch(
            index,
            np.zeros(count, dtype=np.int64),
            index * 0.1,
            index * 0.1 + 0.1,
            by_channel[:, 0],
            np.zeros(count, dtype=np.uint32),
            by_channel,
        ),
    )
    return by_channel


def test_everything_written_reads_back_after_a_flush(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    writer = store.writer(flush_interval_s=0.05)
    writer.begin_run(identity("run-aaaa"))
    by_channel = add_steps(writer, "run-aaaa", 0, 25)
    writer.add_windows(
        "run-aaaa",
        ["eval"],
        np.array([1.0]),
        np.array([1.5]),
        np.array([7.0]),
        np.array([0], dtype=np.uint32),
        np.array([[7.0, 3.0]]),
    )
    writer.add_power("run-aaaa", 0.1, [100.0, 40.0])
    writer.add_power("run-aaaa", 0.3, [110.0, 45.0])
    writer.add_log("run-aaaa", 1001.0, 10, {"loss": 0.5})
    writer.update_latest("run-aaaa", {"energy_kwh_total": 0.002, "co2_kg_total": 0.0001})
    writer.finish_run("run-aaaa", "finished", 1010.0, {"total_co2_kg": 0.0001})
    assert writer.flush(timeout_s=10)
    writer.close()

    run = store.get_run("run-aaaa")
    assert (run.status, run.step_count, run.ended_unix_s, run.duration_s) == ("finished", 25, 1010.0, 10.0)
    assert (run.energy_kwh_total, run.co2_kg_total) == (0.002, 0.0001)
    steps = store.steps("run-aaaa")
    assert steps.channels == ["cpu:package-0", "cpu:core-0"]
    np.testing.assert_array_equal(steps.index, np.arange(25))
    np.testing.assert_array_equal(steps.joules_by_channel, by_channel)
    assert store.windows("run-aaaa")[0]["joules_by_channel"] == {"cpu:package-0": 7.0, "cpu:core-0": 3.0}
    assert store.power_trace("run-aaaa") == ([0.1, 0.3], {"cpu:package-0": [100.0, 110.0], "cpu:core-0": [40.0, 45.0]})
    assert store.logs("run-aaaa") == [{"unix_time_s": 1001.0, "step": 10, "loss": 0.5}]
    assert store.report("run-aaaa") == {"total_co2_kg": 0.0001}


def test_runs_are_listed_newest_first_and_found_by_unique_prefix(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    writer = store.writer(flush_interval_s=0.05)
    writer.begin_run(identity("abc111", started_unix_s=1.0, project_name="a"))
    writer.begin_run(identity("abc222", started_unix_s=2.0, project_name="b"))
    writer.close()
    assert [run.run_id for run in store.list_runs()] == ["abc222", "abc111"]
    assert [run.run_id for run in store.list_runs(project_name="a")] == ["abc111"]
    assert store.get_run("abc2").run_id == "abc222"
    assert [run.run_id for run in store.compare(["abc1", "abc2"])] == ["abc111", "abc222"]
    with pytest.raises(KeyError, match="ambiguous.*abc111, abc222"):
        store.get_run("abc")
    with pytest.raises(KeyError, match="no run 'zzz'"):
        store.get_run("zzz")


def test_a_run_whose_process_is_gone_reads_as_interrupted(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(child.stdout)
    writer = store.writer(flush_interval_s=0.05)
    writer.begin_run(identity("run-dead"))
    writer.close()
    with sqlite3.connect(store.path) as connection:
        connection.execute(
            "UPDATE runs SET pid = ?, host = ? WHERE run_id = 'run-dead'", (dead_pid, socket.gethostname())
        )
    assert store.get_run("run-dead").status == "interrupted"


def test_the_store_is_in_wal_mode(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_store_waits_for_another_connection_that_holds_the_new_file(tmp_path: Path) -> None:
    """Two runs, or a run and a reader, may create the same store at once; SQLite refuses the
    switch to WAL at once while another connection holds the file, so the store must wait."""
    path = tmp_path / "runs.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.3, other.execute, args=("COMMIT",))
    releaser.start()
    try:
        store = RunStore(path)
    finally:
        releaser.join()
        other.close()
    assert store.list_runs() == []
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_unusable_path_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(ConfigurationError, match="not-a-dir"):
        RunStore(blocker / "runs.sqlite")


def test_a_killed_writer_leaves_everything_up_to_its_last_flush(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    script = textwrap.dedent(f"""
        import socket, sys, numpy as np
        sys.path.insert(0, {str(PYTHON_DIR)!r})
        from hf_eco2ai.session.run_records import StepBatch
        from hf_eco2ai.store.run_store import RunStore, RunIdentity
        store = RunStore({str(path)!r})
        writer = store.writer(flush_interval_s=0.05)
        writer.begin_run(RunIdentity("killed", "p", None, None, socket.gethostname(), 0, 0, 1, 1.0, [], None, None))
        step = 0
        while True:
            index = np.arange(step, step + 10)
            zeros = np.zeros(10)
            writer.add_steps("killed", StepBatch(index, np.full(10, -1), zeros, zeros, zeros, np.zeros(10, np.uint32),
                                                 np.zeros((10, 0))))
            step += 10
            if step % 100 == 0:
                writer.flush()
                print(step, flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        flushed = 0
        while flushed < 500:
            flushed = int(child.stdout.readline())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    steps = RunStore(path).steps("killed")
    assert len(steps) >= flushed
    np.testing.assert_array_equal(steps.index, np.arange(len(steps)))
    assert RunStore(path).get_run("killed").status == "interrupted"


def test_a_full_batch_of_step_rows_is_committed_without_waiting_for_the_flush_interval(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    writer = store.writer(flush_interval_s=120.0, batch_step_rows=20)
    writer.begin_run(identity("run-batch"))
    add_steps(writer, "run-batch", 0, 20)
    deadline = time.monotonic() + 60.0
    stored = 0
    while time.monotonic() < deadline and stored < 20:
        time.sleep(0.05)
        try:
            stored = len(store.steps("run-batch").index)
        except KeyError:  # the run's first batch is not committed yet
            stored = 0
    writer.close()
    assert stored == 20, "a batch's worth of step rows reaches the disk before the 120 s flush interval"


def test_the_batch_size_must_be_a_positive_integer(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="batch_step_rows is 0"):
        RunStore(tmp_path / "runs.sqlite").writer(batch_step_rows=0)


def test_a_store_created_later_is_made_by_its_writer_and_holds_what_it_wrote(tmp_path: Path) -> None:
    path = tmp_path / "new" / "runs.sqlite"
    store = RunStore(path, create_later=True)
    assert path.parent.is_dir() and not path.exists()
    writer = store.writer(flush_interval_s=0.05)
    writer.begin_run(identity("later"))
    assert writer.flush(10.0)
    writer.close()
    assert [run.run_id for run in RunStore(path, read_only=True).list_runs()] == ["later"]


def test_a_store_created_later_is_created_by_its_first_read(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    store = RunStore(path, create_later=True)
    assert store.list_runs() == [] and path.is_file()
    RunStore(path, read_only=True)


def test_create_later_still_checks_an_existing_file_and_the_folder_at_once(tmp_path: Path) -> None:
    foreign = tmp_path / "notes.sqlite"
    connection = sqlite3.connect(foreign)
    connection.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    connection.execute("INSERT INTO meta VALUES ('schema_version', 'x')")
    connection.commit()
    connection.close()
    with pytest.raises(ConfigurationError, match="notes.sqlite"):
        RunStore(foreign, create_later=True)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError, match="cannot be used as a run store"):
        RunStore(blocker / "runs.sqlite", create_later=True)


def test_a_store_created_later_appears_when_its_writer_starts_not_at_its_first_commit(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    writer = RunStore(path, create_later=True).writer(flush_interval_s=60.0)
    try:
        deadline = time.monotonic() + 10.0
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert RunStore(path, read_only=True).list_runs() == []
    finally:
        writer.close(timeout_s=10.0)
