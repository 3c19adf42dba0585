"""Facts about the machine's hardware that the energy estimate needs (CPU model, TDP, packages)."""

from __future__ import annotations

from hf_eco2ai.hardware.cpu_tdp import (
    CpuTdp,
    count_cpu_packages,
    lookup_cpu_tdp,
    normalise_cpu_name,
    read_cpu_model_name,
)

__all__ = ["CpuTdp", "count_cpu_packages", "lookup_cpu_tdp", "normalise_cpu_name", "read_cpu_model_name"]
