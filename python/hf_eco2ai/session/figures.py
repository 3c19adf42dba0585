"""The session's figures at one instant, computed once and read by every consumer: the log a
training loop gets, the latest figures the store keeps, and the snapshot exporters scrape.

``LiveFigures.from_totals`` turns the meter's live totals into energy, carbon and budget figures,
which ``latest_figures`` and ``snapshot`` only choose and name; ``log_figures`` computes a log's
figures straight from the meter's log point. Pure functions, safe from any thread (the session
passes copies of what they read).
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from hf_eco2ai import units
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.config import CarbonConfig
from hf_eco2ai.meter.channels import ChannelInfo
from hf_eco2ai.session.snapshot import GpuStats, SessionSnapshot


def top_level_joules(channels: Sequence[ChannelInfo], joules_by_channel: Mapping[str, float]) -> float:
    """The run's energy without double counting: channels with a parent lie inside it (J)."""
    total = 0.0
    for channel in channels:
        if channel.parent is None:
            total += joules_by_channel.get(channel.name, 0.0)
    return total


# Named tuples rather than frozen dataclasses: a log builds a LogPoint, and a frozen dataclass
# sets each field through object.__setattr__, which costs a log tens of µs once its caches are cold.
class LogPoint(NamedTuple):
    """Where the previous ``log`` left off: run time (s), top-level joules, steps marked."""

    t_s: float = 0.0
    joules: float = 0.0
    steps_marked: int = 0


class LiveFigures(NamedTuple):
    """The run so far: ``it_joules`` is top-level energy without PUE; ``energy_kwh_total`` and
    ``co2_kg_total`` have the PUE applied; ``t_s`` is seconds since the first reading."""

    t_s: float
    steps_marked: int
    it_joules: float
    energy_kwh_total: float
    co2_kg_total: float
    joules_by_channel: Dict[str, float]
    watts_by_channel: Dict[str, float]
    intensity: IntensityResult
    budget_kg: Optional[float]

    @classmethod
    def from_totals(
        cls,
        totals: Mapping[str, Any],
        t_s: float,
        channels: Sequence[ChannelInfo],
        pue: float,
        intensity: IntensityResult,
        budget_kg: Optional[float],
    ) -> "LiveFigures":
        """``totals`` is the meter's (``EnergyMeter.totals()``): a fresh dict per call, whose
        per-channel dicts are taken over, not copied."""
        joules_by_channel = totals["joules"]
        it_joules = top_level_joules(channels, joules_by_channel)
        kwh = units.kwh_from_joules(it_joules, pue)
        return cls(
            t_s,
            totals["steps_marked"],
            it_joules,
            kwh,
            units.co2_kg(kwh, intensity.g_per_kwh),
            joules_by_channel,
            totals["watts"],
            intensity,
            budget_kg,
        )

    @property
    def budget_used_fraction(self) -> Optional[float]:
        return None if self.budget_kg is None else self.co2_kg_total / self.budget_kg


def power_keys(channel_names: Sequence[str]) -> List[str]:
    """The log's per-channel power keys, in channel order."""
    return [f"power/{name}_watts" for name in channel_names]


def log_figures(
    point: Tuple[float, int, float, Sequence[float]],
    previous: LogPoint,
    *,
    pue: float,
    g_per_kwh: float,
    samples_total: Optional[float],
    budget_kg: Optional[float],
    channel_power_keys: Optional[Sequence[str]],
) -> Tuple[Dict[str, float], LogPoint]:
    """The figures ``TrackingSession.log`` returns (their keys are documented there), and the
    point the next log starts from.

    ``point`` is the meter's log point with its time made relative to the run (``t_s``, steps
    marked, top-level joules, watts per channel); ``channel_power_keys`` (``power_keys``) adds
    each channel's latest power. Built straight from the point, with no intermediate object: a
    log after many steps of training pays for each one with cold caches.
    """
    t_s, steps_marked, it_joules, watts = point
    interval_joules = it_joules - previous.joules
    kwh = units.kwh_from_joules(it_joules, pue)
    co2_kg = units.co2_kg(kwh, g_per_kwh)
    figures: Dict[str, float] = {
        "energy/interval_joules": interval_joules,
        "energy/total_kwh": kwh,
        "carbon/co2_kg": co2_kg,
        "carbon/intensity_g_per_kwh": g_per_kwh,
    }
    if t_s > previous.t_s:
        figures["power/mean_watts"] = interval_joules / (t_s - previous.t_s)
    steps = steps_marked - previous.steps_marked
    if steps > 0:
        # From the live totals rather than the step records, which resolve one sampler period
        # late: at the first log of a fast loop none may have resolved yet.
        figures["energy/step_joules"] = interval_joules / steps
    if samples_total is not None and kwh > 0:
        figures["carbon/samples_per_kwh"] = samples_total / kwh
    if budget_kg is not None:
        figures["carbon/budget_used_fraction"] = co2_kg / budget_kg
    if channel_power_keys is not None:
        figures.update(zip(channel_power_keys, watts))
    return figures, LogPoint(t_s, it_joules, steps_marked)


def latest_figures(
    now: LiveFigures,
    *,
    steps_resolved: int,
    epoch_count: int,
    energy_rate_kwh_per_hour: Optional[float],
    samples_total: Optional[float],
    monitoring_errors_total: int,
    latest_metrics: Mapping[str, Optional[float]],
) -> Dict[str, Any]:
    """The run's latest figures as the store keeps them (what ``hf-eco2ai serve --run`` exposes)."""
    return {
        "t_s": now.t_s,
        "steps_marked": now.steps_marked,
        "steps_resolved": steps_resolved,
        "epoch_count": epoch_count,
        "energy_joules_by_channel": dict(now.joules_by_channel),
        "power_watts_by_channel": dict(now.watts_by_channel),
        "energy_kwh_total": now.energy_kwh_total,
        "co2_kg_total": now.co2_kg_total,
        "energy_rate_kwh_per_hour": energy_rate_kwh_per_hour,
        "samples_total": samples_total,
        "monitoring_errors_total": monitoring_errors_total,
        **latest_metrics,
    }


def snapshot(
    now: LiveFigures,
    *,
    identity: Mapping[str, Any],
    config: CarbonConfig,
    channels: List[ChannelInfo],
    epoch_count: int,
    energy_rate_kwh_per_hour: Optional[float],
    samples_total: Optional[float],
    latest_metrics: Mapping[str, Optional[float]],
    errors_by_type: Mapping[str, int],
    api_latency_s: Optional[float],
    gpus: List[GpuStats],
    anomalies_by_type: Optional[Dict[str, int]] = None,
) -> SessionSnapshot:
    """The immutable copy exporters read (see ``SessionSnapshot``)."""
    kwh, co2_kg, budget_kg = now.energy_kwh_total, now.co2_kg_total, now.budget_kg
    rate, samples, price = energy_rate_kwh_per_hour, samples_total, config.electricity_price_per_kwh
    return SessionSnapshot(
        **identity,
        unix_time_s=time.time(),
        step_count=now.steps_marked,
        epoch_count=epoch_count,
        channels=list(channels),
        energy_joules_by_channel=dict(now.joules_by_channel),
        power_watts_by_channel=dict(now.watts_by_channel),
        energy_kwh_total=kwh,
        energy_rate_kwh_per_hour=rate,
        co2_kg_total=co2_kg,
        co2_rate_kg_per_hour=None if rate is None else units.co2_kg(rate, now.intensity.g_per_kwh),
        intensity=now.intensity,
        pue=config.pue,
        budget_kg=budget_kg,
        budget_remaining_kg=None if budget_kg is None else budget_kg - co2_kg,
        budget_used_fraction=now.budget_used_fraction,
        samples_total=samples,
        samples_per_second=None if samples is None or now.t_s <= 0 else samples / now.t_s,
        samples_per_kwh=None if samples is None or kwh <= 0 else samples / kwh,
        loss=latest_metrics["loss"],
        eval_loss=latest_metrics["eval_loss"],
        learning_rate=latest_metrics["learning_rate"],
        cost_total=None if price is None else kwh * price,
        electricity_price_per_kwh=price,
        electricity_currency=config.electricity_currency,
        monitoring_errors_total=int(sum(errors_by_type.values())),
        monitoring_errors_by_type=dict(errors_by_type),
        api_latency_s=api_latency_s,
        gpus=gpus,
        anomalies_by_type=anomalies_by_type,
    )
