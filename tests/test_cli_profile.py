"""`hf-eco2ai profile` and `hf-eco2ai devices`, run as a user would, on real child processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "hf_eco2ai.cli"]
# A profiled command is a run: offline, so that locating it sends nothing off this machine.
OFFLINE = {**os.environ, "HF_ECO2AI_OFFLINE": "1"}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=OFFLINE)


def test_profile_measures_a_child_and_writes_a_json_report(tmp_path: Path) -> None:
    report_path = tmp_path / "out" / "profile.json"
    result = run_cli(
        "profile",
        "--rate",
        "200",
        "--json",
        str(report_path),
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(0.3); print('child ran')",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "child ran" in result.stdout
    assert "joules" in result.stderr and "total" in result.stderr
    report = json.loads(report_path.read_text())
    assert report["exit_code"] == 0
    assert report["duration_s"] >= 0.3
    assert report["channels"], "at least one channel is measured"
    for channel in report["channels"]:
        assert channel["provenance"] in ("measured", "estimated")
        assert channel["joules"] >= 0
    assert report["total_joules"] == sum(c["joules"] for c in report["channels"] if c["part_of"] is None)
    assert report["meter"]["rate_hz"] == 200


def test_profile_exits_with_the_command_exit_code(tmp_path: Path) -> None:
    result = run_cli(
        "profile", "--json", str(tmp_path / "r.json"), "--", sys.executable, "-c", "raise SystemExit(7)", cwd=tmp_path
    )
    assert result.returncode == 7
    assert json.loads((tmp_path / "r.json").read_text())["exit_code"] == 7


def test_profile_of_a_missing_command_exits_127_with_a_message(tmp_path: Path) -> None:
    result = run_cli("profile", "--json", str(tmp_path / "r.json"), "--", "no-such-command-hf-eco2ai", cwd=tmp_path)
    assert result.returncode == 127
    assert "command not found: no-such-command-hf-eco2ai" in result.stderr


def test_profile_without_a_command_explains_the_usage(tmp_path: Path) -> None:
    result = run_cli("profile", cwd=tmp_path)
    assert result.returncode == 2
    assert "no command given" in result.stderr


def test_profile_with_a_bad_rate_names_it(tmp_path: Path) -> None:
    result = run_cli("profile", "--rate", "0", "--", "true", cwd=tmp_path)
    assert result.returncode == 2
    assert "rate_hz = 0" in result.stderr and "Traceback" not in result.stderr


def test_ctrl_c_is_forwarded_to_the_child_and_its_exit_code_kept(tmp_path: Path) -> None:
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(42))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    report_path = tmp_path / "r.json"
    with subprocess.Popen(
        [*CLI, "profile", "--json", str(report_path), "--", sys.executable, "-c", child],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=OFFLINE,
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        started = time.monotonic()
        # Only the profiler gets the signal, as with `kill -INT`; a terminal would signal both.
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    assert process.returncode == 42
    assert time.monotonic() - started < 10
    assert json.loads(report_path.read_text())["exit_code"] == 42


def test_devices_lists_every_source_with_channels_or_a_reason(tmp_path: Path) -> None:
    result = run_cli("devices", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    found = {entry["source"]: entry for entry in json.loads(result.stdout)}
    assert set(found) == {"nvml", "rapl", "cpu-estimate"}
    for entry in found.values():
        assert entry["channels"] if entry["available"] else entry["reason"]
    human = run_cli("devices", cwd=tmp_path)
    assert "cpu-estimate" in human.stdout
