"""The command line as a user runs it: `profile` writes what every run writes, the store commands
spell figures as the reports do, and the tool behaves in a pipeline."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest

import hf_eco2ai
from hf_eco2ai import CarbonConfig, EnergyMeter
from hf_eco2ai.carbon import tables
from hf_eco2ai.session.tracking_session import TrackingSession
from hf_eco2ai.store.run_store import RunIdentity, RunStore

CLI = [sys.executable, "-m", "hf_eco2ai.cli"]

pytestmark = pytest.mark.timeout(180)


def _environment() -> Dict[str, str]:
    """The caller's environment without hf-eco2ai settings, offline (locating the run sends
    nothing off this machine)."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith("HF_ECO2AI_")}
    return {**kept, "HF_ECO2AI_OFFLINE": "1"}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=_environment())


def _profile(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run_cli("profile", "--sources", "cpu-estimate", "--rate", "200", *args, cwd=cwd)


def _emissions_rows(output_dir: Path) -> List[Dict[str, str]]:
    with (output_dir / "emissions.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


# profile: the outputs of every run ---------------------------------------------------------------


def test_four_profile_runs_started_in_one_second_keep_four_sets_of_outputs(tmp_path: Path) -> None:
    command = [*CLI, "profile", "--sources", "cpu-estimate", "--country", "FR", "--", "true"]
    children = [
        subprocess.Popen(command, cwd=tmp_path, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr.decode()
    output_dir = tmp_path / "carbon_reports"
    stored = RunStore(output_dir / "runs.sqlite", read_only=True).list_runs()
    assert len(stored) == 4
    started = sorted(run.started_unix_s for run in stored)
    assert started[-1] - started[0] < 30
    for run in stored:
        stem = f"carbon_report_{run.run_id[:12]}"
        for suffix in (".json", ".html", ".md", ".steps.csv"):
            assert (output_dir / (stem + suffix)).is_file(), stem + suffix
        assert json.loads((output_dir / f"{stem}.json").read_text())["run"]["run_id"] == run.run_id
    rows = _emissions_rows(output_dir)
    assert sorted(row["run_id"] for row in rows) == sorted(run.run_id for run in stored)
    assert {row["intensity_source"] for row in rows} == {"country-table"}


def test_profile_resolves_country_and_region_as_every_run_does(tmp_path: Path) -> None:
    result = _profile("--country", "US", "--region", "CA", "--json", "p.json", "--", "true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    california = tables.subnational("US", "CA")
    assert california is not None
    profile = json.loads((tmp_path / "p.json").read_text())
    assert profile["intensity"]["g_per_kwh"] == california.g_per_kwh
    assert profile["intensity"]["source"] == "subnational-table"
    report = json.loads((tmp_path / profile["reports"]["json"]).read_text())
    assert report["total_co2_kg"] == pytest.approx(report["energy"]["total_kwh"] * california.g_per_kwh / 1000)
    assert f"{california.g_per_kwh:g} g/kWh (subnational-table US-CA" in result.stderr


def test_profile_with_an_unknown_country_names_the_setting(tmp_path: Path) -> None:
    result = _profile("--country", "Atlantis", "--", "true", cwd=tmp_path)
    assert result.returncode == 2
    assert "country_iso_code" in result.stderr and "Traceback" not in result.stderr


def test_profile_ends_with_one_summary_line_naming_carbon_and_the_report(tmp_path: Path) -> None:
    result = _profile("--country", "FR", "--", "true", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = [line for line in result.stderr.splitlines() if "CO2e at" in line]
    assert len(summary) == 1
    assert summary[0].startswith("hf-eco2ai: ") and "(country-table FR, " in summary[0]
    assert summary[0].endswith(".html") and Path(tmp_path, summary[0].rsplit("report ", 1)[1]).is_file()


def test_profile_of_a_command_that_cannot_start_leaves_no_run_and_no_report(tmp_path: Path) -> None:
    result = _profile("--json", "p.json", "--", "no-such-command-hf-eco2ai", cwd=tmp_path)
    assert result.returncode == 127
    assert "command not found: no-such-command-hf-eco2ai" in result.stderr
    assert not (tmp_path / "carbon_reports").exists()
    assert not (tmp_path / "p.json").exists()
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    result = _profile("--", str(script), cwd=tmp_path)
    assert result.returncode == 126 and "permission denied" in result.stderr
    assert not (tmp_path / "carbon_reports").exists()


def test_profile_with_an_interval_prints_progress_while_the_command_runs(tmp_path: Path) -> None:
    # The whole machine's energy grows while the command sleeps; a sleeping command's own share
    # (the default process scope) stays at about nothing.
    result = _profile(
        "--interval",
        "0.25",
        "--cpu-scope",
        "machine",
        "--",
        sys.executable,
        "-c",
        "import time; time.sleep(1.2)",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if " so far" in line]
    assert len(progress) >= 3
    assert all(line.startswith("hf-eco2ai: ") and " J" in line and "CO2e" in line for line in progress)
    without = _profile("--", sys.executable, "-c", "import time; time.sleep(0.6)", cwd=tmp_path)
    assert " so far" not in without.stderr


def test_profile_rejects_an_interval_that_is_not_positive(tmp_path: Path) -> None:
    result = _profile("--interval", "0", "--", "true", cwd=tmp_path)
    assert result.returncode == 2 and "--interval" in result.stderr


def test_sigterm_is_forwarded_to_the_child_and_the_run_is_kept(tmp_path: Path) -> None:
    child = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(43))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n"
    )
    with subprocess.Popen(
        [*CLI, "profile", "--sources", "cpu-estimate", "--", sys.executable, "-c", child],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_environment(),
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 43, stderr
    assert time.monotonic() - started < 20
    (run,) = RunStore(tmp_path / "carbon_reports" / "runs.sqlite", read_only=True).list_runs()
    assert run.status == "failed"
    assert _emissions_rows(tmp_path / "carbon_reports")[0]["status"] == "failed"


# The store commands ------------------------------------------------------------------------------


def _store_with_stepped_runs(output_dir: Path, steps_per_run: List[int]) -> List[str]:
    """Runs of a constant 50 W meter, each marking its steps; returns their ids."""
    run_ids = []
    for steps in steps_per_run:
        config = CarbonConfig(output_dir=str(output_dir), offline=True, country_iso_code="FR", project_name="cli")
        meter = EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": 50.0}, rate_hz=500)
        session = TrackingSession(config, meter=meter)
        session.start()
        for _ in range(steps):
            time.sleep(0.01)
            session.mark_step()
        time.sleep(0.01)
        session.stop()
        run_ids.append(session.run_id)
    return run_ids


@pytest.fixture
def stepped_store(tmp_path: Path) -> Path:
    _store_with_stepped_runs(tmp_path, [5, 10])
    return tmp_path / "runs.sqlite"


def test_steps_exclude_the_tail_record(stepped_store: Path, tmp_path: Path) -> None:
    store = RunStore(stepped_store, read_only=True)
    runs = sorted(store.list_runs(), key=lambda run: run.started_unix_s)
    stored = store.steps(runs[0].run_id)
    assert len(stored.index) == 6, "five steps and the tail are stored"
    assert [run.step_count for run in runs] == [5, 10]
    shown = run_cli("show", runs[0].run_id[:10], "--store", str(stepped_store), cwd=tmp_path)
    assert "steps 5," in shown.stdout


def test_runs_show_and_compare_spell_figures_as_the_reports_do(stepped_store: Path, tmp_path: Path) -> None:
    first, second = sorted(RunStore(stepped_store, read_only=True).list_runs(), key=lambda run: run.started_unix_s)
    listed = run_cli("runs", "--store", str(stepped_store), cwd=tmp_path)
    shown = run_cli("show", first.run_id, "--store", str(stepped_store), cwd=tmp_path)
    compared = run_cli("compare", first.run_id, second.run_id, "--store", str(stepped_store), cwd=tmp_path)
    for result in (listed, shown, compared):
        assert result.returncode == 0, result.stderr
        assert "0.000000" not in result.stdout
        assert " mg" in result.stdout and " J" in result.stdout
    assert "kg" not in listed.stdout.split("\n", 1)[0], "the header names no unit the figures do not use"


def test_compare_shows_co2_per_run_per_step_and_against_the_first(stepped_store: Path, tmp_path: Path) -> None:
    first, second = sorted(RunStore(stepped_store, read_only=True).list_runs(), key=lambda run: run.started_unix_s)
    result = run_cli("compare", first.run_id, second.run_id, "--store", str(stepped_store), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, base_line, other_line = result.stdout.splitlines()[:3]
    assert "CO2e" in header and "CO2e/step" in header
    assert base_line.count(" mg") == 2, "the run's CO2e and its CO2e per step"
    assert second.co2_kg_total is not None and first.co2_kg_total is not None
    expected = (second.co2_kg_total / first.co2_kg_total - 1) * 100
    assert f"{expected:+.1f} % CO2e" in other_line


def test_runs_lists_as_csv_and_json_at_full_precision(stepped_store: Path, tmp_path: Path) -> None:
    stored = {run.run_id: run for run in RunStore(stepped_store, read_only=True).list_runs()}
    as_json = run_cli("runs", "--store", str(stepped_store), "--format", "json", cwd=tmp_path)
    as_csv = run_cli("runs", "--store", str(stepped_store), "--format", "csv", cwd=tmp_path)
    listed_json = json.loads(as_json.stdout)
    listed_csv = list(csv.DictReader(as_csv.stdout.splitlines()))
    assert {row["run_id"] for row in listed_json} == set(stored) == {row["run_id"] for row in listed_csv}
    for row, csv_row in zip(listed_json, listed_csv):
        run = stored[row["run_id"]]
        assert row["energy_kwh"] == run.energy_kwh_total and row["co2_kg"] == run.co2_kg_total
        assert row["steps"] == run.step_count and row["intensity_source"] == "country-table"
        assert float(csv_row["energy_kwh"]) == run.energy_kwh_total
    wrong = run_cli("runs", "--store", str(stepped_store), "--format", "xml", cwd=tmp_path)
    assert wrong.returncode == 2 and "table" in wrong.stderr


def test_runs_of_an_empty_project_is_an_empty_list_in_json(stepped_store: Path, tmp_path: Path) -> None:
    result = run_cli("runs", "--store", str(stepped_store), "--project", "none", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout) == []


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"hf-eco2ai {hf_eco2ai.__version__}"


def test_runs_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    store_path = tmp_path / "many.sqlite"
    writer = RunStore(store_path).writer()
    now = time.time()
    for position in range(3000):
        writer.begin_run(
            RunIdentity(f"{position:032x}", "pipe", None, None, "elsewhere", 0, 0, 1, now - position, [], None, None)
        )
    writer.close()
    for output_format in ("table", "json"):
        pipeline = subprocess.run(
            f"{sys.executable} -m hf_eco2ai.cli runs --store {store_path} --limit 5000 --format {output_format} | head -1",
            shell=True,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=_environment(),
        )
        assert len(pipeline.stdout.splitlines()) == 1
        assert pipeline.stderr == "", pipeline.stderr
