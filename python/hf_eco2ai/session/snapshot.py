"""The session's live state, as exporters read it at scrape time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from hf_eco2ai.carbon.provenance import IntensityResult
from hf_eco2ai.meter.channels import ChannelInfo


@dataclass(frozen=True)
class GpuStats:
    """One visible GPU, read through NVML when the exporter is scraped (never on the hot path)."""

    index: int
    name: str
    uuid: str
    temperature_c: Optional[float] = None
    memory_used_bytes: Optional[int] = None
    memory_total_bytes: Optional[int] = None
    utilization_percent: Optional[float] = None
    power_watts: Optional[float] = None


@dataclass(frozen=True)
class SessionSnapshot:
    """A consistent, immutable copy of a TrackingSession's figures.

    Energy is in joules per channel and kWh in total (top-level channels only, PUE applied);
    a figure that cannot be measured on this machine is None, never zero.
    ``cost_total`` is in ``electricity_currency`` (an ISO 4217 code, None when not configured).
    ``monitoring_errors_by_type`` splits ``monitoring_errors_total`` by kind (``"sensor"``,
    ``"store"``, ``"gpu-stats"``, ``"exporter"``, ``"pushgateway"``, ``"report-files"``,
    ``"observer-<class>"``, ...) for the exporter's ``error_type`` label; errors not in it are
    exported as ``"unclassified"``.
    """

    run_id: str
    project_name: str
    experiment_id: Optional[str]
    model_name: Optional[str]
    host: str
    rank: int
    local_rank: int
    world_size: int
    unix_time_s: float
    step_count: int
    epoch_count: int
    channels: List[ChannelInfo]
    energy_joules_by_channel: Dict[str, float]
    power_watts_by_channel: Dict[str, float]
    energy_kwh_total: float
    energy_rate_kwh_per_hour: Optional[float]
    co2_kg_total: float
    co2_rate_kg_per_hour: Optional[float]
    intensity: IntensityResult
    pue: float
    budget_kg: Optional[float] = None
    budget_remaining_kg: Optional[float] = None
    budget_used_fraction: Optional[float] = None
    samples_total: Optional[float] = None
    samples_per_second: Optional[float] = None
    samples_per_kwh: Optional[float] = None
    loss: Optional[float] = None
    eval_loss: Optional[float] = None
    learning_rate: Optional[float] = None
    cost_total: Optional[float] = None
    electricity_price_per_kwh: Optional[float] = None
    electricity_currency: Optional[str] = None
    monitoring_errors_total: int = 0
    monitoring_errors_by_type: Dict[str, int] = field(default_factory=dict)
    api_latency_s: Optional[float] = None
    gpus: List[GpuStats] = field(default_factory=list)
