"""The HTML report: one self-contained page (inline CSS and SVG; no script, font, image or URL)."""

from __future__ import annotations

import json
from html import escape
from typing import Any, List, Mapping, Sequence, Tuple, Union

from hf_eco2ai.meter.flags import FLAG_SENSOR_ERROR, FLAG_TAIL
from hf_eco2ai.reporting import content, numbers, run_charts, svg_charts
from hf_eco2ai.reporting.gradient_chart import gradient_parts
from hf_eco2ai.reporting.schema import incomplete_reason

_CSS = """
:root { color-scheme: light; --ink: #1d2733; --muted: #5b6773; --line: #dde3e9; --panel: #f6f8fa;
  --accent: #1f6f50; --warn: #8a5a00; --warn-bg: #fff6e0; --bad: #a12b1f; --bad-bg: #fdecea; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
  Arial, sans-serif; color: var(--ink); background: #fff; }
main { max-width: 960px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 18px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.identity { display: flex; flex-wrap: wrap; gap: 4px 20px; margin: 0; color: var(--muted); font-size: 13px; }
.identity div { display: flex; gap: 6px; }
.identity dt { font-weight: 600; } .identity dd { margin: 0; }
.banner { margin: 18px 0 0; padding: 10px 14px; border-radius: 6px; background: var(--bad-bg);
  color: var(--bad); border: 1px solid #f3c2bc; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px;
  margin-top: 22px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.card .value { font-size: 24px; font-weight: 650; margin: 2px 0; white-space: nowrap; }
.card .value .unit { font-size: 15px; font-weight: 500; color: var(--muted); }
.card .detail { font-size: 12px; color: var(--muted); }
.card.exceeded { background: var(--bad-bg); border-color: #f3c2bc; }
.meter { height: 6px; background: var(--line); border-radius: 3px; overflow: hidden; margin-top: 6px; }
.meter span { display: block; height: 100%; background: var(--accent); }
.card.exceeded .meter span { background: var(--bad); }
figure { margin: 8px 0 0; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 4px; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif; fill: var(--muted); }
svg.chart .axis-title { font-size: 12px; fill: var(--ink); }
svg.chart .grid { stroke: var(--line); stroke-width: 1; }
svg.chart .axis, svg.chart .tick-mark { stroke: #9aa5b1; stroke-width: 1; }
svg.chart .epoch-line { stroke: #9aa5b1; stroke-width: 1; stroke-dasharray: 3 3; }
svg.chart .epoch-label { fill: var(--muted); font-size: 11px; }
svg.chart rect.tail { opacity: .45; }
svg.chart .clipped-label { fill: var(--ink); }
svg.chart .estimate-label { font-style: italic; }
svg.chart .end-label { fill: var(--ink); }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; list-style: none; padding: 0; margin: 6px 0 0;
  font-size: 13px; }
.legend li { display: flex; align-items: center; gap: 6px; }
.swatch { width: 14px; height: 4px; border-radius: 2px; display: inline-block; }
.swatch.dashed { height: 0; border-top: 3px dashed; background: none !important; }
table { border-collapse: collapse; width: 100%; font-size: 13.5px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); background: var(--panel); }
table.kv th { width: 30%; background: none; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.gap td { color: var(--muted); font-style: italic; text-align: center; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; }
.badge.measured { background: #e3f4ea; color: #1f6f50; }
.badge.estimated { background: var(--warn-bg); color: var(--warn); }
.note { color: var(--muted); font-size: 13px; }
.empty { color: var(--muted); font-style: italic; }
details { margin-top: 10px; } summary { cursor: pointer; font-weight: 600; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""


def _e(text: str) -> str:
    return escape(text, quote=True)


def _badge(provenance: str) -> str:
    kind = "estimated" if provenance == "estimated" else "measured"
    return f'<span class="badge {kind}">{_e(provenance)}</span>'


def _table(
    header: Sequence[str],
    rows: Sequence[Union[str, Sequence[str]]],
    numeric: Sequence[int] = (),
    raw_columns: Sequence[int] = (),
) -> str:
    """A table whose ``numeric`` columns are right-aligned; ``raw_columns`` hold markup.

    A row given as one string is a note spanning the whole width (e.g. "… 80 more steps …").
    """

    def cell(tag: str, index: int, value: str) -> str:
        css = ' class="num"' if index in numeric else ""
        return f"<{tag}{css}>{value if index in raw_columns else _e(value)}</{tag}>"

    def row_markup(row: Union[str, Sequence[str]]) -> str:
        if isinstance(row, str):
            return f'<tr class="gap"><td colspan="{len(header)}">{_e(row)}</td></tr>'
        return "<tr>" + "".join(cell("td", i, text) for i, text in enumerate(row)) + "</tr>"

    head = "".join(cell("th", i, text) for i, text in enumerate(header))
    body = "".join(row_markup(row) for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _key_values(rows: Sequence[Tuple[str, str]]) -> str:
    body = "".join(f'<tr><th scope="row">{_e(key)}</th><td>{_e(value)}</td></tr>' for key, value in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def _identity(data: Mapping[str, Any]) -> str:
    items = "".join(
        f"<div><dt>{_e(label)}</dt><dd>{_e(value)}</dd></div>" for label, value in content.identity_rows(data)
    )
    return f'<dl class="identity">{items}</dl>'


def _figure(value: str) -> str:
    """``"291.3 mg CO2e"`` with the unit set smaller than the number; ``"1 min 40 s"`` as it is."""
    number, _, unit = value.partition(" ")
    if not unit or any(word[0].isdigit() for word in unit.split()):
        return _e(value)
    return f'{_e(number)} <span class="unit">{_e(unit)}</span>'


def _cards(data: Mapping[str, Any]) -> str:
    budget = data["budget"]
    cards = []
    for fact in content.headline(data):
        extra, meter = "", ""
        if fact.label == "Budget used" and budget is not None:
            extra = " exceeded" if budget["exceeded"] else ""
            fill = min(max(budget["used_fraction"] or 0.0, 0.0), 1.0) * 100
            meter = f'<div class="meter"><span style="width: {fill:.1f}%"></span></div>'
        cards.append(
            f'<div class="card{extra}"><div class="label">{_e(fact.label)}</div>'
            f'<div class="value">{_figure(fact.value)}</div>{meter}'
            f'<div class="detail">{_e(fact.detail)}</div></div>'
        )
    return f'<section class="cards">{"".join(cards)}</section>'


def _legend(data: Mapping[str, Any], names: Sequence[str]) -> str:
    colours = svg_charts.channel_colours([channel["name"] for channel in data["channels"]])
    by_name = {channel["name"]: channel for channel in data["channels"]}
    items = []
    for name in names:
        channel = by_name.get(name)
        parent = channel["parent"] if channel is not None else None
        dashed = " dashed" if parent else ""
        colour = colours.get(name, svg_charts.PALETTE[0])
        badge = _badge(channel["provenance"]) if channel is not None else ""
        inside = f' <span class="note">inside {_e(parent)}</span>' if parent else ""
        items.append(
            f'<li><span class="swatch{dashed}" style="background: {colour}; '
            f'border-color: {colour}"></span><code>{_e(name)}</code> {badge}{inside}</li>'
        )
    return f'<ul class="legend">{"".join(items)}</ul>'


def _charts(data: Mapping[str, Any]) -> List[str]:
    parts = ["<h2>Power over time</h2>"]
    trace = data["power_trace"]
    spans = run_charts.evaluation_spans(data)
    power_svg = svg_charts.power_chart(trace, data["channels"], data["epochs"], spans)
    if power_svg:
        names = [channel["name"] for channel in data["channels"] if channel["name"] in trace["watts"]]
        points, readings = len(trace["t_s"]), trace["raw_points"]
        notes = [f"{points} points averaged from {readings} readings." if readings > points else f"{points} readings."]
        if any(channel["parent"] for channel in data["channels"] if channel["name"] in names):
            notes.append("Dashed lines are channels that lie inside another one.")
        if any(channel["provenance"] == "estimated" for channel in data["channels"] if channel["name"] in names):
            notes.append("Lines labelled estimated come from a model of the hardware, not from a sensor.")
        if spans:
            notes.append(_EVALUATION_NOTE)
        caption = " ".join(notes)
        parts.append(f"<figure>{power_svg}{_legend(data, names)}<figcaption>{_e(caption)}</figcaption></figure>")
    else:
        parts.append('<p class="empty">No power readings were recorded.</p>')

    parts.append("<h2>Energy per step</h2>")
    steps, steps_per_item = content.chart_steps(data)
    step_svg, items_per_bar = svg_charts.step_energy_chart(steps, data["channels"])
    steps_per_bar = items_per_bar * steps_per_item
    if step_svg:
        stacked = [channel["name"] for channel in data["channels"] if channel["parent"] is None]
        notes = ["Bars are stacked by top-level channel, without PUE."]
        if steps_per_bar > 1:
            notes.append(
                f"Each bar is the mean of {steps_per_bar} consecutive steps."
                if steps_per_item == 1
                else f"Each bar is the mean of up to {steps_per_bar} consecutive steps."
            )
        if any(step["flags"] & FLAG_TAIL for step in steps):
            notes.append("The pale bar is the tail, from the last step mark to stop.")
        if any(step["flags"] & FLAG_SENSOR_ERROR for step in steps):
            notes.append("Red marks show steps in which a sensor errored.")
        parts.append(
            f"<figure>{step_svg}{_legend(data, stacked)}<figcaption>{_e(' '.join(notes))}</figcaption></figure>"
        )
    else:
        parts.append('<p class="empty">No steps were resolved.</p>')
    parts += _run_charts(data, bool(spans))
    return parts


_EVALUATION_NOTE = "Shaded spans are evaluation (validation, evaluate, predict, test windows); the rest is training."


def _run_charts(data: Mapping[str, Any], shaded: bool) -> List[str]:
    parts = []
    cumulative = run_charts.cumulative_chart(data)
    if cumulative:
        notes = [
            "The curve's shape is the power trace's; it ends at the run's total (PUE applied). "
            "CO2e is the same curve at the run's carbon intensity."
        ]
        if shaded:
            notes.append(_EVALUATION_NOTE)
        parts += ["<h2>Cumulative energy and CO2e</h2>", f"<figure>{cumulative}{_caption(notes)}</figure>"]
    epochs = run_charts.epoch_chart(data)
    if epochs:
        stacked = [channel["name"] for channel in data["channels"] if channel["parent"] is None]
        notes = ["The training steps' bars are stacked by top-level channel, without PUE."]
        if 'class="evaluation-bar"' in epochs:
            notes.append(
                "Beside them, the energy of the evaluation windows that ran during the epoch. A step's energy "
                "is everything between its two step marks, so evaluation run between two marks is in that step too."
            )
        parts += [
            "<h2>Energy per epoch</h2>",
            f"<figure>{epochs}{_legend(data, stacked)}{_caption(notes)}</figure>",
        ]
    energy_loss = run_charts.energy_loss_chart(data)
    if energy_loss:
        parts += [
            "<h2>Energy per step and loss</h2>",
            f"<figure>{energy_loss}"
            '<ul class="legend"><li><span class="swatch" style="background: '
            f'{run_charts.TRAINING_COLOUR}"></span>energy per step (left axis)</li>'
            f'<li><span class="swatch" style="background: {run_charts.CO2_COLOUR}"></span>'
            "training loss as logged (right axis)</li></ul>"
            f"{_caption(['Energy per step is over the top-level channels, without PUE; means of consecutive steps on long runs.'])}"
            "</figure>",
        ]
    return parts


def _caption(notes: Sequence[str]) -> str:
    return f"<figcaption>{_e(' '.join(notes))}</figcaption>"


def windows_chart_figure(data: Mapping[str, Any]) -> str:
    svg = run_charts.windows_chart(data)
    if not svg:
        return ""
    return (
        f"<figure>{svg}"
        f'<ul class="legend"><li><span class="swatch" style="background: {run_charts.TRAINING_COLOUR}"></span>'
        f'training and other windows</li><li><span class="swatch" style="background: {svg_charts.EVALUATION_COLOUR}">'
        "</span>evaluation windows</li></ul></figure>"
    )


def _channels(data: Mapping[str, Any]) -> List[str]:
    rows = [
        [
            f"<code>{_e(row.name)}</code>",
            _e(row.kind),
            _badge(row.provenance),
            _e(row.scope),
            _e(row.source),
            _e(row.parent) if row.parent else "",
            _e(row.joules),
            _e(row.kwh),
            _e(row.mean_watts),
        ]
        for row in content.channel_rows(data)
    ]
    header = [
        "Channel",
        "Kind",
        "Provenance",
        "Scope",
        "Source",
        "Inside",
        "Energy (J)",
        "Energy (kWh)",
        "Mean power (W)",
    ]
    notes = content.coverage_notes(data)
    return [
        "<h2>Energy per channel</h2>",
        _table(header, rows, numeric=(6, 7, 8), raw_columns=range(len(header))),
        f'<p class="note">{_e(content.energy_total_note(data))}</p>',
    ] + ([f'<ul class="note">{"".join(f"<li>{_e(note)}</li>" for note in notes)}</ul>'] if notes else [])


def _intensity(data: Mapping[str, Any]) -> List[str]:
    intensity = data["intensity"]
    rows = [
        ("Intensity", content.intensity_value_text(intensity)),
        ("Source", content.INTENSITY_SOURCE_LABELS.get(intensity["source"], intensity["source"])),
        ("Dataset", intensity["dataset"]),
        ("Year", str(intensity["year"]) if intensity["year"] is not None else "not stated"),
        ("Zone", intensity["zone"] or numbers.MISSING),
        ("Country", intensity["country"] or numbers.MISSING),
        ("Region", intensity["region"] or numbers.MISSING),
    ]
    if intensity["is_estimated"] is not None:
        rows.append(("Provider's estimate", "yes" if intensity["is_estimated"] else "no"))
    return ["<h2>Carbon intensity</h2>", _key_values(rows)]


def _comparisons_and_budget(data: Mapping[str, Any]) -> List[str]:
    parts = ["<h2>Equivalent to</h2>"]
    rows = content.comparison_rows(data)
    if rows:
        parts.append(_table(["Comparison", "Amount", "Basis"], rows))
    else:
        parts.append('<p class="empty">No comparisons available.</p>')
    advice = content.recommendation_texts(data)
    if advice:
        parts += ["<h2>Recommendations</h2>", "<ul>" + "".join(f"<li>{_e(s)}</li>" for s in advice) + "</ul>"]
    parts.append("<h2>Carbon budget</h2>")
    budget_rows = content.budget_rows(data["budget"])
    parts.append(_key_values(budget_rows) if budget_rows else '<p class="empty">No budget set.</p>')
    return parts


def _breakdowns(data: Mapping[str, Any]) -> List[str]:
    parts: List[str] = []
    if data["epochs"]:
        parts += ["<h2>Epochs</h2>", _table(content.epoch_header(), content.epoch_rows(data), numeric=range(2, 6))]
    window_rows = content.window_rows(data)
    if window_rows:
        header = content.window_header(data)
        parts += [
            '<h2 id="windows">Windows</h2>',
            windows_chart_figure(data),
            _table(header, window_rows, numeric=range(1, len(header))),
        ]
        parts += [f'<p class="note">{_e(note)}</p>' for note in content.window_notes(data)]
    summary = content.step_summary_rows(data)
    if "steps" not in data and summary:
        parts += [f"<h2>Steps ({content.step_count(data)})</h2>", _key_values(summary)]
    if data.get("steps"):
        shown, hidden = content.shown_steps(data)
        header = content.step_header(data)
        rows: List[Union[str, Sequence[str]]] = [content.step_row(data, step) for step in shown]
        if hidden:
            rows.insert(content.STEPS_SHOWN_AT_EACH_END, f"… {hidden} more steps …")
        parts += [f"<h2>Steps ({len(data['steps'])})</h2>", _table(header, rows, numeric=range(2, len(header) - 1))]
    return parts


def _warnings(data: Mapping[str, Any]) -> List[str]:
    parts = ["<h2>Warnings</h2>", f'<p class="note">Monitoring errors: {data["monitoring_errors_total"]}.</p>']
    rows = content.warning_rows(data)
    if rows:
        parts.append(_table(["Code", "Message"], rows))
    return parts


def _settings(data: Mapping[str, Any]) -> List[str]:
    config_rows = [
        (key, json.dumps(value) if isinstance(value, (list, dict)) else content.key_value_text(value))
        for key, value in data["config"].items()
    ]
    version_rows = [(key, content.key_value_text(value)) for key, value in data["versions"].items()]
    return [
        "<details><summary>Configuration</summary>",
        _table(["Setting", "Value"], config_rows),
        "</details>",
        "<details><summary>Software versions</summary>",
        _table(["Component", "Version"], version_rows),
        "</details>",
    ]


def render_html(prepared: Mapping[str, Any]) -> str:
    reason = incomplete_reason(prepared)
    banner = (
        f'<p class="banner" role="alert"><strong>Incomplete report:</strong> {_e(reason)}. '
        "Figures cover only what was measured.</p>"
        if reason
        else ""
    )
    body = [f"<h1>{_e(content.title(prepared))}</h1>", _identity(prepared), banner, _cards(prepared)]
    body += _charts(prepared)
    body += gradient_parts(prepared)
    body += _channels(prepared)
    body += _intensity(prepared)
    body += _comparisons_and_budget(prepared)
    body += _breakdowns(prepared)
    body += _warnings(prepared)
    body += _settings(prepared)
    body.append(
        f"<footer>hf-eco2ai report, schema version {_e(str(prepared['schema_version']))}, "
        f"generated {_e(numbers.unix_time(prepared['generated_unix_s']))}.</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(content.title(prepared))}</title><style>{_CSS}</style></head>"
        f"<body><main>{''.join(body)}</main></body></html>\n"
    )
