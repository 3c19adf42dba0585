"""``CarbonReport``: the ``tracking_data`` dict a session returns, shown as cards and a chart in
Jupyter."""

from __future__ import annotations

from typing import Any, Optional


class CarbonReport(dict):  # type: ignore[type-arg]
    """A run's ``tracking_data`` (docs/reports.md): a plain ``dict`` in every way (JSON, pickling,
    ``report["total_co2_kg"]``), which Jupyter shows as headline cards and the energy-per-step
    chart. ``to_html()`` is the full HTML report."""

    def _repr_html_(self) -> Optional[str]:
        from hf_eco2ai.reporting.notebook import safe_report_fragment

        return safe_report_fragment(self)

    def to_html(self) -> str:
        """The self-contained HTML report page.

        Raises:
            ConfigurationError: the dict no longer follows the report schema.
        """
        from hf_eco2ai.reporting.generate import generate_carbon_report

        return generate_carbon_report(self, "html")


def as_carbon_report(report: Any) -> CarbonReport:
    return report if isinstance(report, CarbonReport) else CarbonReport(report)
