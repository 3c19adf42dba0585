"""The HTML report rendered by real headless Chromium: both charts drawn, no console errors."""

from __future__ import annotations

import csv
import io
import math
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from headless_chromium import load, png_colour_counts, screenshot
from report_data import make_tracking_data, tracking_data_from_meter

from hf_eco2ai.meter.energy_meter import EnergyMeter
from hf_eco2ai.reporting.generate import generate_carbon_report
from hf_eco2ai.reporting.svg_charts import MAX_BARS, MAX_POINTS_PER_LINE, PALETTE


class _Element:
    def __init__(self, tag: str, attrs: Dict[str, str], chart: Optional[str]) -> None:
        self.tag, self.attrs, self.chart = tag, attrs, chart
        self.text = ""


class _Dom(HTMLParser):
    """Flat list of elements, each knowing which chart (``<svg id=...>``) it lies in."""

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.elements: List[_Element] = []
        self._open: List[_Element] = []
        self.feed(markup)

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        values = {name: value or "" for name, value in attrs}
        chart = next((e.attrs.get("id") for e in reversed(self._open) if e.tag == "svg"), None)
        if tag == "svg":
            chart = values.get("id")
        element = _Element(tag, values, chart)
        self.elements.append(element)
        if tag not in ("meta", "br", "img", "input", "link"):
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.handle_starttag(tag, attrs)
        if self._open and self._open[-1].tag == tag:
            self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1].text += data

    def find(self, tag: str, chart: Optional[str] = None, css_class: Optional[str] = None) -> List[_Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag
            and (chart is None or e.chart == chart)
            and (css_class is None or css_class in e.attrs.get("class", "").split())
        ]


def _write_report(data: Dict[str, Any], directory: Path, name: str = "report.html") -> Path:
    path = directory / name
    generate_carbon_report(data, output_format="html", output_path=path)
    return path


def _hex_to_rgb(colour: str) -> Tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_console_capture_reports_svg_errors(tmp_path: Path) -> None:
    # The control for the no-console-errors assertions below: a broken chart must be seen.
    broken = tmp_path / "broken.html"
    broken.write_text(
        '<!DOCTYPE html><html><body><svg viewBox="0 0 10 10">'
        '<rect width="4" height="-2"/><polyline points="1,2 x,y"/></svg></body></html>',
        encoding="utf-8",
    )
    console = load(broken).console
    assert any("height" in line for line in console), console
    assert any("points" in line for line in console), console


def test_report_loads_with_both_charts_and_no_console_errors(tmp_path: Path) -> None:
    data = make_tracking_data(sensor_failure_step=13)
    page = load(_write_report(data, tmp_path))
    assert page.console == []
    dom = _Dom(page.dom)

    assert len(dom.find("svg", chart="power-chart")) == 1
    lines = dom.find("polyline", chart="power-chart", css_class="series")
    assert {line.attrs["data-channel"] for line in lines} == set(data["power_trace"]["watts"])
    for line in lines:
        points = line.attrs["points"].split()
        assert len(points) >= 2
        for point in points:
            x, y = (float(v) for v in point.split(","))
            assert 0 <= x <= 860 and 0 <= y <= 300

    assert len(dom.find("svg", chart="step-chart")) == 1
    bars = dom.find("rect", chart="step-chart", css_class="bar")
    assert sorted({int(bar.attrs["data-step"]) for bar in bars}) == [s["index"] for s in data["steps"]]
    assert all(float(bar.attrs["height"]) >= 0 for bar in bars)
    assert len(dom.find("rect", chart="step-chart", css_class="tail")) > 0
    assert len(dom.find("path", chart="step-chart", css_class="sensor-error")) == 1

    badges = [e.text for e in dom.find("span", css_class="badge")]
    assert "estimated" in badges and "measured" in badges
    body_text = " ".join(e.text for e in dom.elements)
    assert "Our World in Data (CC BY 4.0)" in body_text and "2023" in body_text
    assert "Incomplete report:" in body_text


def test_taller_bars_are_the_steps_with_more_energy(tmp_path: Path) -> None:
    data = make_tracking_data()
    dom = _Dom(load(_write_report(data, tmp_path)).dom)
    stack_height: Dict[int, float] = {}
    for bar in dom.find("rect", chart="step-chart", css_class="bar"):
        step = int(bar.attrs["data-step"])
        stack_height[step] = stack_height.get(step, 0.0) + float(bar.attrs["height"])
    steps = {step["index"]: step["joules"] for step in data["steps"]}
    largest, smallest = max(steps, key=steps.__getitem__), min(steps, key=steps.__getitem__)
    assert stack_height[largest] == max(stack_height.values())
    assert stack_height[smallest] == min(stack_height.values())
    # Heights are proportional to energy (the stacks hold top-level channels only).
    ratio = stack_height[largest] / steps[largest]
    for step, joules in steps.items():
        assert stack_height[step] == pytest.approx(joules * ratio, abs=0.05)


def test_screenshot_shows_painted_charts(tmp_path: Path) -> None:
    data = make_tracking_data(sensor_failure_step=13)
    png = tmp_path / "report.png"
    assert screenshot(_write_report(data, tmp_path), png, width=1100, height=1500) == []
    colours = png_colour_counts(png)
    gpu, _, core_inside_package, _ = (_hex_to_rgb(colour) for colour in PALETTE[:4])
    # gpu:0 fills the lower part of most bars: tens of thousands of pixels, far more than a swatch.
    assert colours[gpu] > 10_000
    # cpu:core-0 is never stacked (it lies inside cpu:package-0), so its colour comes from its line
    # in the power chart; its legend swatch alone has under 50 pixels.
    assert colours[core_inside_package] > 300


def test_text_from_the_data_is_escaped(tmp_path: Path) -> None:
    data = make_tracking_data()
    hostile = '<script>document.title="pwned"</script><b>&amp;'
    data["run"]["project_name"] = hostile
    data["warnings"] = [
        {"code": "sensor-failed", "message": '"><img src=x onerror=alert(1)>', "channel": "gpu:0", "t_s": 1.0}
    ]
    page = load(_write_report(data, tmp_path))
    assert page.console == []
    dom = _Dom(page.dom)
    assert dom.find("script") == [] and dom.find("img") == [] and dom.find("b") == []
    assert dom.find("title")[0].text == f"Carbon report: {hostile}"
    assert hostile in dom.find("h1")[0].text


def test_page_is_self_contained(tmp_path: Path) -> None:
    data = make_tracking_data()
    data["comparisons"][0]["citation"] = "https://www.epa.gov/energy/greenhouse-gas-equivalencies-calculator"
    html = generate_carbon_report(data, "html")
    # The citation's address is shown as text, never fetched or linked.
    assert "https://www.epa.gov/energy/" in html
    for forbidden in ("<script", "<link", "<img", "<iframe", "@import", "url(", " src=", " href="):
        assert forbidden not in html
    assert re.findall(r'xmlns="([^"]+)"', html) == ["http://www.w3.org/2000/svg"] * html.count("<svg ")


def test_long_run_stays_within_the_drawing_limits(tmp_path: Path) -> None:
    data = make_tracking_data(step_count=1999, steps_per_epoch=500, step_seconds=0.05, trace_points=4000)
    page = load(_write_report(data, tmp_path))
    assert page.console == []
    dom = _Dom(page.dom)
    bar_count = len({bar.attrs["data-step"] for bar in dom.find("rect", chart="step-chart", css_class="bar")})
    assert bar_count <= MAX_BARS
    for line in dom.find("polyline", chart="power-chart", css_class="series"):
        assert len(line.attrs["points"].split()) <= MAX_POINTS_PER_LINE
    caption = " ".join(e.text for e in dom.find("figcaption"))
    steps_per_bar = int(re.search(r"Each bar is the mean of (\d+) consecutive steps", caption).group(1))
    training_steps = len(data["steps"]) - 1
    # Every training step lies in exactly one bar; the tail has a bar of its own.
    assert bar_count == math.ceil(training_steps / steps_per_bar) + 1
    tail_bars = dom.find("rect", chart="step-chart", css_class="tail")
    assert {bar.attrs["data-step"] for bar in tail_bars} == {str(data["steps"][-1]["index"])}


def test_a_tail_longer_than_the_steps_is_clipped_and_labelled(tmp_path: Path) -> None:
    data = make_tracking_data(step_count=30, step_seconds=0.05, tail_seconds=2.0)
    page = load(_write_report(data, tmp_path))
    assert page.console == []
    dom = _Dom(page.dom)
    assert [float(bar.attrs["y"]) for bar in dom.find("rect", chart="step-chart", css_class="tail")][
        -1
    ] == pytest.approx(18.0)
    labels = [e.text for e in dom.find("text", chart="step-chart", css_class="clipped-label")]
    assert labels == [f"{data['steps'][-1]['joules']:.3g} J ↑"]


def test_report_of_a_real_synthetic_meter_run(tmp_path: Path) -> None:
    meter = EnergyMeter(
        sources="synthetic",
        rate_hz=500.0,
        synthetic=[
            {"kind": "square", "low_watts": 50, "high_watts": 250, "period_s": 0.1},
            {"kind": "constant", "watts": 40},
        ],
    )
    with meter:
        for _ in range(12):
            time.sleep(0.03)
            meter.mark_step()
    data = tracking_data_from_meter(meter)
    assert len(data["steps"]) == 13  # 12 marked steps and the tail

    page = load(_write_report(data, tmp_path))
    assert page.console == []
    dom = _Dom(page.dom)
    assert {line.attrs["data-channel"] for line in dom.find("polyline", chart="power-chart")} == {
        "synthetic:0",
        "synthetic:1",
    }
    bars = dom.find("rect", chart="step-chart", css_class="bar")
    assert sorted({int(bar.attrs["data-step"]) for bar in bars}) == list(range(13))

    rows = list(csv.DictReader(io.StringIO(generate_carbon_report(data, "csv"))))
    assert [float(row["joules[synthetic:1]"]) for row in rows] == [
        step["joules_by_channel"]["synthetic:1"] for step in data["steps"]
    ]
    # The constant 40 W channel integrates to 40 W × each step's duration.
    for row in rows:
        assert float(row["joules[synthetic:1]"]) == pytest.approx(40.0 * float(row["duration_s"]), rel=1e-6)
