"""Live GPU state (temperature, memory, utilisation, power) for exporters, read through NVML at
scrape time, never on the training hot path."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence, cast

from hf_eco2ai import _core
from hf_eco2ai.meter.channels import ChannelInfo
from hf_eco2ai.session.snapshot import GpuStats


def measured_gpu_indices(channels: Sequence[ChannelInfo]) -> List[int]:
    """Positions among the visible GPUs of the `gpu:N` channels this meter measures."""
    return [int(c.name.split(":", 1)[1]) for c in channels if c.source == "nvml"]


def read_gpu_stats(channels: Sequence[ChannelInfo], environ: Mapping[str, str]) -> List[GpuStats]:
    """One GpuStats per GPU this meter measures; empty when it measures none.

    Raises:
        SensorUnavailableError: NVML cannot be read (the caller counts it, tracking goes on).
    """
    wanted = set(measured_gpu_indices(channels))
    if not wanted:
        return []
    return [
        GpuStats(**cast(Dict[str, Any], stats))
        for stats in _core.nvml_gpu_stats(environ.get("CUDA_VISIBLE_DEVICES"))
        if stats["index"] in wanted
    ]
