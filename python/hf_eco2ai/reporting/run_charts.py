"""The HTML report's further charts: cumulative energy and CO2 over time, energy per epoch,
energy per step against the loss, and the windows' breakdown.

Drawn only from the report's bounded parts (power trace, step series, per-epoch and per-window
totals, window spans, loss series), never from every step. Pure functions returning SVG text
(``""`` when there is nothing to draw); all text is escaped here.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hf_eco2ai.reporting import numbers
from hf_eco2ai.reporting.svg_charts import (
    EVALUATION_COLOUR,
    FRAME,
    HEADROOM,
    HEIGHT,
    PALETTE,
    WIDTH,
    _axes,
    _number,
    _scale,
    _shade_spans,
    _svg_open,
    _time_unit,
    channel_colours,
    headroom_ticks,
    nice_ticks,
)
from hf_eco2ai.reporting.windows import is_evaluation, window_summaries
from hf_eco2ai.units import JOULES_PER_KWH

TRAINING_COLOUR = "#0072B2"
CO2_COLOUR = "#D55E00"


def _energy_ladder(max_joules: float) -> Tuple[str, float]:
    """A unit for an energy axis and how many joules one of it is."""
    for unit, joules in (("MWh", 3.6e9), ("kWh", 3.6e6), ("Wh", 3600.0), ("kJ", 1e3)):
        if max_joules >= joules:
            return unit, joules
    return "J", 1.0


def _mass_ladder(max_grams: float) -> Tuple[str, float]:
    for unit, grams in (("t", 1e6), ("kg", 1e3), ("g", 1.0)):
        if max_grams >= grams:
            return unit, grams
    return "mg", 1e-3


# Charts with a second axis on the right are this much wider, so its labels fit.
RIGHT_AXIS_MARGIN = 64


def _svg_open_with_right_axis(chart_id: str, label: str) -> str:
    return (
        f'<svg id="{escape(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH + RIGHT_AXIS_MARGIN} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
    )


def _right_axis(ticks: Sequence[Tuple[float, str]], title: str, colour: str) -> List[str]:
    parts = ['<g class="axes right-axis">']
    for y, label in ticks:
        parts.append(
            f'<text class="tick" x="{_number(FRAME.right + 6)}" y="{_number(y + 4)}" '
            f'text-anchor="start" style="fill: {colour}">{escape(label)}</text>'
        )
    centre_y = (FRAME.top + FRAME.bottom) / 2
    parts.append(
        f'<text class="axis-title" transform="translate({_number(FRAME.right + 52)} {_number(centre_y)}) '
        f'rotate(90)" text-anchor="middle" style="fill: {colour}">{escape(title)}</text>'
    )
    parts.append("</g>")
    return parts


def top_level_watts(data: Mapping[str, Any]) -> Tuple[List[float], List[float]]:
    """The power trace's times (s) and the sum over top-level channels (W; a gap counts as 0)."""
    trace = data.get("power_trace")
    if not trace or not trace.get("t_s"):
        return [], []
    top = [c["name"] for c in data["channels"] if c["parent"] is None and c["name"] in trace["watts"]]
    times: List[float] = list(trace["t_s"])
    watts = [sum((trace["watts"][name][i] or 0.0) for name in top) for i in range(len(times))]
    return times, watts


def cumulative_joules(data: Mapping[str, Any]) -> Tuple[List[float], List[float]]:
    """Cumulative energy (J, PUE applied) at the end of each power-trace point: the trace's shape,
    scaled so that it ends at the run's total (the trace is downsampled; the total is exact)."""
    times, watts = top_level_watts(data)
    if not times:
        return [], []
    duration = max(float(data.get("duration_s") or 0.0), times[-1])
    edges = [0.0] + [(a + b) / 2 for a, b in zip(times, times[1:])] + [duration]
    ends, energy, total = [], [], 0.0
    for index, value in enumerate(watts):
        total += value * max(edges[index + 1] - edges[index], 0.0)
        ends.append(edges[index + 1])
        energy.append(total)
    run_joules = float(data["energy"]["total_kwh"] or 0.0) * JOULES_PER_KWH
    scale = run_joules / total if total > 0 and run_joules > 0 else 1.0
    return [0.0] + ends, [0.0] + [value * scale for value in energy]


def evaluation_spans(data: Mapping[str, Any]) -> List[Tuple[str, float, float]]:
    """(name, t0_s, t1_s) of the evaluation windows the report keeps spans of."""
    spans = []
    for name, kept in (data.get("window_spans") or {}).items():
        if is_evaluation(name):
            spans += [(name, t0, t1) for t0, t1 in zip(kept["t0_s"], kept["t1_s"])]
    return spans


def _time_axis(t_high: float) -> Tuple[str, float, List[float]]:
    unit, per_unit = _time_unit(t_high)
    ticks = [t for t in nice_ticks(0.0, t_high / per_unit, count=8) if t <= t_high / per_unit + 1e-9]
    return unit, per_unit, ticks


def cumulative_chart(data: Mapping[str, Any], chart_id: str = "cumulative-chart") -> str:
    """Cumulative energy (left axis) and CO2e (right axis: the same line at the run's intensity)
    over time, evaluation windows shaded (``class="evaluation-span"``)."""
    times, joules = cumulative_joules(data)
    if len(times) < 2 or joules[-1] <= 0:
        return ""
    g_per_kwh = float(data["intensity"]["g_per_kwh"] or 0.0)
    t_high = max(times[-1], 1e-9)
    time_unit, per_unit, x_ticks = _time_axis(t_high)
    energy_unit, joules_per_unit = _energy_ladder(joules[-1])
    y_ticks = headroom_ticks(joules[-1] / joules_per_unit)
    y_high = y_ticks[-1] * joules_per_unit

    def x_px(t_s: float) -> float:
        return _scale(t_s, 0.0, t_high, FRAME.left, FRAME.right)

    def y_px(value_joules: float) -> float:
        return _scale(value_joules, 0.0, y_high, FRAME.bottom, FRAME.top)

    parts = [_svg_open_with_right_axis(chart_id, "Cumulative energy and CO2e over time")]
    parts += _axes(
        [(x_px(t * per_unit), numbers.significant(t, 6)) for t in x_ticks],
        [(y_px(v * joules_per_unit), numbers.significant(v, 6)) for v in y_ticks],
        f"Time since start ({time_unit})",
        f"Energy ({energy_unit}, PUE applied)",
    )
    if g_per_kwh > 0:
        max_grams = y_high / JOULES_PER_KWH * g_per_kwh
        mass_unit, grams_per_unit = _mass_ladder(joules[-1] / JOULES_PER_KWH * g_per_kwh)
        co2_ticks = [v for v in nice_ticks(0.0, max_grams / grams_per_unit) if v * grams_per_unit <= max_grams]
        parts += _right_axis(
            [(y_px(v * grams_per_unit / g_per_kwh * JOULES_PER_KWH), numbers.significant(v, 6)) for v in co2_ticks],
            f"CO2e ({mass_unit})",
            CO2_COLOUR,
        )
    parts += _shade_spans(evaluation_spans(data), x_px)
    coordinates = " ".join(f"{_number(x_px(t))},{_number(y_px(j))}" for t, j in zip(times, joules))
    parts.append(
        f'<polyline class="series cumulative" fill="none" stroke="{TRAINING_COLOUR}" stroke-width="2" '
        f'points="{coordinates}"><title>cumulative energy</title></polyline>'
    )
    total_text = f"{numbers.energy_kwh(joules[-1] / JOULES_PER_KWH)}"
    if g_per_kwh > 0:
        total_text += f", {numbers.mass_kg(joules[-1] / JOULES_PER_KWH * g_per_kwh / 1000)} CO2e"
    parts.append(
        f'<text class="end-label" x="{_number(x_px(times[-1]) - 4)}" y="{_number(y_px(joules[-1]) - 8)}" '
        f'text-anchor="end">{escape(total_text)}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def evaluation_joules_by_epoch(data: Mapping[str, Any], epochs: Sequence[Mapping[str, Any]]) -> List[float]:
    """Per epoch, the joules (top-level, without PUE) of the evaluation windows that ran during it:
    a window belongs to the latest epoch that began before its middle, if that epoch had not ended
    yet. Windows whose spans the report does not keep are left out."""
    found = [0.0] * len(epochs)
    for name, kept in (data.get("window_spans") or {}).items():
        if not is_evaluation(name):
            continue
        for t0, t1, joules in zip(kept["t0_s"], kept["t1_s"], kept.get("joules") or []):
            middle = (t0 + t1) / 2
            started = [i for i, epoch in enumerate(epochs) if epoch["t0_s"] <= middle]
            if started and middle <= epochs[started[-1]]["t1_s"] and joules is not None:
                found[started[-1]] += joules
    return found


def epoch_chart(data: Mapping[str, Any], chart_id: str = "epoch-chart") -> str:
    """Energy per epoch: the training steps' bar, stacked by top-level channel (``class="bar"``,
    ``data-epoch``), and beside it, when evaluation ran during the epoch, its evaluation windows'
    bar (``class="evaluation-bar"``)."""
    epochs = [epoch for epoch in data.get("epochs") or [] if epoch.get("joules") is not None]
    if not epochs:
        return ""
    stacked = [c["name"] for c in data["channels"] if c["parent"] is None]
    colours = channel_colours([c["name"] for c in data["channels"]])
    totals = [float(epoch["joules"]) for epoch in epochs]
    evaluation = evaluation_joules_by_epoch(data, epochs)
    unit, joules_per_unit = _energy_ladder(max(totals + evaluation))
    y_ticks = headroom_ticks(max(max(totals + evaluation), 1e-12) / joules_per_unit)
    y_high = y_ticks[-1] * joules_per_unit
    slot = (FRAME.right - FRAME.left) / len(epochs)
    split = any(evaluation)
    width = max(min(slot * (0.4 if split else 0.6), 80.0), 1.0)

    def y_px(joules: float) -> float:
        return _scale(min(joules, y_high), 0.0, y_high, FRAME.bottom, FRAME.top)

    label_every = max(1, math.ceil(len(epochs) / 12))
    parts = [_svg_open(chart_id, "Energy per epoch")]
    parts += _axes(
        [
            (FRAME.left + (i + 0.5) * slot, str(epoch["epoch"]))
            for i, epoch in enumerate(epochs)
            if i % label_every == 0
        ],
        [(y_px(v * joules_per_unit), numbers.significant(v, 6)) for v in y_ticks],
        "Epoch",
        f"Energy per epoch ({unit}, without PUE)",
    )
    parts.append('<g class="bars">')
    for i, epoch in enumerate(epochs):
        x = FRAME.left + (i + 0.5) * slot - (width if split else width / 2)
        if evaluation[i] > 0:
            tooltip = f"epoch {epoch['epoch']}: evaluation {numbers.significant(evaluation[i], 4)} J"
            parts.append(
                f'<rect class="evaluation-bar" data-epoch="{escape(str(epoch["epoch"]))}" '
                f'x="{_number(x + width)}" y="{_number(y_px(evaluation[i]))}" width="{_number(width)}" '
                f'height="{_number(max(FRAME.bottom - y_px(evaluation[i]), 0.0))}" fill="{EVALUATION_COLOUR}">'
                f"<title>{escape(tooltip)}</title></rect>"
            )
        by_channel = epoch.get("joules_by_channel") or {}
        pieces = [(name, max(by_channel.get(name) or 0.0, 0.0)) for name in stacked if name in by_channel]
        if not pieces:
            pieces = [("", float(epoch["joules"]))]
        baseline = 0.0
        for name, joules in pieces:
            top = baseline + joules
            detail = f"{name}: {numbers.significant(joules, 4)} J, " if name else ""
            tooltip = f"epoch {epoch['epoch']}: {detail}total {numbers.significant(epoch['joules'], 4)} J"
            parts.append(
                f'<rect class="bar" data-epoch="{escape(str(epoch["epoch"]))}" data-channel="{escape(name)}" '
                f'x="{_number(x)}" y="{_number(y_px(top))}" width="{_number(width)}" '
                f'height="{_number(max(y_px(baseline) - y_px(top), 0.0))}" '
                f'fill="{colours.get(name, PALETTE[0])}"><title>'
                f"{escape(tooltip)}"
                "</title></rect>"
            )
            baseline = top
    parts.append("</g></svg>")
    return "".join(parts)


def windows_chart(data: Mapping[str, Any], chart_id: str = "windows-chart") -> str:
    """Each window name's share of the run as a horizontal bar (``class="window-bar"``,
    ``data-window``), evaluation windows in their own colour; labelled with joules and share."""
    summaries = [s for s in window_summaries(data) if s["share_of_run"] is not None]
    if not summaries:
        return ""
    row_height = 26.0
    top = 14.0
    height = int(top + row_height * len(summaries) + 34)
    label_width = 150.0
    left, right = label_width, 860 - 190.0
    high = max(1.0, max(s["share_of_run"] for s in summaries))

    def x_px(share: float) -> float:
        return _scale(min(max(share, 0.0), high), 0.0, high, left, right)

    parts = [
        f'<svg id="{escape(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 860 {height}" role="img" aria-label="Energy per window name, as a share of the run">'
        "<title>Energy per window name, as a share of the run</title>"
    ]
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        if fraction <= high:
            x = _number(x_px(fraction))
            parts.append(
                f'<line class="grid" x1="{x}" x2="{x}" y1="{_number(top - 4)}" y2="{_number(height - 26)}"/>'
                f'<text class="tick" x="{x}" y="{_number(height - 12)}" text-anchor="middle">'
                f"{int(fraction * 100)} %</text>"
            )
    for index, summary in enumerate(summaries):
        y = top + index * row_height
        colour = EVALUATION_COLOUR if is_evaluation(summary["name"]) else TRAINING_COLOUR
        share = summary["share_of_run"]
        label = f"{numbers.significant(summary['joules'], 4)} J, {numbers.percent(share)}"
        estimate = summary.get("estimate")
        if estimate and estimate.get("mean_joules") is not None:
            label += f"; est. {numbers.significant(estimate['mean_joules'], 3)} J each"
        parts.append(
            f'<text class="tick" x="{_number(left - 8)}" y="{_number(y + 15)}" text-anchor="end">'
            f"{escape(summary['name'][:24])} ×{summary['count']}</text>"
            f'<rect class="window-bar" data-window="{escape(summary["name"])}" x="{_number(left)}" '
            f'y="{_number(y + 3)}" width="{_number(max(x_px(share) - left, 1.0))}" height="{_number(row_height - 8)}" '
            f'fill="{colour}"><title>{escape(summary["name"])}: {escape(label)}</title></rect>'
            f'<text class="tick" x="{_number(x_px(share) + 6)}" y="{_number(y + 15)}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _series_line(points: Sequence[Tuple[float, Optional[float]]], css: str, colour: str, x_px: Any, y_px: Any) -> str:
    coordinates = " ".join(f"{_number(x_px(x))},{_number(y_px(y))}" for x, y in points if y is not None)
    return (
        f'<polyline class="series {css}" fill="none" stroke="{colour}" stroke-width="1.8" '
        f'stroke-linejoin="round" points="{coordinates}"/>'
    )


def step_energy_points(data: Mapping[str, Any]) -> List[Tuple[float, Optional[float]]]:
    """(step, mean top-level joules per step) per point of the step series, or per listed step."""
    if "steps" in data:
        from hf_eco2ai.meter.flags import FLAG_TAIL

        return [(float(s["index"]), s["joules"]) for s in data["steps"] if not s["flags"] & FLAG_TAIL]
    series = data.get("step_series")
    if not series:
        return []
    return [
        ((first + last) / 2, mean)
        for first, last, mean in zip(series["first_step"], series["last_step"], series["joules_mean"])
    ]


def energy_loss_chart(data: Mapping[str, Any], chart_id: str = "energy-loss-chart") -> str:
    """Energy per step (left axis) and the logged training loss (right axis) against the step."""
    loss = data.get("loss_series")
    energy = step_energy_points(data)
    if not loss or not energy:
        return ""
    loss_points = [(s, v) for s, v in zip(loss["step"], loss["loss"]) if v is not None and math.isfinite(v)]
    present = [j for _, j in energy if j is not None]
    if not loss_points or not present:
        return ""
    s_low = min(min(s for s, _ in energy), min(s for s, _ in loss_points))
    s_high = max(max(s for s, _ in energy), max(s for s, _ in loss_points), s_low + 1)
    unit, joules_per_unit = _energy_ladder(max(present))
    y_ticks = headroom_ticks(max(present) / joules_per_unit)
    y_high = y_ticks[-1] * joules_per_unit
    losses = [v for _, v in loss_points]
    loss_low, loss_high = min(0.0, min(losses)), max(losses)
    loss_ticks = nice_ticks(loss_low, loss_low + (loss_high - loss_low) * HEADROOM)
    loss_top = loss_ticks[-1]

    def x_px(step: float) -> float:
        return _scale(step, s_low, s_high, FRAME.left, FRAME.right)

    def y_px(joules: float) -> float:
        return _scale(joules, 0.0, y_high, FRAME.bottom, FRAME.top)

    def loss_px(value: float) -> float:
        return _scale(value, loss_ticks[0], loss_top, FRAME.bottom, FRAME.top)

    x_ticks = sorted({round(s_low + (s_high - s_low) * i / 6) for i in range(7)})
    parts = [_svg_open_with_right_axis(chart_id, "Energy per step and training loss against the step")]
    parts += _axes(
        [(x_px(s), str(s)) for s in x_ticks],
        [(y_px(v * joules_per_unit), numbers.significant(v, 6)) for v in y_ticks],
        "Step",
        f"Energy per step ({unit})",
    )
    parts += _right_axis([(loss_px(v), numbers.significant(v, 4)) for v in loss_ticks], "Loss", CO2_COLOUR)
    parts.append(_series_line(energy, "step-energy", TRAINING_COLOUR, x_px, y_px))
    parts.append(_series_line(loss_points, "loss", CO2_COLOUR, x_px, loss_px))
    parts.append("</svg>")
    return "".join(parts)


def figures_by_name(data: Mapping[str, Any]) -> Dict[str, str]:
    """Every chart of this module, by the heading it goes under; empty charts are left out."""
    charts = {
        "Cumulative energy and CO2e": cumulative_chart(data),
        "Energy per epoch": epoch_chart(data),
        "Energy per step and loss": energy_loss_chart(data),
    }
    return {title: svg for title, svg in charts.items() if svg}


def overlay_chart(
    series: Sequence[Sequence[Tuple[float, Optional[float]]]],
    labels: Sequence[str],
    chart_id: str,
    x_title: str,
    y_title: str,
    unit: str,
) -> str:
    """One line per series (``class="series"``, ``data-run``), coloured by position; ``unit`` "J"
    picks a readable energy unit for the axis. "" when no series has two points."""
    lines = [
        [(float(x), float(y)) for x, y in points if y is not None and math.isfinite(y)][:: max(1, len(points) // 1000)]
        for points in series
    ]
    present = [point for line in lines for point in line]
    if not any(len(line) >= 2 for line in lines):
        return ""
    x_low, x_high = min(x for x, _ in present), max(x for x, _ in present)
    x_high = max(x_high, x_low + 1e-9)
    y_low = min(0.0, min(y for _, y in present))
    y_max = max(y for _, y in present)
    per_unit, shown_unit = 1.0, unit
    if unit == "J":
        shown_unit, per_unit = _energy_ladder(y_max)
    y_ticks = nice_ticks(y_low / per_unit, y_low / per_unit + (y_max - y_low) / per_unit * HEADROOM)

    def x_px(x: float) -> float:
        return _scale(x, x_low, x_high, FRAME.left, FRAME.right)

    def y_px(y: float) -> float:
        return _scale(y / per_unit, y_ticks[0], y_ticks[-1], FRAME.bottom, FRAME.top)

    x_ticks = nice_ticks(x_low, x_high, count=8)
    parts = [_svg_open(chart_id, f"{y_title} of each run")]
    parts += _axes(
        [(x_px(x), numbers.significant(x, 6)) for x in x_ticks if x_low - 1e-9 <= x <= x_high + 1e-9],
        [(y_px(v * per_unit), numbers.significant(v, 6)) for v in y_ticks],
        x_title,
        f"{y_title} ({shown_unit})" if shown_unit else y_title,
    )
    for index, (label, line) in enumerate(zip(labels, lines)):
        if not line:
            continue
        coordinates = " ".join(f"{_number(x_px(x))},{_number(y_px(y))}" for x, y in line)
        parts.append(
            f'<polyline class="series" data-run="{escape(label)}" fill="none" '
            f'stroke="{PALETTE[index % len(PALETTE)]}" stroke-width="1.8" stroke-linejoin="round" '
            f'stroke-opacity="0.85" points="{coordinates}"><title>{escape(label)}</title></polyline>'
        )
    parts.append("</svg>")
    return "".join(parts)
