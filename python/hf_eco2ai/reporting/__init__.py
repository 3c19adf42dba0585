"""Reports: their content, one module per format, and the files a run writes.

``generate_carbon_report`` renders one format; ``write_reports`` writes a run's files. The names
are imported on first use, so that the session (which streams the per-step file from here) does
not load every format's renderer when a run starts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hf_eco2ai.reporting.files import DEFAULT_REPORT_FORMATS, write_reports
    from hf_eco2ai.reporting.generate import OUTPUT_FORMATS, generate_carbon_report
    from hf_eco2ai.reporting.summary import final_summary

__all__ = ["DEFAULT_REPORT_FORMATS", "OUTPUT_FORMATS", "final_summary", "generate_carbon_report", "write_reports"]

_HOMES = {
    "DEFAULT_REPORT_FORMATS": "hf_eco2ai.reporting.files",
    "write_reports": "hf_eco2ai.reporting.files",
    "OUTPUT_FORMATS": "hf_eco2ai.reporting.generate",
    "generate_carbon_report": "hf_eco2ai.reporting.generate",
    "final_summary": "hf_eco2ai.reporting.summary",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'hf_eco2ai.reporting' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
