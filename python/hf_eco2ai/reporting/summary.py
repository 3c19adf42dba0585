"""A report's headline figures and provenance as flat keys, for trackers that take key/value pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional

from hf_eco2ai.reporting import numbers


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


def final_figures(report: Mapping[str, Any]) -> Dict[str, float]:
    """The numeric headline figures of ``final_summary``, for loggers that take only numbers."""
    return {
        key: float(value)
        for key, value in final_summary(report).items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def summary_line(report: Mapping[str, Any], report_path: Optional[Path] = None) -> str:
    """One line for the end of a run: energy, CO2e, the intensity with its source, and the report.

    For example ``0.0123 kWh, 689 mg CO2e at 56.04 g/kWh (country-table FR, 2023); report
    out/carbon_report_1a2b3c4d5e6f.html``.
    """
    intensity = report["intensity"]
    where = " ".join(
        str(part) for part in (intensity["source"], intensity.get("zone") or intensity.get("country")) if part
    )
    year = f", {intensity['year']}" if intensity.get("year") is not None else ""
    line = (
        f"{numbers.energy_kwh(report['energy']['total_kwh'])}, {numbers.mass_kg(report['total_co2_kg'])} CO2e "
        f"at {numbers.significant(intensity['g_per_kwh'])} g/kWh ({where}{year})"
    )
    if report_path is not None:
        line += f"; report {report_path}"
    return line
