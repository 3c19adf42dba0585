"""The Tracer API's parts of ``hf-eco2ai show`` (gradient norms, anomalies) and ``compare``
(loss and gradient-norm curves), read from the run store. Runs the Tracer did not write print
nothing here."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from hf_eco2ai.store.run_store import RunStore

CURVE_POINTS = 8
ANOMALIES_LISTED = 20


def _figure(value: Optional[float]) -> str:
    return "-" if value is None or not np.isfinite(value) else format(value, ".4g")


def _backend(store: RunStore) -> Any:
    from hf_eco2ai.tracer.config import TracerConfig
    from hf_eco2ai.tracer.storage import StorageBackend

    return StorageBackend(TracerConfig(project_name="cli", storage_path=str(store.path.parent)), store=store)


def print_gradient_sections(store: RunStore, run_id: str) -> None:
    """Per layer group: the last norm, the median and the largest over the run, and the steps
    with NaN/Inf; then the anomalies."""
    storage = _backend(store)
    statistics = storage.get_step_statistics(run_id)
    anomalies = storage.get_anomalies(run_id)
    if statistics.has_gradients.any():
        rows = statistics.gradients[statistics.has_gradients]
        print(f"gradient norms ({len(rows)} steps, {len(statistics.layers)} layer groups)")
        print(f"  {'layer':<40}{'last':>11}{'median':>11}{'max':>11}{'NaN/Inf steps':>15}")
        for index, layer in enumerate(statistics.layers):
            norms = rows[:, index, 0].astype(np.float64)
            present = norms[~(norms < 0)]
            finite = present[np.isfinite(present)]
            nonfinite_steps = int((((rows[:, index, 2] > 0) | ~np.isfinite(norms)) & ~(norms < 0)).sum())
            print(
                f"  {layer[:39]:<40}{_figure(present[-1] if len(present) else None):>11}"
                f"{_figure(float(np.median(finite)) if len(finite) else None):>11}"
                f"{_figure(float(finite.max()) if len(finite) else None):>11}{nonfinite_steps:>15}"
            )
    if anomalies or statistics.has_gradients.any():
        print(f"anomalies: {len(anomalies)}")
        for anomaly in anomalies[:ANOMALIES_LISTED]:
            print(
                f"  step {anomaly['step']:>7}  {anomaly['type']:<20}{anomaly['layer'][:30]:<31}"
                f"value {_figure(anomaly['value'])}, threshold {_figure(anomaly['threshold'])}, "
                f"rolling {_figure(anomaly['statistic'])}"
            )
        if len(anomalies) > ANOMALIES_LISTED:
            print(f"  ... {len(anomalies) - ANOMALIES_LISTED} more")


def tracer_json(store: RunStore, run_id: str) -> Dict[str, Any]:
    """The same sections for ``show --json``."""
    from hf_eco2ai.tracer.report_section import gradient_section

    return {"gradients": gradient_section(_backend(store), run_id)}


def print_curve_comparison(store: RunStore, run_ids: Sequence[str]) -> None:
    """Loss and total gradient norm of each run at a few common steps, with each run's final
    value and its change against the first run."""
    from hf_eco2ai.tracer.analysis import total_norms

    storage = _backend(store)
    curves: Dict[str, List[Dict[str, np.ndarray]]] = {"loss": [], "gradient norm": []}
    for run_id in run_ids:
        statistics = storage.get_step_statistics(run_id)
        loss_mask = statistics.loss_recorded
        curves["loss"].append({"steps": statistics.steps[loss_mask], "values": statistics.loss[loss_mask]})
        grad_mask = statistics.has_gradients
        curves["gradient norm"].append(
            {"steps": statistics.steps[grad_mask], "values": total_norms(statistics)[grad_mask]}
        )
    for name, per_run in curves.items():
        if not any(len(curve["steps"]) for curve in per_run):
            continue
        last_common = min((int(curve["steps"][-1]) for curve in per_run if len(curve["steps"])), default=0)
        points = sorted({int(round(last_common * i / (CURVE_POINTS - 1))) for i in range(CURVE_POINTS)})
        print(f"{name} by step")
        print(f"  {'run':<14}" + "".join(f"{step:>10}" for step in points) + f"{'final':>11}  vs first")
        baseline = None
        for run_id, curve in zip(run_ids, per_run):
            values = [_at_step(curve, step) for step in points]
            finite = curve["values"][np.isfinite(curve["values"])]
            final = float(finite[-1]) if len(finite) else None
            versus = ""
            if baseline is None:
                baseline = final
            elif final is not None and baseline:
                versus = f"{(final / baseline - 1) * 100:+.1f} %"
            print(
                f"  {run_id[:12]:<14}"
                + "".join(f"{_figure(v):>10}" for v in values)
                + f"{_figure(final):>11}  {versus}"
            )


def _at_step(curve: Dict[str, np.ndarray], step: int) -> Optional[float]:
    """The curve's last value at or before ``step``."""
    steps = curve["steps"]
    position = int(np.searchsorted(steps, step, side="right")) - 1
    return None if position < 0 else float(curve["values"][position])
