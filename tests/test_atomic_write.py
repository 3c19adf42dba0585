"""Atomic report writes: the left-overs of a killed writer are cleaned at the next write."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hf_eco2ai.reporting.atomic import STALE_PARTIAL_AGE_S, write_text_atomically

pytestmark = pytest.mark.timeout(60)


def _killed_mid_write(directory: Path) -> Path:
    """Runs a writer that is SIGKILLed after its temporary file is written; returns what it left."""
    child = textwrap.dedent(f"""
        import os, signal
        from hf_eco2ai.reporting import atomic
        def killed(descriptor):
            os.kill(os.getpid(), signal.SIGKILL)
        atomic.os.fsync = killed
        atomic.write_text_atomically({str(directory / "report.json")!r}, "{{}}")
    """)
    finished = subprocess.run([sys.executable, "-c", child], env=dict(os.environ), timeout=30)
    assert finished.returncode == -9
    left = list(directory.glob(".report.json.*.partial"))
    assert len(left) == 1
    return left[0]


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_partial_file_left_by_a_killed_writer_is_removed_at_the_next_write(tmp_path: Path) -> None:
    left_over = _killed_mid_write(tmp_path)
    _age(left_over, STALE_PARTIAL_AGE_S + 5)
    write_text_atomically(tmp_path / "report.json", '{"ok": true}')
    assert not left_over.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.json"]


def test_recent_partial_file_may_be_another_writers_and_is_kept(tmp_path: Path) -> None:
    left_over = _killed_mid_write(tmp_path)
    write_text_atomically(tmp_path / "other.md", "# report")
    assert left_over.exists()


def test_only_report_temporaries_are_cleaned(tmp_path: Path) -> None:
    unrelated = [tmp_path / "notes.partial", tmp_path / ".hidden", tmp_path / "data.csv.partial"]
    for path in unrelated:
        path.write_text("keep")
        _age(path, STALE_PARTIAL_AGE_S * 10)
    write_text_atomically(tmp_path / "report.json", "{}")
    assert all(path.exists() for path in unrelated)


def test_write_into_a_directory_that_vanished_recreates_it(tmp_path: Path) -> None:
    target = tmp_path / "gone" / "deeper" / "report.json"
    assert write_text_atomically(target, "{}") == target
    assert target.read_text() == "{}"


def test_unwritable_directory_raises_os_error_and_leaves_nothing(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file-not-dir"
        blocker.write_text("")
        target = blocker / "report.json"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "report.json"
    with pytest.raises(OSError):
        write_text_atomically(target, "{}")
    assert not list(tmp_path.rglob("*.partial"))
