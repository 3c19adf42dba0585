"""The energy and carbon figures every backend receives, in flat ``energy/``, ``carbon/`` keys.

During a run a backend gets the session's interval figures (``TrackingSession.log``) as metrics.
At the end it gets the report's totals as metrics and its provenance (intensity source, dataset,
year, channels) as params and tags, so that each figure in another tracker says where it came from.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple


def run_summary(report: Mapping[str, Any]) -> Dict[str, Any]:
    """The report's headline figures and provenance as flat ``carbon/...`` keys (units in names)."""
    intensity = report["intensity"]
    summary: Dict[str, Any] = {
        "carbon/total_co2_kg": report["total_co2_kg"],
        "carbon/total_kwh": report["energy"]["total_kwh"],
        "carbon/it_kwh": report["energy"]["it_kwh"],
        "carbon/pue": report["energy"]["pue"],
        "carbon/intensity_g_per_kwh": intensity["g_per_kwh"],
        "carbon/intensity_source": intensity["source"],
        "carbon/intensity_dataset": intensity["dataset"],
        "carbon/duration_s": report["duration_s"],
        "carbon/monitoring_errors_total": report["monitoring_errors_total"],
        "carbon/channels": ", ".join(f"{c['name']} ({c['provenance']}, {c['source']})" for c in report["channels"]),
    }
    if intensity.get("year") is not None:
        summary["carbon/intensity_year"] = str(intensity["year"])
    return summary


def split_summary(summary: Mapping[str, Any]) -> Tuple[Dict[str, float], Dict[str, str]]:
    """``run_summary`` split into numbers (metrics) and text (provenance params/tags)."""
    numbers = {key: float(value) for key, value in summary.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool) and value is not None}
    texts = {key: str(value) for key, value in summary.items() if isinstance(value, str)}
    return numbers, texts
