"""Shared fixtures: the NVML emulator, and the rule that `gpu` tests need a real NVIDIA GPU."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import List

import pytest
from nvml_emulator import build_emulator

from hf_eco2ai.carbon.cloud import forget_metadata_answers


def _real_gpu_count() -> int:
    """GPUs the real driver reports in this process's environment; 0 without a driver. The
    emulator is never on the default search path, so this is the hardware."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return 0
    if hasattr(nvml, "nvml_emulator_origin_s") or nvml.nvmlInit_v2() != 0:
        return 0
    count = ctypes.c_uint(0)
    nvml.nvmlDeviceGetCount_v2(ctypes.byref(count))
    return int(count.value)


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    # Tests of real GPU hardware are collected only where NVML finds a GPU: elsewhere they are
    # deselected (not skipped), since the emulator runs every NVML path on every machine.
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if gpu_items and _real_gpu_count() == 0:
        config.hook.pytest_deselected(items=gpu_items)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


@pytest.fixture(autouse=True)
def fresh_cloud_detection() -> None:
    # A process keeps its metadata answers; each test starts as a new process would, so that a
    # metadata server on a port an earlier test used is asked, not remembered.
    forget_metadata_answers()


@pytest.fixture(scope="session")
def nvml_emulator_dir() -> Path:
    """The folder holding the emulator as libnvidia-ml.so.1 (built with cargo when stale)."""
    return build_emulator()
