"""The windows part of ``hf-eco2ai show``: per window name, the count, total and mean energy, mean
power and share of the run, with the short-window estimate when the run's report has one."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from hf_eco2ai.reporting import numbers
from hf_eco2ai.reporting.windows import window_summaries, windows_from_rows
from hf_eco2ai.store.run_store import RunStore, RunSummary


def _from_rows(store: RunStore, summary: RunSummary) -> Dict[str, Any]:
    """A run without a final report: its stored window rows, totalled per name (no run total
    yet, so no share of the run)."""
    top_level = [channel["name"] for channel in summary.channels if not channel.get("parent")]
    pue = float((summary.config or {}).get("pue") or 1.0)
    g_per_kwh = (summary.intensity or {}).get("g_per_kwh")
    return {"windows": windows_from_rows(store.windows(summary.run_id), top_level, pue, g_per_kwh), "energy": {}}


def window_lines(report: Mapping[str, Any]) -> List[str]:
    """The lines ``show`` prints for the report's windows (none when it has no windows)."""
    summaries = window_summaries(report)
    if not summaries:
        return []
    lines = [f"  windows ({len(summaries)} names)"]
    for window in summaries:
        text = (
            f"    {window['name']}: {window['count']} ×, {numbers.duration(window['duration_s'])}, "
            f"{numbers.significant(window['joules'])} J (mean {numbers.significant(window['mean_joules'])} J, "
            f"{numbers.significant(window['mean_watts'])} W), {numbers.percent(window['share_of_run'])} of the run"
        )
        estimate: Optional[Mapping[str, Any]] = window["estimate"]
        if estimate is not None and estimate.get("mean_joules") is not None:
            text += (
                f"; estimated {numbers.significant(estimate['mean_joules'])} ± "
                f"{numbers.significant(estimate.get('mean_joules_stderr'), 2)} J each"
            )
        lines.append(text)
    return lines


def print_windows(store: RunStore, summary: RunSummary, report: Optional[Mapping[str, Any]]) -> None:
    for line in window_lines(report if report is not None else _from_rows(store, summary)):
        print(line)
