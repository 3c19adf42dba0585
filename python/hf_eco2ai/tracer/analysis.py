"""The Tracer API's analysis: ``QueryEngine`` (summaries, comparisons, anomalous checkpoints) and
``AnomalyDetector`` (the offline anomaly pass over a stored run).

Both read the run store and never write to it, except ``AnomalyDetector.store_anomalies``. They
are safe to use while a run is writing (the store is in WAL mode; each read is one snapshot).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.tracer.anomalies import as_records, new_ring, series_names, sort_key
from hf_eco2ai.tracer.config import ANOMALY_TYPES, DEFAULT_STORAGE_PATH, TracerConfig
from hf_eco2ai.tracer.storage import StorageBackend

__all__ = ["AnomalyDetector", "QueryEngine"]

GRADIENT_TYPES = ("gradient_explosion", "vanishing_gradient")
LOSS_TYPES = ("loss_spike",)
NAN_TYPES = ("nan_or_inf",)
MEMORY_TYPES = ("memory_spike",)


def _backend(storage_path: str) -> StorageBackend:
    config = TracerConfig(project_name="query", storage_path=storage_path)
    if not config.store_file.is_file():
        raise ConfigurationError(
            f"storage_path {storage_path!r} holds no run store ({config.store_file} does not exist); "
            "pass the storage_path the runs were traced with"
        )
    return StorageBackend(config)


def _run_id(storage: StorageBackend, run_id: str) -> str:
    try:
        return storage.resolve_run_id(run_id)
    except KeyError as error:
        raise ConfigurationError(f"run {run_id!r}: {error.args[0]}") from error


class QueryEngine:
    """Questions about the traced runs of one ``storage_path``.

    Raises:
        ConfigurationError: no run store at ``storage_path``; an unknown run (by id or unique
            prefix) in any method.
    """

    def __init__(self, storage_path: str = DEFAULT_STORAGE_PATH) -> None:
        self.storage = _backend(storage_path)

    def get_run_summary(self, run_id: str) -> Dict[str, Any]:
        """``run_id``, ``run_name``, ``project_name``, ``status``, ``start_time``, ``end_time``,
        ``total_steps``, ``final_metrics`` (the last logged value of each metric), ``checkpoints``,
        ``anomalies`` (count by type), ``final_gradient_norm``, ``energy_kwh``, ``co2_kg``, ``tags``,
        ``notes``."""
        storage = self.storage
        run_id = _run_id(storage, run_id)
        run = storage.store.get_run(run_id)
        details = storage.get_run(run_id)
        checkpoints = storage.get_checkpoints(run_id)
        statistics = storage.get_step_statistics(run_id)
        final_metrics: Dict[str, Any] = {}
        for checkpoint in checkpoints:
            final_metrics.update(checkpoint["metrics"])
        counts: Dict[str, int] = {}
        for anomaly in storage.get_anomalies(run_id):
            counts[anomaly["type"]] = counts.get(anomaly["type"], 0) + 1
        steps_stored = int(statistics.steps.max()) + 1 if len(statistics) else 0
        steps_checkpointed = checkpoints[-1]["step"] + 1 if checkpoints else 0
        total_norm = total_norms(statistics)
        return {
            "run_id": run_id,
            "run_name": details["run_name"],
            "project_name": run.project_name,
            "status": run.status,
            "start_time": run.started_unix_s,
            "end_time": run.ended_unix_s,
            "total_steps": max(steps_stored, steps_checkpointed, int(run.latest.get("steps_marked") or 0)),
            "final_metrics": final_metrics,
            "checkpoints": len(checkpoints),
            "anomalies": counts,
            "final_gradient_norm": _last_finite(total_norm),
            "energy_kwh": run.energy_kwh_total,
            "co2_kg": run.co2_kg_total,
            "tags": details["tags"],
            "notes": details["notes"],
        }

    def metric_curve(self, run_id: str, metric: str) -> Dict[str, List[Any]]:
        """One metric over the run: ``{"steps": [...], "values": [...]}``. ``loss`` (when it was
        recorded per step) and ``gradient_norm`` (the total over the watched layers) come from
        every step; other metrics from the checkpoints."""
        storage = self.storage
        run_id = _run_id(storage, run_id)
        if metric in ("loss", "gradient_norm"):
            statistics = storage.get_step_statistics(run_id)
            if metric == "loss":
                mask = statistics.loss_recorded
                values = statistics.loss[mask]
            else:
                mask = statistics.has_gradients
                values = total_norms(statistics)[mask]
            if mask.any() or metric == "gradient_norm":
                return {
                    "steps": statistics.steps[mask].tolist(),
                    "values": [float(v) if np.isfinite(v) else None for v in values.tolist()],
                }
        points = [(c["step"], c["metrics"][metric]) for c in storage.get_checkpoints(run_id) if metric in c["metrics"]]
        return {"steps": [step for step, _ in points], "values": [value for _, value in points]}

    def compare_runs(self, run_id1: str, run_id2: str, metrics: Sequence[str]) -> Dict[str, Any]:
        """Both runs' figures for each metric: ``final``, ``min``, ``mean`` and the change of the
        second against the first (``difference``, ``relative_change``; None when undefined), plus
        ``total_steps`` and ``energy_kwh`` of each."""
        first, second = _run_id(self.storage, run_id1), _run_id(self.storage, run_id2)
        summaries = [self.get_run_summary(first), self.get_run_summary(second)]
        compared: Dict[str, Any] = {}
        for metric in metrics:
            figures = [_curve_figures(self.metric_curve(run, metric)["values"]) for run in (first, second)]
            a, b = figures[0]["final"], figures[1]["final"]
            difference = None if a is None or b is None else b - a
            compared[metric] = {
                "run1": figures[0],
                "run2": figures[1],
                "difference": difference,
                "relative_change": None if difference is None or not a else difference / abs(a),
            }
        return {
            "run1": first,
            "run2": second,
            "metrics": compared,
            "total_steps": {"run1": summaries[0]["total_steps"], "run2": summaries[1]["total_steps"]},
            "energy_kwh": {"run1": summaries[0]["energy_kwh"], "run2": summaries[1]["energy_kwh"]},
        }

    def find_anomalous_checkpoints(
        self, run_id: str, anomaly_types: Optional[Sequence[str]] = None
    ) -> List[Dict[str, Any]]:
        """The checkpoints whose span (after the previous checkpoint, up to and including their
        step) holds an anomaly of ``anomaly_types`` (every type when None); each checkpoint dict
        gets the ``anomalies`` it covers. An anomaly after the last checkpoint is reported with a
        checkpoint entry of ``None`` fields at its step, so none is lost.

        Raises:
            ConfigurationError: an unknown anomaly type.
        """
        if anomaly_types is not None:
            unknown = [kind for kind in anomaly_types if kind not in ANOMALY_TYPES]
            if unknown:
                raise ConfigurationError(f"anomaly_types: unknown type(s) {unknown}; known: {list(ANOMALY_TYPES)}")
        run_id = _run_id(self.storage, run_id)
        anomalies = self.storage.get_anomalies(run_id, anomaly_types)
        checkpoints = self.storage.get_checkpoints(run_id)
        found: Dict[int, Dict[str, Any]] = {}
        for anomaly in anomalies:
            covering = next((c for c in checkpoints if c["step"] >= anomaly["step"]), None)
            if covering is None:
                covering = {
                    "run_id": run_id,
                    "step": anomaly["step"],
                    "timestamp": None,
                    "metrics": None,
                    "gradient_stats": None,
                    "system_metrics": None,
                    "energy_joules": None,
                }
            entry = found.setdefault(covering["step"], {**covering, "anomalies": []})
            entry["anomalies"].append(anomaly)
        return [found[step] for step in sorted(found)]


class AnomalyDetector:
    """The offline anomaly pass over a stored run: the per-step rows are fed, in step order, to a
    new ``GradientRing`` built with the run's own thresholds: the same detectors as the live run,
    so the two find the same anomalies.

    Args:
        storage: a ``StorageBackend`` (or a ``storage_path`` string).
        config: thresholds to use instead of the ones each run was traced with.
    """

    def __init__(self, storage: Any, config: Optional[TracerConfig] = None) -> None:
        self.storage: StorageBackend = _backend(storage) if isinstance(storage, str) else storage
        self.config = config

    def detect_all_anomalies(self, run_id: str) -> List[Dict[str, Any]]:
        """Every anomaly of the run, in step order (dicts as ``AnomalyRecord``)."""
        return self._detect(run_id, None)

    def detect_gradient_anomalies(self, run_id: str) -> List[Dict[str, Any]]:
        """Gradient explosions and vanishing gradients."""
        return self._detect(run_id, GRADIENT_TYPES)

    def detect_loss_anomalies(self, run_id: str) -> List[Dict[str, Any]]:
        """Loss spikes (robust z-score over the rolling window)."""
        return self._detect(run_id, LOSS_TYPES)

    def detect_nan_inf(self, run_id: str) -> List[Dict[str, Any]]:
        """NaN/Inf in gradients or in the loss."""
        return self._detect(run_id, NAN_TYPES)

    def detect_memory_spikes(self, run_id: str) -> List[Dict[str, Any]]:
        """Device-memory spikes (recorded on GPUs)."""
        return self._detect(run_id, MEMORY_TYPES)

    def store_anomalies(self, anomalies: Sequence[Dict[str, Any]]) -> None:
        """Keep anomalies in the store (one row per run, step, type and layer) and wait until they
        are committed."""
        by_run: Dict[str, List[Dict[str, Any]]] = {}
        for anomaly in anomalies:
            by_run.setdefault(anomaly["run_id"], []).append(anomaly)
        for run_id, records in by_run.items():
            self.storage.write_anomalies(run_id, records)
        self.storage.flush()

    def _detect(self, run_id: str, types: Optional[Sequence[str]]) -> List[Dict[str, Any]]:
        storage = self.storage
        run_id = _run_id(storage, run_id)
        details = storage.get_run(run_id)
        config = self.config or (
            TracerConfig.from_dict(details["config"]) if details["config"] else TracerConfig(project_name="offline")
        )
        statistics = storage.get_step_statistics(run_id)
        ring = new_ring(config, statistics.layers)
        # A ring without layers keeps one unused slot; rows then carry none.
        width = max(len(statistics.layers), 1)
        raw = []
        for position, step in enumerate(statistics.steps.tolist()):
            if statistics.has_gradients[position] and statistics.layers:
                ring.push_gradients(step, statistics.gradients[position].reshape(width * 3).astype("<f4").tobytes())
            if statistics.loss_recorded[position]:
                ring.push_loss(step, float(statistics.loss[position]))
            if statistics.memory_recorded[position]:
                ring.push_memory(step, float(statistics.memory_bytes[position]))
            raw.extend(ring.drain_anomalies())
        records = as_records(raw, series_names(statistics.layers), run_id)
        if types is not None:
            records = [record for record in records if record["type"] in types]
        return sorted(records, key=sort_key)


def total_norms(statistics: Any) -> np.ndarray:
    """The L2 norm over every watched layer per step (NaN/Inf when any layer's was)."""
    if not statistics.layers:
        return np.full(len(statistics), np.nan)
    raw = statistics.gradients[:, :, 0].astype(np.float64)
    return np.sqrt((np.where(raw < 0, 0.0, raw) ** 2).sum(axis=1))


def _last_finite(values: np.ndarray) -> Optional[float]:
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if len(finite) else None


def _curve_figures(values: Sequence[Any]) -> Dict[str, Optional[float]]:
    numbers = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)]
    return {
        "final": numbers[-1] if numbers else None,
        "min": min(numbers) if numbers else None,
        "mean": float(np.mean(numbers)) if numbers else None,
        "points": len(values),
    }
