"""The energy and carbon figures every backend receives, in flat ``energy/``, ``carbon/`` keys.

During a run a backend gets the session's interval figures (``TrackingSession.log``) as metrics.
At the start it gets the measurement's provenance as params (``hf_eco2ai/...``: run id, intensity
and its source, dataset and year, channels); at the end the report's totals as metrics and its
provenance as tags (``reporting.summary.final_summary``), so that each figure in another tracker
says where it came from.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

from hf_eco2ai.reporting.summary import final_summary


def split_summary(report: Mapping[str, Any]) -> Tuple[Dict[str, float], Dict[str, str]]:
    """The report's ``final_summary`` split into numbers (metrics) and text (provenance tags)."""
    summary = final_summary(report)
    numbers = {
        key: float(value)
        for key, value in summary.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    texts = {key: str(value) for key, value in summary.items() if isinstance(value, str)}
    return numbers, texts


def start_provenance(session: Any) -> Dict[str, Any]:
    """A started ``TrackingSession``'s identity and provenance, as params."""
    intensity = session.intensity
    params: Dict[str, Any] = {
        "hf_eco2ai/run_id": session.run_id,
        "hf_eco2ai/intensity_g_per_kwh": intensity.g_per_kwh,
        "hf_eco2ai/intensity_source": intensity.source,
        "hf_eco2ai/intensity_dataset": intensity.dataset,
        "hf_eco2ai/channels": ", ".join(f"{c.name} ({c.provenance}, {c.source})" for c in session.channels),
    }
    if intensity.year is not None:
        params["hf_eco2ai/intensity_year"] = intensity.year
    return params
