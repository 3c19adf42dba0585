"""The pytest plugin: ``pytest --energy`` measures the energy of every test.

Registered through the ``pytest11`` entry point, so pytest loads this module in every run once
hf-eco2ai is installed. Without ``--energy`` it only adds its options: it imports nothing else,
starts no thread and registers no hook that runs per test.

With ``--energy``, one ``EnergyMeter`` runs for the whole session and each test's call phase is a
named window of it. At the end a table shows the tests that used the most energy (with whether
it was measured or estimated) and ``--energy-json`` (default ``.hf_eco2ai/pytest-energy.json``)
receives every test's figures. With pytest-benchmark, each benchmark's ``extra_info`` gains
``energy_joules_per_round`` and ``energy_joules_per_call``: the test's mean power times the mean
round (or call) time that pytest-benchmark measured.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional

import pytest

DEFAULT_JSON_PATH = ".hf_eco2ai/pytest-energy.json"
_RESOLVE_WAIT_S = 2.0


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("energy", "energy measurement (hf-eco2ai)")
    group.addoption(
        "--energy",
        action="store_true",
        default=False,
        help="measure the energy of each test and print the top tests by joules",
    )
    group.addoption(
        "--energy-json",
        default=DEFAULT_JSON_PATH,
        metavar="PATH",
        help=f"where --energy writes every test's figures as JSON (default {DEFAULT_JSON_PATH})",
    )
    group.addoption(
        "--energy-top", type=int, default=10, metavar="N", help="how many tests the --energy table shows (default 10)"
    )
    group.addoption(
        "--energy-sources",
        default="auto",
        metavar="SOURCES",
        help="comma-separated meter sources for --energy (default auto)",
    )


def pytest_configure(config: Any) -> None:
    if config.getoption("energy"):
        config.pluginmanager.register(TestEnergy(config), "hf_eco2ai-test-energy")


class TestEnergy:
    """The per-test measurement, registered only with ``--energy``."""

    __test__ = False  # a plugin, not a test class

    def __init__(self, config: Any) -> None:
        from hf_eco2ai.meter.energy_meter import EnergyMeter

        sources = [s.strip() for s in str(config.getoption("energy_sources")).split(",") if s.strip()]
        self._config = config
        self._meter = EnergyMeter(sources=sources if len(sources) > 1 else sources[0], rate_hz=200.0)
        self._channels = self._meter.channels()
        self._top = [i for i, channel in enumerate(self._channels) if channel.parent is None]
        self._names: Dict[str, str] = {}
        self._results: Dict[str, Dict[str, Any]] = {}
        self._benchmarks: Dict[str, Any] = {}
        self._meter.start()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: Any) -> Iterator[None]:
        window_name = f"test-{len(self._names)}"
        self._names[window_name] = item.nodeid
        with self._meter.window(window_name):
            yield
        benchmark = getattr(item, "funcargs", {}).get("benchmark")
        if benchmark is not None and getattr(benchmark, "stats", None) is not None:
            self._benchmarks[item.nodeid] = benchmark
            self._collect(wait_for=item.nodeid)
            self._annotate_benchmark(item.nodeid, benchmark)

    def _collect(self, wait_for: Optional[str] = None) -> None:
        import time

        deadline = time.monotonic() + _RESOLVE_WAIT_S
        while True:
            records = self._meter.drain_windows()
            for position, window_name in enumerate(records.name):
                nodeid = self._names.get(window_name)
                if nodeid is None:
                    continue
                joules = float(records.joules[position, self._top].sum())
                duration_s = float(records.duration_s[position])
                self._results[nodeid] = {
                    "nodeid": nodeid,
                    "joules": joules,
                    "duration_s": duration_s,
                    "mean_watts": joules / duration_s if duration_s > 0 else None,
                }
            # A window resolves at the first reading after it closes: one sampler period.
            if wait_for is None or wait_for in self._results or time.monotonic() > deadline:
                return
            time.sleep(0.005)

    def _annotate_benchmark(self, nodeid: str, benchmark: Any) -> None:
        result = self._results.get(nodeid)
        if result is None or result["mean_watts"] is None:
            return
        stats = benchmark.stats.stats
        iterations = getattr(benchmark.stats, "iterations", 1) or 1
        benchmark.extra_info["energy_joules_per_call"] = result["mean_watts"] * stats.mean
        benchmark.extra_info["energy_joules_per_round"] = result["mean_watts"] * stats.mean * iterations
        benchmark.extra_info["energy_provenance"] = self.provenance

    @property
    def provenance(self) -> str:
        from hf_eco2ai.benchmarking.measure_energy import provenance_of

        return provenance_of([self._channels[i].provenance for i in self._top])

    def _finish(self) -> List[Dict[str, Any]]:
        if self._meter.running:
            self._meter.stop()
            self._collect()
        return sorted(self._results.values(), key=lambda r: r["joules"], reverse=True)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        import json
        from pathlib import Path

        results = self._finish()
        provenance = self.provenance
        total_joules = sum(r["joules"] for r in results)
        top = int(self._config.getoption("energy_top"))
        channels = ", ".join(f"{self._channels[i].name} ({self._channels[i].provenance})" for i in self._top)
        terminalreporter.write_sep("=", f"energy per test ({provenance}; {channels})")
        terminalreporter.write_line(f"{'joules':>12} {'seconds':>9} {'watts':>8}  test")
        for result in results[:top]:
            watts = "-" if result["mean_watts"] is None else f"{result['mean_watts']:.1f}"
            terminalreporter.write_line(
                f"{result['joules']:>12.3f} {result['duration_s']:>9.3f} {watts:>8}  {result['nodeid']}"
            )
        terminalreporter.write_line(f"{total_joules:>12.3f} J in {len(results)} tests ({provenance})")
        path = Path(self._config.getoption("energy_json"))
        if not path.is_absolute():
            path = Path(str(self._config.rootpath)) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "provenance": provenance,
                    "channels": [
                        {
                            "name": self._channels[i].name,
                            "provenance": self._channels[i].provenance,
                            "source": self._channels[i].source,
                        }
                        for i in self._top
                    ],
                    "total_joules": total_joules,
                    "tests": results,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        terminalreporter.write_line(f"energy per test written to {path}")

    def pytest_unconfigure(self, config: Any) -> None:
        if self._meter.running:
            self._meter.stop()
