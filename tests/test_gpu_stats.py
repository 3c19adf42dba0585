"""GPU state for exporters: read only for the GPUs a meter measures, and only through NVML."""

from __future__ import annotations

import ctypes.util

import pytest

from hf_eco2ai import CarbonConfig, EnergyMeter, SensorUnavailableError, TrackingSession
from hf_eco2ai.meter.channels import ChannelInfo
from hf_eco2ai.meter.gpu_stats import measured_gpu_indices, read_gpu_stats

NVML_PRESENT = ctypes.util.find_library("nvidia-ml") is not None


def test_only_nvml_channels_count_as_measured_gpus() -> None:
    channels = [
        ChannelInfo("gpu:1", "counter", "measured", "nvml"),
        ChannelInfo("cpu:package-0", "counter", "measured", "rapl"),
        ChannelInfo("synthetic:0", "power", "measured", "synthetic"),
    ]
    assert measured_gpu_indices(channels) == [1]


def test_a_meter_without_gpus_reads_no_gpu_state() -> None:
    assert read_gpu_stats([ChannelInfo("cpu:estimate", "power", "estimated", "cpu-estimate")], {}) == []


def test_gpu_channels_where_nvml_is_missing_say_why() -> None:
    channels = [ChannelInfo("gpu:0", "counter", "measured", "nvml")]
    if NVML_PRESENT:
        assert [gpu.index for gpu in read_gpu_stats(channels, {})] == [0]
    else:
        with pytest.raises(SensorUnavailableError, match="libnvidia-ml"):
            read_gpu_stats(channels, {})


def test_a_session_snapshot_of_a_gpu_less_run_has_no_gpus_and_no_errors(tmp_path: object) -> None:
    config = CarbonConfig(output_dir=str(tmp_path), country_iso_code="FR", offline=True)
    session = TrackingSession(config, meter=EnergyMeter(sources="synthetic"), store=False)
    session.start()
    try:
        snapshot = session.snapshot()
    finally:
        session.stop()
    assert snapshot is not None
    assert snapshot.gpus == []
    assert snapshot.monitoring_errors_total == 0
