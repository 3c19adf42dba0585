"""The report of a run that never wrote its final one (its process was killed or lost).

Built from what the run store kept: the run's identity, channels, intensity and configuration,
its last drained totals, its step records and its power trace. The figures cover the run up to its
last store commit (at most one drain interval plus one writer batch before the process ended), and
the report carries a ``run-interrupted`` warning, so every human-readable format marks it
*incomplete*. Pure reads, no writes.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Mapping, Optional

from hf_eco2ai.carbon.comparisons import compute_comparisons
from hf_eco2ai.reporting.schema import SCHEMA_VERSION
from hf_eco2ai.reporting.windows import windows_from_rows, with_window_figures
from hf_eco2ai.store.run_store import RunStore, RunSummary, StoredSteps

JOULES_PER_KWH = 3.6e6
INTERRUPTED_CODE = "run-interrupted"
_INTENSITY_KEYS = ("g_per_kwh", "source", "dataset", "zone", "country", "region", "year", "is_estimated")


def _joules_by_channel(summary: RunSummary, steps: StoredSteps) -> Dict[str, float]:
    latest = summary.latest.get("energy_joules_by_channel")
    names = [channel["name"] for channel in summary.channels]
    if isinstance(latest, Mapping):
        return {name: float(latest.get(name) or 0.0) for name in names}
    return {
        name: float(steps.joules_by_channel[:, position].sum()) if len(steps) else 0.0
        for position, name in enumerate(names)
    }


def _step_dicts(steps: StoredSteps) -> List[Dict[str, Any]]:
    return [
        {
            "index": int(steps.index[i]),
            "epoch": steps.epoch[i],
            "t0_s": float(steps.t0_s[i]),
            "t1_s": float(steps.t1_s[i]),
            "duration_s": float(steps.t1_s[i] - steps.t0_s[i]),
            "joules": float(steps.joules[i]),
            "flags": int(steps.flags[i]),
            "joules_by_channel": dict(zip(steps.channels, steps.joules_by_channel[i].tolist())),
        }
        for i in range(len(steps))
    ]


def _power_trace(store: RunStore, run_id: str) -> Optional[Dict[str, Any]]:
    times_s, watts = store.power_trace(run_id)
    if not times_s:
        return None
    return {"t_s": times_s, "watts": watts, "raw_points": len(times_s)}


def interrupted_report(store: RunStore, run_id: str) -> Dict[str, Any]:
    """A schema-valid ``tracking_data`` for a run without a final report, marked interrupted.

    Raises:
        KeyError: no such run. DamagedRunError: a stored row cannot be read.
    """
    summary = store.get_run(run_id)
    steps = store.steps(summary.run_id)
    config: Dict[str, Any] = dict(summary.config or {})
    pue = float(config.get("pue") or 1.0)
    joules_by_channel = _joules_by_channel(summary, steps)
    top_level = {channel["name"] for channel in summary.channels if channel.get("parent") is None}
    it_kwh = sum(joules for name, joules in joules_by_channel.items() if name in top_level) / JOULES_PER_KWH
    total_kwh = it_kwh * pue
    stored_intensity = summary.intensity or {}
    intensity: Dict[str, Any] = {key: stored_intensity.get(key) for key in _INTENSITY_KEYS}
    g_per_kwh = intensity["g_per_kwh"]
    if g_per_kwh is None:
        g_per_kwh = 0.0
        intensity.update(g_per_kwh=g_per_kwh, source="unknown", dataset="not stored before the run ended")
    co2_kg = total_kwh * float(g_per_kwh) / 1000.0
    duration_s = float(summary.latest.get("t_s") or summary.duration_s)
    budget_kg = config.get("carbon_budget_kg")
    price = config.get("electricity_price_per_kwh")
    last_write = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(summary.updated_unix_s))
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_unix_s": time.time(),
        "run": {
            "run_id": summary.run_id,
            "project_name": summary.project_name,
            "experiment_id": summary.experiment_id,
            "model_name": summary.model_name,
            "host": summary.host,
            "rank": summary.rank,
            "local_rank": summary.local_rank,
            "world_size": summary.world_size,
            "started_unix_s": summary.started_unix_s,
            "ended_unix_s": None,
        },
        "duration_s": duration_s,
        "channels": [
            {key: channel.get(key) for key in ("name", "kind", "provenance", "source", "parent")}
            for channel in summary.channels
        ],
        "energy": {
            "by_channel": {
                name: {
                    "joules": joules,
                    "kwh": joules / JOULES_PER_KWH,
                    "mean_watts": joules / duration_s if duration_s > 0 else None,
                }
                for name, joules in joules_by_channel.items()
            },
            "it_kwh": it_kwh,
            "pue": pue,
            "total_kwh": total_kwh,
        },
        "intensity": intensity,
        "total_co2_kg": co2_kg,
        "comparisons": [comparison.to_dict() for comparison in compute_comparisons(co2_kg, total_kwh)],
        "budget": None
        if not budget_kg
        else {
            "budget_kg": budget_kg,
            "used_kg": co2_kg,
            "remaining_kg": budget_kg - co2_kg,
            "used_fraction": co2_kg / budget_kg,
            "exceeded": co2_kg > budget_kg,
        },
        "cost": None
        if price is None
        else {
            "price_per_kwh": price,
            "currency": config.get("electricity_currency"),
            "total": total_kwh * price,
        },
        "steps": _step_dicts(steps),
        "epochs": [],
        "windows": with_window_figures(
            windows_from_rows(store.windows(summary.run_id), sorted(top_level), pue, float(g_per_kwh)),
            it_kwh * JOULES_PER_KWH,
        ),
        "power_trace": _power_trace(store, summary.run_id),
        "monitoring_errors_total": int(summary.latest.get("monitoring_errors_total") or 0),
        "warnings": [
            {
                "code": INTERRUPTED_CODE,
                "message": f"interrupted: the run ended without its final report (status {summary.status}); the "
                f"figures are those stored up to its last write at {last_write}",
            }
        ],
        "config": config,
        "versions": {},
    }
