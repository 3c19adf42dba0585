"""The Windows section in every report format, and the HTML report's timeline charts, from a real
TrackingSession run with training steps, validation windows, epochs and logged losses."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any, Dict

import pytest
from headless_chromium import load
from nvml_emulator import run_emulated
from report_data import make_tracking_data
from test_report_html import _Dom

from hf_eco2ai import CarbonConfig, EnergyMeter, TrackingSession
from hf_eco2ai.meter.window_estimates import WindowEstimate, WindowEstimates
from hf_eco2ai.reporting.generate import generate_carbon_report
from hf_eco2ai.reporting.numbers import significant
from hf_eco2ai.reporting.svg_charts import FRAME

TOP_LEVEL_WATTS = 140.0
STEP_S = 0.02
VALIDATION_S = 0.06


SAMPLES_PER_LOG = 8


def phased_run(output_dir: Path, epochs: int = 2, steps_per_epoch: int = 6) -> Dict[str, Any]:
    """A real session's report (the run stored under ``output_dir``): training steps, a
    validation window after each epoch, a loss and ``SAMPLES_PER_LOG`` samples logged every other
    step."""
    config = CarbonConfig(project_name="phases", output_dir=str(output_dir), country_iso_code="FR", offline=True)
    meter = EnergyMeter(
        sources="synthetic",
        synthetic=[{"kind": "constant", "watts": 100.0}, {"kind": "constant", "watts": 40.0}],
        rate_hz=500,
    )
    session = TrackingSession(config, meter=meter).start()
    step = 0
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            time.sleep(STEP_S)
            session.mark_step()
            step += 1
            if step % 2 == 0:
                session.log({"loss": 2.0 / step, "samples": SAMPLES_PER_LOG}, step=step)
        session.epoch_end()
        with session.window("validation"):
            time.sleep(VALIDATION_S)
    session.stop()
    return session.report()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    return phased_run(tmp_path_factory.mktemp("phases"))


def test_windows_carry_count_mean_energy_mean_power_and_share(report: Dict[str, Any]) -> None:
    (window,) = report["windows"]
    run_joules = report["energy"]["it_kwh"] * 3.6e6
    assert window["name"] == "validation" and window["count"] == 2
    assert window["mean_joules"] == pytest.approx(window["joules"] / 2)
    assert window["mean_watts"] == pytest.approx(TOP_LEVEL_WATTS, rel=0.05)
    assert window["share_of_run"] == pytest.approx(window["joules"] / run_joules)
    assert 0.2 < window["share_of_run"] < 0.8
    spans = report["window_spans"]["validation"]
    assert spans["complete"] and len(spans["t0_s"]) == 2
    assert all(t1 - t0 == pytest.approx(VALIDATION_S, abs=0.03) for t0, t1 in zip(spans["t0_s"], spans["t1_s"]))
    assert report["loss_series"]["points"] == 6 and report["loss_series"]["loss"][0] == pytest.approx(1.0)


def test_json_markdown_and_csv_summary_show_the_windows(report: Dict[str, Any]) -> None:
    window = report["windows"][0]
    as_json = json.loads(generate_carbon_report(report, "json"))
    assert as_json["windows"][0]["share_of_run"] == pytest.approx(window["share_of_run"])

    markdown = generate_carbon_report(report, "markdown")
    section = markdown.split("## Windows", 1)[1].split("\n## ", 1)[0]
    header = next(line for line in section.splitlines() if line.startswith("| Window"))
    row = next(line for line in section.splitlines() if line.startswith("| validation"))
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    assert cells["Count"] == "2"
    assert float(cells["Mean power (W)"]) == pytest.approx(TOP_LEVEL_WATTS, rel=0.05)
    assert cells["Share of run"] == f"{window['share_of_run'] * 100:.1f} %"

    rows = list(csv.DictReader(io.StringIO(generate_carbon_report(report, "csv-summary"))))
    window_rows = {row["metric"]: row for row in rows if row["section"] == "window" and row["scope"] == "validation"}
    assert float(window_rows["mean_watts"]["value"]) == pytest.approx(window["mean_watts"])
    assert window_rows["mean_watts"]["unit"] == "W" and int(window_rows["count"]["value"]) == 2


def test_window_estimates_appear_beside_the_measured_figures(report: Dict[str, Any]) -> None:
    estimate = WindowEstimate("validation", 2, 0.06, 151.5, 2.25, 9.09, 0.135)
    data = {
        **report,
        "window_estimates": WindowEstimates(["gpu:0"], {"validation": estimate}, 120.0, 480, 1.0).as_dict(),
    }
    markdown = generate_carbon_report(data, "markdown")
    assert "Estimated mean energy (J)" in markdown and "9.09 ± 0.14" in markdown and "151.5 ± 2.2" in markdown
    assert "480 stairs of gpu:0" in markdown
    dom = _Dom(generate_carbon_report(data, "html"))
    cells = [cell.text for cell in dom.find("td")]
    assert "9.09 ± 0.14" in cells
    summary = list(csv.DictReader(io.StringIO(generate_carbon_report(data, "csv-summary"))))
    estimated = {row["metric"]: row["value"] for row in summary if row["section"] == "window-estimate"}
    assert float(estimated["mean_joules"]) == 9.09 and float(estimated["mean_watts_stderr"]) == 2.25


def test_html_charts_split_training_and_validation(report: Dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    generate_carbon_report(report, "html", path)
    page = load(path)
    assert page.console == []
    dom = _Dom(page.dom)
    for chart in ("power-chart", "cumulative-chart"):
        spans = dom.find("rect", chart=chart, css_class="evaluation-span")
        assert [span.attrs["data-window"] for span in spans] == ["validation", "validation"]
    bars = dom.find("rect", chart="windows-chart", css_class="window-bar")
    assert [bar.attrs["data-window"] for bar in bars] == ["validation"]
    assert {bar.attrs["data-epoch"] for bar in dom.find("rect", chart="epoch-chart", css_class="bar")} == {"0", "1"}
    # The first validation ran after epoch 0 ended, inside epoch 1's first step; the second after
    # the last epoch ended, in the tail: only epoch 1 has an evaluation bar, as tall as one window.
    (evaluation_bar,) = dom.find("rect", chart="epoch-chart", css_class="evaluation-bar")
    assert evaluation_bar.attrs["data-epoch"] == "1"
    assert len(dom.find("polyline", chart="energy-loss-chart", css_class="loss")) == 1
    assert len(dom.find("polyline", chart="energy-loss-chart", css_class="step-energy")) == 1


def test_cumulative_curve_rises_to_the_run_total(report: Dict[str, Any]) -> None:
    dom = _Dom(generate_carbon_report(report, "html"))
    (curve,) = dom.find("polyline", chart="cumulative-chart", css_class="cumulative")
    ys = [float(point.split(",")[1]) for point in curve.attrs["points"].split()]
    assert ys == sorted(ys, reverse=True), "the cumulative line never goes down"
    assert ys[0] == pytest.approx(FRAME.bottom) and ys[-1] > FRAME.top
    (label,) = dom.find("text", chart="cumulative-chart", css_class="end-label")
    assert "CO2e" in label.text and "J" in label.text


def test_power_chart_has_headroom_and_labels_the_estimate(tmp_path: Path) -> None:
    data = make_tracking_data()
    dom = _Dom(generate_carbon_report(data, "html"))
    ys = [
        float(point.split(",")[1])
        for line in dom.find("polyline", chart="power-chart", css_class="series")
        for point in line.attrs["points"].split()
    ]
    assert min(ys) > FRAME.top + 0.04 * (FRAME.bottom - FRAME.top)
    labels = dom.find("text", chart="power-chart", css_class="estimate-label")
    assert [(label.attrs["data-channel"], label.text) for label in labels] == [
        ("dram:0", "dram:0: estimated, not measured")
    ]


SHORT_WINDOWS_RUN = """
import json, random, time, tempfile
from hf_eco2ai import CarbonConfig, EnergyMeter, TrackingSession
from hf_eco2ai.reporting.generate import generate_carbon_report
from hf_eco2ai.reporting.numbers import significant
config = CarbonConfig(project_name="short", output_dir=tempfile.mkdtemp(), country_iso_code="FR", offline=True)
session = TrackingSession(config, meter=EnergyMeter(sources="nvml", rate_hz=500)).start()
random.seed(0)
deadline = time.monotonic() + 1.5
while time.monotonic() < deadline:
    with session.window("forward"):
        time.sleep(0.004)
    time.sleep(random.uniform(0.001, 0.008))
    session.mark_step()
session.stop()
report = session.report()
print(json.dumps({"section": report["window_estimates"], "markdown": generate_carbon_report(report, "markdown")}))
"""


def test_an_emulated_gpu_runs_short_windows_and_the_report_shows_their_estimate(nvml_emulator_dir: Path) -> None:
    result = run_emulated(nvml_emulator_dir, "gpus=1;stair_ms=20", SHORT_WINDOWS_RUN)
    estimate = result["section"]["windows"]["forward"]
    assert estimate["repetitions"] > 50 and estimate["mean_joules"] is not None
    section = result["markdown"].split("## Windows", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if line.startswith("| forward"))
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[-2].startswith(significant(estimate["mean_joules"]) + " ± ")
    assert f"{result['section']['stairs_used']} stairs of gpu:0" in section
