"""Where a trace's timeline comes from: a live meter's drained records, or a stored run.

Both put times on the Unix clock for ``chrome_trace`` (see its docstring for why):

* a meter's records are on ``CLOCK_MONOTONIC``; they are shifted by Unix minus monotonic time read
  at export (``unix_minus_monotonic_s``), exact unless the system clock was stepped in between;
* a stored run's times are seconds after the run's first reading, whose Unix time the store keeps
  as the run's ``started_unix_s``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hf_eco2ai.meter.flags import FLAG_TAIL, STEP_FLAG_NAMES
from hf_eco2ai.reporting.chrome_trace import (
    EnergySlice,
    PathLike,
    RunTimeline,
    merged_trace,
    read_trace,
    standalone_trace,
    unix_minus_monotonic_s,
)
from hf_eco2ai.reporting.chrome_trace import write_trace as _write_trace
from hf_eco2ai.session.run_records import POWER_BIN_S

TAIL_SLICE_NAME = "tail (last mark to stop)"


def _flag_names(flags: int) -> List[str]:
    return [name for bit, name in STEP_FLAG_NAMES if flags & bit]


def _top_level_sum(joules_by_channel: Dict[str, float], top_level: Sequence[str]) -> float:
    return float(sum(joules_by_channel[name] for name in top_level))


def _step_slice(
    index: int,
    flags: int,
    start_unix_s: float,
    end_unix_s: float,
    joules_by_channel: Dict[str, float],
    joules: float,
    epoch: Optional[int] = None,
) -> EnergySlice:
    args: Dict[str, Any] = {"step": index, "flags": _flag_names(flags)}
    if epoch is not None:
        args["epoch"] = epoch
    name = TAIL_SLICE_NAME if flags & FLAG_TAIL else f"step {index}"
    return EnergySlice(name, start_unix_s, end_unix_s, joules_by_channel, joules, args)


def timeline_from_meter_records(meter: Any, steps: Any, windows: Any, power: Any) -> RunTimeline:
    """A timeline of an ``EnergyMeter``'s ``StepRecords``, ``WindowRecords`` and ``PowerTrace``."""
    offset_s = unix_minus_monotonic_s()
    channels = list(steps.channels)
    top_level = [channel.name for channel in meter.channels() if channel.parent is None]
    step_slices = []
    for row in range(len(steps)):
        by_channel = dict(zip(channels, steps.joules[row].tolist()))
        step_slices.append(
            _step_slice(
                int(steps.index[row]),
                int(steps.flags[row]),
                float(steps.t0_s[row]) + offset_s,
                float(steps.t1_s[row]) + offset_s,
                by_channel,
                _top_level_sum(by_channel, top_level),
            )
        )
    window_slices = []
    for row in range(len(windows)):
        by_channel = dict(zip(channels, windows.joules[row].tolist()))
        window_slices.append(
            EnergySlice(
                windows.name[row],
                float(windows.t0_s[row]) + offset_s,
                float(windows.t1_s[row]) + offset_s,
                by_channel,
                _top_level_sum(by_channel, top_level),
                {"depth": int(windows.depth[row]), "flags": _flag_names(int(windows.flags[row]))},
            )
        )
    return RunTimeline(
        label="hf-eco2ai energy (EnergyMeter)",
        channels=channels,
        power_unix_s=(power.t_s + offset_s).tolist(),
        power_watts=power.watts.tolist(),
        steps=step_slices,
        windows=window_slices,
        clock_note="sampler CLOCK_MONOTONIC shifted to the Unix clock by the offset read at export",
    )


def timeline_from_store(store: Any, run_id_or_prefix: str) -> RunTimeline:
    """A timeline of a stored run: its step rows, window rows and power rows.

    Power rows are the means of 0.2 s bins; each becomes a counter value at its bin's start.
    Raises KeyError when no run (or more than one) matches ``run_id_or_prefix``.
    """
    summary = store.get_run(run_id_or_prefix)
    origin_unix_s = float(summary.started_unix_s)
    channels = [channel["name"] for channel in summary.channels]
    steps = store.steps(summary.run_id)
    step_slices = []
    for row in range(len(steps)):
        by_channel = dict(zip(channels, steps.joules_by_channel[row].tolist()))
        epoch = steps.epoch[row]
        step_slices.append(
            _step_slice(
                int(steps.index[row]),
                int(steps.flags[row]),
                origin_unix_s + float(steps.t0_s[row]),
                origin_unix_s + float(steps.t1_s[row]),
                by_channel,
                float(steps.joules[row]),
                epoch if epoch is not None and epoch >= 0 else None,
            )
        )
    window_slices = [
        EnergySlice(
            window["name"],
            origin_unix_s + window["t0_s"],
            origin_unix_s + window["t1_s"],
            window["joules_by_channel"],
            float(window["joules"]),
            {"flags": _flag_names(window["flags"])},
        )
        for window in store.windows(summary.run_id)
    ]
    times_s, watts_by_channel = store.power_trace(summary.run_id)
    rows = list(zip(*(watts_by_channel[name] for name in channels))) if channels else []
    return RunTimeline(
        label=f"hf-eco2ai energy (run {summary.run_id})",
        channels=channels,
        power_unix_s=[origin_unix_s + t_s - POWER_BIN_S / 2.0 for t_s in times_s],
        power_watts=rows,
        steps=step_slices,
        windows=window_slices,
        clock_note="stored times after the run's first reading, dated by the run's started_unix_s",
    )


def write_timeline_trace(timeline: RunTimeline, path: PathLike, merge_into: Optional[PathLike] = None) -> Path:
    """Writes ``timeline`` as a trace at ``path``, alone or added to the torch trace ``merge_into``.

    Raises ConfigurationError when ``merge_into`` cannot be read as a Chrome trace, OSError when
    ``path`` cannot be written.
    """
    trace = standalone_trace(timeline) if merge_into is None else merged_trace(read_trace(merge_into), timeline)
    return _write_trace(trace, path)
