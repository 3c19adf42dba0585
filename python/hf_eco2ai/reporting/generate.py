"""``generate_carbon_report``: render a run's ``tracking_data`` as JSON, CSV, Markdown or HTML.

The schema of ``tracking_data`` and every format's layout are in docs/reports.md. Rendering is
pure and never on the training hot path; call it from any thread.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Mapping, Optional, Union

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.reporting.atomic import write_text_atomically
from hf_eco2ai.reporting.csv_format import render_csv_steps, render_csv_summary
from hf_eco2ai.reporting.html_format import render_html
from hf_eco2ai.reporting.json_format import render_json
from hf_eco2ai.reporting.markdown_format import render_markdown
from hf_eco2ai.reporting.schema import prepare_for_output, validate

__all__ = ["OUTPUT_FORMATS", "generate_carbon_report"]

RENDERERS: Dict[str, Callable[[Mapping[str, Any]], str]] = {
    "json": render_json,
    "csv": render_csv_steps,
    "csv-summary": render_csv_summary,
    "markdown": render_markdown,
    "html": render_html,
}
OUTPUT_FORMATS = tuple(RENDERERS)


def generate_carbon_report(
    tracking_data: Mapping[str, Any],
    output_format: str = "json",
    output_path: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> str:
    """Render ``tracking_data`` (what ``TrackingSession.report()`` returns) and return the text.

    ``output_format`` is one of ``json``, ``csv`` (one row per step), ``csv-summary``, ``markdown``,
    ``html`` (case-insensitive). When ``output_path`` is given the text is also written there
    atomically (temporary file, fsync, rename), creating parent directories. Secret config values
    are masked as ``"***"`` in every format and non-finite numbers are written as null.

    Raises ``ConfigurationError`` for an unknown format or data that breaks the schema (naming the
    offending key), and ``OSError`` when the file cannot be written.
    """
    if not isinstance(output_format, str) or output_format.lower() not in RENDERERS:
        raise ConfigurationError(
            f"output_format is {output_format!r}; allowed values are "
            + ", ".join(repr(name) for name in OUTPUT_FORMATS)
        )
    validate(tracking_data)
    text = RENDERERS[output_format.lower()](prepare_for_output(tracking_data))
    if output_path is not None:
        write_text_atomically(output_path, text)
    return text
