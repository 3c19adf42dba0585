"""The run store under faults: a full disk, read-only opening, foreign and damaged files.

A full disk is SQLite's own SQLITE_FULL, produced by capping the writer's database size with
``PRAGMA max_page_count``; "space returns" when the cap is lifted.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from hf_eco2ai import CarbonConfig, EnergyMeter
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.session.tracking_session import TrackingSession
from hf_eco2ai.store import run_store
from hf_eco2ai.store.run_store import DamagedRunError, RunIdentity, RunStore, StoreRowsDropped

pytestmark = pytest.mark.timeout(60)


class DiskSpace:
    """Caps the size of the store for every connection opened after ``fill()`` until ``free()``.

    The writer keeps its connection until a commit fails, so ``fill()`` comes before the writer
    starts, with room for a few pages (the run's own row) left.
    """

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.cap_pages: Optional[int] = None

    def fill(self, pages_left: int = 3) -> None:
        connection = sqlite3.connect(self.store_path)
        try:
            self.cap_pages = connection.execute("PRAGMA page_count").fetchone()[0] + pages_left
        finally:
            connection.close()

    def free(self) -> None:
        self.cap_pages = None


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DiskSpace]:
    space = DiskSpace(tmp_path / "runs.sqlite")
    real_connect = run_store._connect

    def connect(path: Path) -> sqlite3.Connection:
        connection = real_connect(path)
        if space.cap_pages is not None:
            connection.execute(f"PRAGMA max_page_count = {space.cap_pages}")
        return connection

    monkeypatch.setattr(run_store, "_connect", connect)
    yield space


def _identity(run_id: str = "run-1") -> RunIdentity:
    return RunIdentity(run_id, "p", None, None, "host", 0, 0, 1, time.time(), [{"name": "gpu:0"}], None, None)


def _wait_for(condition, timeout_s: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def _writer_with_rows_on_a_full_disk(
    store: RunStore, disk: DiskSpace, errors: List[BaseException]
) -> run_store.RunWriter:
    """A writer whose run row is stored and whose 2,000 power rows wait for space."""
    disk.fill()
    writer = store.writer(flush_interval_s=0.05, on_error=errors.append)
    writer.begin_run(_identity())
    assert writer.flush(10)
    for index in range(2000):
        writer.add_power("run-1", index * 0.01, [100.0])
    return writer


def test_full_disk_names_the_real_cause_and_keeps_the_rows_until_space_returns(disk: DiskSpace) -> None:
    store = RunStore(disk.store_path)
    errors: List[BaseException] = []
    writer = _writer_with_rows_on_a_full_disk(store, disk, errors)
    assert not writer.flush(10)
    assert errors and all("database or disk is full" in str(error) for error in errors)
    assert not any("rollback" in str(error) for error in errors)
    assert writer.unwritten_rows == 2000
    disk.free()
    assert _wait_for(lambda: writer.unwritten_rows == 0)
    writer.close()
    times_s, _ = store.power_trace("run-1")
    assert len(times_s) == 2000
    assert writer.rows_dropped == 0


def test_unwritten_rows_are_bounded_and_what_is_dropped_is_counted(disk: DiskSpace) -> None:
    store = RunStore(disk.store_path)
    disk.fill()
    errors: List[BaseException] = []
    writer = run_store.RunWriter(disk.store_path, flush_interval_s=0.05, on_error=errors.append, max_unwritten_rows=300)
    writer.begin_run(_identity())
    assert writer.flush(10)
    for index in range(1000):
        writer.add_power("run-1", index * 0.01, [100.0])
    writer.flush(10)
    assert writer.unwritten_rows <= 300
    writer.close()
    dropped = [error for error in errors if isinstance(error, StoreRowsDropped)]
    assert dropped and sum(error.rows for error in dropped) == writer.rows_dropped
    disk.free()
    stored = len(store.power_trace("run-1")[0])
    assert stored + writer.rows_dropped == 1000
    assert writer.rows_dropped >= 700


def test_latest_figures_kept_for_a_retry_keep_an_intensity_change_that_a_later_update_left_out(
    disk: DiskSpace,
) -> None:
    store = RunStore(disk.store_path)
    errors: List[BaseException] = []
    writer = _writer_with_rows_on_a_full_disk(store, disk, errors)
    writer.update_latest("run-1", {"t_s": 1.0}, {"g_per_kwh": 42.0, "source": "live"})
    writer.update_latest("run-1", {"t_s": 2.0})
    assert not writer.flush(5)
    assert errors, "the full disk held the updates back"
    disk.free()
    assert _wait_for(lambda: writer.unwritten_rows == 0)
    writer.close()
    assert store.get_run("run-1").intensity == {"g_per_kwh": 42.0, "source": "live"}
    assert store.latest("run-1")["t_s"] == 2.0


def test_session_counts_a_full_disk_as_a_store_error_with_its_cause(tmp_path: Path, disk: DiskSpace) -> None:
    config = CarbonConfig(output_dir=str(tmp_path), offline=True, country_iso_code="FR", measurement_interval=0.05)
    store = RunStore(disk.store_path)
    disk.fill(pages_left=4)
    session = TrackingSession(
        config,
        meter=EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 50.0}, rate_hz=200),
        store=store,
    )
    session.start()
    assert session.flush()
    for _ in range(2000):
        session.mark_step()
    time.sleep(0.05)
    session.log({"loss": 1.0})
    assert not session.flush(5.0)
    snapshot = session.snapshot()
    assert snapshot is not None and snapshot.monitoring_errors_by_type.get("store", 0) >= 1
    disk.free()
    report = session.stop()
    assert report["monitoring_errors_total"] >= 1
    messages = [warning["message"] for warning in report["warnings"] if warning["code"] == "store-failed"]
    assert len(messages) == 1 and "database or disk is full" in messages[0]
    steps = store.steps(session.run_id)
    assert len(steps) == report["steps_marked"] + 1


def _foreign_sqlite(path: Path) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE contacts (name TEXT)")
        connection.execute("INSERT INTO contacts VALUES ('someone')")
    connection.close()
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_only_opening_refuses_a_foreign_sqlite_file_and_leaves_it_unchanged(tmp_path: Path) -> None:
    foreign = _foreign_sqlite(tmp_path / "contacts.db")
    before = _digest(foreign)
    with pytest.raises(ConfigurationError, match="not a run store"):
        RunStore(foreign, read_only=True)
    assert _digest(foreign) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["contacts.db"]
    with sqlite3.connect(foreign) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    connection.close()


def test_read_only_opening_refuses_an_empty_file_and_keeps_it_empty(tmp_path: Path) -> None:
    empty = tmp_path / "runs.sqlite"
    empty.touch()
    with pytest.raises(ConfigurationError, match="is empty"):
        RunStore(empty, read_only=True)
    assert empty.stat().st_size == 0


def test_store_whose_wal_index_cannot_be_created_can_still_be_listed(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    writer = RunStore(path).writer()
    writer.begin_run(_identity("kept-run"))
    writer.close()
    # As on read-only media: SQLite cannot create the shared-memory index next to the file.
    (tmp_path / "runs.sqlite-shm").mkdir()
    before = _digest(path)
    store = RunStore(path, read_only=True)
    assert [run.run_id for run in store.list_runs()] == ["kept-run"]
    assert _digest(path) == before
    with pytest.raises(ConfigurationError, match="read-only"):
        store.writer()


def _store_with_runs(path: Path, run_ids: List[str]) -> None:
    writer = RunStore(path).writer()
    for run_id in run_ids:
        writer.begin_run(_identity(run_id))
    writer.close()


@pytest.mark.parametrize(
    "column, value, field",
    [
        ("channels_json", "{not json", "channels_json"),
        ("started_unix_s", 1e300, "started_unix_s"),
        ("latest_json", "[1, 2]", "latest_json"),
        ("pid", "twelve", "pid"),
    ],
)
def test_damaged_row_names_the_run_and_the_field_and_can_be_skipped(
    tmp_path: Path,
    column: str,
    value: object,
    field: str,
) -> None:
    path = tmp_path / "runs.sqlite"
    _store_with_runs(path, ["good-run", "bad-run"])
    with sqlite3.connect(path) as connection:
        connection.execute(f"UPDATE runs SET {column} = ? WHERE run_id = 'bad-run'", (value,))
    connection.close()
    store = RunStore(path, read_only=True)
    with pytest.raises(DamagedRunError) as caught:
        store.get_run("bad-run")
    assert "bad-run" in str(caught.value) and field in str(caught.value)
    skipped: List[DamagedRunError] = []
    assert [run.run_id for run in store.list_runs(on_damaged=skipped.append)] == ["good-run"]
    assert len(skipped) == 1


def test_schema_version_that_is_not_a_number_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    _store_with_runs(path, ["a-run"])
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE meta SET value = 'two' WHERE key = 'schema_version'")
    connection.close()
    for read_only in (True, False):
        with pytest.raises(ConfigurationError, match="schema_version is 'two', not a number"):
            RunStore(path, read_only=read_only)


def test_damaged_step_values_name_the_run_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    writer = RunStore(path).writer()
    writer.begin_run(_identity("stepped-run"))
    writer.add_power("stepped-run", 0.5, [10.0])
    writer.close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE power SET watts_by_channel = x'0102' WHERE run_id = 'stepped-run'")
    connection.close()
    with pytest.raises(DamagedRunError, match="run stepped-run: a power.watts_by_channel value is not 1 numbers"):
        RunStore(path, read_only=True).power_trace("stepped-run")
