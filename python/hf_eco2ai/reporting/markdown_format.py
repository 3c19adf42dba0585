"""The Markdown report (GitHub-flavoured): a person's summary of one run."""

from __future__ import annotations

import json
from typing import Any, List, Mapping, Sequence

from hf_eco2ai.reporting import content
from hf_eco2ai.reporting.schema import incomplete_reason

_ESCAPED = "\\`*_[]<>|#"


def _text(value: str) -> str:
    """Escape Markdown syntax in text from the data, so a project name cannot inject a table or link."""
    escaped = "".join(f"\\{char}" if char in _ESCAPED else char for char in value)
    return " ".join(escaped.splitlines())


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(_text(cell) for cell in header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines.extend("| " + " | ".join(_text(cell) for cell in row) + " |" for row in rows)
    return lines


def render_markdown(prepared: Mapping[str, Any]) -> str:
    lines: List[str] = [f"# {_text(content.title(prepared))}", ""]
    lines.extend(f"- **{label}:** {_text(value)}" for label, value in content.identity_rows(prepared))
    lines.append("")
    reason = incomplete_reason(prepared)
    if reason:
        lines += [f"> **Incomplete report:** {_text(reason)}. Figures cover only what was measured.", ""]

    lines += ["## Summary", ""]
    lines += _table(["", "Value", "Details"], [list(fact) for fact in content.headline(prepared)])

    lines += ["", "## Energy per channel", ""]
    lines += _table(
        ["Channel", "Kind", "Provenance", "Scope", "Source", "Inside", "Energy (J)", "Energy (kWh)", "Mean power (W)"],
        [list(row) for row in content.channel_rows(prepared)],
    )
    lines += ["", _text(content.energy_total_note(prepared))]
    notes = content.coverage_notes(prepared)
    if notes:
        lines += [""] + [f"- {_text(note)}" for note in notes]

    intensity = prepared["intensity"]
    lines += [
        "",
        "## Carbon intensity",
        "",
        f"{_text(content.intensity_value_text(intensity))}: {_text(content.intensity_source_text(intensity))}.",
    ]

    comparisons = content.comparison_rows(prepared)
    if comparisons:
        lines += ["", "## Equivalent to", ""]
        lines += _table(["Comparison", "Amount", "Basis"], [list(row) for row in comparisons])

    advice = content.recommendation_texts(prepared)
    if advice:
        lines += ["", "## Recommendations", ""] + [f"- {_text(sentence)}" for sentence in advice]

    lines += ["", "## Carbon budget", ""]
    budget_rows = content.budget_rows(prepared["budget"])
    if budget_rows:
        lines += _table(["", "Value"], [list(row) for row in budget_rows])
    else:
        lines.append("No budget set.")

    if prepared["epochs"]:
        lines += ["", "## Epochs", ""]
        lines += _table(content.epoch_header(), content.epoch_rows(prepared))

    window_rows = content.window_rows(prepared)
    if window_rows:
        lines += ["", "## Windows", ""]
        lines += _table(content.window_header(prepared), window_rows)
        lines += [""] + [_text(note) for note in content.window_notes(prepared)]

    summary = content.step_summary_rows(prepared)
    if "steps" not in prepared and summary:
        lines += ["", f"## Steps ({content.step_count(prepared)})", ""]
        lines += _table(["", "Value"], [list(row) for row in summary])

    if prepared.get("steps"):
        shown, hidden = content.shown_steps(prepared)
        lines += ["", f"## Steps ({len(prepared['steps'])})", ""]
        rows = [content.step_row(prepared, step) for step in shown]
        if hidden:
            middle = content.STEPS_SHOWN_AT_EACH_END
            gap = [f"… {hidden} more"] + [""] * (len(rows[0]) - 1)
            rows = rows[:middle] + [gap] + rows[middle:]
        lines += _table(content.step_header(prepared), rows)

    warnings = content.warning_rows(prepared)
    lines += ["", "## Warnings", ""]
    lines.append(f"Monitoring errors: {prepared['monitoring_errors_total']}.")
    if warnings:
        lines.append("")
        lines += _table(["Code", "Message"], [list(row) for row in warnings])

    lines += ["", "## Configuration", ""]
    lines += _table(
        ["Setting", "Value"],
        [
            [key, json.dumps(value) if isinstance(value, (list, dict)) else content.key_value_text(value)]
            for key, value in prepared["config"].items()
        ],
    )
    lines += ["", "## Software", ""]
    lines += _table(
        ["Component", "Version"], [[key, content.key_value_text(value)] for key, value in prepared["versions"].items()]
    )
    lines += ["", f"_Schema version {prepared['schema_version']}._", ""]
    return "\n".join(lines)
