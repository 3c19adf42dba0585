"""Building the ``tracking_data`` report (docs/reports.md) of one rank, and combining the ranks'.

The report is bounded: totals, per-epoch and per-window aggregates, a downsampled step series and
power trace (at most 2,000 points each), and the name of the file that holds every step. Its size
does not grow with the number of steps. Pure functions of what the session hands over.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from dataclasses import asdict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from hf_eco2ai import __version__, units
from hf_eco2ai.carbon.comparisons import compute_comparisons
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.carbon.recommendations import Recommendation
from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.meter.channels import ChannelInfo
from hf_eco2ai.reporting.windows import with_window_figures
from hf_eco2ai.session.figures import top_level_joules
from hf_eco2ai.session.run_records import RunRecords
from hf_eco2ai.units import joules_from_kwh

REPORT_SCHEMA_VERSION = 1


def build_local_report(
    *,
    identity: Mapping[str, Any],
    config: CarbonConfig,
    channels: Sequence[ChannelInfo],
    totals: Mapping[str, Any],
    records: RunRecords,
    intensity: IntensityResult,
    budget_kg: Optional[float],
    warnings: List[Dict[str, Any]],
    errors_total: int,
    samples_total: Optional[float],
    steps_file: Optional[Dict[str, Any]],
    recommendations: Sequence[Recommendation] = (),
    estimate_inputs: Optional[Mapping[str, Mapping[str, Any]]] = None,
    dram: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """This rank's report. ``identity`` is the ``run`` section; ``steps_file`` names the per-step
    file (``path``, ``format``, ``rows``) or is None when steps are not kept; ``recommendations``
    are the carbon layer's advice for this location (regions, time of day); ``estimate_inputs``
    (per channel) and ``dram`` come from ``hf_eco2ai.meter.coverage``."""
    estimate_inputs = estimate_inputs or {}
    duration_s = records.relative(totals["t_s"])
    joules_by_channel = {c.name: float(totals["joules"].get(c.name, 0.0)) for c in channels}
    it_kwh = units.kwh_from_joules(top_level_joules(channels, joules_by_channel))
    total_kwh = it_kwh * config.pue
    co2_kg = units.co2_kg(total_kwh, intensity.g_per_kwh)
    price = config.electricity_price_per_kwh
    mode = config.tracking_mode
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated_unix_s": time.time(),
        "run": dict(identity),
        "duration_s": duration_s,
        "channels": [
            {**asdict(channel), "estimate_inputs": _plain(estimate_inputs.get(channel.name))} for channel in channels
        ],
        "energy": {
            "by_channel": {
                name: {
                    "joules": joules,
                    "kwh": units.kwh_from_joules(joules),
                    "mean_watts": joules / duration_s if duration_s > 0 else None,
                }
                for name, joules in joules_by_channel.items()
            },
            "it_kwh": it_kwh,
            "pue": config.pue,
            "total_kwh": total_kwh,
        },
        "intensity": asdict(intensity),
        "total_co2_kg": co2_kg,
        "comparisons": comparisons(co2_kg, total_kwh),
        "recommendations": [recommendation.to_dict() for recommendation in recommendations],
        "budget": None if budget_kg is None else budget_section(budget_kg, co2_kg),
        "cost": None
        if price is None
        else {
            "price_per_kwh": price,
            "currency": config.electricity_currency,
            "total": total_kwh * price,
        },
        "step_series": records.step_series() if mode == "detailed" else None,
        "steps_file": steps_file,
        "epochs": records.epoch_dicts(config.pue, intensity.g_per_kwh) if mode != "minimal" else [],
        "windows": with_window_figures(records.window_dicts(config.pue, intensity.g_per_kwh), joules_from_kwh(it_kwh)),
        "power_trace": records.power_trace(),
        "dram": _plain(dram),
        "window_spans": records.window_spans(),
        "loss_series": records.loss_series(),
        "monitoring_errors_total": errors_total,
        "warnings": warnings,
        "config": config.as_dict(),
        "versions": versions(),
        "steps_marked": int(totals["steps_marked"]),
        "samples_total": samples_total,
    }


def _plain(section: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    return None if section is None else dict(section)


def budget_section(budget_kg: float, co2_kg: float) -> Dict[str, Any]:
    return {
        "budget_kg": budget_kg,
        "used_kg": co2_kg,
        "remaining_kg": budget_kg - co2_kg,
        "used_fraction": co2_kg / budget_kg,
        "exceeded": co2_kg > budget_kg,
    }


def comparisons(co2_kg: float, kwh: float) -> List[Dict[str, Any]]:
    return [comparison.to_dict() for comparison in compute_comparisons(co2_kg, kwh)]


def versions() -> Dict[str, Optional[str]]:
    found: Dict[str, Optional[str]] = {
        "hf_eco2ai": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for module_name in ("numpy", "torch", "transformers", "lightning"):
        module = sys.modules.get(module_name)
        version = getattr(module, "__version__", None) if module is not None else None
        if version is not None:
            found[module_name] = str(version)
    return found


def _prefixed(mapping: Mapping[str, Any], prefix: str) -> Dict[str, Any]:
    return {prefix + key: value for key, value in mapping.items()}


def _with_prefixed_channels(section: Optional[Mapping[str, Any]], keys: Sequence[str], prefix: str) -> Any:
    if section is None:
        return None
    return {**section, **{key: _prefixed(section[key], prefix) for key in keys if section.get(key) is not None}}


def _combine_window_estimates(reports: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The job's ``window_estimates``: per window name, each rank's mean joules and watts summed
    (the ranks run their windows side by side on their own GPUs, so one window of the job costs
    the sum), standard errors in quadrature (the ranks' sensors are independent), repetitions
    summed, and each rank's mean joules kept for the spread. None when no rank estimated any."""
    sections: List[Tuple[int, Dict[str, Any]]] = sorted(
        (
            (int(report["run"]["rank"]), report["window_estimates"])
            for report in reports
            if report.get("window_estimates")
        ),
        key=lambda item: item[0],
    )
    if not sections:
        return None
    windows: Dict[str, Dict[str, Any]] = {}
    for rank, section in sections:
        for name, estimate in section["windows"].items():
            combined = windows.setdefault(
                name,
                {
                    "repetitions": 0,
                    "duration_s_total": 0.0,
                    "mean_watts": 0.0,
                    "watts_variance": 0.0,
                    "mean_joules": 0.0,
                    "joules_variance": 0.0,
                    "mean_joules_by_rank": {},
                },
            )
            repetitions = int(estimate["repetitions"])
            combined["repetitions"] += repetitions
            combined["duration_s_total"] += repetitions * _number(estimate["mean_duration_s"])
            combined["mean_watts"] += _number(estimate["mean_watts"])
            combined["watts_variance"] += _number(estimate["mean_watts_stderr"]) ** 2
            combined["mean_joules"] += _number(estimate["mean_joules"])
            combined["joules_variance"] += _number(estimate["mean_joules_stderr"]) ** 2
            combined["mean_joules_by_rank"][str(rank)] = estimate["mean_joules"]
    own = sections[0][1]
    return {
        "method": own["method"],
        "channels": [f"rank{rank}/{channel}" for rank, section in sections for channel in section["channels"]],
        "stairs_used": sum(int(section["stairs_used"]) for _, section in sections),
        "observed_fraction": own["observed_fraction"],
        "rest_watts": sum(_number(section["rest_watts"]) for _, section in sections),
        "windows": {
            name: {
                "repetitions": combined["repetitions"],
                "mean_duration_s": (
                    combined["duration_s_total"] / combined["repetitions"] if combined["repetitions"] else math.nan
                ),
                "mean_watts": combined["mean_watts"],
                "mean_watts_stderr": math.sqrt(combined["watts_variance"]),
                "mean_joules": combined["mean_joules"],
                "mean_joules_stderr": math.sqrt(combined["joules_variance"]),
                "ranks": len(combined["mean_joules_by_rank"]),
                "mean_joules_by_rank": combined["mean_joules_by_rank"],
            }
            for name, combined in windows.items()
        },
        "stair_timing": {
            f"rank{rank}/{channel}": timing
            for rank, section in sections
            for channel, timing in section.get("stair_timing", {}).items()
        },
        "notes": [f"rank {rank}: {note}" for rank, section in sections for note in section["notes"]],
        "ranks": [rank for rank, _ in sections],
    }


def _number(value: Any) -> float:
    """A report number as a float; None (a non-finite value after output preparation) is NaN, so
    a rank without an estimate makes the job's figure unknown rather than too small."""
    return math.nan if value is None else float(value)


def combine_rank_reports(reports: List[Dict[str, Any]], own_rank: int) -> Dict[str, Any]:
    """One job-wide report from every rank's local one (see ``TrackingSession.report``): each
    rank's channels as ``rank<N>/<channel>``, energy and CO2 summed over the ranks, ``ranks``
    listing each rank's share, counter resets and window estimates combined over the ranks; the
    step series, epochs, windows and power trace stay this rank's."""
    own = next(report for report in reports if report["run"]["rank"] == own_rank)
    channels: List[Dict[str, Any]] = []
    by_channel: Dict[str, Dict[str, Any]] = {}
    ranks = []
    for report in sorted(reports, key=lambda r: r["run"]["rank"]):
        prefix = f"rank{report['run']['rank']}/"
        for channel in report["channels"]:
            parent = channel["parent"]
            channels.append(
                {**channel, "name": prefix + channel["name"], "parent": None if parent is None else prefix + parent}
            )
        by_channel.update(_prefixed(report["energy"]["by_channel"], prefix))
        ranks.append(
            {
                "rank": report["run"]["rank"],
                "local_rank": report["run"]["local_rank"],
                "host": report["run"]["host"],
                "run_id": report["run"]["run_id"],
                "it_kwh": report["energy"]["it_kwh"],
                "total_kwh": report["energy"]["total_kwh"],
                "total_co2_kg": report["total_co2_kg"],
                "steps_marked": report["steps_marked"],
                "samples_total": report["samples_total"],
            }
        )
    it_kwh = sum(rank["it_kwh"] for rank in ranks)
    total_kwh = sum(rank["total_kwh"] for rank in ranks)
    co2_kg = units.co2_kg(total_kwh, own["intensity"]["g_per_kwh"])
    own_prefix = f"rank{own_rank}/"
    combined = dict(own)
    series = own.get("step_series")
    combined.update(
        {
            "channels": channels,
            "energy": {"by_channel": by_channel, "it_kwh": it_kwh, "pue": own["energy"]["pue"], "total_kwh": total_kwh},
            "total_co2_kg": co2_kg,
            "comparisons": comparisons(co2_kg, total_kwh),
            "budget": None if own["budget"] is None else budget_section(own["budget"]["budget_kg"], co2_kg),
            "cost": None if own["cost"] is None else {**own["cost"], "total": total_kwh * own["cost"]["price_per_kwh"]},
            "step_series": None
            if series is None
            else {
                **_with_prefixed_channels(series, ["joules_by_channel_mean"], own_prefix),
                "tail": _with_prefixed_channels(series.get("tail"), ["joules_by_channel"], own_prefix),
            },
            "epochs": [_with_prefixed_channels(epoch, ["joules_by_channel"], own_prefix) for epoch in own["epochs"]],
            "windows": [
                _with_prefixed_channels(window, ["joules_by_channel"], own_prefix) for window in own.get("windows", [])
            ],
            "power_trace": _with_prefixed_channels(own["power_trace"], ["watts", "watts_max"], own_prefix),
            "monitoring_errors_total": sum(report["monitoring_errors_total"] for report in reports),
            "warnings": [warning for report in reports for warning in report["warnings"]],
            "samples_total": (
                None
                if all(rank["samples_total"] is None for rank in ranks)
                else sum(rank["samples_total"] or 0.0 for rank in ranks)
            ),
            "ranks": ranks,
        }
    )
    if any("counter_resets" in report for report in reports):
        combined["counter_resets"] = sum(int(report.get("counter_resets") or 0) for report in reports)
    if any("window_estimates" in report for report in reports):
        combined["window_estimates"] = _combine_window_estimates(reports)
    return combined
