"""The CPU channels' scope: the whole machine, or a process tree's share of it (its CPU time over
the machine's), and what every report says about the scope, the CPU estimate's inputs and DRAM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from fake_powercap import make_tree
from fake_proc import FakeProc

from hf_eco2ai import CarbonConfig, CarbonTracker, ConfigurationError, EnergyMeter, TrackingSession
from hf_eco2ai.errors import SensorUnavailableError
from hf_eco2ai.reporting import generate_carbon_report
from hf_eco2ai.session.distributed import RankInfo, sources_for_rank

CLI = [sys.executable, "-m", "hf_eco2ai.cli"]
BUSY_LOOP = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"
CHILD_PID = 4_000_001


def settle() -> None:
    """Long enough for several of the process share's 100 ms reads."""
    time.sleep(0.6)


@pytest.fixture
def fake_proc(tmp_path: Path) -> FakeProc:
    proc = FakeProc(tmp_path / "proc")
    proc.machine(busy_ticks=0, idle_ticks=10_000)
    proc.process(os.getpid(), utime=1_000, stime=0, cutime=0)
    proc.process(CHILD_PID, utime=0)
    proc.children(os.getpid(), [CHILD_PID])
    return proc


def advance(proc: FakeProc) -> None:
    """1,000 machine ticks, 600 busy; the tree used 250 of them: 100 own, 50 reaped, 100 child.
    The tree's files first: the share of an interval is taken once machine time has moved."""
    proc.process(CHILD_PID, utime=100)
    proc.process(os.getpid(), utime=1_100, cutime=50)
    proc.machine(busy_ticks=600, idle_ticks=10_400)


def estimate_meter(proc: FakeProc, **options: Any) -> EnergyMeter:
    return EnergyMeter(
        sources="cpu-estimate",
        cpu_tdp_watts=100.0,
        proc_stat_path=proc.root / "stat",
        proc_root=proc.root,
        rate_hz=50.0,
        **options,
    )


def watts_after_advance(meter: EnergyMeter, proc: FakeProc) -> float:
    with meter:
        settle()
        advance(proc)
        settle()
        watts = meter.totals()["watts"]["cpu:estimate"]
    return float(watts)


def test_machine_scope_charges_the_estimate_of_the_whole_machine(fake_proc: FakeProc) -> None:
    # 60 % busy: 100 W x (0.1 + 0.9 x 0.6)
    assert watts_after_advance(estimate_meter(fake_proc), fake_proc) == pytest.approx(64.0)


def test_process_scope_charges_the_trees_share_of_the_machine_cpu_time(fake_proc: FakeProc) -> None:
    meter = estimate_meter(fake_proc, cpu_scope="process")
    assert [channel.scope for channel in meter.channels()] == ["process"]
    # 250 of 1,000 machine ticks: a quarter of 64 W.
    assert watts_after_advance(meter, fake_proc) == pytest.approx(16.0)


def test_children_only_leaves_the_root_processes_own_time_out(fake_proc: FakeProc) -> None:
    meter = estimate_meter(fake_proc, cpu_scope="process", cpu_scope_children_only=True)
    # 50 reaped + 100 live child of 1,000.
    assert watts_after_advance(meter, fake_proc) == pytest.approx(0.15 * 64.0)


def test_process_scope_of_rapl_is_the_share_of_the_measured_energy(tmp_path: Path, fake_proc: FakeProc) -> None:
    zones = make_tree(tmp_path / "powercap", {"intel-rapl:0": ("package-0", 262_143_328_850, 1_000_000)})
    meter = EnergyMeter(
        sources="rapl", rapl_root=tmp_path / "powercap", proc_root=fake_proc.root, cpu_scope="process", rate_hz=50.0
    )
    with meter:
        settle()
        advance(fake_proc)
        settle()
        zones["intel-rapl:0"].write(11_000_000)
        settle()
        joules = meter.totals()["joules"]["cpu:package-0"]
    zones["intel-rapl:0"].close()
    assert [channel.scope for channel in meter.channels()] == ["process"]
    # 10 J measured, a quarter of it this tree's.
    assert joules == pytest.approx(2.5, abs=1e-6)
    assert meter.info()["channels"][0]["scope"] == "process"


def test_an_unknown_scope_is_a_configuration_error_naming_field_value_and_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"cpu_scope='processes' is not allowed: give 'machine'.*'process'"):
        EnergyMeter(sources="synthetic", cpu_scope="processes")
    with pytest.raises(ConfigurationError, match=r"cpu_scope = 'host' \(from argument\) is invalid"):
        CarbonConfig(cpu_scope="host")


def test_process_scope_without_a_readable_proc_says_why(tmp_path: Path) -> None:
    empty = tmp_path / "no-proc"
    empty.mkdir()
    with pytest.raises(SensorUnavailableError, match="cpu_scope='process': cannot read the CPU time of pid"):
        EnergyMeter(sources="cpu-estimate", cpu_tdp_watts=50.0, cpu_scope="process", proc_root=empty)


def test_process_scope_lets_every_rank_read_its_own_share_of_the_node() -> None:
    second_rank = RankInfo.from_env({"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"})
    assert sources_for_rank(("auto",), second_rank, cpu_scope="machine") == (("auto",), False, True)
    assert sources_for_rank(("auto",), second_rank, cpu_scope="process") == (("auto",), True, False)
    assert sources_for_rank(("cpu-estimate",), second_rank, cpu_scope="process")[0] == ("cpu-estimate",)


# The command line, on real processes ------------------------------------------------------------


def profile(tmp_path: Path, name: str, *args: str) -> dict:
    report_path = tmp_path / f"{name}.json"
    result = subprocess.run(
        [*CLI, "profile", "--country", "FR", "--sources", "cpu-estimate", "--json", str(report_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report: dict = json.loads(report_path.read_text())
    report["stderr"] = result.stderr
    return report


@pytest.fixture
def busy_neighbour() -> Iterator[subprocess.Popen]:
    """A process beside the profiled one, keeping a CPU busy."""
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(seconds=60)])
    time.sleep(0.3)
    yield neighbour
    neighbour.kill()
    neighbour.wait()


@pytest.mark.timeout(300)
def test_profile_charges_an_idle_command_far_less_than_the_machine_beside_a_busy_process(
    tmp_path: Path, busy_neighbour: subprocess.Popen
) -> None:
    process = profile(tmp_path, "process", "--", "sleep", "1")
    machine = profile(tmp_path, "machine", "--cpu-scope", "machine", "--", "sleep", "1")
    assert process["cpu_scope"] == "process" and machine["cpu_scope"] == "machine"
    assert "CPU scope: process (the command's share of the CPU energy)" in process["stderr"]
    assert "CPU scope: machine" in machine["stderr"]
    assert [row["scope"] for row in process["channels"]] == ["process"]
    assert [row["scope"] for row in machine["channels"]] == ["machine"]
    # The machine scope charges at least the idle floor (10 % of TDP) for a second; sleep uses
    # next to no CPU time.
    assert machine["total_joules"] > 0.09 * float(machine["meter"]["sources"][0]["tdp_watts"])
    assert process["total_joules"] < 0.1 * machine["total_joules"]


@pytest.mark.timeout(300)
def test_profile_charges_a_busy_grandchild_to_the_command(tmp_path: Path) -> None:
    busy = BUSY_LOOP.format(seconds=1.5)
    # The shell is the command; the busy Python is its child, running and then reaped.
    shell = f"{sys.executable} -c '{busy}' & wait"
    busy_report = profile(tmp_path, "busy", "--", "sh", "-c", shell)
    idle_report = profile(tmp_path, "idle", "--", "sleep", "1.5")
    assert busy_report["total_joules"] > 0
    assert busy_report["total_joules"] > 5 * idle_report["total_joules"]
    assert "CPU time of the children of pid" in busy_report["stderr"]


def test_profile_states_the_estimates_inputs_and_that_dram_was_not_measured(tmp_path: Path) -> None:
    report = profile(tmp_path, "notes", "--", "true")
    codes = [warning["code"] for warning in report["warnings"]]
    assert {"cpu-estimated", "dram-not-measured"} <= set(codes)
    assert "TDP" in report["warnings"][0]["message"]
    assert report["dram"]["measured"] is False
    assert "DRAM not measured" in report["stderr"]


# Reports ---------------------------------------------------------------------------------------


def scoped_session(tmp_path: Path) -> TrackingSession:
    config = CarbonConfig(
        output_dir=str(tmp_path / "carbon"),
        offline=True,
        country_iso_code="FR",
        sources="cpu-estimate",
        cpu_scope="process",
    )
    return TrackingSession(config, store=False, cloud=None)


def test_every_report_format_states_scope_estimate_inputs_and_dram(tmp_path: Path) -> None:
    session = scoped_session(tmp_path)
    session.start()
    session.mark_step()
    session.stop()
    report = session.report()
    channel = report["channels"][0]
    assert channel["scope"] == "process"
    inputs = channel["estimate_inputs"]
    assert inputs["tdp_watts"] > 0 and inputs["tdp_origin"] and inputs["utilisation_scope"] == "process"
    assert inputs["process_share"].startswith(f"CPU time of pid {os.getpid()} and its children")
    assert report["dram"] == {"measured": False, "channels": [], "note": report["dram"]["note"]}
    assert report["dram"]["note"].startswith("DRAM not measured")
    assert {warning["code"] for warning in report["warnings"]} >= {"cpu-estimated", "dram-not-measured"}

    tdp_text = f"TDP {inputs['tdp_watts']:g} W"
    as_json = json.loads(generate_carbon_report(report, "json"))
    assert as_json["channels"][0]["estimate_inputs"] == inputs
    markdown = generate_carbon_report(report, "markdown")
    assert "| Channel | Kind | Provenance | Scope |" in markdown
    assert "| cpu:estimate | power | estimated | process |" in markdown
    html = generate_carbon_report(report, "html")
    assert "<th>Scope</th>" in html and "<td>process</td>" in html
    for text in (markdown, html):
        assert tdp_text in text
        assert "DRAM not measured" in text
        assert "this process tree&#x27;s share" in text or "this process tree's share" in text


def test_a_measured_dram_zone_is_named_in_the_report(tmp_path: Path) -> None:
    zones = make_tree(
        tmp_path / "powercap",
        {"intel-rapl:0": ("package-0", 262_143_328_850), "intel-rapl:0:0": ("dram", 65_712_999_613)},
    )
    meter = EnergyMeter(sources="rapl", rapl_root=tmp_path / "powercap")
    session = TrackingSession(
        CarbonConfig(output_dir=str(tmp_path / "carbon"), offline=True, country_iso_code="FR"),
        meter=meter,
        store=False,
        cloud=None,
    )
    session.start()
    session.stop()
    for zone in zones.values():
        zone.close()
    report = session.report()
    assert report["dram"]["measured"] is True and report["dram"]["channels"] == ["dram:0"]
    assert "dram-not-measured" not in {warning["code"] for warning in report["warnings"]}
    assert "DRAM measured by RAPL: dram:0" in generate_carbon_report(report, "markdown")
    assert all(channel["scope"] == "machine" for channel in report["channels"])


def test_carbon_tracker_takes_the_scope(tmp_path: Path) -> None:
    tracker = CarbonTracker(
        output_dir=str(tmp_path / "carbon"),
        country_iso_code="FR",
        network_mode="offline",
        config=CarbonConfig(sources="cpu-estimate"),
        cpu_scope="process",
        store=False,
    )
    with tracker.start_tracking("work"):
        time.sleep(0.2)
    tracker.close()
    assert tracker.config.cpu_scope == "process"
    assert [channel["scope"] for channel in tracker.reports[-1]["channels"]] == ["process"]


@pytest.mark.timeout(300)
def test_a_trainer_callback_configured_for_process_scope_reports_it(tmp_path: Path) -> None:
    from tiny_training import TokenDataset, tiny_bert, training_arguments
    from transformers import Trainer

    from hf_eco2ai import Eco2AICallback

    callback = Eco2AICallback(
        CarbonConfig(
            output_dir=str(tmp_path / "carbon"),
            offline=True,
            country_iso_code="FR",
            sources="cpu-estimate",
            cpu_scope="process",
        )
    )
    Trainer(
        model=tiny_bert(),
        args=training_arguments(tmp_path / "out", max_steps=4),
        train_dataset=TokenDataset(32),
        callbacks=[callback],
    ).train()
    report = json.loads(callback.report_paths["json"].read_text())
    assert report["config"]["cpu_scope"] == "process"
    assert report["channels"][0]["scope"] == "process"
    assert report["channels"][0]["estimate_inputs"]["utilisation_scope"] == "process"
    # Training kept this process busy: its share of the estimate is more than nothing.
    assert report["energy"]["by_channel"]["cpu:estimate"]["joules"] > 0
    markdown = callback.report_paths["markdown"].read_text()
    assert "| cpu:estimate | power | estimated | process |" in markdown
    assert "DRAM not measured" in markdown
