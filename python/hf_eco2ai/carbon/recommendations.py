"""Where (and when) the same work would emit less, with the saving computed from the data.

Regional advice compares like with like: the current location's table intensity against the
same tables' figures for the provider's other regions (in the cloud) or for the neighbouring grids
(elsewhere). Time-of-day advice is given only from live readings that cover enough hours of the
day to show a pattern; the tables hold annual averages and cannot support it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from hf_eco2ai.carbon import tables
from hf_eco2ai.carbon.cloud import CloudLocation
from hf_eco2ai.carbon.live import LiveReading
from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.carbon.resolve import IntensityResolver

MIN_SAVING_PERCENT = 5.0
MIN_HOURS_OF_DAY_COVERED = 12


@dataclass(frozen=True)
class Recommendation:
    """``kind`` is ``cloud-region``, ``neighbouring-grid`` or ``time-of-day``; ``target`` names the
    region, zone or UTC hour; the saving is ``(current - target) / current``, in percent."""

    kind: str
    target: str
    current_g_per_kwh: float
    target_g_per_kwh: float
    saving_percent: float
    dataset: str
    year: Optional[int]
    text: str

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> Dict[str, object]:
        return {
            "kind": self.kind,
            "target": self.target,
            "current_g_per_kwh": self.current_g_per_kwh,
            "target_g_per_kwh": self.target_g_per_kwh,
            "saving_percent": self.saving_percent,
            "dataset": self.dataset,
            "year": self.year,
            "text": self.text,
        }


def _saving_percent(current: float, target: float) -> float:
    return (current - target) / current * 100.0 if current > 0 else 0.0


def regional_recommendations(
    baseline: IntensityResult,
    cloud: Optional[CloudLocation],
    *,
    limit: int = 3,
    min_saving_percent: float = MIN_SAVING_PERCENT,
) -> List[Recommendation]:
    """Up to ``limit`` lower-carbon places, best first, each saving at least ``min_saving_percent``.

    ``baseline`` is the current location's *table* intensity (the resolver's ``table_answer()``).
    Nothing is recommended from a world average: with no location there is nothing to compare.
    """
    if baseline.source == "world-average" or baseline.g_per_kwh <= 0:
        return []
    current = baseline.g_per_kwh
    found: List[Recommendation] = []
    if cloud is not None and cloud.region is not None and baseline.source == "cloud-region-table":
        for region, entry in tables.cloud_regions(cloud.provider).items():
            saving = _saving_percent(current, entry.g_per_kwh)
            if region != cloud.region and saving >= min_saving_percent:
                found.append(
                    Recommendation(
                        kind="cloud-region",
                        target=region,
                        current_g_per_kwh=current,
                        target_g_per_kwh=entry.g_per_kwh,
                        saving_percent=saving,
                        dataset=entry.dataset,
                        year=entry.year,
                        text=(
                            f"Consider migrating to {cloud.provider} {region} for {saving:.0f}% lower carbon intensity "
                            f"({entry.g_per_kwh:.0f} vs {current:.0f} g/kWh in {cloud.region}; {entry.dataset}, {entry.year})"
                        ),
                    )
                )
    elif baseline.zone is not None:
        for neighbour in tables.neighbours(baseline.zone):
            saving = _saving_percent(current, neighbour.g_per_kwh)
            if saving >= min_saving_percent:
                found.append(
                    Recommendation(
                        kind="neighbouring-grid",
                        target=neighbour.zone,
                        current_g_per_kwh=current,
                        target_g_per_kwh=neighbour.g_per_kwh,
                        saving_percent=saving,
                        dataset=neighbour.dataset,
                        year=neighbour.year,
                        text=(
                            f"Consider running in the neighbouring grid {neighbour.zone} for {saving:.0f}% lower carbon "
                            f"intensity ({neighbour.g_per_kwh:.0f} vs {current:.0f} g/kWh in {baseline.zone}; "
                            f"{neighbour.dataset}, {neighbour.year})"
                        ),
                    )
                )
    found.sort(key=lambda recommendation: -recommendation.saving_percent)
    return found[:limit]


def time_of_day_recommendation(
    history: Sequence[LiveReading],
    current: IntensityResult,
    *,
    min_saving_percent: float = MIN_SAVING_PERCENT,
    min_hours_covered: int = MIN_HOURS_OF_DAY_COVERED,
) -> Optional[Recommendation]:
    """The UTC hour whose mean live intensity is lowest, if the live history supports a claim.

    Returns None unless ``current`` is a live value, the readings (with timestamps) cover at least
    ``min_hours_covered`` distinct hours of the day, and the best hour saves ``min_saving_percent``.
    """
    if current.source != "live-api" or current.g_per_kwh <= 0:
        return None
    by_hour: Dict[int, List[float]] = defaultdict(list)
    for reading in history:
        if reading.observed_at is not None:
            by_hour[reading.observed_at.hour].append(reading.g_per_kwh)
    if len(by_hour) < min_hours_covered:
        return None
    means = {hour: sum(values) / len(values) for hour, values in by_hour.items()}
    best_hour = min(means, key=lambda hour: means[hour])
    saving = _saving_percent(current.g_per_kwh, means[best_hour])
    if saving < min_saving_percent:
        return None
    readings = sum(len(values) for values in by_hour.values())
    return Recommendation(
        kind="time-of-day",
        target=f"{best_hour:02d}:00 UTC",
        current_g_per_kwh=current.g_per_kwh,
        target_g_per_kwh=means[best_hour],
        saving_percent=saving,
        dataset=current.dataset,
        year=None,
        text=(
            f"Schedule training around {best_hour:02d}:00 UTC for {saving:.0f}% lower carbon intensity "
            f"({means[best_hour]:.0f} vs {current.g_per_kwh:.0f} g/kWh now; mean of {readings} live readings "
            f"over {len(by_hour)} hours of the day)"
        ),
    )


def recommendations_for(resolver: IntensityResolver, current: IntensityResult) -> List[Recommendation]:
    """Regional advice for the resolver's location, then time-of-day advice if its live history allows."""
    found = regional_recommendations(resolver.table_answer(), resolver.cloud)
    if resolver.live_client is not None and current.zone is not None:
        timing = time_of_day_recommendation(resolver.live_client.history(current.zone), current)
        if timing is not None:
            found.append(timing)
    return found
