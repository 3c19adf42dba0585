"""What the core's fixes look like from Python: flags and names from one definition, errors in
the package's hierarchy, dead sensors as NaN, deep windows accounted for."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from hf_eco2ai import EnergyMeter, _core
from hf_eco2ai.errors import CarbonTrackingError, ConfigurationError, SamplerError
from hf_eco2ai.meter import flags
from hf_eco2ai.meter.energy_meter import KNOWN_SOURCES


def test_python_flag_bits_are_the_cores_and_every_core_flag_has_a_python_name() -> None:
    core_flags = {
        name: getattr(_core, name) for name in dir(_core) if name.startswith("FLAG_") and name != "FLAG_NAMES"
    }
    python_flags = {name: getattr(flags, name) for name in dir(flags) if name.startswith("FLAG_")}
    assert python_flags == core_flags
    assert sorted(bit for bit, _ in _core.FLAG_NAMES) == sorted(core_flags.values())
    assert len(set(core_flags.values())) == len(core_flags), "every flag has its own bit"
    reported = dict(flags.STEP_FLAG_NAMES)
    assert reported[flags.FLAG_TAIL] == "tail" and reported[flags.FLAG_APPROXIMATE] == "approximate"


def test_source_names_are_the_cores() -> None:
    assert flags.SOURCE_NAMES == tuple(_core.SOURCE_NAMES)
    assert KNOWN_SOURCES == ("auto",) + flags.SOURCE_NAMES
    meter = EnergyMeter(sources="synthetic")
    assert meter.channels()[0].source == flags.SOURCE_SYNTHETIC


def test_the_core_has_no_unused_clock_binding() -> None:
    assert not hasattr(_core, "monotonic_s")


def test_mismatched_power_arrays_raise_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="must pair up"):
        _core.integrate_power_spans([0.0, 1.0], [1.0], [0.0, 1.0])


def test_a_meter_used_after_fork_raises_a_sampler_error_in_the_hierarchy() -> None:
    code = textwrap.dedent("""
        import os, sys
        from hf_eco2ai import EnergyMeter
        from hf_eco2ai.errors import CarbonTrackingError, SamplerError
        meter = EnergyMeter(sources="synthetic")
        pid = os.fork()
        if pid == 0:
            try:
                meter.start()
            except SamplerError as error:
                os._exit(0 if isinstance(error, CarbonTrackingError) and "fork" in str(error) else 2)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    """)
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    assert issubclass(SamplerError, CarbonTrackingError) and issubclass(SamplerError, RuntimeError)


def test_a_dead_sensor_reads_nan_not_its_last_value_and_its_steps_are_flagged() -> None:
    meter = EnergyMeter(
        sources="synthetic", rate_hz=500, synthetic={"kind": "constant", "watts": 80.0}, synthetic_fail_after_s=0.05
    )
    with meter:
        time.sleep(0.15)
        assert np.isnan(meter.totals()["watts"]["synthetic:0"])
        meter.mark_step()
    trace = meter.drain_trace()
    assert trace.watts[0, 0] == 80.0 and np.isnan(trace.watts[-1, 0])
    steps = meter.drain_steps()
    assert steps.flags[0] & flags.FLAG_SENSOR_ERROR
    assert meter.totals()["joules"]["synthetic:0"] == pytest.approx(80.0 * 0.05, rel=0.1)


def test_windows_nested_deeper_than_the_core_tracks_are_counted_and_flagged() -> None:
    meter = EnergyMeter(sources="synthetic", rate_hz=1000)
    depth = _core.MAX_WINDOW_DEPTH + 2
    with meter:
        windows = [meter.window("layer") for _ in range(depth)]
        for window in windows:
            window.__enter__()
        for window in reversed(windows):
            window.__exit__(None, None, None)
    records = meter.drain_windows()
    assert len(records) == _core.MAX_WINDOW_DEPTH
    assert meter.totals()["windows_not_recorded"] == 2
    innermost = int(np.argmax(records.depth))
    assert records.flags[innermost] & flags.FLAG_WINDOW_NESTING


def test_counter_resets_are_in_info_per_channel_and_in_total() -> None:
    info = EnergyMeter(sources="synthetic").info()
    assert info["counter_resets"] == 0
    assert [c["counter_resets"] for c in info["channels"]] == [0]
