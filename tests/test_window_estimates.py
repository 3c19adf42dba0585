"""Energy of windows shorter than the sensor: the estimator against known truth."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
from nvml_emulator import run_emulated, run_two_ranks

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.meter.window_estimates import CounterStairs, estimate_windows, shaped_energy_at

PHASES = (("forward", 0.010, 600.0), ("backward", 0.020, 450.0), ("optimizer", 0.005, 300.0))
IDLE_WATTS = 60.0


def phase_program(repetitions: int, seed: int = 7) -> Tuple[List[Tuple[str, float, float, float]], float]:
    """(name, t0, t1, watts) of every phase, with random idle gaps between repetitions."""
    rng = np.random.default_rng(seed)
    t = 0.05
    spans = []
    for _ in range(repetitions):
        for name, duration, watts in PHASES:
            spans.append((name, t, t + duration, watts))
            t += duration
        t += rng.uniform(0.005, 0.06)
    return spans, t + 0.2


def true_energy(spans: List[Tuple[str, float, float, float]], at: np.ndarray) -> np.ndarray:
    """Cumulative true joules at each time: idle power everywhere, plus each phase's excess."""
    total = IDLE_WATTS * at
    for _, t0, t1, watts in spans:
        total += (watts - IDLE_WATTS) * np.clip(at - t0, 0.0, t1 - t0)
    return total


def stairs_of(spans: List[Tuple[str, float, float, float]], end_s: float, stair_s: float, duty: float) -> CounterStairs:
    edges = np.arange(0.0, end_s, stair_s)
    if duty >= 1.0:
        joules = np.diff(true_energy(spans, edges))
    else:
        observed = true_energy(spans, edges[1:]) - true_energy(spans, edges[1:] - duty * stair_s)
        joules = observed / duty
    return CounterStairs(["gpu:0"], np.zeros(joules.size, np.uint32), edges[:-1], edges[1:], joules)


@pytest.mark.parametrize("duty", [1.0, 0.25])
def test_each_phase_of_a_thousand_repetitions_is_within_five_percent(duty: float) -> None:
    spans, end_s = phase_program(1000)
    stairs = stairs_of(spans, end_s, 0.1, duty)
    names = [s[0] for s in spans]
    estimates = estimate_windows(
        stairs, names, np.array([s[1] for s in spans]), np.array([s[2] for s in spans]), observed_fraction=duty
    )
    assert estimates.stairs_used == len(stairs)
    for name, duration, watts in PHASES:
        estimate = estimates.windows[name]
        assert estimate.repetitions == 1000
        assert estimate.mean_joules == pytest.approx(duration * watts, rel=0.05)
        assert estimate.mean_joules_stderr < 0.05 * duration * watts
    assert estimates.rest_watts == pytest.approx(IDLE_WATTS, rel=0.05)


def test_windows_that_never_move_across_stairs_are_reported_not_guessed() -> None:
    # One repetition per 100 ms stair, always at the same offset: nothing separates the phases.
    starts = np.arange(0.0, 20.0, 0.1)
    stairs = CounterStairs(
        ["gpu:0"], np.zeros(starts.size, np.uint32), starts, starts + 0.1, np.full(starts.size, 20.0)
    )
    names = ["forward"] * starts.size + ["backward"] * starts.size
    t0 = np.concatenate([starts + 0.01, starts + 0.02])
    estimates = estimate_windows(stairs, names, t0, t0 + 0.01)
    assert estimates.stairs_used == 0
    assert any("random gaps" in note for note in estimates.notes)
    assert np.isnan(estimates.windows["forward"].mean_joules)


def test_a_bad_observed_fraction_is_a_configuration_error() -> None:
    stairs = CounterStairs(["gpu:0"], np.zeros(0, np.uint32), np.zeros(0), np.zeros(0), np.zeros(0))
    with pytest.raises(ConfigurationError, match="observed_fraction=0"):
        estimate_windows(stairs, [], np.zeros(0), np.zeros(0), observed_fraction=0.0)


def test_instant_power_shapes_step_energy_inside_a_stair_better_than_a_straight_line() -> None:
    spans, end_s = phase_program(300)
    stairs = stairs_of(spans, end_s, 0.1, 1.0)
    # Instant readings every 10 ms, each the mean power of the 10 ms before it.
    trace_t = np.arange(0.01, end_s, 0.01)
    trace_w = (true_energy(spans, trace_t) - true_energy(spans, trace_t - 0.01)) / 0.01
    steps = np.arange(0.1, end_s - 0.2, 0.03)
    truth = np.diff(true_energy(spans, steps))
    linear = np.diff(
        np.interp(
            steps, np.concatenate(([stairs.t0_s[0]], stairs.t1_s)), np.concatenate(([0.0], np.cumsum(stairs.joules)))
        )
    )
    shaped = np.diff(shaped_energy_at(stairs, 0, trace_t - 0.005, trace_w, steps))
    linear_error = np.median(np.abs(linear - truth) / truth)
    shaped_error = np.median(np.abs(shaped - truth) / truth)
    assert shaped_error < 0.5 * linear_error
    assert shaped.sum() == pytest.approx(linear.sum(), rel=0.01)


def test_the_meter_estimates_phases_on_an_emulated_gpu(nvml_emulator_dir: Path) -> None:
    code = """
        import json, random, time
        from nvml_emulator import Emulator
        from hf_eco2ai import EnergyMeter

        meter = EnergyMeter(sources="nvml", rate_hz=1000)
        emulator = Emulator()
        phases = [("forward", 0.010, 600.0), ("backward", 0.020, 450.0), ("optimizer", 0.005, 300.0)]
        truth = {name: [] for name, _, _ in phases}
        random.seed(3)
        meter.start()
        for _ in range(200):
            for name, duration, watts in phases:
                emulator.set_watts(0, watts)
                with meter.window(name):
                    t0 = time.monotonic()
                    time.sleep(duration)
                    t1 = time.monotonic()
                truth[name].append(emulator.true_joules(0, t0, t1))
            emulator.set_watts(0, 60.0)
            time.sleep(random.uniform(0.005, 0.04))
            meter.mark_step()
        meter.stop()
        estimates = meter.estimate_windows()
        print(json.dumps({"estimates": estimates.as_dict(),
                          "truth": {name: sum(v) / len(v) for name, v in truth.items()}}))
    """
    result = run_emulated(nvml_emulator_dir, "gpus=1;stair_ms=100;scenario=constant:60", code)
    windows = result["estimates"]["windows"]
    assert result["estimates"]["stairs_used"] > 50
    for name, truth in result["truth"].items():
        assert windows[name]["repetitions"] == 200
        # 200 repetitions on a loaded host: a looser bound than the benchmark's 1,000, widened to
        # four of the estimator's own standard errors where those are larger (the 5 ms phase).
        tolerance = max(0.15 * truth, 4 * windows[name]["mean_joules_stderr"])
        assert abs(windows[name]["mean_joules"] - truth) <= tolerance, (name, windows[name], truth)


def test_stair_boundaries_read_late_are_fitted_back_to_the_counter_grid() -> None:
    spans, end_s = phase_program(600)
    exact = stairs_of(spans, end_s, 0.1, 1.0)
    # Each boundary seen up to 1 ms off, at random, as reads every 2 ms place it.
    error = np.random.default_rng(2).uniform(-0.001, 0.001, size=exact.t1_s.size + 1)
    read = CounterStairs(exact.channels, exact.channel, exact.t0_s + error[:-1], exact.t1_s + error[1:], exact.joules)
    names = [s[0] for s in spans]
    t0, t1 = np.array([s[1] for s in spans]), np.array([s[2] for s in spans])
    estimates = estimate_windows(read, names, t0, t1)
    assert estimates.stair_timing == {"gpu:0": "fitted grid"}
    assert estimates.as_dict()["stair_timing"] == {"gpu:0": "fitted grid"}
    optimizer = estimates.windows["optimizer"]
    assert optimizer.mean_joules == pytest.approx(0.005 * 300.0, rel=0.01)
    assert optimizer.mean_joules_stderr < 0.01 * 0.005 * 300.0


def test_irregular_stairs_keep_their_boundaries_as_read() -> None:
    spans, end_s = phase_program(600)
    # A counter that updates at random intervals (40-160 ms): no grid fits it.
    rng = np.random.default_rng(4)
    edges = np.concatenate(([0.0], np.cumsum(rng.uniform(0.04, 0.16, size=int(end_s / 0.1)))))
    edges = edges[edges < end_s]
    joules = np.diff(true_energy(spans, edges))
    stairs = CounterStairs(["gpu:0"], np.zeros(joules.size, np.uint32), edges[:-1], edges[1:], joules)
    names = [s[0] for s in spans]
    estimates = estimate_windows(stairs, names, np.array([s[1] for s in spans]), np.array([s[2] for s in spans]))
    assert estimates.stair_timing == {"gpu:0": "as read"}
    for name, duration, watts in PHASES:
        assert estimates.windows[name].mean_joules == pytest.approx(duration * watts, rel=0.01)


def _rank_report(rank: int, windows: Dict[str, Dict[str, float]]) -> Dict[str, Any]:
    section = {
        "method": "least squares over counter stairs",
        "channels": ["gpu:0"],
        "stairs_used": 100,
        "observed_fraction": 1.0,
        "rest_watts": 60.0,
        "windows": {
            name: {
                "repetitions": 10,
                "mean_duration_s": 0.01,
                "mean_watts": None if joules is None else joules / 0.01,
                "mean_watts_stderr": 1.0,
                "mean_joules": joules,
                "mean_joules_stderr": stderr,
            }
            for name, (joules, stderr) in windows.items()
        },
        "stair_timing": {"gpu:0": "fitted grid"},
        "notes": [],
    }
    return {"run": {"rank": rank}, "window_estimates": section, "counter_resets": rank}


def test_combined_window_estimates_sum_the_ranks_and_keep_each_ranks_share() -> None:
    from hf_eco2ai.session.report_builder import _combine_window_estimates

    reports = [
        _rank_report(1, {"forward": (4.0, 0.4), "backward": (None, None)}),
        _rank_report(0, {"forward": (6.0, 0.3), "backward": (9.0, 0.1)}),
    ]
    combined = _combine_window_estimates(reports)
    assert combined is not None
    forward = combined["windows"]["forward"]
    assert forward["mean_joules"] == pytest.approx(10.0)
    assert forward["mean_joules_stderr"] == pytest.approx(0.5)
    assert forward["repetitions"] == 20 and forward["ranks"] == 2
    assert forward["mean_joules_by_rank"] == {"0": 6.0, "1": 4.0}
    # A rank without an estimate makes the job's figure unknown, not too small.
    assert np.isnan(combined["windows"]["backward"]["mean_joules"])
    assert combined["channels"] == ["rank0/gpu:0", "rank1/gpu:0"]
    assert combined["ranks"] == [0, 1] and combined["stairs_used"] == 200
    assert _combine_window_estimates([{"run": {"rank": 0}, "window_estimates": None}]) is None


RANK_PHASES_SCRIPT = textwrap.dedent("""
    import json, os, random, sys, time
    import torch.distributed as dist
    from nvml_emulator import Emulator
    from hf_eco2ai import CarbonConfig, EnergyMeter
    from hf_eco2ai import generate_carbon_report
    from hf_eco2ai.reporting.schema import validate
    from hf_eco2ai.session.tracking_session import TrackingSession

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    config = CarbonConfig(output_dir=sys.argv[1], offline=True, country_iso_code="FR")
    meter = EnergyMeter(sources="nvml", rate_hz=1000, include_host=False)
    session = TrackingSession(config, meter=meter, store=False)
    emulator = Emulator()
    gpu = int(os.environ["CUDA_VISIBLE_DEVICES"])
    # The ranks' GPUs draw different power in the same phase, as unbalanced shards do.
    phases = [("forward", 0.010, 600.0 - 200.0 * rank), ("backward", 0.020, 450.0)]
    truth = {name: [] for name, _, _ in phases}
    random.seed(rank)
    session.start()
    for _ in range(150):
        for name, duration, watts in phases:
            emulator.set_watts(gpu, watts)
            with session.window(name):
                t0 = time.monotonic()
                time.sleep(duration)
                t1 = time.monotonic()
            truth[name].append(emulator.true_joules(gpu, t0, t1))
        emulator.set_watts(gpu, 60.0)
        time.sleep(random.uniform(0.005, 0.04))
        session.mark_step()
    session.stop()
    local = session.report(combine_ranks=False)["window_estimates"]
    combined = session.report()
    validate(combined)
    markdown = generate_carbon_report(combined, "markdown")
    with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as handle:
        json.dump({"truth": {name: sum(v) / len(v) for name, v in truth.items()}, "local": local,
                   "combined": combined["window_estimates"], "markdown": markdown}, handle)
    dist.destroy_process_group()
""")


def test_two_ranks_window_estimates_combine_to_the_sum_of_their_truths(nvml_emulator_dir: Path, tmp_path: Path) -> None:
    config = "gpus=2;origin_s=0.0;stair_ms=100;scenario=constant:60"
    ranks = run_two_ranks(nvml_emulator_dir, config, RANK_PHASES_SCRIPT, tmp_path, ("0", "1"))
    combined = ranks[0]["combined"]
    assert combined == ranks[1]["combined"], "every rank gets the same job-wide estimate"
    assert combined["channels"] == ["rank0/gpu:0", "rank1/gpu:0"] and combined["ranks"] == [0, 1]
    assert combined["stairs_used"] == sum(rank["local"]["stairs_used"] for rank in ranks)
    for name in ("forward", "backward"):
        window = combined["windows"][name]
        per_rank = [rank["local"]["windows"][name]["mean_joules"] for rank in ranks]
        assert window["mean_joules_by_rank"] == {"0": per_rank[0], "1": per_rank[1]}
        assert window["mean_joules"] == pytest.approx(sum(per_rank), rel=1e-12)
        assert window["repetitions"] == 300 and window["ranks"] == 2
        truth = sum(rank["truth"][name] for rank in ranks)
        # 150 repetitions per rank on a loaded host: a looser bound than the benchmark's 1,000.
        tolerance = max(0.10 * truth, 4 * window["mean_joules_stderr"])
        assert abs(window["mean_joules"] - truth) <= tolerance, (name, window, truth)
    # Rank 0's forward phase draws 600 W, rank 1's 400 W: the spread shows it.
    by_rank = combined["windows"]["forward"]["mean_joules_by_rank"]
    assert by_rank["0"] > by_rank["1"]
    assert "summed over ranks 0, 1" in ranks[0]["markdown"]
