"""Writing a run's report files: one file per format, named by the run id, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Sequence

from hf_eco2ai.reporting.generate import generate_carbon_report

# What a run writes at its end unless told otherwise.
DEFAULT_REPORT_FORMATS = ("json", "html", "csv", "markdown")
REPORT_FILE_SUFFIXES = {"json": ".json", "html": ".html", "csv": ".steps.csv", "csv-summary": ".summary.csv",
                        "markdown": ".md"}


def report_file_stem(report: Mapping[str, Any]) -> str:
    """``carbon_report_<first 12 hex digits of the run id>``: unique per run, never a timestamp."""
    return f"carbon_report_{report['run']['run_id'][:12]}"


def write_reports(report: Mapping[str, Any], output_dir: Any, formats: Sequence[str]) -> Dict[str, Path]:
    """Render ``report`` in every format to ``<output_dir>/carbon_report_<run id>.<ext>``.

    Returns the path written per format. Each file is written atomically, so a run killed while
    writing leaves the previous state, never half a file.

    Raises:
        OSError: a file cannot be written (the caller decides whether that may fail the run).
        ConfigurationError: an unknown format or a report that breaks the schema.
    """
    stem = report_file_stem(report)
    paths: Dict[str, Path] = {}
    for output_format in formats:
        path = Path(output_dir) / (stem + REPORT_FILE_SUFFIXES[output_format])
        generate_carbon_report(report, output_format=output_format, output_path=path)
        paths[output_format] = path
    return paths
