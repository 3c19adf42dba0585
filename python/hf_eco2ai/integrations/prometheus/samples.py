"""Turns one SessionSnapshot into the ``hf_training_*`` samples of the catalogue.

Pure functions, no state, no I/O: called on the exporter's HTTP threads at scrape time, never on
the training hot path. A figure the snapshot cannot give (None, no GPU, no price) yields no
sample at all, so the metric is absent rather than a misleading zero.
"""

from __future__ import annotations

from typing import Callable, Dict, Iterator, List, Optional, Tuple

from hf_eco2ai.integrations.prometheus.labels import clean_label_value, model_label
from hf_eco2ai.session.snapshot import GpuStats, SessionSnapshot

Labels = Dict[str, str]
Sample = Tuple[str, Labels, Optional[float]]

API_LATENCY_TARGET = "carbon-intensity-api"
JOULES_PER_KWH = 3.6e6
GRAMS_PER_KG = 1000.0
SECONDS_PER_HOUR = 3600.0
UNSPECIFIED_CURRENCY = "unspecified"
UNCLASSIFIED_ERROR = "unclassified"


def _as_given(value: Optional[object]) -> str:
    return "" if value is None else str(value)


def snapshot_samples(
    snapshot: SessionSnapshot, project_label: str, label_cleanup: bool, aggregate_similar_models: bool
) -> Iterator[Sample]:
    """Yields ``(series name, labels, value)`` for every catalogue metric the snapshot can give.

    ``project_label`` is the project's label value after the cardinality guard. With
    ``label_cleanup`` the free-text label values are made printable and bounded; with
    ``aggregate_similar_models`` a model given as a local path is labelled by its directory name
    (see ``prometheus_labels``).
    A yielded value may be None; the caller drops those samples.
    """
    label: Callable[[Optional[object]], str] = clean_label_value if label_cleanup else _as_given
    model = model_label(snapshot.model_name) if aggregate_similar_models else label(snapshot.model_name)
    process: Labels = {"rank": str(snapshot.rank), "host": label(snapshot.host)}
    project: Labels = {"project_name": project_label, **process}
    per_model: Labels = {**project, "model_name": model}

    yield from _carbon(snapshot, project, per_model, process, label)
    yield from _energy(snapshot, project, per_model, process, label)
    yield from _training(snapshot, project, per_model)
    yield from _gpus(snapshot.gpus, process, label)
    yield from _cost(snapshot, project, label)
    yield from _system(snapshot, project, process)
    yield from _base_unit_twins(snapshot, per_model, label)


def _carbon(
    snapshot: SessionSnapshot,
    project: Labels,
    per_model: Labels,
    process: Labels,
    label: Callable[[Optional[object]], str],
) -> Iterator[Sample]:
    intensity = snapshot.intensity
    yield "hf_training_co2_kg_total", per_model, snapshot.co2_kg_total
    yield "hf_training_co2_rate_kg_per_hour", project, snapshot.co2_rate_kg_per_hour
    yield (
        "hf_training_grid_carbon_intensity_g_per_kwh",
        {"country": label(intensity.country), "region": label(intensity.region), "source": intensity.source, **process},
        intensity.g_per_kwh,
    )
    yield "hf_training_carbon_budget_kg", project, snapshot.budget_kg
    yield "hf_training_carbon_budget_remaining_kg", project, snapshot.budget_remaining_kg


def _energy(
    snapshot: SessionSnapshot,
    project: Labels,
    per_model: Labels,
    process: Labels,
    label: Callable[[Optional[object]], str],
) -> Iterator[Sample]:
    yield "hf_training_energy_kwh_total", per_model, snapshot.energy_kwh_total
    yield "hf_training_energy_rate_kwh_per_hour", project, snapshot.energy_rate_kwh_per_hour
    yield "hf_training_samples_per_kwh", project, snapshot.samples_per_kwh
    for gpu in snapshot.gpus:
        watts = gpu.power_watts
        if watts is None:
            watts = snapshot.power_watts_by_channel.get(f"gpu:{gpu.index}")
        yield "hf_training_gpu_power_watts", _gpu_labels(gpu, process, label), watts
    for channel in snapshot.channels:
        watts = snapshot.power_watts_by_channel.get(channel.name)
        labels = {"channel": channel.name, "provenance": channel.provenance, "source": channel.source, **process}
        yield "hf_training_channel_energy_joules_total", labels, snapshot.energy_joules_by_channel.get(channel.name)
        yield "hf_training_channel_power_watts", labels, watts
        if channel.is_top_level and channel.name.startswith("cpu:"):
            yield (
                "hf_training_cpu_power_watts",
                {"channel": channel.name, "provenance": channel.provenance, **process},
                watts,
            )


def _training(snapshot: SessionSnapshot, project: Labels, per_model: Labels) -> Iterator[Sample]:
    yield "hf_training_loss", per_model, snapshot.loss
    yield "hf_training_eval_loss", per_model, snapshot.eval_loss
    yield "hf_training_learning_rate", project, snapshot.learning_rate
    yield "hf_training_step_count", project, snapshot.step_count
    yield "hf_training_epoch_count", project, snapshot.epoch_count
    yield "hf_training_samples_per_second", project, snapshot.samples_per_second
    yield "hf_training_efficiency_score", project, _power_weighted_utilisation(snapshot.gpus)
    for anomaly_type, count in sorted((snapshot.anomalies_by_type or {}).items()):
        yield "hf_training_anomalies_total", {"type": anomaly_type, **project}, count


def _gpus(gpus: List[GpuStats], process: Labels, label: Callable[[Optional[object]], str]) -> Iterator[Sample]:
    for gpu in gpus:
        labels = _gpu_labels(gpu, process, label)
        yield "hf_training_gpu_temperature_celsius", labels, gpu.temperature_c
        yield "hf_training_gpu_memory_usage_bytes", labels, gpu.memory_used_bytes
        yield "hf_training_gpu_memory_total_bytes", labels, gpu.memory_total_bytes
        yield "hf_training_gpu_memory_usage_percent", labels, _memory_percent(gpu)
        yield "hf_training_gpu_utilization_percent", labels, gpu.utilization_percent
    if gpus:
        yield "hf_training_gpu_count", process, len(gpus)


def _cost(snapshot: SessionSnapshot, project: Labels, label: Callable[[Optional[object]], str]) -> Iterator[Sample]:
    priced = {**project, "currency": label(snapshot.electricity_currency) or UNSPECIFIED_CURRENCY}
    yield "hf_training_estimated_cost_usd", priced, snapshot.cost_total
    yield "hf_training_energy_cost_usd", priced, snapshot.cost_total
    price = snapshot.electricity_price_per_kwh
    rate = snapshot.energy_rate_kwh_per_hour
    yield "hf_training_cost_rate_usd_per_hour", priced, None if price is None or rate is None else price * rate


def _system(snapshot: SessionSnapshot, project: Labels, process: Labels) -> Iterator[Sample]:
    yield "hf_training_last_update_timestamp", project, snapshot.unix_time_s
    classified = 0
    for error_type, count in sorted(snapshot.monitoring_errors_by_type.items()):
        classified += count
        yield "hf_training_monitoring_errors_total", {"error_type": error_type, **project}, count
    unclassified = snapshot.monitoring_errors_total - classified
    if unclassified > 0 or not snapshot.monitoring_errors_by_type:
        yield (
            "hf_training_monitoring_errors_total",
            {"error_type": UNCLASSIFIED_ERROR, **project},
            max(unclassified, 0),
        )
    latency_s = snapshot.api_latency_s
    yield (
        "hf_training_network_latency_ms",
        {"target": API_LATENCY_TARGET, **process},
        None if latency_s is None else latency_s * 1000.0,
    )


def _scaled(value: Optional[float], factor: float) -> Optional[float]:
    return None if value is None else value * factor


def _base_unit_twins(
    snapshot: SessionSnapshot, run: Labels, label: Callable[[Optional[object]], str]
) -> Iterator[Sample]:
    """The base-unit twins, all on the run's labels (``RUN_LABELS``) so that they divide cleanly."""
    yield "hf_training_energy_joules_total", run, snapshot.energy_kwh_total * JOULES_PER_KWH
    # kWh per hour is kW
    yield "hf_training_power_watts", run, _scaled(snapshot.energy_rate_kwh_per_hour, 1000.0)
    yield "hf_training_emissions_grams_total", run, snapshot.co2_kg_total * GRAMS_PER_KG
    yield (
        "hf_training_emissions_rate_grams_per_second",
        run,
        _scaled(snapshot.co2_rate_kg_per_hour, GRAMS_PER_KG / SECONDS_PER_HOUR),
    )
    yield "hf_training_carbon_budget_grams", run, _scaled(snapshot.budget_kg, GRAMS_PER_KG)
    yield "hf_training_carbon_budget_remaining_grams", run, _scaled(snapshot.budget_remaining_kg, GRAMS_PER_KG)
    yield "hf_training_steps_total", run, snapshot.step_count
    yield "hf_training_epochs_total", run, snapshot.epoch_count
    yield "hf_training_samples_total", run, snapshot.samples_total
    yield "hf_training_efficiency_ratio", run, _power_weighted_utilisation(snapshot.gpus)
    for gpu in snapshot.gpus:
        labels = _gpu_labels(gpu, run, label)
        yield "hf_training_gpu_memory_usage_ratio", labels, _scaled(_memory_percent(gpu), 0.01)
        yield "hf_training_gpu_utilization_ratio", labels, _scaled(gpu.utilization_percent, 0.01)
    currency = label(snapshot.electricity_currency) or UNSPECIFIED_CURRENCY
    yield "hf_training_energy_cost_total", {**run, "currency": currency}, snapshot.cost_total
    yield "hf_training_last_update_timestamp_seconds", run, snapshot.unix_time_s
    yield ("hf_training_network_latency_seconds", {"target": API_LATENCY_TARGET, **run}, snapshot.api_latency_s)


def _gpu_labels(gpu: GpuStats, process: Labels, label: Callable[[Optional[object]], str]) -> Labels:
    return {"gpu_id": str(gpu.index), "gpu_model": label(gpu.name), **process}


def _memory_percent(gpu: GpuStats) -> Optional[float]:
    if gpu.memory_used_bytes is None or not gpu.memory_total_bytes:
        return None
    return 100.0 * gpu.memory_used_bytes / gpu.memory_total_bytes


def _power_weighted_utilisation(gpus: List[GpuStats]) -> Optional[float]:
    """Σ utilisation × power / Σ power over GPUs reporting both, as a fraction; None without them."""
    weighted = total_watts = 0.0
    for gpu in gpus:
        if gpu.utilization_percent is None or gpu.power_watts is None:
            continue
        weighted += gpu.utilization_percent / 100.0 * gpu.power_watts
        total_watts += gpu.power_watts
    return weighted / total_watts if total_watts > 0 else None
