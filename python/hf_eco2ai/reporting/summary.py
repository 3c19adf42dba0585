"""A report's headline figures and provenance as flat keys, for trackers that take key/value pairs."""

from __future__ import annotations

from typing import Any, Dict, Mapping


def final_summary(report: Mapping[str, Any]) -> Dict[str, Any]:
    """``carbon/...`` keys: totals (kWh, kg CO2, PUE, duration), the intensity with its source,
    dataset and year, the channels with their provenance, and the monitoring error count."""
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
