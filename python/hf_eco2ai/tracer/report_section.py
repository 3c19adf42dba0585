"""The ``gradients`` section of a run's report: gradient norms per layer group and the anomalies.

Built from the run store after the run (never on a training step), bounded in size: at most
``MAX_POINTS`` steps (evenly spaced, every anomaly's step kept) and ``MAX_LAYERS`` series
(``total`` first, then the layers with the largest norms).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from hf_eco2ai.tracer.storage import StorageBackend

MAX_POINTS = 500
MAX_LAYERS = 8
MAX_ANOMALIES = 200


def gradient_section(storage: StorageBackend, run_id: str) -> Optional[Dict[str, Any]]:
    """``{"steps": [...], "norms": {series: [...]}, "anomalies": [...], "layers_total": n}`` or
    None when the run has no gradient rows and no anomalies. Norms are None where a series had
    no (finite) value."""
    statistics = storage.get_step_statistics(run_id)
    anomalies = storage.get_anomalies(run_id)
    if not statistics.has_gradients.any() and not anomalies:
        return None
    with_gradients = statistics.has_gradients
    steps = statistics.steps[with_gradients]
    raw = statistics.gradients[with_gradients, :, 0].astype(np.float64)
    # Negative marks a layer without gradient that step; NaN/Inf propagate into the total.
    total = np.sqrt((np.where(raw < 0, 0.0, raw) ** 2).sum(axis=1))
    norms = np.where(raw < 0, np.nan, raw)
    keep = _kept_positions(steps, {int(a["step"]) for a in anomalies})
    series: Dict[str, List[Optional[float]]] = {}
    if len(steps):
        series["total"] = _listed(total[keep])
        largest = np.where(np.isfinite(norms), norms, -1.0).max(axis=0)
        order = np.argsort(-largest, kind="stable")
        for index in order[: MAX_LAYERS - 1]:
            series[statistics.layers[int(index)]] = _listed(norms[keep, int(index)])
    return {
        "steps": [int(step) for step in steps[keep]],
        "norms": series,
        "layers_total": len(statistics.layers),
        "anomalies": [
            {key: anomaly[key] for key in ("step", "type", "layer", "value", "threshold", "statistic")}
            for anomaly in anomalies[:MAX_ANOMALIES]
        ],
        "anomalies_total": len(anomalies),
    }


def _kept_positions(steps: np.ndarray, anomaly_steps: set) -> np.ndarray:
    if len(steps) <= MAX_POINTS:
        return np.arange(len(steps))
    evenly = set(np.linspace(0, len(steps) - 1, MAX_POINTS).round().astype(int).tolist())
    evenly |= {int(p) for p in np.nonzero(np.isin(steps, list(anomaly_steps)))[0]}
    return np.array(sorted(evenly), dtype=np.int64)


def _listed(values: np.ndarray) -> List[Optional[float]]:
    return [float(v) if np.isfinite(v) else None for v in values.tolist()]
