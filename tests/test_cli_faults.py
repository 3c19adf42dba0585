"""The CLI on damaged, foreign and empty files, and a report that cannot be written."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from hf_eco2ai.store.run_store import RunIdentity, RunStore

CLI = [sys.executable, "-m", "hf_eco2ai.cli"]

pytestmark = pytest.mark.timeout(120)


def run_cli(*args: str, cwd: Path, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _store_with_runs(path: Path, run_ids: List[str]) -> Path:
    writer = RunStore(path).writer()
    for position, run_id in enumerate(run_ids):
        writer.begin_run(
            RunIdentity(
                run_id,
                "cli-faults",
                None,
                None,
                "elsewhere",
                0,
                0,
                1,
                time.time() - position,
                [{"name": "gpu:0"}],
                None,
                None,
            )
        )
    writer.close()
    return path


def _damage(path: Path, sql: str) -> None:
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute(sql)
    finally:
        connection.close()


def test_runs_on_a_foreign_sqlite_file_refuses_it_and_changes_nothing(tmp_path: Path) -> None:
    foreign = tmp_path / "contacts.db"
    _damage(foreign, "CREATE TABLE contacts (name TEXT)")
    before = _digest(foreign)
    result = run_cli("runs", "--store", str(foreign), cwd=tmp_path)
    assert result.returncode == 2
    assert "not a run store" in result.stderr and "Traceback" not in result.stderr
    assert _digest(foreign) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["contacts.db"]


def test_runs_on_an_empty_file_refuses_it_and_keeps_it_empty(tmp_path: Path) -> None:
    empty = tmp_path / "runs.sqlite"
    empty.touch()
    result = run_cli("runs", "--store", str(empty), cwd=tmp_path)
    assert result.returncode == 2 and "is empty" in result.stderr
    assert empty.stat().st_size == 0


@pytest.mark.parametrize(
    "column, value, field",
    [
        ("channels_json", "'{broken'", "channels_json"),
        ("started_unix_s", "1e300", "started_unix_s"),
    ],
)
def test_runs_skips_a_damaged_row_with_a_warning_and_lists_the_rest(
    tmp_path: Path,
    column: str,
    value: str,
    field: str,
) -> None:
    store = _store_with_runs(tmp_path / "runs.sqlite", ["good-run-0001", "bad-run-00001"])
    _damage(store, f"UPDATE runs SET {column} = {value} WHERE run_id = 'bad-run-00001'")
    listed = run_cli("runs", "--store", str(store), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "good-run-000" in listed.stdout and "bad-run-0000" not in listed.stdout
    assert "bad-run-00001" in listed.stderr and field in listed.stderr and "Traceback" not in listed.stderr
    shown = run_cli("show", "bad-run", "--store", str(store), cwd=tmp_path)
    assert shown.returncode == 2
    assert "bad-run-00001" in shown.stderr and field in shown.stderr and "Traceback" not in shown.stderr


def test_schema_version_that_is_not_a_number_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    store = _store_with_runs(tmp_path / "runs.sqlite", ["a-run"])
    _damage(store, "UPDATE meta SET value = 'two' WHERE key = 'schema_version'")
    result = run_cli("runs", "--store", str(store), cwd=tmp_path)
    assert result.returncode == 2
    assert "schema_version is 'two'" in result.stderr and "Traceback" not in result.stderr


def test_store_that_sqlite_cannot_read_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    store = _store_with_runs(tmp_path / "runs.sqlite", ["a-run"])
    data = bytearray(store.read_bytes())
    data[4096:8192] = b"\xff" * 4096  # tear the second page
    store.write_bytes(bytes(data))
    result = run_cli("runs", "--store", str(store), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(store) in result.stderr or "run store" in result.stderr


def test_profile_into_an_unwritable_directory_keeps_the_childs_exit_code(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    target = blocker / "report.json"
    result = run_cli(
        "profile",
        "--sources",
        "cpu-estimate",
        "--json",
        str(target),
        "--",
        sys.executable,
        "-c",
        "raise SystemExit(3)",
        cwd=tmp_path,
        env={**os.environ, "HF_ECO2AI_OFFLINE": "1"},
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert f"could not be written to {target}" in result.stderr


KILLED_RUN = """
import sys, time
from hf_eco2ai import CarbonConfig, EnergyMeter
from hf_eco2ai.session.tracking_session import TrackingSession
config = CarbonConfig(output_dir=sys.argv[1], offline=True, country_iso_code="FR", measurement_interval=0.05,
                      project_name="killed")
session = TrackingSession(config, meter=EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 80.0},
                                                    rate_hz=500))
session.start()
for _ in range(30):
    time.sleep(0.005)
    session.mark_step()
with session.window("evaluate"):
    time.sleep(0.02)
time.sleep(0.02)  # a reading past the window's end, so that the drain below resolves it
session.log({"loss": 0.7})
session.flush()
print(session.run_id, flush=True)
time.sleep(60)
"""


def test_report_of_a_killed_run_is_rendered_from_its_stored_rows_marked_interrupted(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        child.kill()
    store = tmp_path / "runs.sqlite"
    markdown = run_cli("report", run_id[:10], "--store", str(store), cwd=tmp_path)
    assert markdown.returncode == 0, markdown.stderr
    assert "interrupted" in markdown.stdout and "ncomplete" in markdown.stdout
    as_json = run_cli("report", run_id, "--store", str(store), "--format", "json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["run"]["run_id"] == run_id and data["run"]["ended_unix_s"] is None
    assert [warning["code"] for warning in data["warnings"]] == ["run-interrupted"]
    assert len(data["steps"]) >= 25
    assert data["energy"]["it_kwh"] > 0 and data["total_co2_kg"] > 0
    (window,) = data["windows"]
    assert window["name"] == "evaluate" and window["count"] == 1
    assert window["mean_watts"] == pytest.approx(80.0, rel=0.1) and 0 < window["share_of_run"] < 1
    shown = run_cli("show", run_id, "--store", str(store), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert any(line.startswith("    evaluate: 1 ×, ") for line in shown.stdout.splitlines()), shown.stdout


def test_report_into_an_unwritable_path_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        child.kill()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "report.md"
    result = run_cli("report", run_id, "--store", str(tmp_path / "runs.sqlite"), "--output", str(target), cwd=tmp_path)
    assert result.returncode == 2
    assert f"--output {str(target)!r} cannot be written" in result.stderr and "Traceback" not in result.stderr
