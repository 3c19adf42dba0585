"""What users see of a traced run: ``hf-eco2ai show``/``compare``, the HTML report's gradient
chart, and the Prometheus anomaly counter."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from tracer_training import train

from hf_eco2ai.integrations.prometheus import SnapshotCollector

PLANT_STEP = 60


def cli(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hf_eco2ai.cli", *arguments], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("traced")
    healthy = train(tmp_path, steps=100)["tracer"]
    exploded = train(tmp_path, steps=100, plant="explosion", plant_step=PLANT_STEP)["tracer"]
    return {"store": str(tmp_path / "tracer" / "runs.sqlite"), "healthy": healthy, "exploded": exploded}


def test_show_prints_gradient_norms_per_layer_and_the_anomalies(runs: Dict[str, Any]) -> None:
    result = cli("show", runs["exploded"].run_id[:10], "--store", runs["store"])
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "gradient norms (100 steps, 4 layer groups)" in out
    layer_lines = [line.split() for line in out.splitlines() if re.match(r"\s+[0-6]\s", line)]
    assert [line[0] for line in layer_lines] == ["0", "2", "4", "6"]
    assert all(float(line[3]) > 1e3 for line in layer_lines)  # the max over the run is the explosion's
    assert "anomalies: 6" in out
    assert re.search(r"step\s+60\s+gradient_explosion\s+total", out)


def test_show_of_a_healthy_run_lists_no_anomalies_and_json_has_the_section(runs: Dict[str, Any]) -> None:
    result = cli("show", runs["healthy"].run_id, "--store", runs["store"])
    assert "anomalies: 0" in result.stdout
    as_json = json.loads(cli("show", runs["healthy"].run_id, "--store", runs["store"], "--json").stdout)
    assert as_json["gradients"]["steps"] == list(range(100))
    assert as_json["gradients"]["anomalies"] == []


def test_compare_prints_loss_and_gradient_norm_curves_at_common_steps(runs: Dict[str, Any]) -> None:
    first, second = runs["healthy"], runs["exploded"]
    result = cli("compare", first.run_id, second.run_id, "--store", runs["store"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for curve in ("loss by step", "gradient norm by step"):
        start = lines.index(curve)
        header, row_a, row_b = lines[start + 1], lines[start + 2], lines[start + 3]
        assert header.split()[1:9] == ["0", "14", "28", "42", "57", "71", "85", "99"]
        assert row_a.startswith(f"  {first.run_id[:12]}") and row_b.startswith(f"  {second.run_id[:12]}")
    loss_rows = lines[lines.index("loss by step") + 2 : lines.index("loss by step") + 4]
    statistics = first.storage.get_step_statistics(first.run_id)
    assert float(loss_rows[0].split()[1]) == pytest.approx(statistics.loss[0], rel=1e-3)
    assert loss_rows[1].split()[-1].endswith("%")


def test_the_html_report_draws_gradient_norms_and_marks_the_anomalies(runs: Dict[str, Any], tmp_path: Path) -> None:
    output = tmp_path / "report.html"
    result = cli(
        "report", runs["exploded"].run_id, "--store", runs["store"], "--format", "html", "--output", str(output)
    )
    assert result.returncode == 0, result.stderr
    html = output.read_text()
    chart = html[html.index('<svg id="gradient-chart"') :]
    chart = chart[: chart.index("</svg>")]
    layers = re.findall(r'class="series" data-layer="([^"]+)"', chart)
    assert layers[0] == "total" and set(layers) == {"total", "0", "2", "4", "6"}
    marks = re.findall(r'class="anomaly" data-type="([^"]+)" data-step="(\d+)"', chart)
    assert set(marks) == {("gradient_explosion", "60"), ("loss_spike", "60")}
    assert "<h2>Anomalies (6)</h2>" in html


def test_a_report_without_gradients_has_no_gradient_section(runs: Dict[str, Any]) -> None:
    from hf_eco2ai.reporting.generate import generate_carbon_report

    report = dict(runs["healthy"].storage.store.report(runs["healthy"].run_id))
    report.pop("gradients")
    assert "gradient-chart" not in generate_carbon_report(report, output_format="html")


def scrape_anomalies(snapshot: Any) -> List[Dict[str, str]]:
    registry = CollectorRegistry()
    SnapshotCollector(registry=registry).attach(lambda: snapshot)
    text = generate_latest(registry).decode()
    return [
        dict(re.findall(r'(\w+)="([^"]*)"', line), value=line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("hf_training_anomalies_total{")
    ]


def test_prometheus_serves_anomalies_by_type_while_the_tracer_watches(runs: Dict[str, Any]) -> None:
    samples = scrape_anomalies(runs["exploded"].session.snapshot())
    by_type = {sample["type"]: float(sample["value"]) for sample in samples}
    assert by_type == {
        "gradient_explosion": 5.0,
        "vanishing_gradient": 0.0,
        "nan_or_inf": 0.0,
        "loss_spike": 1.0,
        "memory_spike": 0.0,
    }
    assert all(sample["project_name"] == "tracer-tests" and "rank" in sample for sample in samples)


def test_prometheus_serves_no_anomaly_counter_for_a_run_without_the_tracer(runs: Dict[str, Any]) -> None:
    from dataclasses import replace

    assert scrape_anomalies(replace(runs["healthy"].session.snapshot(), anomalies_by_type=None)) == []
