"""RAPL through a fake powercap tree: parsing, wraparound, permissions."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_powercap import make_tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_eco2ai import EnergyMeter, SensorUnavailableError


def test_fake_tree_gives_package_core_and_dram_channels_with_parents(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            "intel-rapl:0": ("package-0", 262_143_328_850, 10),
            "intel-rapl:0:0": ("core", 262_143_328_850, 5),
            "intel-rapl:0:1": ("uncore", 262_143_328_850, 1),
            "intel-rapl:0:2": ("dram", 65_712_999_613, 2),
        },
    )
    meter = EnergyMeter(sources="rapl", rapl_root=tmp_path)
    channels = {c.name: c for c in meter.channels()}
    assert set(channels) == {"cpu:package-0", "cpu:core-0", "cpu:uncore-0", "dram:0"}
    assert channels["cpu:core-0"].parent == "cpu:package-0"
    assert channels["cpu:uncore-0"].parent == "cpu:package-0"
    assert channels["dram:0"].parent is None
    assert all(c.kind == "counter" and c.provenance == "measured" for c in channels.values())


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(range_joules=st.floats(0.5, 3.0), watts=st.floats(5.0, 60.0))
def test_a_wrapping_counter_never_yields_a_negative_or_huge_step(
    tmp_path_factory: pytest.TempPathFactory, range_joules: float, watts: float
) -> None:
    root = tmp_path_factory.mktemp("powercap")
    range_uj = int(range_joules * 1e6)
    zone = make_tree(root, {"intel-rapl:0": ("package-0", range_uj, range_uj - 1000)})["intel-rapl:0"]
    stop = threading.Event()
    written = {"uj": range_uj - 1000}
    longest_gap_s = [0.0]

    def counter() -> None:
        started = last = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            longest_gap_s[0] = max(longest_gap_s[0], now - last)
            last = now
            written["uj"] = range_uj - 1000 + int(watts * (now - started) * 1e6)
            zone.write(written["uj"] % range_uj)
            time.sleep(0.0005)

    writer = threading.Thread(target=counter)
    writer.start()
    meter = EnergyMeter(sources="rapl", rapl_root=root, rate_hz=500)
    # The writer thread waits for the GIL while the meter is built; let it catch up before the
    # first reading, or step 0 would hold energy written late, not energy of the step.
    time.sleep(0.02)
    try:
        with meter:
            for _ in range(40):
                time.sleep(0.02)
                meter.mark_step()
    finally:
        stop.set()
        writer.join()
        zone.close()
    steps = meter.drain_steps()
    joules = steps.joules[:, 0]
    assert (joules >= 0).all()
    # No step can hold more than the power times its length plus two counter updates. The fake
    # counter is a Python thread: on a busy machine it can fall behind, and then the energy it
    # owed lands in a later step, so an update here is as long as its longest gap between writes.
    update_s = max(0.002, longest_gap_s[0])
    assert (joules <= watts * steps.duration_s + 2 * watts * update_s + 1e-6).all()
    wraps = written["uj"] // range_uj
    assert wraps >= 1, "the counter must have wrapped for this test to mean anything"
    expected = watts * (steps.t1_s[-1] - steps.t0_s[0])
    assert joules.sum() == pytest.approx(expected, rel=0.1)


def test_unreadable_energy_counter_names_the_permission_fix(tmp_path: Path) -> None:
    make_tree(tmp_path, {"intel-rapl:0": ("package-0", 1_000_000, 0)})
    (tmp_path / "intel-rapl:0" / "energy_uj").chmod(0o000)
    # As root, file modes do not stop reads: a user namespace takes the override away, as an
    # unprivileged user would have it.
    probe = (
        "from hf_eco2ai import EnergyMeter, SensorUnavailableError\n"
        "try:\n"
        f"    EnergyMeter(sources='rapl', rapl_root={str(tmp_path)!r})\n"
        "except SensorUnavailableError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        ["unshare", "--user", sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    message = result.stdout
    assert "not readable" in message
    assert "CVE-2020-8694" in message
    assert "udev" in message and "chmod" in message


def test_rapl_explicitly_requested_where_there_is_none_says_so(tmp_path: Path) -> None:
    with pytest.raises(SensorUnavailableError, match="no intel-rapl zones"):
        EnergyMeter(sources="rapl", rapl_root=tmp_path)


def test_a_log_point_holds_the_totals_top_level_energy_without_counting_a_subzone_twice(tmp_path: Path) -> None:
    zones = make_tree(
        tmp_path,
        {
            "intel-rapl:0": ("package-0", 262_143_328_850, 1_000_000),
            "intel-rapl:0:0": ("core", 262_143_328_850, 1_000_000),
            "intel-rapl:0:2": ("dram", 65_712_999_613, 1_000_000),
        },
    )
    meter = EnergyMeter(sources="rapl", rapl_root=tmp_path, rate_hz=200)
    with meter:
        time.sleep(0.05)
        meter.mark_step()
        zones["intel-rapl:0"].write(9_000_000)
        zones["intel-rapl:0:0"].write(6_000_000)
        zones["intel-rapl:0:2"].write(3_000_000)
        time.sleep(0.05)
        meter.mark_step()
    for zone in zones.values():
        zone.close()
    totals = meter.totals()
    t_s, steps_marked, top_level_joules, watts = meter.log_point()
    joules = totals["joules"]
    assert joules["cpu:core-0"] == pytest.approx(5.0)
    assert (t_s, steps_marked) == (totals["t_s"], 2)
    assert dict(zip([channel.name for channel in meter.channels()], watts)) == totals["watts"]
    assert top_level_joules == pytest.approx(joules["cpu:package-0"] + joules["dram:0"]) == pytest.approx(10.0)
