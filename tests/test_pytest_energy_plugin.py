"""The pytest plugin: ``pytest --energy`` prints a table of tests by joules and writes JSON;
without the flag it changes nothing."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import List

import pytest
import tomllib

pytest_plugins = ["pytester"]

PLUGIN = "hf_eco2ai.benchmarking.pytest_plugin"
ROOT = Path(__file__).resolve().parents[1]

TESTS = """
import time

def test_long():
    time.sleep(0.2)

def test_short():
    time.sleep(0.02)

def test_benchmarked(benchmark):
    benchmark.pedantic(time.sleep, args=(0.01,), rounds=5, iterations=2)
"""


def _plugin_args() -> List[str]:
    # Installed, the entry point loads the plugin already; -p would register it twice.
    installed = any(point.value == PLUGIN for point in entry_points(group="pytest11"))
    return [] if installed else ["-p", PLUGIN]


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"]["hf_eco2ai"] == PLUGIN


def test_energy_prints_the_top_tests_and_writes_json(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_work=TESTS)
    result = pytester.runpytest(
        *_plugin_args(),
        "--energy",
        "--energy-sources",
        "synthetic",
        "--energy-json",
        "out/energy.json",
        "--benchmark-json",
        "bench.json",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*energy per test (measured; synthetic:0 (measured))*", "*joules*seconds*watts*test*"])
    lines = result.stdout.str().splitlines()
    table = [line for line in lines if "test_work.py::" in line and line.strip()[0].isdigit()]
    assert "test_long" in table[0]  # the longest test used the most energy

    report = json.loads((pytester.path / "out" / "energy.json").read_text())
    by_test = {entry["nodeid"].split("::")[1]: entry for entry in report["tests"]}
    assert set(by_test) == {"test_long", "test_short", "test_benchmarked"}
    assert by_test["test_long"]["joules"] > by_test["test_short"]["joules"] > 0
    assert by_test["test_long"]["duration_s"] >= 0.2
    assert report["provenance"] == "measured" and report["channels"][0]["name"] == "synthetic:0"
    assert report["total_joules"] == pytest.approx(sum(entry["joules"] for entry in report["tests"]))

    [benchmark] = json.loads((pytester.path / "bench.json").read_text())["benchmarks"]
    extra = benchmark["extra_info"]
    assert extra["energy_joules_per_round"] == pytest.approx(2 * extra["energy_joules_per_call"])
    assert extra["energy_joules_per_call"] > 0 and extra["energy_provenance"] == "measured"


def test_without_the_flag_the_plugin_imports_starts_and_writes_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_work="""
import sys, threading

def test_nothing_of_the_plugin_runs():
    assert "hf_eco2ai.benchmarking.pytest_plugin" in sys.modules
    assert "hf_eco2ai.meter.energy_meter" not in sys.modules and "numpy" not in sys.modules
    assert not [t for t in threading.enumerate() if t.name.startswith("hf-eco2ai")]
"""
    )
    result = pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", "-p", "no:benchmark")
    result.assert_outcomes(passed=1)
    assert "energy per test" not in result.stdout.str()
    assert not (pytester.path / ".hf_eco2ai").exists()
    assert result.ret == 0
