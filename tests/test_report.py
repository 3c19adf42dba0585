"""generate_carbon_report: formats, schema errors, secrets and atomic writes (docs/reports.md)."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from report_data import JOULES_PER_KWH, make_tracking_data

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.reporting.generate import OUTPUT_FORMATS, generate_carbon_report

DOCS = Path(__file__).resolve().parents[1] / "docs" / "reports.md"
REPO_PYTHON = Path(__file__).resolve().parents[1] / "python"
TESTS_DIR = Path(__file__).resolve().parent


def _documented_table_first_column(heading: str) -> List[str]:
    """Names in backticks in the first column of the table under ``heading`` in docs/reports.md."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    names: List[str] = []
    started = False
    for line in section.splitlines():
        if line.startswith("|"):
            started = True
            first_cell = line.split("|")[1]
            names.extend(re.findall(r"`([^`]+)`", first_cell))
        elif started:
            break
    return names


def _rows(text: str) -> List[Dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture()
def data() -> Dict[str, Any]:
    return make_tracking_data()


# --- JSON -------------------------------------------------------------------------------------


def test_json_round_trips_to_the_same_dict(data: Dict[str, Any]) -> None:
    assert json.loads(generate_carbon_report(data, output_format="json")) == data


def test_json_is_the_default_format(data: Dict[str, Any]) -> None:
    assert generate_carbon_report(data) == generate_carbon_report(data, output_format="json")


def test_json_writes_non_finite_numbers_as_null_and_stays_strict(data: Dict[str, Any]) -> None:
    data["energy"]["by_channel"]["dram:0"]["mean_watts"] = math.nan
    data["power_trace"]["watts"]["gpu:0"][3] = math.inf

    def refuse_constant(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name} in the report")

    loaded = json.loads(generate_carbon_report(data, "json"), parse_constant=refuse_constant)
    assert loaded["energy"]["by_channel"]["dram:0"]["mean_watts"] is None
    assert loaded["power_trace"]["watts"]["gpu:0"][3] is None
    # The caller's dict is left alone.
    assert math.isnan(data["energy"]["by_channel"]["dram:0"]["mean_watts"])


def test_json_keeps_keys_the_schema_does_not_know(data: Dict[str, Any]) -> None:
    data["run"]["slurm_job_id"] = "4242"
    assert json.loads(generate_carbon_report(data, "json"))["run"]["slurm_job_id"] == "4242"


def test_numpy_scalars_from_step_records_become_plain_numbers(data: Dict[str, Any]) -> None:
    data["steps"][0]["index"] = np.int64(0)
    data["steps"][0]["joules"] = np.float64(121.5)
    data["steps"][0]["flags"] = np.uint32(17)
    data["energy"]["pue"] = np.float32(1.25)
    loaded = json.loads(generate_carbon_report(data, "json"))
    assert loaded["steps"][0]["joules"] == 121.5 and loaded["steps"][0]["flags"] == 17
    assert loaded["energy"]["pue"] == 1.25
    first_row = _rows(generate_carbon_report(data, "csv"))[0]
    assert first_row["joules"] == "121.5" and first_row["flags"] == "17"


def test_a_value_json_cannot_hold_is_refused(data: Dict[str, Any], tmp_path: Path) -> None:
    data["config"]["output_dir"] = tmp_path
    with pytest.raises(
        ConfigurationError, match=r"tracking_data\['config'\]\['output_dir'\] is .*expected a JSON value"
    ):
        generate_carbon_report(data, "json")
    data["config"]["output_dir"] = str(tmp_path)
    data["extra"] = {1, 2}
    with pytest.raises(ConfigurationError, match="reports take JSON types only"):
        generate_carbon_report(data, "json")


# --- CSV --------------------------------------------------------------------------------------


def test_csv_step_columns_are_the_documented_ones_in_order(data: Dict[str, Any]) -> None:
    documented = _documented_table_first_column("### CSV, per step")
    assert documented[-1] == "joules[<channel>]"
    expected = documented[:-1] + [f"joules[{channel['name']}]" for channel in data["channels"]]
    header = next(csv.reader(io.StringIO(generate_carbon_report(data, "csv"))))
    assert header == expected


def test_csv_has_one_row_per_step_with_its_figures(data: Dict[str, Any]) -> None:
    rows = _rows(generate_carbon_report(data, "csv"))
    assert len(rows) == len(data["steps"])
    pue, g_per_kwh = data["energy"]["pue"], data["intensity"]["g_per_kwh"]
    for row, step in zip(rows, data["steps"]):
        assert int(row["step"]) == step["index"]
        assert float(row["joules"]) == step["joules"]
        assert float(row["kwh"]) == pytest.approx(step["joules"] / JOULES_PER_KWH * pue)
        assert float(row["co2_kg"]) == pytest.approx(step["joules"] / JOULES_PER_KWH * pue * g_per_kwh / 1000)
        for name, joules in step["joules_by_channel"].items():
            assert float(row[f"joules[{name}]"]) == joules
        assert row["intensity_source"] == "country-table"
        assert row["intensity_year"] == "2023"
    assert rows[-1]["flag_names"] == "estimated|tail"
    assert rows[-1]["epoch"] == ""
    assert sum(float(row["co2_kg"]) for row in rows) == pytest.approx(data["total_co2_kg"])


def test_csv_of_a_run_without_steps_is_the_header_alone(data: Dict[str, Any]) -> None:
    data["steps"] = []
    text = generate_carbon_report(data, "csv")
    assert text.count("\r\n") == 1
    assert text.startswith("run_id,step,")


def test_csv_summary_columns_and_sections_are_documented(data: Dict[str, Any]) -> None:
    text = generate_carbon_report(data, "csv-summary")
    header = next(csv.reader(io.StringIO(text)))
    assert header == _documented_table_first_column("### CSV, summary")
    doc = DOCS.read_text(encoding="utf-8").split("### CSV, summary", 1)[1]
    documented_sections = re.findall(r"`([a-z]+)`", doc.split("| `section` |", 1)[1].split("\n", 1)[0])
    assert {row["section"] for row in _rows(text)} <= set(documented_sections)


def test_csv_summary_carries_provenance_intensity_emissions_and_budget(data: Dict[str, Any]) -> None:
    rows = _rows(generate_carbon_report(data, "csv-summary"))
    index = {(row["section"], row["scope"], row["metric"]): row for row in rows}
    for channel in data["channels"]:
        name = channel["name"]
        assert index[("channel", name, "provenance")]["value"] == channel["provenance"]
        assert float(index[("channel", name, "joules")]["value"]) == data["energy"]["by_channel"][name]["joules"]
    assert float(index[("emissions", "", "total_co2_kg")]["value"]) == data["total_co2_kg"]
    assert index[("intensity", "", "source")]["value"] == "country-table"
    assert index[("intensity", "", "year")]["value"] == "2023"
    assert index[("budget", "", "exceeded")]["value"] == "false"
    for comparison in data["comparisons"]:
        row = index[("comparison", comparison["name"], "value")]
        assert float(row["value"]) == comparison["value"]
        assert row["note"] == comparison["citation"]
    assert {row["scope"] for row in rows if row["section"] == "epoch"} == {
        str(epoch["epoch"]) for epoch in data["epochs"]
    }


# --- Markdown ---------------------------------------------------------------------------------


def _six_significant(value: float) -> str:
    return f"{value:.6g}"


def test_markdown_contains_the_key_figures(data: Dict[str, Any]) -> None:
    text = generate_carbon_report(data, "markdown")
    assert f"total\\_co2\\_kg = {_six_significant(data['total_co2_kg'])} kg" in text
    assert f"{_six_significant(data['energy']['total_kwh'])} kWh" in text
    assert "380 gCO2e/kWh" in text
    assert "Our World in Data (CC BY 4.0), 2023" in text
    for channel in data["channels"]:
        assert re.search(rf"\| {re.escape(channel['name'])} \| {channel['kind']} \| {channel['provenance']} \|", text)
    for comparison in data["comparisons"]:
        assert comparison["name"] in text
        assert comparison["citation"] in text
    assert f"{data['budget']['used_fraction'] * 100:.1f} %" in text
    assert f"## Steps ({len(data['steps'])})" in text
    for epoch in data["epochs"]:
        assert f"| {epoch['epoch']} | {epoch['first_step']}–{epoch['last_step']} |" in text


def test_markdown_shows_first_and_last_steps_of_a_long_run() -> None:
    data = make_tracking_data(step_count=60, steps_per_epoch=20)
    text = generate_carbon_report(data, "markdown")
    hidden = len(data["steps"]) - 20
    assert f"… {hidden} more" in text
    assert "\n| 9 | 0 |" in text and "\n| 10 | 0 |" not in text
    assert f"\n| {data['steps'][-1]['index']} |" in text


def test_markdown_escapes_text_from_the_data(data: Dict[str, Any]) -> None:
    data["run"]["project_name"] = "a|b [x](javascript:y) <img>"
    text = generate_carbon_report(data, "markdown")
    assert "# Carbon report: a\\|b \\[x\\](javascript:y) \\<img\\>" in text
    assert "<img>" not in text


def test_incomplete_run_is_marked_in_every_human_format() -> None:
    data = make_tracking_data(sensor_failure_step=10)
    assert "**Incomplete report:**" in generate_carbon_report(data, "markdown")
    assert "Incomplete report:" in generate_carbon_report(data, "html")
    clean = make_tracking_data()
    assert "Incomplete" not in generate_carbon_report(clean, "markdown")
    assert "Incomplete" not in generate_carbon_report(clean, "html")


def test_reports_without_budget_cost_trace_steps_or_epochs_still_render(data: Dict[str, Any]) -> None:
    data.update(budget=None, cost=None, power_trace=None, steps=[], epochs=[], comparisons=[])
    markdown = generate_carbon_report(data, "markdown")
    assert "No budget set." in markdown
    assert "## Steps" not in markdown
    html = generate_carbon_report(data, "html")
    assert "No power readings were recorded." in html and "No steps were resolved." in html
    assert "<svg" not in html
    assert json.loads(generate_carbon_report(data, "json")) == data


# --- secrets ----------------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", OUTPUT_FORMATS)
def test_a_token_left_in_config_never_reaches_a_report(data: Dict[str, Any], output_format: str) -> None:
    data["config"]["co2_signal_api_token"] = "em-live-0123456789abcdef"
    data["config"]["wandb_api_key"] = "wb-secret-value"
    text = generate_carbon_report(data, output_format)
    assert "0123456789abcdef" not in text
    assert "wb-secret-value" not in text
    if output_format != "csv":  # the per-step CSV carries no config at all
        assert "***" in text.replace("\\", "")  # Markdown escapes the asterisks


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_format", ["pdf", "JSONL", "", None, 3])
def test_unknown_format_names_the_value_and_the_allowed_ones(data: Dict[str, Any], bad_format: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        generate_carbon_report(data, output_format=bad_format)
    message = str(caught.value)
    assert "output_format" in message and repr(bad_format) in message
    for allowed in ("json", "csv", "markdown", "html"):
        assert repr(allowed) in message


def test_format_names_are_case_insensitive(data: Dict[str, Any]) -> None:
    assert generate_carbon_report(data, "Markdown") == generate_carbon_report(data, "markdown")


@pytest.mark.parametrize(
    "remove, path",
    [
        (lambda d: d.pop("total_co2_kg"), "tracking_data['total_co2_kg']"),
        (lambda d: d["intensity"].pop("year"), "tracking_data['intensity']['year']"),
        (lambda d: d["run"].pop("run_id"), "tracking_data['run']['run_id']"),
        (lambda d: d["steps"][3].pop("flags"), "tracking_data['steps'][3]['flags']"),
        (lambda d: d["channels"][1].pop("provenance"), "tracking_data['channels'][1]['provenance']"),
        (lambda d: d["budget"].pop("exceeded"), "tracking_data['budget']['exceeded']"),
        (lambda d: d["energy"]["by_channel"].pop("dram:0"), "tracking_data['energy']['by_channel']['dram:0']"),
    ],
)
def test_a_missing_key_is_named_with_its_path(data: Dict[str, Any], remove: Any, path: str) -> None:
    remove(data)
    with pytest.raises(ConfigurationError) as caught:
        generate_carbon_report(data, "markdown")
    assert path in str(caught.value)
    assert "missing" in str(caught.value)


def test_a_wrong_type_is_named_with_what_was_expected(data: Dict[str, Any]) -> None:
    data["intensity"]["g_per_kwh"] = "380"
    with pytest.raises(
        ConfigurationError, match=r"tracking_data\['intensity'\]\['g_per_kwh'\] is '380'; expected a number"
    ):
        generate_carbon_report(data, "json")


def test_optional_keys_may_be_absent(data: Dict[str, Any]) -> None:
    for comparison in data["comparisons"]:
        del comparison["factor_unit"]
    data["warnings"] = [{"code": "world-average-intensity", "message": "set country_iso_code"}]
    assert "world-average-intensity" in generate_carbon_report(data, "markdown")


def test_another_schema_version_is_refused(data: Dict[str, Any]) -> None:
    data["schema_version"] = 2
    with pytest.raises(ConfigurationError, match="schema_version.*2.*version 1"):
        generate_carbon_report(data, "json")


def test_a_power_trace_with_ragged_lists_is_refused(data: Dict[str, Any]) -> None:
    data["power_trace"]["watts"]["gpu:0"].pop()
    with pytest.raises(
        ConfigurationError, match=r"\['power_trace'\]\['watts'\]\['gpu:0'\] has 599 points; expected 600"
    ):
        generate_carbon_report(data, "html")


def test_something_other_than_a_dict_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="expected the dict that TrackingSession.report"):
        generate_carbon_report([("total_co2_kg", 1.0)], "json")  # type: ignore[arg-type]


def test_invalid_data_writes_nothing(data: Dict[str, Any], tmp_path: Path) -> None:
    del data["epochs"]
    target = tmp_path / "report.json"
    with pytest.raises(ConfigurationError):
        generate_carbon_report(data, "json", output_path=target)
    assert not target.exists()


# --- writing ----------------------------------------------------------------------------------


def test_output_path_gets_exactly_the_returned_text(data: Dict[str, Any], tmp_path: Path) -> None:
    for output_format in OUTPUT_FORMATS:
        target = tmp_path / "nested" / "dir" / f"report.{output_format}"
        text = generate_carbon_report(data, output_format, output_path=target)
        assert target.read_bytes() == text.encode("utf-8")
    assert sorted(os.listdir(tmp_path / "nested" / "dir")) == sorted(f"report.{f}" for f in OUTPUT_FORMATS)


def test_a_failed_write_removes_its_temporary_file(data: Dict[str, Any], tmp_path: Path) -> None:
    occupied = tmp_path / "report.json"
    occupied.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        generate_carbon_report(data, "json", output_path=occupied)
    assert os.listdir(tmp_path) == ["report.json"]
    assert occupied.is_dir()


_WRITER = """
import sys
sys.path[:0] = [{python!r}, {tests!r}]
from report_data import make_tracking_data
from hf_eco2ai.reporting.generate import generate_carbon_report
versions = [make_tracking_data(step_count=3000, project_name=name) for name in {names!r}]
print("ready", flush=True)
i = 0
while True:
    generate_carbon_report(versions[i % 2], "json", output_path={target!r})
    i += 1
"""


def test_readers_and_a_killed_writer_never_see_half_a_report(tmp_path: Path) -> None:
    # A plain open("w").write() of the same reports fails this test within a second: about one
    # read in ten catches the file truncated or half written.
    names = ("first", "second")
    complete = {
        name: generate_carbon_report(make_tracking_data(step_count=3000, project_name=name), "json").encode("utf-8")
        for name in names
    }
    target = tmp_path / "report.json"
    script = _WRITER.format(python=str(REPO_PYTHON), tests=str(TESTS_DIR), names=names, target=str(target))
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 30
        while not target.exists():
            assert time.monotonic() < deadline, "the writer never produced a report"
            time.sleep(0.01)
        seen = set()
        reads = 0
        end = time.monotonic() + 1.5
        while time.monotonic() < end or len(seen) < 2:
            assert time.monotonic() < deadline, f"only saw {seen} in {reads} reads"
            content = target.read_bytes()
            matches = [name for name, text in complete.items() if content == text]
            assert matches, f"read {reads} saw {len(content)} bytes that are neither complete report"
            seen.add(matches[0])
            reads += 1
        assert seen == set(names)
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    assert target.read_bytes() in complete.values()


def test_the_callers_dict_is_not_modified(data: Dict[str, Any]) -> None:
    data["config"]["co2_signal_api_token"] = "tok-abc"
    before = copy.deepcopy(data)
    for output_format in OUTPUT_FORMATS:
        generate_carbon_report(data, output_format)
    assert data == before
