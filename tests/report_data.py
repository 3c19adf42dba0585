"""Builds ``tracking_data`` dicts (docs/reports.md) from an analytic power model.

Every figure is computed from the model (steps integrate the power curves, totals add the steps,
carbon multiplies the totals), so the data is self-consistent the way a real session's is, and
tests can recompute any figure instead of hard-coding it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from hf_eco2ai.units import JOULES_PER_KWH

PowerModel = Callable[[float], float]

# (name, kind, provenance, source, parent, watts(t))
DEFAULT_CHANNELS: Sequence[Tuple[str, str, str, str, Optional[str], PowerModel]] = (
    (
        "gpu:0",
        "counter",
        "measured",
        "nvml",
        None,
        lambda t: 180.0 + 90.0 * math.sin(t / 3.0) ** 2 + (40.0 if int(t * 2) % 2 else 0.0),
    ),
    ("cpu:package-0", "counter", "measured", "rapl", None, lambda t: 45.0 + 10.0 * math.cos(t / 5.0)),
    ("cpu:core-0", "counter", "measured", "rapl", "cpu:package-0", lambda t: 30.0 + 8.0 * math.cos(t / 5.0)),
    ("dram:0", "power", "estimated", "cpu-estimate", None, lambda t: 6.0),
)

# Factors as cited in docs/carbon.md; in the product they come from the carbon layer's table.
COMPARISON_FACTORS = (
    (
        "smartphone charges",
        "charges",
        0.0124,
        "kg CO2e per charge",
        "co2",
        "US EPA Greenhouse Gas Equivalencies Calculator",
    ),
    ("car distance", "km", 0.244, "kg CO2e per km", "co2", "US EPA, average passenger vehicle"),
    (
        "tree absorption",
        "tree-minutes",
        11.0 / (365.25 * 24 * 60),
        "kg CO2e per tree-minute",
        "co2",
        "Green Algorithms (about 11 kg CO2 per tree-year)",
    ),
    ("LED bulb (10 W)", "hours", 0.010, "kWh per hour", "energy", "derived: 10 W for one hour"),
)


def _integrate(watts: PowerModel, t0: float, t1: float, pieces: int = 32) -> float:
    """Joules between t0 and t1 by the trapezoidal rule, as the core's energy layer does."""
    width = (t1 - t0) / pieces
    total = 0.5 * (watts(t0) + watts(t1))
    total += sum(watts(t0 + i * width) for i in range(1, pieces))
    return total * width


def make_tracking_data(
    step_count: int = 24,
    steps_per_epoch: int = 8,
    step_seconds: float = 0.5,
    tail_seconds: float = 0.2,
    channels: Sequence[Tuple[str, str, str, str, Optional[str], PowerModel]] = DEFAULT_CHANNELS,
    g_per_kwh: float = 380.0,
    pue: float = 1.2,
    budget_kg: Optional[float] = 0.05,
    price_per_kwh: Optional[float] = 0.31,
    sensor_failure_step: Optional[int] = None,
    trace_points: int = 600,
    project_name: str = "sentiment-analysis",
) -> Dict[str, Any]:
    """A schema-valid ``tracking_data`` for ``step_count`` marked steps plus a tail record."""
    names = [spec[0] for spec in channels]
    top_level = [spec[0] for spec in channels if spec[4] is None]
    models = {spec[0]: spec[5] for spec in channels}
    failed_from: Optional[float] = None
    if sensor_failure_step is not None:
        failed_from = sensor_failure_step * step_seconds

    def watts_of(name: str, t: float) -> Optional[float]:
        if failed_from is not None and name == "gpu:0" and t >= failed_from:
            return None
        return models[name](t)

    boundaries = [i * step_seconds for i in range(step_count + 1)]
    boundaries.append(boundaries[-1] + tail_seconds)
    duration_s = boundaries[-1]
    steps: List[Dict[str, Any]] = []
    for index in range(len(boundaries) - 1):
        t0, t1 = boundaries[index], boundaries[index + 1]
        is_tail = index == len(boundaries) - 2
        by_channel: Dict[str, float] = {}
        flags = 1  # dram:0 is estimated, so every step holds an estimated channel
        for name in names:
            if failed_from is not None and name == "gpu:0" and t1 > failed_from:
                by_channel[name] = _integrate(models[name], t0, max(t0, failed_from))
                if t0 <= failed_from:
                    flags |= 8
                continue
            by_channel[name] = _integrate(models[name], t0, t1)
        if is_tail:
            flags |= 16
        steps.append(
            {
                "index": index,
                "epoch": None if is_tail else index // steps_per_epoch,
                "t0_s": t0,
                "t1_s": t1,
                "duration_s": t1 - t0,
                "joules": sum(by_channel[name] for name in top_level),
                "joules_by_channel": by_channel,
                "flags": flags,
            }
        )

    energy_by_channel = {}
    for name in names:
        joules = sum(step["joules_by_channel"][name] for step in steps)
        energy_by_channel[name] = {"joules": joules, "kwh": joules / JOULES_PER_KWH, "mean_watts": joules / duration_s}
    it_kwh = sum(energy_by_channel[name]["kwh"] for name in top_level)
    total_kwh = it_kwh * pue
    total_co2_kg = total_kwh * g_per_kwh / 1000.0

    epochs = []
    epoch_numbers = sorted({step["epoch"] for step in steps if step["epoch"] is not None})
    for number in epoch_numbers:
        members = [step for step in steps if step["epoch"] == number]
        joules = sum(step["joules"] for step in members)
        energy_kwh = joules / JOULES_PER_KWH * pue
        epochs.append(
            {
                "epoch": number,
                "first_step": members[0]["index"],
                "last_step": members[-1]["index"],
                "t0_s": members[0]["t0_s"],
                "t1_s": members[-1]["t1_s"],
                "duration_s": members[-1]["t1_s"] - members[0]["t0_s"],
                "joules": joules,
                "joules_by_channel": {name: sum(step["joules_by_channel"][name] for step in members) for name in names},
                "energy_kwh": energy_kwh,
                "co2_kg": energy_kwh * g_per_kwh / 1000.0,
            }
        )

    times = [duration_s * (i + 0.5) / trace_points for i in range(trace_points)]
    trace = {
        "t_s": times,
        "watts": {name: [watts_of(name, t) for t in times] for name in names},
        "raw_points": trace_points * 10,
    }

    comparisons = []
    for name, unit, factor, factor_unit, basis, citation in COMPARISON_FACTORS:
        amount = total_co2_kg if basis == "co2" else total_kwh
        comparisons.append(
            {
                "name": name,
                "value": amount / factor,
                "unit": unit,
                "factor": factor,
                "factor_unit": factor_unit,
                "citation": citation,
            }
        )

    budget = None
    if budget_kg is not None:
        budget = {
            "budget_kg": budget_kg,
            "used_kg": total_co2_kg,
            "remaining_kg": budget_kg - total_co2_kg,
            "used_fraction": total_co2_kg / budget_kg,
            "exceeded": total_co2_kg > budget_kg,
        }
    cost = None
    if price_per_kwh is not None:
        cost = {"price_per_kwh": price_per_kwh, "currency": "EUR", "total": total_kwh * price_per_kwh}

    warnings: List[Dict[str, Any]] = []
    monitoring_errors = 0
    if failed_from is not None:
        monitoring_errors = 1
        warnings.append(
            {
                "code": "sensor-failed",
                "message": "NVML stopped answering; gpu:0 energy after this point is missing",
                "channel": "gpu:0",
                "t_s": failed_from,
            }
        )

    started = 1_732_000_000.0
    spec_by_name = {spec[0]: spec for spec in channels}
    return {
        "schema_version": 1,
        "generated_unix_s": started + duration_s + 0.05,
        "run": {
            "run_id": "run-7f3a9c",
            "project_name": project_name,
            "experiment_id": "bert-base-v1",
            "model_name": "BertForSequenceClassification",
            "host": "trainer-01",
            "rank": 0,
            "local_rank": 0,
            "world_size": 1,
            "started_unix_s": started,
            "ended_unix_s": started + duration_s,
        },
        "duration_s": duration_s,
        "channels": [
            {
                "name": name,
                "kind": spec_by_name[name][1],
                "provenance": spec_by_name[name][2],
                "source": spec_by_name[name][3],
                "parent": spec_by_name[name][4],
            }
            for name in names
        ],
        "energy": {"by_channel": energy_by_channel, "it_kwh": it_kwh, "pue": pue, "total_kwh": total_kwh},
        "intensity": {
            "g_per_kwh": g_per_kwh,
            "source": "country-table",
            "dataset": "Our World in Data (CC BY 4.0)",
            "zone": "DE",
            "country": "DE",
            "region": None,
            "year": 2023,
            "is_estimated": None,
        },
        "total_co2_kg": total_co2_kg,
        "comparisons": comparisons,
        "budget": budget,
        "cost": cost,
        "steps": steps,
        "epochs": epochs,
        "power_trace": trace,
        "monitoring_errors_total": monitoring_errors,
        "warnings": warnings,
        "config": {
            "tracking_mode": "detailed",
            "project_name": project_name,
            "experiment_id": "bert-base-v1",
            "country_iso_code": "DE",
            "pue": pue,
            "co2_signal_api_token": "***",
            "carbon_budget_kg": budget_kg,
            "measurement_interval": 0.01,
            "prometheus_enabled": False,
        },
        "versions": {"hf_eco2ai": "0.1.0", "python": "3.11.2", "platform": "Linux-x86_64"},
    }


def tracking_data_from_meter(
    meter: Any, g_per_kwh: float = 250.0, pue: float = 1.1, started_unix_s: float = 1_732_000_000.0
) -> Dict[str, Any]:
    """``tracking_data`` from a stopped ``EnergyMeter``: its real step records and power trace.

    A test-side stand-in for ``TrackingSession.report()``: no epochs, budget or comparisons, just
    the measured part, converted from numpy to plain JSON types the way the schema requires.
    """
    steps = meter.drain_steps()
    trace = meter.drain_trace()
    infos = meter.channels()
    names = [info.name for info in infos]
    top_level = [info.name for info in infos if info.parent is None]
    origin = float(steps.t0_s[0])
    duration_s = float(steps.t1_s[-1]) - origin
    step_rows = []
    for row in range(len(steps)):
        by_channel = {name: float(steps.joules[row, column]) for column, name in enumerate(names)}
        step_rows.append(
            {
                "index": int(steps.index[row]),
                "epoch": None,
                "t0_s": float(steps.t0_s[row]) - origin,
                "t1_s": float(steps.t1_s[row]) - origin,
                "duration_s": float(steps.t1_s[row] - steps.t0_s[row]),
                "joules": sum(by_channel[name] for name in top_level),
                "joules_by_channel": by_channel,
                "flags": int(steps.flags[row]),
            }
        )
    energy = {}
    for column, name in enumerate(names):
        joules = float(steps.joules[:, column].sum())
        energy[name] = {"joules": joules, "kwh": joules / JOULES_PER_KWH, "mean_watts": joules / duration_s}
    it_kwh = sum(energy[name]["kwh"] for name in top_level)
    total_kwh = it_kwh * pue
    return {
        "schema_version": 1,
        "generated_unix_s": started_unix_s + duration_s,
        "run": {
            "run_id": "meter-run",
            "project_name": "synthetic-meter",
            "experiment_id": None,
            "model_name": None,
            "host": "localhost",
            "rank": 0,
            "local_rank": 0,
            "world_size": 1,
            "started_unix_s": started_unix_s,
            "ended_unix_s": started_unix_s + duration_s,
        },
        "duration_s": duration_s,
        "channels": [
            {
                "name": info.name,
                "kind": info.kind,
                "provenance": info.provenance,
                "source": info.source,
                "parent": info.parent,
            }
            for info in infos
        ],
        "energy": {"by_channel": energy, "it_kwh": it_kwh, "pue": pue, "total_kwh": total_kwh},
        "intensity": {
            "g_per_kwh": g_per_kwh,
            "source": "explicit",
            "dataset": "set by the test",
            "zone": None,
            "country": None,
            "region": None,
            "year": None,
            "is_estimated": None,
        },
        "total_co2_kg": total_kwh * g_per_kwh / 1000.0,
        "comparisons": [],
        "budget": None,
        "cost": None,
        "steps": step_rows,
        "epochs": [],
        "power_trace": {
            "t_s": [float(t) - origin for t in trace.t_s],
            "watts": {name: [float(w) for w in trace.watts[:, column]] for column, name in enumerate(names)},
            "raw_points": int(len(trace.t_s)),
        },
        "monitoring_errors_total": 0,
        "warnings": [],
        "config": {},
        "versions": {},
    }
