"""Per-window-name figures every report shows: count, total and mean energy, mean power, share of
the run, and the estimate for windows shorter than the sensor when the report has one.

Pure functions of ``tracking_data``; older reports without the derived keys get them computed here,
so every renderer shows the same figures.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from hf_eco2ai.units import JOULES_PER_KWH, joules_from_kwh

# Names the Lightning and Hugging Face callbacks give to work that is not a training step.
EVALUATION_WINDOWS = ("validation", "evaluate", "predict", "test", "eval")


def window_figures(window: Mapping[str, Any], run_joules: Optional[float]) -> Dict[str, Optional[float]]:
    """``mean_joules`` (J per window), ``mean_watts`` (W over the windows' summed duration) and
    ``share_of_run`` (their joules over the run's top-level joules, both without PUE; nested
    windows lie inside others, so shares may add up to more than 1)."""
    joules = window.get("joules")
    count = window.get("count") or 0
    duration_s = window.get("duration_s")
    return {
        "mean_joules": joules / count if joules is not None and count else None,
        "mean_watts": joules / duration_s if joules is not None and duration_s else None,
        "share_of_run": joules / run_joules if joules is not None and run_joules else None,
    }


def run_top_level_joules(data: Mapping[str, Any]) -> Optional[float]:
    """The run's energy over its top-level channels, without PUE (J)."""
    it_kwh = data.get("energy", {}).get("it_kwh")
    return None if it_kwh is None else joules_from_kwh(it_kwh)


def with_window_figures(windows: List[Dict[str, Any]], run_joules: Optional[float]) -> List[Dict[str, Any]]:
    """``windows`` (the report's section), each with its ``window_figures`` added."""
    return [{**window, **window_figures(window, run_joules)} for window in windows]


def window_summaries(data: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """One dict per window name: the ``windows`` entry with its figures, and ``estimate`` (the
    ``window_estimates`` entry of that name, or None). Names only the estimate knows come last."""
    run_joules = run_top_level_joules(data)
    section = data.get("window_estimates") or {}
    estimates: Mapping[str, Any] = section.get("windows") or {}
    summaries = []
    for window in data.get("windows") or []:
        figures = window_figures(window, run_joules)
        summaries.append({**window, **figures, "estimate": estimates.get(window["name"])})
    known = {summary["name"] for summary in summaries}
    for name, estimate in estimates.items():
        if name not in known:
            summaries.append(
                {
                    "name": name,
                    "count": estimate.get("repetitions", 0),
                    "duration_s": None,
                    "joules": None,
                    "mean_joules": None,
                    "mean_watts": None,
                    "share_of_run": None,
                    "estimate": estimate,
                }
            )
    return summaries


def is_evaluation(name: str) -> bool:
    """Whether a window holds evaluation work (validation, evaluate, predict, test)."""
    return name.lower() in EVALUATION_WINDOWS


def windows_from_rows(
    rows: Sequence[Mapping[str, Any]], top_level: Sequence[str], pue: float, g_per_kwh: Optional[float]
) -> List[Dict[str, Any]]:
    """The report's ``windows`` section from stored window rows (``RunStore.windows``), for a run
    without a final report: per name in order of first appearance, totals over ``top_level``
    channels, PUE applied to ``energy_kwh`` and ``g_per_kwh`` (0 when unknown) to ``co2_kg``."""
    totals: Dict[str, Dict[str, Any]] = {}
    for row in rows:
        window = totals.setdefault(
            row["name"],
            {"name": row["name"], "count": 0, "duration_s": 0.0, "joules": 0.0, "joules_by_channel": {}, "flags": 0},
        )
        window["count"] += 1
        window["duration_s"] += row["t1_s"] - row["t0_s"]
        window["flags"] |= int(row["flags"])
        for channel, joules in row["joules_by_channel"].items():
            window["joules_by_channel"][channel] = window["joules_by_channel"].get(channel, 0.0) + joules
            if channel in top_level:
                window["joules"] += joules
    for window in totals.values():
        window["energy_kwh"] = window["joules"] / JOULES_PER_KWH * pue
        window["co2_kg"] = window["energy_kwh"] * (g_per_kwh or 0.0) / 1000.0
    return list(totals.values())
