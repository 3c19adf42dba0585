"""The report's gradient-norm chart: one line per layer group on a log scale, anomalies marked.

Drawn from ``tracking_data["gradients"]`` (written by the Tracer API; absent otherwise), so
reports of runs without it are unchanged. Pure functions, no I/O; all text is escaped here.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, List, Mapping, Optional, Sequence, Set, Tuple

from hf_eco2ai.reporting import numbers
from hf_eco2ai.reporting.svg_charts import ERROR_COLOUR, FRAME, PALETTE, _axes, _number, _scale, _svg_open

MARKED_ANOMALIES_SHOWN = 60


def _log_range(values: Sequence[float]) -> Tuple[float, float]:
    low = math.floor(math.log10(min(values)))
    high = math.ceil(math.log10(max(values)))
    return float(low), float(max(high, low + 1))


def gradient_norm_chart(section: Mapping[str, Any]) -> str:
    """Gradient L2 norm per step (``class="series"``, ``data-layer``), log scale; each anomaly is
    a red mark at its step (``class="anomaly"``, ``data-type``, ``data-step``). "" when there is
    nothing to draw."""
    steps: List[int] = section.get("steps") or []
    norms: Mapping[str, List[Optional[float]]] = section.get("norms") or {}
    positive = [v for values in norms.values() for v in values if v is not None and v > 0]
    if not steps or not positive:
        return ""
    log_low, log_high = _log_range(positive)
    s_low, s_high = float(steps[0]), float(max(steps[-1], steps[0] + 1))

    def x_px(step: float) -> float:
        return _scale(step, s_low, s_high, FRAME.left, FRAME.right)

    def y_px(value: float) -> float:
        clipped = min(max(math.log10(value), log_low), log_high)
        return _scale(clipped, log_low, log_high, FRAME.bottom, FRAME.top)

    x_ticks = sorted({round(s_low + (s_high - s_low) * i / 6) for i in range(7)})
    y_ticks = [10.0**power for power in range(int(log_low), int(log_high) + 1)]
    parts = [_svg_open("gradient-chart", "Gradient norm per step, one line per layer group, anomalies marked")]
    parts += _axes(
        [(x_px(t), str(t)) for t in x_ticks],
        [(y_px(v), f"1e{int(math.log10(v))}") for v in y_ticks],
        "Step",
        "Gradient L2 norm (log scale)",
    )
    for index, (layer, values) in enumerate(norms.items()):
        colour = PALETTE[index % len(PALETTE)]
        runs: List[List[str]] = [[]]
        for step, value in zip(steps, values):
            if value is None or value <= 0:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append(f"{_number(x_px(step))},{_number(y_px(value))}")
        width = "2.4" if index == 0 else "1.4"
        for run in (run for run in runs if run):
            if len(run) == 1:
                cx, cy = run[0].split(",")
                parts.append(
                    f'<circle class="series point" data-layer="{escape(layer)}" cx="{cx}" cy="{cy}" '
                    f'r="2" fill="{colour}"/>'
                )
                continue
            parts.append(
                f'<polyline class="series" data-layer="{escape(layer)}" fill="none" stroke="{colour}" '
                f'stroke-width="{width}" stroke-linejoin="round" points="{" ".join(run)}">'
                f"<title>{escape(layer)}</title></polyline>"
            )
    parts.append('<g class="anomalies">')
    shown: Set[Tuple[int, str]] = set()
    for anomaly in section.get("anomalies") or []:
        key = (anomaly["step"], anomaly["type"])
        if key in shown or len(shown) >= MARKED_ANOMALIES_SHOWN:
            continue
        shown.add(key)
        x = x_px(min(max(float(anomaly["step"]), s_low), s_high))
        label = f"step {anomaly['step']}: {anomaly['type']} in {anomaly['layer']}"
        parts.append(
            f'<line class="anomaly" data-type="{escape(anomaly["type"])}" data-step="{anomaly["step"]}" '
            f'x1="{_number(x)}" x2="{_number(x)}" y1="{_number(FRAME.top)}" y2="{_number(FRAME.bottom)}" '
            f'stroke="{ERROR_COLOUR}" stroke-width="1.2" stroke-dasharray="4 2">'
            f"<title>{escape(label)}</title></line>"
        )
    parts.append("</g></svg>")
    return "".join(parts)


def _value(value: Any) -> str:
    return numbers.MISSING if value is None else numbers.significant(float(value), 4)


def gradient_parts(data: Mapping[str, Any]) -> List[str]:
    """The HTML of the gradient section (heading, chart, legend, anomaly table), or nothing when
    the report has no ``gradients``."""
    section = data.get("gradients")
    if not section:
        return []
    parts = ["<h2>Gradient norms</h2>"]
    chart = gradient_norm_chart(section)
    if chart:
        layers = list((section.get("norms") or {}).keys())
        legend = "".join(
            f'<li><span class="swatch" style="background: {PALETTE[i % len(PALETTE)]}"></span>'
            f"<code>{escape(name)}</code></li>"
            for i, name in enumerate(layers)
        )
        caption = (
            f"{len(layers)} of {section.get('layers_total', len(layers))} layer groups shown "
            "(the total first, then the largest norms). Red dashed lines mark anomalies."
        )
        parts.append(
            f'<figure>{chart}<ul class="legend">{legend}</ul><figcaption>{escape(caption)}</figcaption></figure>'
        )
    else:
        parts.append('<p class="empty">No gradient norms were recorded.</p>')
    anomalies = section.get("anomalies") or []
    total = section.get("anomalies_total", len(anomalies))
    parts.append(f"<h2>Anomalies ({total})</h2>")
    if not anomalies:
        parts.append('<p class="empty">No anomalies were flagged.</p>')
        return parts
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td{cls}>{escape(text)}</td>"
            for cls, text in (
                (' class="num"', str(a["step"])),
                ("", a["type"]),
                ("", a["layer"]),
                (' class="num"', _value(a["value"])),
                (' class="num"', _value(a["threshold"])),
                (' class="num"', _value(a["statistic"])),
            )
        )
        + "</tr>"
        for a in anomalies
    )
    parts.append(
        '<table><thead><tr><th class="num">Step</th><th>Type</th><th>Layer</th><th class="num">Value</th>'
        '<th class="num">Threshold</th><th class="num">Rolling statistic</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )
    if total > len(anomalies):
        parts.append(f'<p class="note">The first {len(anomalies)} of {total} anomalies are listed.</p>')
    return parts
