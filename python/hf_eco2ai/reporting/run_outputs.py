"""A finished run's default outputs, the same from every entry point (the callbacks, ``track``,
the CarbonTracker API and ``hf-eco2ai profile``): the report files named by the run id, one row
appended to ``emissions.csv``, and one summary line logged at INFO. The run store already holds
the run: its session stored it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.reporting.emissions_csv import append_emissions_row, emissions_row
from hf_eco2ai.reporting.files import REPORT_FILE_SUFFIXES, write_reports
from hf_eco2ai.reporting.summary import summary_line

logger = logging.getLogger(__name__)


def check_report_formats(formats: Sequence[str]) -> Tuple[str, ...]:
    """``formats`` as a tuple, checked at construction rather than at the run's end.

    Raises:
        ConfigurationError: a string instead of a list, or an unknown format (names the known ones).
    """
    if isinstance(formats, str) or not all(name in REPORT_FILE_SUFFIXES for name in formats):
        raise ConfigurationError(
            f"report_formats = {formats!r} is invalid: expected a list drawn from "
            + ", ".join(repr(name) for name in REPORT_FILE_SUFFIXES)
        )
    return tuple(formats)


def write_run_outputs(
    report: Mapping[str, Any],
    output_dir: Any,
    formats: Sequence[str],
    status: str,
    on_failure: Callable[[OSError], None],
) -> Dict[str, Path]:
    """Write the report files in ``formats`` to ``output_dir``, then append the run's row to
    ``<output_dir>/emissions.csv``; return the path written per format.

    A file that cannot be written is handed to ``on_failure`` and the rest goes on (no report
    files: no row either, since the row points at the JSON report).

    Raises:
        ConfigurationError: an unknown format or a report that breaks the schema.
    """
    try:
        paths = write_reports(report, output_dir, formats)
    except OSError as error:
        on_failure(error)
        return {}
    try:
        append_emissions_row(output_dir, emissions_row(report, status, paths.get("json")))
    except OSError as error:
        on_failure(error)
    return paths


def main_report_path(paths: Mapping[str, Path]) -> Optional[Path]:
    """The file to point people at: the HTML report, else the first one written."""
    return paths.get("html") or next(iter(paths.values()), None)


def log_run_summary(report: Mapping[str, Any], paths: Mapping[str, Path]) -> str:
    """Log the run's one summary line at INFO (energy, CO2e, intensity with its source, report
    path) on the ``hf_eco2ai`` logger, and return it."""
    line = summary_line(report, main_report_path(paths))
    logger.info("hf-eco2ai: %s", line)
    return line
