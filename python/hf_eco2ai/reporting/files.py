"""Writing a run's report files: one file per format, named by the run id, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.reporting.atomic import write_text_atomically
from hf_eco2ai.reporting.generate import RENDERERS
from hf_eco2ai.reporting.schema import prepare_for_output, validate

# What a run writes at its end unless told otherwise.
DEFAULT_REPORT_FORMATS = ("json", "html", "csv", "markdown")
REPORT_FILE_SUFFIXES = {
    "json": ".json",
    "html": ".html",
    "csv": ".steps.csv",
    "csv-summary": ".summary.csv",
    "markdown": ".md",
}


def report_file_stem(report: Mapping[str, Any]) -> str:
    """``carbon_report_<first 12 hex digits of the run id>``: unique per run, never a timestamp."""
    return f"carbon_report_{report['run']['run_id'][:12]}"


def write_reports(report: Mapping[str, Any], output_dir: Any, formats: Sequence[str]) -> Dict[str, Path]:
    """Render ``report`` in every format to ``<output_dir>/carbon_report_<run id>.<ext>``.

    The report is validated and prepared once; every format renders from that one copy. The
    ``csv`` file (one row per step) of a run that streamed its steps is the per-step file itself
    when it is already where the format goes; otherwise it is rendered. Returns the path written
    per format. Each rendered file is written atomically, so a run killed while writing leaves
    the previous state, never half a file.

    Raises:
        OSError: a file cannot be written (the caller decides whether that may fail the run).
        ConfigurationError: an unknown format or a report that breaks the schema.
    """
    unknown = [output_format for output_format in formats if output_format not in REPORT_FILE_SUFFIXES]
    if unknown:
        raise ConfigurationError(
            f"report_formats = {list(formats)!r} is invalid: expected a list drawn from "
            + ", ".join(repr(name) for name in REPORT_FILE_SUFFIXES)
        )
    validate(report)
    prepared = prepare_for_output(report)
    stem = report_file_stem(report)
    steps_file = report.get("steps_file")
    paths: Dict[str, Path] = {}
    for output_format in formats:
        path = Path(output_dir) / (stem + REPORT_FILE_SUFFIXES[output_format])
        paths[output_format] = path
        if output_format == "csv" and steps_file is not None and _same_file(steps_file["path"], path):
            continue
        write_text_atomically(path, RENDERERS[output_format](prepared))
    return paths


def _same_file(first: Any, second: Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False
