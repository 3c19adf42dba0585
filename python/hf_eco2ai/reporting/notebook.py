"""What Jupyter shows for a report, a ``CarbonMetrics`` and a run comparison: headline cards and
a chart, as one HTML fragment whose styles apply only inside it (no script, no network).

Pure functions; each returns the fragment's text, all data escaped.
"""

from __future__ import annotations

from dataclasses import asdict
from html import escape
from typing import Any, Mapping, Optional, Sequence, Tuple

from hf_eco2ai.meter.flags import FLAG_TAIL
from hf_eco2ai.reporting import content, svg_charts

ROOT_CLASS = "hf-eco2ai"

_SCOPED_CSS = f"""
.{ROOT_CLASS} {{ font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; color: #1d2733;
  max-width: 960px; }}
.{ROOT_CLASS} .title {{ font-weight: 650; font-size: 16px; margin: 0 0 8px; }}
.{ROOT_CLASS} .cards {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 10px; }}
.{ROOT_CLASS} .card {{ background: #f6f8fa; border: 1px solid #dde3e9; border-radius: 8px; padding: 10px 12px; }}
.{ROOT_CLASS} .label {{ font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: #5b6773; }}
.{ROOT_CLASS} .value {{ font-size: 18px; font-weight: 650; overflow-wrap: anywhere; }}
.{ROOT_CLASS} .detail {{ font-size: 12px; color: #5b6773; }}
.{ROOT_CLASS} .note {{ font-size: 12px; color: #5b6773; margin: 6px 0 0; }}
.{ROOT_CLASS} svg.chart {{ width: 100%; height: auto; display: block; margin-top: 10px; }}
.{ROOT_CLASS} svg.chart text {{ font: 11px system-ui, sans-serif; fill: #5b6773; }}
.{ROOT_CLASS} svg.chart .axis-title {{ font-size: 12px; fill: #1d2733; }}
.{ROOT_CLASS} svg.chart .grid {{ stroke: #dde3e9; stroke-width: 1; }}
.{ROOT_CLASS} svg.chart .axis, .{ROOT_CLASS} svg.chart .tick-mark {{ stroke: #9aa5b1; stroke-width: 1; }}
.{ROOT_CLASS} svg.chart rect.tail {{ opacity: .45; }}
.{ROOT_CLASS} h4 {{ margin: 14px 0 6px; font-size: 14px; display: flex; align-items: center; gap: 8px; }}
.{ROOT_CLASS} .swatch {{ width: 14px; height: 4px; border-radius: 2px; display: inline-block; }}
.{ROOT_CLASS} .legend {{ display: flex; flex-wrap: wrap; gap: 6px 18px; list-style: none; padding: 0;
  margin: 6px 0 0; font-size: 13px; }}
.{ROOT_CLASS} .legend li {{ display: flex; align-items: center; gap: 6px; }}
"""

Card = Tuple[str, str, str]


def cards(facts: Sequence[Card]) -> str:
    """Cards of (label, value, detail)."""
    items = "".join(
        f'<div class="card"><div class="label">{escape(label)}</div><div class="value">{escape(value)}</div>'
        f'<div class="detail">{escape(detail)}</div></div>'
        for label, value, detail in facts
    )
    return f'<div class="cards">{items}</div>'


def fragment(title: str, body: Sequence[str]) -> str:
    """The whole fragment: scoped styles, a title, then ``body`` (markup already escaped)."""
    return (
        f'<div class="{ROOT_CLASS}"><style>{_SCOPED_CSS}</style>'
        f'<div class="title">{escape(title)}</div>{"".join(body)}</div>'
    )


def report_fragment(prepared: Mapping[str, Any], chart_id: str = "step-chart") -> str:
    """A report (``schema.prepare_for_output``'s copy): its headline cards and the step chart."""
    body = [cards([tuple(fact) for fact in content.headline(prepared)])]  # type: ignore[misc]
    steps, steps_per_item = content.chart_steps(prepared)
    svg, items_per_bar = svg_charts.step_energy_chart(steps, prepared["channels"])
    if svg:
        svg = svg.replace('id="step-chart"', f'id="{escape(chart_id)}"', 1)
        body.append(svg)
        per_bar = items_per_bar * steps_per_item
        tails = sum(1 for step in steps if step["flags"] & FLAG_TAIL)
        note = f"Energy per step ({content.step_count(prepared) - tails} steps"
        note += " and the tail, drawn pale" if tails else ""
        note += f"; each bar a mean of up to {per_bar})." if per_bar > 1 else ")."
        body.append(f'<p class="note">{escape(note)} Stacked by top-level channel, without PUE.</p>')
    return fragment(content.title(prepared), body)


def safe_report_fragment(report: Mapping[str, Any]) -> Optional[str]:
    """``report_fragment`` of a report dict, or None (Jupyter then shows the dict) when it is not
    a complete report."""
    from hf_eco2ai.errors import ConfigurationError
    from hf_eco2ai.reporting.schema import prepare_for_output, validate

    try:
        validate(report)
        return report_fragment(prepare_for_output(report))
    except ConfigurationError:
        return None


def metrics_fragment(metrics: Any) -> str:
    """A ``CarbonMetrics`` (the CarbonTracker API): emissions, energy, duration and intensity
    cards, then each channel's energy."""
    from hf_eco2ai.reporting import numbers

    intensity = metrics.intensity
    facts = [
        ("Emissions", f"{numbers.mass_kg(metrics.emissions_kg_co2)} CO2e", f"{metrics.emissions_kg_co2:.6g} kg"),
        (
            "Energy",
            numbers.energy_kwh(metrics.energy_consumed_kwh),
            f"{metrics.energy_provenance}, PUE {numbers.significant(metrics.pue, 3)}",
        ),
        ("Duration", numbers.duration(metrics.duration_s), f"{numbers.significant(metrics.duration_s, 6)} s"),
        (
            "Carbon intensity",
            f"{numbers.significant(metrics.carbon_intensity_g_per_kwh)} gCO2e/kWh",
            content.intensity_source_text(asdict(intensity)),
        ),
    ]
    if metrics.cost is not None:
        facts.append(("Cost", f"{numbers.significant(metrics.cost)} {metrics.electricity_currency or ''}".strip(), ""))
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code></td><td>{escape(numbers.significant(joules, 6))} J</td></tr>"
        for name, joules in metrics.energy_joules_by_channel.items()
    )
    body = [cards(facts)]
    if rows:
        body.append(f'<h4>Energy per channel</h4><table class="channels"><tbody>{rows}</tbody></table>')
    parent = f", inside {metrics.parent}" if metrics.parent else ""
    body.append(f'<p class="note">{escape(f"Run {metrics.run_id}{parent}.")}</p>')
    return fragment(f"Carbon metrics: {metrics.name}", body)
