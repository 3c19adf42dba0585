"""The NVML source, end to end, on emulated GPUs whose true energy is known.

Each test is one fresh process (NVML is initialised once per process) on an emulated machine
configured by ``NVML_EMULATOR``; see tests/nvml_emulator.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest
from nvml_emulator import run_emulated, run_two_ranks

# One stair of the counter at the test's power: the resolution any total can have.
STAIR_S = 0.1

MEASURE_FOR = """
    import json, time
    from nvml_emulator import Emulator
    from hf_eco2ai import EnergyMeter

    meter = EnergyMeter(sources={sources!r}, rate_hz={rate_hz})
    emulator = Emulator()
    meter.start()
    deadline = time.monotonic() + {seconds}
    while time.monotonic() < deadline:
        time.sleep(0.01)
        meter.mark_step()
    meter.stop()
    totals = meter.totals()
    info = meter.info()
    truth = {{gpu: emulator.true_joules(gpu, totals["first_reading_s"], totals["t_s"]) for gpu in range(8)}}
    steps = meter.drain_steps()
    print(json.dumps({{"info": info, "totals": totals, "truth": truth, "skipped": meter.skipped_sources,
                      "step_joules": steps.joules.sum(axis=0).tolist(), "channels": steps.channels}}))
"""


def measure(
    library_dir: Path,
    config: str,
    seconds: float = 0.6,
    rate_hz: float = 1000.0,
    sources: str = "nvml",
    env: Dict[str, str] = None,
) -> Dict[str, Any]:
    return run_emulated(
        library_dir, config, MEASURE_FOR.format(sources=sources, rate_hz=rate_hz, seconds=seconds), env=env
    )


def gpu_uuids(result: Dict[str, Any]) -> Dict[str, str]:
    nvml = next(source for source in result["info"]["sources"] if source["name"] == "nvml")
    return {key: value.split()[-1] for key, value in nvml.items() if key.startswith("gpu:")}


def test_open_reads_each_gpu_in_joules_from_the_energy_counter(nvml_emulator_dir: Path) -> None:
    result = measure(nvml_emulator_dir, "gpus=2;stair_ms=100;scenario=constant:300;scenario.1=constant:500")
    channels = result["info"]["channels"]
    assert [(c["name"], c["kind"], c["provenance"], c["source"]) for c in channels] == [
        ("gpu:0", "counter", "measured", "nvml"),
        ("gpu:1", "counter", "measured", "nvml"),
    ]
    assert all(c["observed_update_period_s"] == pytest.approx(STAIR_S, rel=0.05) for c in channels)
    for gpu, watts in ((0, 300.0), (1, 500.0)):
        measured = result["totals"]["joules"][f"gpu:{gpu}"]
        # The counter lags the truth by at most one stair at each end of the run.
        assert abs(measured - result["truth"][str(gpu)]) <= 2 * STAIR_S * watts
        assert measured > 0.5 * result["truth"][str(gpu)]
    assert result["step_joules"] == pytest.approx(list(result["totals"]["joules"].values()), rel=1e-9)
    assert result["info"]["counter_resets"] == 0
    assert result["totals"]["sensor_errors"] == 0
    assert gpu_uuids(result)["gpu:0"].startswith("GPU-")


def test_counter_stairs_at_ten_kilohertz_lose_no_energy(nvml_emulator_dir: Path) -> None:
    result = measure(nvml_emulator_dir, "gpus=1;stair_ms=20;scenario=constant:700", seconds=1.0, rate_hz=10_000.0)
    measured = result["totals"]["joules"]["gpu:0"]
    assert abs(measured - result["truth"]["0"]) <= 2 * 0.02 * 700.0
    assert result["info"]["counter_resets"] == 0


@pytest.mark.parametrize(
    "visible, expected",
    [
        ("2,0", [2, 0]),
        ("GPU-e0000000-0000-4000-8000-0000000e1003,1", [3, 1]),
        ("e0000000-0000-4000-8000-0000000e1002", [2]),
        ("GPU-e0000000-0000-4000-8000-0000000e1001", [1]),
    ],
)
def test_cuda_visible_devices_picks_gpus_by_index_and_uuid_in_cuda_order(
    nvml_emulator_dir: Path, visible: str, expected: List[int]
) -> None:
    result = measure(nvml_emulator_dir, "gpus=4", seconds=0.2, rate_hz=100.0, env={"CUDA_VISIBLE_DEVICES": visible})
    uuids = gpu_uuids(result)
    assert sorted(uuids) == [f"gpu:{position}" for position in range(len(expected))]
    assert [uuids[f"gpu:{p}"][-1] for p in range(len(expected))] == [str(gpu) for gpu in expected]


def test_an_out_of_range_entry_cuts_the_list_as_cuda_does(nvml_emulator_dir: Path) -> None:
    result = measure(nvml_emulator_dir, "gpus=4", seconds=0.2, rate_hz=100.0, env={"CUDA_VISIBLE_DEVICES": "1,7,0"})
    assert list(gpu_uuids(result)) == ["gpu:0"]
    assert gpu_uuids(result)["gpu:0"].endswith("1")


MIG_RUN = """
    import json, time, warnings
    from hf_eco2ai import EnergyMeter

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        meter = EnergyMeter(sources="nvml", rate_hz=200)
    meter.start()
    time.sleep(0.3)
    meter.stop()
    print(json.dumps({"warnings": [str(w.message) for w in caught],
                      "categories": [w.category.__name__ for w in caught], "skipped": meter.skipped_sources,
                      "joules": meter.totals()["joules"]}))
"""


def test_a_gpu_in_mig_mode_is_named_and_the_others_are_still_measured(nvml_emulator_dir: Path) -> None:
    result = run_emulated(nvml_emulator_dir, "gpus=3;mig.1=1", MIG_RUN)
    assert sorted(result["joules"]) == ["gpu:0", "gpu:2"]
    assert all(joules > 0 for joules in result["joules"].values())
    assert list(result["skipped"]) == ["nvml:gpu:1"]
    assert "GPU 1" in result["skipped"]["nvml:gpu:1"] and "MIG" in result["skipped"]["nvml:gpu:1"]
    assert len(result["warnings"]) == 1 and "nvml:gpu:1" in result["warnings"][0]
    assert result["warnings"][0].startswith("hf-eco2ai: ") and result["categories"] == ["HfEco2AIWarning"]


def test_a_mig_instance_in_cuda_visible_devices_is_named_and_the_gpus_go_on(nvml_emulator_dir: Path) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "MIG-GPU-e0000000-0000-4000-8000-0000000e1000/1/0,1"}
    result = run_emulated(nvml_emulator_dir, "gpus=2", MIG_RUN, env=env)
    assert sorted(result["joules"]) == ["gpu:1"]
    assert "MIG-GPU-e0000000" in result["skipped"]["nvml:gpu:0"]


def test_asking_for_a_mig_gpu_alone_says_why_it_cannot_be_measured(nvml_emulator_dir: Path) -> None:
    code = """
        import json
        from hf_eco2ai import EnergyMeter, SensorUnavailableError
        try:
            EnergyMeter(sources="nvml")
        except SensorUnavailableError as error:
            print(json.dumps(str(error)))
    """
    message = run_emulated(nvml_emulator_dir, "gpus=1;mig=1", code)
    assert "GPU 0" in message and "MIG" in message and "cpu-estimate" in message


AUTO_RUN = """
    import json
    from hf_eco2ai import EnergyMeter
    meter = EnergyMeter(sources="auto", rate_hz=50)
    print(json.dumps({"channels": [c.name for c in meter.channels()], "skipped": meter.skipped_sources}))
"""


def test_auto_measures_the_gpus_when_there_are_some(nvml_emulator_dir: Path) -> None:
    result = run_emulated(nvml_emulator_dir, "gpus=2", AUTO_RUN)
    assert result["channels"][:2] == ["gpu:0", "gpu:1"]
    assert "nvml" not in result["skipped"]


@pytest.mark.parametrize(
    "config, reason",
    [
        ("gpus=0", "no GPU is visible"),
        ("gpus=2;init_error=9", "driver is not loaded"),
    ],
)
def test_auto_without_gpus_says_why_and_measures_the_host(nvml_emulator_dir: Path, config: str, reason: str) -> None:
    result = run_emulated(nvml_emulator_dir, config, AUTO_RUN)
    assert not any(name.startswith("gpu:") for name in result["channels"])
    assert result["channels"], "the host is still measured"
    assert reason in result["skipped"]["nvml"]


def test_a_gpu_without_an_energy_counter_is_refused_with_the_reason(nvml_emulator_dir: Path) -> None:
    code = """
        import json
        from hf_eco2ai import EnergyMeter, SensorUnavailableError
        try:
            EnergyMeter(sources="nvml")
        except SensorUnavailableError as error:
            print(json.dumps(str(error)))
    """
    message = run_emulated(nvml_emulator_dir, "gpus=1;no_energy=1", code)
    assert "no total-energy counter" in message and "Volta" in message


LOST_RUN = """
    import json, time, warnings
    from nvml_emulator import Emulator
    from hf_eco2ai import CarbonConfig, EnergyMeter
    from hf_eco2ai.session.tracking_session import TrackingSession

    config = CarbonConfig(output_dir={out!r}, offline=True, country_iso_code="FR", tracking_mode="detailed")
    meter = EnergyMeter(sources="nvml", rate_hz=500)
    session = TrackingSession(config, meter=meter, store=False)
    emulator = Emulator()
    steps_done = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session.start()
        first = meter.totals()["first_reading_s"]
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            time.sleep(0.01)
            session.mark_step()
            steps_done += 1
        session.stop()
        report = session.report()
    lost_at = first + 0.6
    print(json.dumps({{
        "steps_done": steps_done,
        "sensor_warnings": [w for w in report["warnings"] if w["code"] == "sensor-failed"],
        "gpu0_joules": report["energy"]["by_channel"]["gpu:0"]["joules"],
        "gpu1_joules": report["energy"]["by_channel"]["gpu:1"]["joules"],
        "truth0_until_loss": emulator.true_joules(0, first, lost_at),
        "truth1": emulator.true_joules(1, first, meter.totals()["t_s"]),
        "trace_gpu0": report["power_trace"]["watts"]["gpu:0"][-3:],
        "trace_gpu1": report["power_trace"]["watts"]["gpu:1"][-3:],
        "python_warnings": [str(w.message) for w in caught],
    }}))
"""


def test_a_gpu_lost_mid_run_keeps_its_energy_until_the_loss_and_training_goes_on(
    nvml_emulator_dir: Path, tmp_path: Path
) -> None:
    # The emulator loads when the meter opens NVML, a moment before the first reading.
    result = run_emulated(
        nvml_emulator_dir, "gpus=2;scenario=constant:400;lost_after_s.0=0.6", LOST_RUN.format(out=str(tmp_path))
    )
    assert result["steps_done"] > 50
    assert len(result["sensor_warnings"]) == 1 and result["sensor_warnings"][0]["channel"] == "gpu:0"
    assert abs(result["gpu0_joules"] - result["truth0_until_loss"]) <= 2 * STAIR_S * 400.0
    assert abs(result["gpu1_joules"] - result["truth1"]) <= 2 * STAIR_S * 400.0
    # After the loss the GPU's power is missing (null), not its last value repeated.
    assert result["trace_gpu0"][-1] is None
    assert all(watts == pytest.approx(400.0, rel=0.05) for watts in result["trace_gpu1"])


def test_gpu_state_appears_in_prometheus_snapshots(nvml_emulator_dir: Path, tmp_path: Path) -> None:
    code = f"""
        import json, time
        from hf_eco2ai import CarbonConfig, EnergyMeter
        from hf_eco2ai.session.tracking_session import TrackingSession

        config = CarbonConfig(output_dir={str(tmp_path)!r}, offline=True, country_iso_code="FR")
        session = TrackingSession(config, meter=EnergyMeter(sources="nvml", rate_hz=100), store=False)
        session.start()
        time.sleep(0.3)
        snapshot = session.snapshot()
        session.stop()
        print(json.dumps({{"gpus": [vars(gpu) for gpu in snapshot.gpus],
                           "errors": snapshot.monitoring_errors_total}}))
    """
    result = run_emulated(nvml_emulator_dir, "gpus=2;scenario=constant:350", code)
    assert [gpu["index"] for gpu in result["gpus"]] == [0, 1]
    for gpu in result["gpus"]:
        assert gpu["name"] == "NVIDIA H100 80GB HBM3" and gpu["uuid"].startswith("GPU-")
        assert gpu["power_watts"] == pytest.approx(350.0, rel=1e-3)
        assert gpu["memory_total_bytes"] == 80 * 2**30 and gpu["memory_used_bytes"] > 0
        assert 0 < gpu["utilization_percent"] <= 100 and gpu["temperature_c"] > 0
    assert result["errors"] == 0


RANK_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import torch.distributed as dist
    from nvml_emulator import Emulator
    from hf_eco2ai import CarbonConfig, EnergyMeter
    from hf_eco2ai.session.tracking_session import TrackingSession

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    config = CarbonConfig(output_dir=sys.argv[1], offline=True, country_iso_code="FR")
    meter = EnergyMeter(sources="nvml", rate_hz=500, include_host=False)
    session = TrackingSession(config, meter=meter, store=False)
    session.start()
    for _ in range(80):
        time.sleep(0.01)
        session.mark_step()
    session.stop()
    totals = meter.totals()
    emulator = Emulator()
    owned = [int(i) for i in os.environ["CUDA_VISIBLE_DEVICES"].split(",")]
    truth = sum(emulator.true_joules(gpu, totals["first_reading_s"], totals["t_s"]) for gpu in owned)
    nvml = next(s for s in meter.info()["sources"] if s["name"] == "nvml")
    combined = session.report()
    with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as handle:
        json.dump({"truth": truth, "uuids": [v.split()[-1] for k, v in nvml.items() if k.startswith("gpu:")],
                   "combined": combined["energy"]}, handle)
    dist.destroy_process_group()
""")


def test_two_ranks_owning_two_gpus_each_add_up_to_the_truth(nvml_emulator_dir: Path, tmp_path: Path) -> None:
    # One scenario clock for the whole machine, as one driver has.
    origin_s = 0.0
    config = f"gpus=4;origin_s={origin_s};scenario=square:200,600,0.25;scenario.3=constant:450"
    ranks = run_two_ranks(nvml_emulator_dir, config, RANK_SCRIPT, tmp_path, ("0,1", "2,3"))
    uuids = ranks[0]["uuids"] + ranks[1]["uuids"]
    assert len(set(uuids)) == 4, "no GPU is counted twice"
    combined = ranks[0]["combined"]
    assert sorted(combined["by_channel"]) == ["rank0/gpu:0", "rank0/gpu:1", "rank1/gpu:0", "rank1/gpu:1"]
    combined_joules = sum(channel["joules"] for channel in combined["by_channel"].values())
    truth = ranks[0]["truth"] + ranks[1]["truth"]
    # Each of the 4 counters can lag its truth by one stair at each end.
    assert abs(combined_joules - truth) <= 4 * 2 * STAIR_S * 600.0
    assert abs(combined_joules - truth) / truth < 0.25


def test_slow_nvml_calls_stretch_each_reading_but_lose_no_energy(nvml_emulator_dir: Path) -> None:
    # 4 GPUs read one after another at 2 ms a call (two calls each: counter and instant power):
    # one reading takes ~16 ms, so the last GPU is read ~12 ms after the reading's timestamp.
    result = measure(nvml_emulator_dir, "gpus=4;latency_us=2000;scenario=constant:250", seconds=0.8, rate_hz=200.0)
    assert result["totals"]["missed_ticks"] > 0, "readings overran the 5 ms period"
    for gpu in range(4):
        measured = result["totals"]["joules"][f"gpu:{gpu}"]
        assert abs(measured - result["truth"][str(gpu)]) <= 2 * STAIR_S * 250.0 + 0.05 * 250.0
