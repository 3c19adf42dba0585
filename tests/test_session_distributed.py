"""Two CPU processes on gloo: node-wide sensors counted once, combined totals equal the parts."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest
from distributed_ranks import run_ranks

from hf_eco2ai import generate_carbon_report

PYTHON_DIR = Path(__file__).resolve().parents[1] / "python"

RANK_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, sys.argv[1])
    import torch.distributed as dist
    from hf_eco2ai import CarbonConfig, EnergyMeter
    from hf_eco2ai.session.tracking_session import TrackingSession

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    config = CarbonConfig(output_dir=sys.argv[2], offline=True, country_iso_code="FR")
    results = {}
    sessions = {
        # "auto" here is the CPU estimate: a node-wide source, for local rank 0 alone.
        "auto": TrackingSession(config, store=False),
        # The synthetic source stands in for a per-process device such as a rank's own GPU.
        "per_process": TrackingSession(config, store=False, meter=EnergyMeter(
            sources="synthetic", synthetic={"kind": "constant", "watts": 100.0 * (rank + 1)})),
    }
    for name, session in sessions.items():
        session.start()
        for _ in range(30):
            time.sleep(0.005)
            session.mark_step()
        session.stop()
        results[name] = {"local": session.report(combine_ranks=False), "combined": session.report()}
    from hf_eco2ai.integrations.run_lifecycle import RunLifecycle, RunOptions
    import threading
    report_threads = []
    plain_report = TrackingSession.report

    def recording_report(session, combine_ranks=True):
        report_threads.append(threading.current_thread() is threading.main_thread())
        return plain_report(session, combine_ranks)

    TrackingSession.report = recording_report
    lifecycle = RunLifecycle(RunOptions.build(config=config), framework="test", store=False)
    lifecycle.start()
    for _ in range(30):
        time.sleep(0.005)
        lifecycle.mark_step()
    lifecycle.finish_in_background({"global_step_end": 30}, write_outputs=False)
    results["in_background"] = {"combined": lifecycle.carbon_report(), "on_main_thread": report_threads}
    with open(os.path.join(sys.argv[2], f"rank{rank}.json"), "w") as handle:
        json.dump(results, handle)
    dist.destroy_process_group()
""")


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory: pytest.TempPathFactory) -> List[Dict[str, Any]]:
    out = tmp_path_factory.mktemp("ranks")
    return run_ranks(
        RANK_SCRIPT, [str(PYTHON_DIR), str(out)], out, lambda rank, rendezvous: {**os.environ, **rendezvous}
    )


def test_node_wide_sensors_are_read_by_local_rank_0_only(rank_results: List[Dict[str, Any]]) -> None:
    rank0, rank1 = (result["auto"]["local"] for result in rank_results)
    assert [channel["name"] for channel in rank0["channels"]] == ["cpu:estimate"]
    assert rank1["channels"] == [] and rank1["energy"]["it_kwh"] == 0.0
    assert "node-wide-on-local-rank-0" in {warning["code"] for warning in rank1["warnings"]}
    combined = rank_results[1]["auto"]["combined"]
    assert [channel["name"] for channel in combined["channels"]] == ["rank0/cpu:estimate"]
    assert combined["energy"]["it_kwh"] == pytest.approx(rank0["energy"]["it_kwh"], rel=1e-12)


def test_combined_totals_equal_the_sum_of_the_ranks(rank_results: List[Dict[str, Any]]) -> None:
    locals_ = [result["per_process"]["local"] for result in rank_results]
    for result in rank_results:
        combined = result["per_process"]["combined"]
        assert combined["energy"]["it_kwh"] == pytest.approx(sum(r["energy"]["it_kwh"] for r in locals_), rel=1e-12)
        assert combined["total_co2_kg"] == pytest.approx(sum(r["total_co2_kg"] for r in locals_), rel=1e-12)
        assert sorted(combined["energy"]["by_channel"]) == ["rank0/synthetic:0", "rank1/synthetic:0"]
        assert [rank["steps_marked"] for rank in combined["ranks"]] == [30, 30]
        generate_carbon_report(combined, "markdown")
    rank0_watts, rank1_watts = (r["energy"]["by_channel"]["synthetic:0"]["mean_watts"] for r in locals_)
    assert (rank0_watts, rank1_watts) == (pytest.approx(100.0, rel=1e-6), pytest.approx(200.0, rel=1e-6))


def test_a_run_end_left_to_the_background_still_gathers_the_ranks_on_the_training_thread(
    rank_results: List[Dict[str, Any]],
) -> None:
    for result in rank_results:
        run = result["in_background"]
        assert run["on_main_thread"] == [True], "the report over ranks is a collective: the training thread builds it"
        assert len(run["combined"]["ranks"]) == 2
        assert run["combined"]["training"]["global_step_end"] == 30
