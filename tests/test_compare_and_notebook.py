"""``hf-eco2ai compare --html`` and ``show``'s windows as a user runs them (a real CLI process over
real stored runs), and what Jupyter shows for reports, CarbonMetrics and comparisons."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from headless_chromium import load
from test_report_html import _Dom
from test_report_windows_and_charts import SAMPLES_PER_LOG, phased_run

from hf_eco2ai.measure import CarbonTracker
from hf_eco2ai.reporting.report_object import CarbonReport
from hf_eco2ai.store.run_store import RunStore

CLI = [sys.executable, "-m", "hf_eco2ai.cli"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, List[Dict[str, Any]]]:
    directory = tmp_path_factory.mktemp("compare")
    reports = [phased_run(directory, epochs=1, steps_per_epoch=4), phased_run(directory, epochs=2, steps_per_epoch=6)]
    return directory / "runs.sqlite", reports


def _cli(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *arguments], capture_output=True, text=True, timeout=120, check=False)


def test_compare_writes_a_page_with_cards_per_step_and_per_sample_figures_and_overlaid_curves(
    two_runs: Tuple[Path, List[Dict[str, Any]]], tmp_path: Path
) -> None:
    store, reports = two_runs
    page_path = tmp_path / "page" / "compare.html"
    ids = [report["run"]["run_id"] for report in reports]
    completed = _cli("compare", ids[0][:10], ids[1], "--store", str(store), "--html", str(page_path))
    assert completed.returncode == 0, completed.stderr
    assert f"comparison page written to {page_path}" in completed.stdout

    html = page_path.read_text(encoding="utf-8")
    for forbidden in ("<script", "<link", "<img", "url(", " src=", " href="):
        assert forbidden not in html
    page = load(page_path)
    assert page.console == []
    dom = _Dom(page.dom)
    assert [run.attrs["data-run"] for run in dom.find("div", css_class="run")] == ids
    for chart in ("compare-step-chart", "compare-cumulative-chart", "compare-loss-chart"):
        assert [line.attrs["data-run"] for line in dom.find("polyline", chart=chart)] == [i[:12] for i in ids]

    cells = [cell.text for cell in dom.find("td")]
    second = cells[cells.index(ids[1][:12]) :][:9]
    steps = reports[1]["step_series"]["steps"]
    joules = reports[1]["energy"]["total_kwh"] * 3.6e6
    assert second[1] == str(steps) == "12"
    assert float(second[4]) == pytest.approx(joules / steps, rel=1e-3)
    assert float(second[6]) == pytest.approx(joules / (6 * SAMPLES_PER_LOG), rel=1e-3)
    first_kwh = reports[0]["energy"]["total_kwh"]
    assert second[8] == f"{(reports[1]['energy']['total_kwh'] / first_kwh - 1) * 100:+.1f} %"


def test_compare_names_an_unknown_run_without_a_traceback(
    two_runs: Tuple[Path, List[Dict[str, Any]]], tmp_path: Path
) -> None:
    store, reports = two_runs
    completed = _cli(
        "compare", reports[0]["run"]["run_id"], "nosuchrun", "--store", str(store), "--html", str(tmp_path / "x.html")
    )
    assert completed.returncode == 2 and "nosuchrun" in completed.stderr and "Traceback" not in completed.stderr
    assert not (tmp_path / "x.html").exists()


def test_show_lists_the_windows(two_runs: Tuple[Path, List[Dict[str, Any]]]) -> None:
    store, reports = two_runs
    completed = _cli("show", reports[1]["run"]["run_id"], "--store", str(store))
    assert completed.returncode == 0, completed.stderr
    window = reports[1]["windows"][0]
    lines = completed.stdout.splitlines()
    assert "  windows (1 names)" in lines
    (line,) = [line for line in lines if line.startswith("    validation: ")]
    assert line.startswith("    validation: 2 ×, ")
    assert f"{window['share_of_run'] * 100:.1f} % of the run" in line


def test_a_session_report_shows_cards_and_the_step_chart_in_jupyter(
    two_runs: Tuple[Path, List[Dict[str, Any]]], tmp_path: Path
) -> None:
    _, reports = two_runs
    report = reports[1]
    assert isinstance(report, CarbonReport) and isinstance(report, dict)
    fragment = report._repr_html_() or ""
    # A notebook puts the fragment inside its own page: it must load there cleanly too.
    notebook_page = tmp_path / "notebook.html"
    notebook_page.write_text(f"<!DOCTYPE html><html><body>{fragment}</body></html>", encoding="utf-8")
    assert load(notebook_page).console == []
    dom = _Dom(fragment)
    labels = [e.text for e in dom.find("div", css_class="label")]
    assert labels[:4] == ["Emissions", "Energy", "Duration", "Carbon intensity"]
    bars = dom.find("rect", chart="step-chart", css_class="bar")
    # The 12 training steps and the tail (last mark to stop), each bar stacked by channel.
    assert len({bar.attrs["data-step"] for bar in bars}) == 13
    assert {bar.attrs["data-channel"] for bar in bars} == {"synthetic:0", "synthetic:1"}
    assert dom.find("script") == []
    assert CarbonReport({"not": "a report"})._repr_html_() is None


def test_a_comparison_shows_cards_and_curves_in_jupyter(two_runs: Tuple[Path, List[Dict[str, Any]]]) -> None:
    store, reports = two_runs
    comparison = RunStore(store, read_only=True).compare([r["run"]["run_id"] for r in reports])
    assert [summary.run_id for summary in comparison] == [r["run"]["run_id"] for r in reports]
    assert comparison.rows()[1]["joules_per_step"] == pytest.approx(comparison.runs[1].joules_per_step)
    dom = _Dom(comparison._repr_html_())
    assert len(dom.find("div", css_class="run")) == 2
    assert len(dom.find("polyline", chart="compare-step-chart")) == 2


def test_carbon_metrics_has_a_short_repr_and_cards_in_jupyter(tmp_path: Path) -> None:
    tracker = CarbonTracker(
        project_name="notebook", output_dir=str(tmp_path), country_iso_code="FR", network_mode="offline"
    )
    with tracker.start_tracking("fit"):
        time.sleep(0.05)
    metrics = tracker.stop_tracking("fit")
    text = repr(metrics)
    assert text.startswith("CarbonMetrics('fit': ") and "CO2e" in text and "gCO2e/kWh from" in text
    assert len(text) < 200
    dom = _Dom(metrics._repr_html_())
    assert [e.text for e in dom.find("div", css_class="label")][:4] == [
        "Emissions",
        "Energy",
        "Duration",
        "Carbon intensity",
    ]
    assert dom.find("div", css_class="title")[0].text == "Carbon metrics: fit"
    assert [e.text for e in dom.find("code")] == list(metrics.energy_joules_by_channel)
