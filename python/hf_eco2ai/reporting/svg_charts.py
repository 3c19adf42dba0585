"""Inline SVG charts for the HTML report, drawn from the data alone (no script, no library).

Each chart function returns one ``<svg>`` element as a string, or "" when there is nothing to draw.
All text is escaped here; coordinates are plain numbers, so the markup is valid SVG inside HTML5.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from hf_eco2ai.meter.flags import FLAG_SENSOR_ERROR, FLAG_TAIL
from hf_eco2ai.reporting import numbers

# Okabe-Ito: distinguishable with the common colour-vision deficiencies and readable on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#999999")
ERROR_COLOUR = "#C0392B"
EVALUATION_COLOUR = "#CC79A7"
# Above the largest value, so that no line or bar touches the top of the frame.
HEADROOM = 1.08

MAX_POINTS_PER_LINE = 1000
MAX_BARS = 400
WIDTH = 860
HEIGHT = 300


class _Frame(NamedTuple):
    """Plot area inside the SVG, in pixels."""

    left: float = 72.0
    right: float = WIDTH - 20.0
    top: float = 18.0
    bottom: float = HEIGHT - 46.0


FRAME = _Frame()


def channel_colours(channel_names: Sequence[str]) -> Dict[str, str]:
    """A fixed colour per channel, by position in ``tracking_data['channels']``, shared by both charts."""
    return {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(channel_names)}


def nice_ticks(low: float, high: float, count: int = 5) -> List[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [low, high]."""
    if not high > low:
        high = low + 1.0
    raw_step = (high - low) / count
    power = 10.0 ** math.floor(math.log10(raw_step))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw_step)
    ticks = []
    index = math.floor(low / step)
    # The last tick is at or above ``high`` so the data never leaves the plot area.
    while True:
        value = round(index * step, 12)
        ticks.append(value)
        if value >= high:
            return ticks
        index += 1


def headroom_ticks(high: float) -> List[float]:
    """Round ticks from 0 that leave room above ``high``."""
    return nice_ticks(0.0, max(high * HEADROOM, 1e-12))


def _shade_spans(spans: Sequence[Tuple[str, float, float]], x_px: Any) -> List[str]:
    parts = ['<g class="evaluation-spans">']
    for name, t0, t1 in spans:
        left, right = x_px(t0), x_px(t1)
        parts.append(
            f'<rect class="evaluation-span" data-window="{escape(name)}" x="{_number(left)}" '
            f'y="{_number(FRAME.top)}" width="{_number(max(right - left, 1.0))}" '
            f'height="{_number(FRAME.bottom - FRAME.top)}" fill="{EVALUATION_COLOUR}" opacity="0.15">'
            f"<title>{escape(name)}: {numbers.significant(t0, 4)}–{numbers.significant(t1, 4)} s</title></rect>"
        )
    parts.append("</g>")
    return parts


def _time_unit(span_s: float) -> Tuple[str, float]:
    if span_s > 7200:
        return "h", 3600.0
    if span_s > 180:
        return "min", 60.0
    return "s", 1.0


def _energy_unit(max_joules: float) -> Tuple[str, float]:
    if max_joules >= 1e6:
        return "MJ", 1e6
    if max_joules >= 1e4:
        return "kJ", 1e3
    return "J", 1.0


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _scale(value: float, low: float, high: float, out_low: float, out_high: float) -> float:
    if high == low:
        return (out_low + out_high) / 2
    return out_low + (value - low) / (high - low) * (out_high - out_low)


def _axes(
    x_ticks: Sequence[Tuple[float, str]], y_ticks: Sequence[Tuple[float, str]], x_title: str, y_title: str
) -> List[str]:
    """Grid, tick labels and axis titles; tick positions are already in pixels."""
    parts = ['<g class="axes">']
    for y, label in y_ticks:
        parts.append(
            f'<line class="grid" x1="{_number(FRAME.left)}" x2="{_number(FRAME.right)}" '
            f'y1="{_number(y)}" y2="{_number(y)}"/>'
        )
        parts.append(
            f'<text class="tick" x="{_number(FRAME.left - 8)}" y="{_number(y + 4)}" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    for x, label in x_ticks:
        parts.append(
            f'<line class="tick-mark" x1="{_number(x)}" x2="{_number(x)}" '
            f'y1="{_number(FRAME.bottom)}" y2="{_number(FRAME.bottom + 5)}"/>'
        )
        parts.append(
            f'<text class="tick" x="{_number(x)}" y="{_number(FRAME.bottom + 19)}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{_number(FRAME.left)}" x2="{_number(FRAME.right)}" '
        f'y1="{_number(FRAME.bottom)}" y2="{_number(FRAME.bottom)}"/>'
    )
    centre_x = (FRAME.left + FRAME.right) / 2
    parts.append(
        f'<text class="axis-title" x="{_number(centre_x)}" y="{_number(HEIGHT - 6)}" '
        f'text-anchor="middle">{escape(x_title)}</text>'
    )
    centre_y = (FRAME.top + FRAME.bottom) / 2
    parts.append(
        f'<text class="axis-title" transform="translate(16 {_number(centre_y)}) rotate(-90)" '
        f'text-anchor="middle">{escape(y_title)}</text>'
    )
    parts.append("</g>")
    return parts


def _bucket_means(
    times: Sequence[float], values: Sequence[Optional[float]], max_points: int
) -> List[Tuple[float, Optional[float]]]:
    """Average consecutive points so a line has at most ``max_points``; a bucket of gaps stays a gap."""
    if len(times) <= max_points:
        return list(zip(times, values))
    size = math.ceil(len(times) / max_points)
    points: List[Tuple[float, Optional[float]]] = []
    for start in range(0, len(times), size):
        bucket_times = times[start : start + size]
        present = [v for v in values[start : start + size] if v is not None]
        mean = sum(present) / len(present) if present else None
        points.append((sum(bucket_times) / len(bucket_times), mean))
    return points


def _runs_without_gaps(points: Sequence[Tuple[float, Optional[float]]]) -> List[List[Tuple[float, float]]]:
    runs: List[List[Tuple[float, float]]] = [[]]
    for t, value in points:
        if value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((t, value))
    return [run for run in runs if run]


def _svg_open(chart_id: str, label: str) -> str:
    return (
        f'<svg id="{escape(chart_id)}" class="chart" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>"
    )


def power_chart(
    trace: Optional[Mapping[str, Any]],
    channels: Sequence[Mapping[str, Any]],
    epochs: Sequence[Mapping[str, Any]],
    evaluation_spans: Sequence[Tuple[str, float, float]] = (),
) -> str:
    """Power over time: one polyline per channel (``class="series"``, ``data-channel``), with room
    above the highest reading; an estimated channel's line is labelled as an estimate
    (``class="estimate-label"``) and evaluation windows are shaded (``class="evaluation-span"``)."""
    if trace is None or not trace["t_s"]:
        return ""
    times: List[float] = trace["t_s"]
    names = [channel["name"] for channel in channels]
    names += [name for name in trace["watts"] if name not in names]
    colours = channel_colours(names)
    parents = {channel["name"]: channel["parent"] for channel in channels}
    series = {
        name: _bucket_means(times, trace["watts"][name], MAX_POINTS_PER_LINE)
        for name in names
        if name in trace["watts"]
    }
    present_watts = [w for points in series.values() for _, w in points if w is not None]
    if not present_watts:
        return ""
    # The axis starts at the run's start, not at the first bucket centre.
    t_low = min(0.0, min(times))
    t_high = max(times[-1], max((epoch["t1_s"] for epoch in epochs), default=times[-1]))
    unit, seconds_per_unit = _time_unit(t_high - t_low)
    x_ticks_units = [
        t
        for t in nice_ticks(t_low / seconds_per_unit, t_high / seconds_per_unit, count=8)
        if t_low / seconds_per_unit - 1e-9 <= t <= t_high / seconds_per_unit + 1e-9
    ]
    y_ticks_watts = headroom_ticks(max(present_watts))
    y_high = y_ticks_watts[-1]

    def x_px(t_s: float) -> float:
        return _scale(t_s, t_low, t_high, FRAME.left, FRAME.right)

    def y_px(watts: float) -> float:
        return _scale(max(watts, 0.0), 0.0, y_high, FRAME.bottom, FRAME.top)

    parts = [_svg_open("power-chart", "Power over time, one line per channel")]
    parts += _axes(
        [(x_px(t * seconds_per_unit), numbers.significant(t, 6)) for t in x_ticks_units],
        [(y_px(w), numbers.significant(w, 6)) for w in y_ticks_watts],
        f"Time since start ({unit})",
        "Power (W)",
    )
    parts += _epoch_marks(epochs, t_low, t_high, x_px)
    parts += _shade_spans(evaluation_spans, x_px)
    provenance = {channel["name"]: channel["provenance"] for channel in channels}
    for name, points in series.items():
        if provenance.get(name) == "estimated":
            parts += _estimate_label(name, points, x_px, y_px, colours[name])
        dashed = ' stroke-dasharray="5 3"' if parents.get(name) else ""
        for run in _runs_without_gaps(points):
            if len(run) == 1:
                t, w = run[0]
                parts.append(
                    f'<circle class="series point" data-channel="{escape(name)}" '
                    f'cx="{_number(x_px(t))}" cy="{_number(y_px(w))}" r="2.5" '
                    f'fill="{colours[name]}"/>'
                )
                continue
            coordinates = " ".join(f"{_number(x_px(t))},{_number(y_px(w))}" for t, w in run)
            parts.append(
                f'<polyline class="series" data-channel="{escape(name)}" fill="none" '
                f'stroke="{colours[name]}" stroke-width="1.8" stroke-linejoin="round"{dashed} '
                f'points="{coordinates}"><title>{escape(name)}</title></polyline>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _estimate_label(
    name: str, points: Sequence[Tuple[float, Optional[float]]], x_px: Any, y_px: Any, colour: str
) -> List[str]:
    """``<name>: estimated`` just above the channel's last reading, at the right end of its line."""
    present = [(t, w) for t, w in points if w is not None]
    if not present:
        return []
    t, watts = present[-1]
    return [
        f'<text class="estimate-label" data-channel="{escape(name)}" x="{_number(x_px(t) - 4)}" '
        f'y="{_number(y_px(watts) - 6)}" text-anchor="end" style="fill: {colour}">'
        f"{escape(name)}: estimated, not measured</text>"
    ]


def _epoch_marks(epochs: Sequence[Mapping[str, Any]], t_low: float, t_high: float, x_px: Any) -> List[str]:
    """Dashed lines between epochs, each epoch labelled where it is wide enough for the label."""
    parts = ['<g class="epochs">']
    for epoch in epochs:
        start, end = epoch["t0_s"], epoch["t1_s"]
        if start is None or end is None or end < t_low or start > t_high:
            continue
        if start > t_low:
            x = _number(x_px(start))
            parts.append(
                f'<line class="epoch-line" x1="{x}" x2="{x}" y1="{_number(FRAME.top)}" y2="{_number(FRAME.bottom)}"/>'
            )
        left, right = x_px(max(start, t_low)), x_px(min(end, t_high))
        if right - left >= 56:
            parts.append(
                f'<text class="epoch-label" x="{_number((left + right) / 2)}" '
                f'y="{_number(FRAME.top + 12)}" text-anchor="middle">'
                f"epoch {escape(str(epoch['epoch']))}</text>"
            )
    parts.append("</g>")
    return parts


class _Bar(NamedTuple):
    first_step: int
    last_step: int
    joules_by_channel: Dict[str, float]
    tail: bool
    sensor_error: bool


def _bar(group: Sequence[Mapping[str, Any]], stacked: Sequence[str]) -> _Bar:
    if stacked:
        sums = {name: sum(max(step["joules_by_channel"].get(name) or 0.0, 0.0) for step in group) for name in stacked}
    else:
        sums = {"": sum(max(step["joules"] or 0.0, 0.0) for step in group)}
    return _Bar(
        first_step=group[0]["index"],
        last_step=group[-1].get("last_index", group[-1]["index"]),
        joules_by_channel={name: total / len(group) for name, total in sums.items()},
        tail=all(step["flags"] & FLAG_TAIL for step in group),
        sensor_error=any(step["flags"] & FLAG_SENSOR_ERROR for step in group),
    )


def _bars(steps: Sequence[Mapping[str, Any]], stacked: Sequence[str]) -> Tuple[List[_Bar], int]:
    """Per-step bars, or means of consecutive steps when there are more than ``MAX_BARS``.

    Tail records (last mark to stop) always get a bar of their own: their length has nothing to do
    with a training step's, so averaging them in would distort the last bar.
    """
    training = [step for step in steps if not step["flags"] & FLAG_TAIL]
    tails = [step for step in steps if step["flags"] & FLAG_TAIL]
    size = max(1, math.ceil(len(training) / max(MAX_BARS - len(tails), 1)))
    bars = [_bar(training[start : start + size], stacked) for start in range(0, len(training), size)]
    bars.extend(_bar([tail], stacked) for tail in tails)
    bars.sort(key=lambda bar: bar.first_step)
    return bars, size


def step_energy_chart(steps: Sequence[Mapping[str, Any]], channels: Sequence[Mapping[str, Any]]) -> Tuple[str, int]:
    """Energy per step as bars stacked by top-level channel (``class="bar"``, ``data-step``).

    Returns the SVG and how many steps each bar averages (1 unless there are over ``MAX_BARS``).
    """
    if not steps:
        return "", 1
    top_level = [channel["name"] for channel in channels if channel["parent"] is None]
    stacked = [name for name in top_level if any(name in step["joules_by_channel"] for step in steps)]
    colours = channel_colours([channel["name"] for channel in channels])
    bars, steps_per_bar = _bars(steps, stacked)
    # The scale follows the training steps: a long tail would otherwise flatten every other bar,
    # so it is clipped at the top and labelled with its value instead.
    scaled = [bar for bar in bars if not bar.tail] or bars
    max_joules = max(sum(bar.joules_by_channel.values()) for bar in scaled)
    unit, joules_per_unit = _energy_unit(max_joules)
    y_ticks_units = nice_ticks(0.0, max(max_joules / joules_per_unit, 1e-9))
    y_high = y_ticks_units[-1] * joules_per_unit

    slot = (FRAME.right - FRAME.left) / len(bars)
    gap = min(slot * 0.2, 6.0) if slot > 3 else 0.0

    def y_px(joules: float) -> float:
        return _scale(min(joules, y_high), 0.0, y_high, FRAME.bottom, FRAME.top)

    label_every = max(1, math.ceil(len(bars) / 10))
    # Label aggregated bars by their first step; the axis title says how many each one averages.
    x_ticks = [
        (FRAME.left + (i + 0.5) * slot, str(bar.first_step)) for i, bar in enumerate(bars) if i % label_every == 0
    ]
    x_title = "Step" if steps_per_bar == 1 else f"Steps (each bar: mean of {steps_per_bar} steps)"
    parts = [_svg_open("step-chart", "Energy per step")]
    parts += _axes(
        x_ticks,
        [(y_px(v * joules_per_unit), numbers.significant(v, 6)) for v in y_ticks_units],
        x_title,
        f"Energy per step ({unit})",
    )
    parts.append('<g class="bars">')
    for i, bar in enumerate(bars):
        x = FRAME.left + i * slot + gap / 2
        width = max(slot - gap, 0.5)
        step_label = (
            f"step {bar.first_step}"
            if bar.first_step == bar.last_step
            else f"steps {bar.first_step}–{bar.last_step} (mean)"
        )
        total = sum(bar.joules_by_channel.values())
        extra_class = " tail" if bar.tail else ""
        baseline = 0.0
        for name, joules in bar.joules_by_channel.items():
            top = baseline + joules
            y_top, y_bottom = y_px(top), y_px(baseline)
            colour = colours.get(name, PALETTE[0])
            detail = f"{name}: {numbers.significant(joules, 4)} J, " if name else ""
            parts.append(
                f'<rect class="bar{extra_class}" data-step="{bar.first_step}" '
                f'data-channel="{escape(name)}" x="{_number(x)}" y="{_number(y_top)}" '
                f'width="{_number(width)}" height="{_number(max(y_bottom - y_top, 0.0))}" '
                f'fill="{colour}"><title>{escape(f"{step_label}: {detail}total {numbers.significant(total, 4)} J")}'
                f"</title></rect>"
            )
            baseline = top
        if total > y_high:
            parts.append(
                f'<text class="clipped-label" x="{_number(min(x + width / 2, FRAME.right - 24))}" '
                f'y="{_number(FRAME.top - 4)}" text-anchor="middle">'
                f"{escape(numbers.significant(total / joules_per_unit, 3))} {unit} ↑</text>"
            )
        if bar.sensor_error:
            centre, peak = x + width / 2, y_px(total) - 4
            parts.append(
                f'<path class="sensor-error" d="M{_number(centre - 4)} {_number(peak - 7)} '
                f'L{_number(centre + 4)} {_number(peak - 7)} L{_number(centre)} {_number(peak)} Z" '
                f'fill="{ERROR_COLOUR}"><title>{escape(step_label)}: a sensor errored</title></path>'
            )
    parts.append("</g></svg>")
    return "".join(parts), steps_per_bar
