"""Anomalies as the Tracer API hands them out, and the one way rows are fed to a ``GradientRing``.

The live run and the offline ``AnomalyDetector`` both build their ring with
``new_ring(config, layers)`` and feed it per series in step order, so for the same rows they
raise the same anomalies.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any, Dict, List, Sequence, Tuple

from hf_eco2ai._core import GradientRing
from hf_eco2ai.tracer.config import TracerConfig

logger = logging.getLogger("hf_eco2ai.tracer")

RawAnomaly = Tuple[int, str, int, float, float, float]
TOTAL_SERIES = "total"
LOSS_SERIES = "loss"
MEMORY_SERIES = "memory"


def new_ring(config: TracerConfig, layers: Sequence[str]) -> GradientRing:
    """A ring for ``layers`` (at least one slot, so a run without ``watch`` still checks its loss)."""
    return GradientRing(max(len(layers), 1), **config.ring_arguments())


def series_names(layers: Sequence[str]) -> List[str]:
    """The ring's series in index order: layers, then ``total``, ``loss`` and ``memory``."""
    names = list(layers) if layers else ["(none)"]
    return names + [TOTAL_SERIES, LOSS_SERIES, MEMORY_SERIES]


def as_records(raw: Sequence[RawAnomaly], names: Sequence[str], run_id: str) -> List[Dict[str, Any]]:
    """Anomaly dicts: ``run_id``, ``step``, ``type``, ``layer``, ``value``, ``threshold`` (the limit
    crossed) and ``statistic`` (the rolling median it was compared with, or the run length of a
    vanishing gradient; None while the window was filling)."""
    return [
        {
            "run_id": run_id,
            "step": int(step),
            "type": kind,
            "layer": names[series],
            "value": value,
            "threshold": threshold,
            "statistic": None if statistic != statistic else statistic,
        }
        for step, kind, series, value, threshold, statistic in raw
    ]


def sort_key(anomaly: Dict[str, Any]) -> Tuple[int, str, str]:
    return (anomaly["step"], anomaly["type"], anomaly["layer"])


def log_anomalies(records: Sequence[Dict[str, Any]]) -> None:
    """One ``logging`` warning per step and type, naming the series and the worst value."""
    grouped: Dict[Tuple[int, str], List[Dict[str, Any]]] = defaultdict(list)
    for record in records:
        grouped[(record["step"], record["type"])].append(record)
    for (step, kind), found in grouped.items():
        first = found[0]
        layers = ", ".join(record["layer"] for record in found[:5]) + (
            f" and {len(found) - 5} more" if len(found) > 5 else ""
        )
        statistic = first["statistic"]
        logger.warning(
            "hf-eco2ai: tracer: %s at step %d in %s: %s = %.6g, threshold %.6g%s",
            kind,
            step,
            layers,
            first["layer"],
            first["value"],
            first["threshold"],
            "" if statistic is None else f", rolling statistic {statistic:.6g}",
        )
