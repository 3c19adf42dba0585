"""The catalogue of every ``hf_training_*`` metric the Prometheus exporter serves.

Names, types and labels follow the documented ``hf_training_*`` reference tables. Each entry
names the series exactly as Prometheus stores it, so the dashboard and alert rules in
``docs/monitoring/`` can be checked against this table.

Two deliberate departures from the guide, both so that the documented *series names* hold:

* ``hf_training_step_count`` and ``hf_training_epoch_count`` are documented as counters, but a
  Prometheus/OpenMetrics counter's series must end in ``_total``; exposed as counters they would
  be stored as ``hf_training_step_count_total``. They are exposed as gauges that only grow.
* ``hf_training_plugin_version`` is documented as an Info metric, which client libraries store as
  ``..._info``. It is exposed the way Prometheus itself stores info metrics: a gauge fixed at 1
  whose labels carry the information.

The cost metrics keep the guide's ``_usd`` names, but their ``currency`` label is authoritative:
it carries the configured ``electricity_currency`` (``unspecified`` when none is set), and no
exchange rate is applied.

Base-unit twins: beside each documented metric in kWh, kg, milliseconds, percent or a 0-1 score,
and beside the two gauges that only grow, the catalogue serves a twin named by the Prometheus
conventions (base units: joules, grams, seconds, ratios; ``_total`` on counters) with ``twin_of``
naming the documented metric. Every run-level twin carries exactly ``RUN_LABELS`` (per-GPU twins
add ``gpu_id`` and ``gpu_model``, the cost twin ``currency``), so that one twin divides by another
with no ``on``/``ignoring``: ``rate(hf_training_energy_joules_total[5m]) /
rate(hf_training_steps_total[5m])`` is joules per step. ``hf_training_build_info`` is the
conventional twin of ``hf_training_plugin_version``. The documented names stay as they are.

Label policy: every per-process series also carries ``rank`` and ``host`` so that the ranks of a
distributed run stay apart. The guide's ``instance`` label is not emitted by the exporter:
Prometheus attaches ``instance`` to every scraped series itself, and an exported one would be
renamed ``exported_instance``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Literal, Tuple

MetricKind = Literal["counter", "gauge"]
MetricGroup = Literal["carbon", "energy", "training", "gpu", "cost", "system"]

_PROCESS = ("rank", "host")
RUN_LABELS = ("project_name", "model_name", *_PROCESS)


@dataclass(frozen=True)
class MetricSpec:
    """One exported metric.

    ``name`` is the series name as stored by Prometheus (counters include their ``_total``).
    ``documented_kind`` is the documented type; it differs from ``kind`` only for
    the three metrics explained in the module docstring. ``twin_of`` names the documented metric
    a base-unit twin mirrors ("" for every other metric).
    """

    name: str
    kind: MetricKind
    group: MetricGroup
    help: str
    labels: Tuple[str, ...]
    documented_kind: str = ""
    twin_of: str = ""

    @property
    def family_name(self) -> str:
        """The name prometheus_client expects: it appends ``_total`` to counters by itself."""
        if self.kind == "counter":
            return self.name[: -len("_total")]
        return self.name


def _spec(
    name: str, kind: MetricKind, group: MetricGroup, help_text: str, labels: Tuple[str, ...], documented: str = ""
) -> MetricSpec:
    return MetricSpec(name, kind, group, help_text, labels, documented or kind)


def _twin(
    name: str, kind: MetricKind, group: MetricGroup, help_text: str, twin_of: str, labels: Tuple[str, ...] = RUN_LABELS
) -> MetricSpec:
    """A metric named by the Prometheus conventions; ``twin_of`` is "" for one with no documented sibling."""
    return MetricSpec(name, kind, group, help_text, labels, "", twin_of)


CATALOGUE: Tuple[MetricSpec, ...] = (
    # Carbon
    _spec(
        "hf_training_co2_kg_total",
        "counter",
        "carbon",
        "CO2-equivalent emitted by this process's devices since the run started, in kg.",
        ("project_name", "model_name", *_PROCESS),
    ),
    _spec(
        "hf_training_co2_rate_kg_per_hour",
        "gauge",
        "carbon",
        "CO2-equivalent emission rate over the last drain interval, in kg per hour.",
        ("project_name", *_PROCESS),
    ),
    _spec(
        "hf_training_grid_carbon_intensity_g_per_kwh",
        "gauge",
        "carbon",
        "Grid carbon intensity used for this run, in g CO2e per kWh; `source` says where it came from.",
        ("country", "region", "source", *_PROCESS),
    ),
    _spec(
        "hf_training_carbon_budget_kg",
        "gauge",
        "carbon",
        "Configured carbon budget of the run, in kg CO2e (absent when no budget is set).",
        ("project_name", *_PROCESS),
    ),
    _spec(
        "hf_training_carbon_budget_remaining_kg",
        "gauge",
        "carbon",
        "Carbon budget left, in kg CO2e; negative once the budget is exceeded.",
        ("project_name", *_PROCESS),
    ),
    # Energy
    _spec(
        "hf_training_energy_kwh_total",
        "counter",
        "energy",
        "Energy used by this process's top-level channels since the run started, PUE applied, in kWh.",
        ("project_name", "model_name", *_PROCESS),
    ),
    _spec(
        "hf_training_energy_rate_kwh_per_hour",
        "gauge",
        "energy",
        "Energy rate over the last drain interval, PUE applied, in kWh per hour.",
        ("project_name", *_PROCESS),
    ),
    _spec(
        "hf_training_gpu_power_watts",
        "gauge",
        "energy",
        "Latest power reading of one GPU, in watts.",
        ("gpu_id", "gpu_model", *_PROCESS),
    ),
    _spec(
        "hf_training_cpu_power_watts",
        "gauge",
        "energy",
        "Latest power of one top-level CPU channel, in watts; `provenance` says measured or estimated.",
        ("channel", "provenance", *_PROCESS),
    ),
    _spec(
        "hf_training_samples_per_kwh",
        "gauge",
        "energy",
        "Training samples processed per kWh used so far.",
        ("project_name", *_PROCESS),
    ),
    _spec(
        "hf_training_channel_energy_joules_total",
        "counter",
        "energy",
        "Energy of one sensor channel since the run started, in joules, before PUE.",
        ("channel", "provenance", "source", *_PROCESS),
    ),
    _spec(
        "hf_training_channel_power_watts",
        "gauge",
        "energy",
        "Latest power of one sensor channel, in watts.",
        ("channel", "provenance", "source", *_PROCESS),
    ),
    # Training performance
    _spec(
        "hf_training_loss",
        "gauge",
        "training",
        "Latest logged training loss.",
        ("project_name", "model_name", *_PROCESS),
    ),
    _spec(
        "hf_training_eval_loss",
        "gauge",
        "training",
        "Latest logged evaluation loss.",
        ("project_name", "model_name", *_PROCESS),
    ),
    _spec(
        "hf_training_learning_rate", "gauge", "training", "Latest logged learning rate.", ("project_name", *_PROCESS)
    ),
    _spec(
        "hf_training_step_count",
        "gauge",
        "training",
        "Optimiser steps taken so far (only grows within a run).",
        ("project_name", *_PROCESS),
        documented="counter",
    ),
    _spec(
        "hf_training_epoch_count",
        "gauge",
        "training",
        "Epochs completed so far (only grows within a run).",
        ("project_name", *_PROCESS),
        documented="counter",
    ),
    _spec(
        "hf_training_samples_per_second",
        "gauge",
        "training",
        "Training throughput over the last drain interval, in samples per second.",
        ("project_name", *_PROCESS),
    ),
    _spec(
        "hf_training_efficiency_score",
        "gauge",
        "training",
        "Power-weighted GPU utilisation (0-1): the share of GPU power drawn while the GPUs were busy.",
        ("project_name", *_PROCESS),
    ),
    _spec(
        "hf_training_anomalies_total",
        "counter",
        "training",
        "Training anomalies flagged so far (gradient explosion, vanishing gradient, NaN/Inf, loss or "
        "memory spike), by type; served while the Tracer API watches the run.",
        ("type", "project_name", *_PROCESS),
    ),
    # GPU
    _spec(
        "hf_training_gpu_temperature_celsius",
        "gauge",
        "gpu",
        "GPU temperature, in degrees Celsius.",
        ("gpu_id", "gpu_model", *_PROCESS),
    ),
    _spec(
        "hf_training_gpu_memory_usage_bytes",
        "gauge",
        "gpu",
        "GPU memory in use, in bytes.",
        ("gpu_id", "gpu_model", *_PROCESS),
    ),
    _spec(
        "hf_training_gpu_memory_total_bytes",
        "gauge",
        "gpu",
        "GPU memory installed, in bytes.",
        ("gpu_id", "gpu_model", *_PROCESS),
    ),
    _spec(
        "hf_training_gpu_memory_usage_percent",
        "gauge",
        "gpu",
        "GPU memory in use, in percent of the total.",
        ("gpu_id", "gpu_model", *_PROCESS),
    ),
    _spec(
        "hf_training_gpu_utilization_percent",
        "gauge",
        "gpu",
        "Share of the last sample period in which a kernel ran on the GPU, in percent.",
        ("gpu_id", "gpu_model", *_PROCESS),
    ),
    _spec("hf_training_gpu_count", "gauge", "gpu", "GPUs this process measures (absent without NVML).", _PROCESS),
    # Cost
    _spec(
        "hf_training_estimated_cost_usd",
        "gauge",
        "cost",
        "Estimated training cost so far: energy at the configured electricity price, in `currency`.",
        ("project_name", "currency", *_PROCESS),
    ),
    _spec(
        "hf_training_cost_rate_usd_per_hour",
        "gauge",
        "cost",
        "Cost rate at the current energy rate and the configured electricity price, in `currency` per hour.",
        ("project_name", "currency", *_PROCESS),
    ),
    _spec(
        "hf_training_energy_cost_usd",
        "gauge",
        "cost",
        "Energy cost so far at the configured electricity price, in `currency`.",
        ("project_name", "currency", *_PROCESS),
    ),
    # Base-unit twins of the documented metrics (see the module docstring)
    _twin(
        "hf_training_energy_joules_total",
        "counter",
        "energy",
        "Energy used by this process's top-level channels since the run started, PUE applied, in joules.",
        "hf_training_energy_kwh_total",
    ),
    _twin(
        "hf_training_power_watts",
        "gauge",
        "energy",
        "Mean power of this process's top-level channels over the last drain interval, PUE applied, in watts.",
        "hf_training_energy_rate_kwh_per_hour",
    ),
    _twin(
        "hf_training_emissions_grams_total",
        "counter",
        "carbon",
        "CO2-equivalent emitted by this process's devices since the run started, in grams.",
        "hf_training_co2_kg_total",
    ),
    _twin(
        "hf_training_emissions_rate_grams_per_second",
        "gauge",
        "carbon",
        "CO2-equivalent emission rate over the last drain interval, in grams per second.",
        "hf_training_co2_rate_kg_per_hour",
    ),
    _twin(
        "hf_training_carbon_budget_grams",
        "gauge",
        "carbon",
        "Configured carbon budget of the run, in grams CO2e (absent when no budget is set).",
        "hf_training_carbon_budget_kg",
    ),
    _twin(
        "hf_training_carbon_budget_remaining_grams",
        "gauge",
        "carbon",
        "Carbon budget left, in grams CO2e; negative once the budget is exceeded.",
        "hf_training_carbon_budget_remaining_kg",
    ),
    _twin(
        "hf_training_steps_total",
        "counter",
        "training",
        "Optimiser steps marked since the run started.",
        "hf_training_step_count",
    ),
    _twin(
        "hf_training_epochs_total",
        "counter",
        "training",
        "Epochs completed since the run started.",
        "hf_training_epoch_count",
    ),
    _twin(
        "hf_training_samples_total",
        "counter",
        "training",
        "Training samples processed since the run started, as logged by the training loop.",
        "",
    ),
    _twin(
        "hf_training_efficiency_ratio",
        "gauge",
        "training",
        "Power-weighted GPU utilisation as a ratio (0-1): the share of GPU power drawn while the GPUs were busy.",
        "hf_training_efficiency_score",
    ),
    _twin(
        "hf_training_gpu_memory_usage_ratio",
        "gauge",
        "gpu",
        "GPU memory in use, as a ratio of the total (0-1).",
        "hf_training_gpu_memory_usage_percent",
        ("gpu_id", "gpu_model", *RUN_LABELS),
    ),
    _twin(
        "hf_training_gpu_utilization_ratio",
        "gauge",
        "gpu",
        "Share of the last sample period in which a kernel ran on the GPU, as a ratio (0-1).",
        "hf_training_gpu_utilization_percent",
        ("gpu_id", "gpu_model", *RUN_LABELS),
    ),
    _twin(
        "hf_training_energy_cost_total",
        "counter",
        "cost",
        "Energy cost since the run started at the configured electricity price, in `currency`.",
        "hf_training_energy_cost_usd",
        ("currency", *RUN_LABELS),
    ),
    _twin(
        "hf_training_last_update_timestamp_seconds",
        "gauge",
        "system",
        "When the exported figures were taken, in Unix seconds.",
        "hf_training_last_update_timestamp",
    ),
    _twin(
        "hf_training_network_latency_seconds",
        "gauge",
        "system",
        "Round-trip time of the last call to the live carbon-intensity API, in seconds.",
        "hf_training_network_latency_ms",
        ("target", *RUN_LABELS),
    ),
    _twin(
        "hf_training_build_info",
        "gauge",
        "system",
        "Constant 1; the labels name the hf-eco2ai version and commit serving these metrics.",
        "hf_training_plugin_version",
        ("version", "commit"),
    ),
    # System
    _spec(
        "hf_training_last_update_timestamp",
        "gauge",
        "system",
        "When the exported figures were taken, in Unix seconds.",
        ("project_name", *_PROCESS),
    ),
    _spec(
        "hf_training_plugin_version",
        "gauge",
        "system",
        "Constant 1; the labels name the hf-eco2ai version and commit serving these metrics.",
        ("version", "commit"),
        documented="info",
    ),
    _spec(
        "hf_training_monitoring_errors_total",
        "counter",
        "system",
        "Tracking failures that training carried on through (sensor, API, exporter), by type.",
        ("error_type", "project_name", *_PROCESS),
    ),
    _spec(
        "hf_training_network_latency_ms",
        "gauge",
        "system",
        "Round-trip time of the last call to the live carbon-intensity API, in milliseconds.",
        ("target", *_PROCESS),
    ),
)

BY_NAME: Dict[str, MetricSpec] = {spec.name: spec for spec in CATALOGUE}
TWINS: Dict[str, MetricSpec] = {spec.twin_of: spec for spec in CATALOGUE if spec.twin_of}

# Metrics from the guide's tables that are deliberately not exported, and why. An invented figure
# would be worse than an absent one.
NOT_EXPORTED: Dict[str, str] = {
    "hf_training_compute_cost_usd": (
        "hf-eco2ai knows no price for the compute itself (instance or GPU hours), only for the "
        "electricity; hf_training_energy_cost_usd is the part it can compute"
    ),
}
