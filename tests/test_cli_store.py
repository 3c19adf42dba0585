"""`hf-eco2ai runs/show/compare/report/serve` over a real run store written by real sessions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import List

import pytest

from hf_eco2ai import CarbonConfig, EnergyMeter, TrackingSession

CLI = [sys.executable, "-m", "hf_eco2ai.cli"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def record_run(output_dir: Path, watts: float, steps: int) -> str:
    config = CarbonConfig(project_name="cli-test", output_dir=str(output_dir), country_iso_code="FR", offline=True)
    meter = EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": watts}, rate_hz=500)
    session = TrackingSession(config, meter=meter)
    session.start()
    for _ in range(steps):
        time.sleep(0.005)
        session.mark_step()
    session.stop()
    return session.run_id


@pytest.fixture(scope="module")
def stored_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    output_dir = tmp_path_factory.mktemp("runs")
    run_ids: List[str] = [record_run(output_dir, 50.0, 10), record_run(output_dir, 200.0, 10)]
    return output_dir / "runs.sqlite", run_ids


def test_runs_lists_every_stored_run(stored_runs: tuple, tmp_path: Path) -> None:
    store, run_ids = stored_runs
    result = run_cli("runs", "--store", str(store), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for run_id in run_ids:
        assert run_id[:12] in result.stdout
    assert "finished" in result.stdout


def test_show_prints_provenance_and_json(stored_runs: tuple, tmp_path: Path) -> None:
    store, run_ids = stored_runs
    human = run_cli("show", run_ids[0][:8], "--store", str(store), cwd=tmp_path)
    assert human.returncode == 0, human.stderr
    assert "country-table" in human.stdout and "synthetic:0" in human.stdout
    data = json.loads(run_cli("show", run_ids[0], "--store", str(store), "--json", cwd=tmp_path).stdout)
    assert data["summary"]["run_id"] == run_ids[0]
    assert data["report"]["total_co2_kg"] > 0


def test_compare_puts_the_hungrier_run_above_the_first(stored_runs: tuple, tmp_path: Path) -> None:
    store, run_ids = stored_runs
    result = run_cli("compare", *run_ids, "--store", str(store), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    second_line = [line for line in result.stdout.splitlines() if line.startswith(run_ids[1][:12])][0]
    assert "+" in second_line and "% energy" in second_line


def test_report_renders_a_stored_run(stored_runs: tuple, tmp_path: Path) -> None:
    store, run_ids = stored_runs
    out = tmp_path / "report.html"
    result = run_cli(
        "report", run_ids[1], "--store", str(store), "--format", "html", "--output", str(out), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().lstrip().lower().startswith("<!doctype html")


def test_unknown_run_and_missing_store_say_how_to_fix_them(stored_runs: tuple, tmp_path: Path) -> None:
    store, _ = stored_runs
    unknown = run_cli("show", "ffffffffffff", "--store", str(store), cwd=tmp_path)
    assert unknown.returncode == 2 and "hf-eco2ai runs" in unknown.stderr
    missing = run_cli("runs", "--store", str(tmp_path / "nope.sqlite"), cwd=tmp_path)
    assert missing.returncode == 2 and "--store" in missing.stderr


def test_serve_exposes_a_stored_run_to_prometheus_scrapers(stored_runs: tuple, tmp_path: Path) -> None:
    store, run_ids = stored_runs
    with subprocess.Popen(
        [*CLI, "serve", "--run", run_ids[0], "--store", str(store), "--port", "0", "--seconds", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    ) as server:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert "serving run" in line, server.stderr.read() if server.stderr else line
        url = line.split(" on ")[-1].strip()
        body = urllib.request.urlopen(url, timeout=10).read().decode()
        server.terminate()
        server.communicate(timeout=30)
    assert "hf_training_energy_kwh_total" in body
    assert "hf_training_step_count" in body
