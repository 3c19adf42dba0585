"""A run's power and phases as Chrome/Perfetto trace JSON, alone or merged into a torch.profiler trace.

The output is the JSON object form of the Trace Event Format (what ``chrome://tracing``, Perfetto
UI and ``torch.profiler``'s ``export_chrome_trace`` use):

* one **counter track per channel** (``ph: "C"``, named ``power <channel> (W)``, value in watts);
* a **steps** track of complete slices (``ph: "X"``), one per step, the tail after the last mark
  included, with the step's joules (total and per channel) and mean watts as ``args``;
* a **windows** track with one slice per named window (``meter.window("eval")``, the callbacks'
  ``validation``/``evaluate`` windows), with their joules.

Clocks. ``ts`` is in microseconds. hf-eco2ai's sampler times readings on ``CLOCK_MONOTONIC``
(``time.monotonic()``), while ``torch.profiler`` (Kineto) times events on the Unix clock
(``CLOCK_REALTIME``): its traces give ``ts`` in microseconds after ``baseTimeNanoseconds`` (older
versions wrote absolute Unix microseconds and no base). Both callers therefore hand this module
times on the Unix clock, and every trace written here follows Kineto's convention:
``ts = unix_us - baseTimeNanoseconds / 1000``. Merging into a torch trace uses that trace's own
base, so its kernels and these tracks share one time axis. How each caller maps its monotonic
times to Unix time is said where it does it (``unix_minus_monotonic_s``, ``timeline_from_store``).

Pure functions over plain data: no meter, no store, no threads. Nothing here is on the hot path.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.reporting.atomic import write_text_atomically

PathLike = Union[str, "os.PathLike[str]"]
TRACE_PROCESS_NAME = "hf-eco2ai energy"
STEPS_THREAD = 1
WINDOWS_THREAD = 2
POWER_THREAD = 0
_US_PER_S = 1_000_000.0


@dataclass(frozen=True)
class EnergySlice:
    """A step or a window: start and end on the Unix clock (s), joules per channel (no PUE)."""

    name: str
    start_unix_s: float
    end_unix_s: float
    joules_by_channel: Mapping[str, float]
    joules: float
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunTimeline:
    """What a trace shows of one run, every time on the Unix clock in seconds.

    ``power_watts`` has one row per reading in ``power_unix_s`` and one column per channel in
    ``channels`` order. ``clock_note`` says how the times were put on the Unix clock; it goes into
    the trace's ``otherData``.
    """

    label: str
    channels: Sequence[str]
    power_unix_s: Sequence[float]
    power_watts: Sequence[Sequence[float]]
    steps: Sequence[EnergySlice]
    windows: Sequence[EnergySlice]
    clock_note: str


def unix_minus_monotonic_s(reads: int = 5) -> float:
    """Unix time minus ``time.monotonic()`` now, in seconds.

    Of ``reads`` Unix clock reads, each bracketed by two monotonic reads, the one with the
    narrowest bracket is used, so the error is at most half that bracket (well under a
    microsecond). The offset holds for past monotonic times as long as nobody stepped the system
    clock since; NTP's gradual slewing is bounded at 500 ppm (0.5 ms per second between the
    reading and now).
    """
    best: Optional[Tuple[float, float]] = None
    for _ in range(max(1, reads)):
        before = time.monotonic()
        unix = time.time()
        after = time.monotonic()
        if best is None or after - before < best[0]:
            best = (after - before, unix - (before + after) / 2.0)
    assert best is not None
    return best[1]


def _finite(value: float) -> Optional[float]:
    return value if math.isfinite(value) else None


def _rounded_us(unix_s: float, base_us: float) -> float:
    # Microseconds with nanosecond digits: Perfetto keeps them, and the JSON stays short.
    return round(unix_s * _US_PER_S - base_us, 3)


def _slice_event(energy_slice: EnergySlice, tid: int, pid: int, base_us: float) -> Dict[str, Any]:
    duration_s = energy_slice.end_unix_s - energy_slice.start_unix_s
    mean_watts = _finite(energy_slice.joules / duration_s) if duration_s > 0 else None
    args: Dict[str, Any] = {
        "joules": energy_slice.joules,
        "mean_watts": mean_watts,
        "joules_by_channel": {name: _finite(joules) for name, joules in energy_slice.joules_by_channel.items()},
        **energy_slice.args,
    }
    start_us = _rounded_us(energy_slice.start_unix_s, base_us)
    return {
        "ph": "X",
        "name": energy_slice.name,
        "cat": "hf-eco2ai",
        "pid": pid,
        "tid": tid,
        "ts": start_us,
        "dur": max(0.0, round(_rounded_us(energy_slice.end_unix_s, base_us) - start_us, 3)),
        "args": args,
    }


def timeline_events(timeline: RunTimeline, pid: int, base_us: float) -> List[Dict[str, Any]]:
    """The trace events of ``timeline`` under process ``pid``, ``ts`` relative to ``base_us``.

    Metadata first (process and track names), then the counters, then the slices sorted by start
    (longest first on ties, so that enclosing slices precede what they enclose).
    """
    events: List[Dict[str, Any]] = [
        {"ph": "M", "name": "process_name", "pid": pid, "tid": POWER_THREAD, "args": {"name": timeline.label}},
        {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": POWER_THREAD, "args": {"sort_index": -1}},
        {"ph": "M", "name": "thread_name", "pid": pid, "tid": STEPS_THREAD, "args": {"name": "steps"}},
        {"ph": "M", "name": "thread_name", "pid": pid, "tid": WINDOWS_THREAD, "args": {"name": "windows"}},
    ]
    for unix_s, row in zip(timeline.power_unix_s, timeline.power_watts):
        ts = _rounded_us(float(unix_s), base_us)
        for channel, watts in zip(timeline.channels, row):
            value = _finite(float(watts))
            if value is not None:
                events.append(
                    {
                        "ph": "C",
                        "name": f"power {channel} (W)",
                        "pid": pid,
                        "tid": POWER_THREAD,
                        "ts": ts,
                        "args": {"watts": value},
                    }
                )
    slices = [_slice_event(step, STEPS_THREAD, pid, base_us) for step in timeline.steps]
    slices += [_slice_event(window, WINDOWS_THREAD, pid, base_us) for window in timeline.windows]
    slices.sort(key=lambda event: (event["tid"], event["ts"], -event["dur"]))
    return events + slices


def standalone_trace(timeline: RunTimeline) -> Dict[str, Any]:
    """A trace holding only ``timeline``, with Kineto's ``baseTimeNanoseconds`` convention.

    The base is the whole Unix second at or before the run's first event, so ``ts`` stays small.
    """
    starts = [float(t) for t in timeline.power_unix_s[:1]]
    starts += [s.start_unix_s for s in list(timeline.steps[:1]) + list(timeline.windows[:1])]
    base_ns = int(math.floor(min(starts))) * 1_000_000_000 if starts else 0
    return {
        "traceEvents": timeline_events(timeline, pid=1, base_us=base_ns / 1000.0),
        "displayTimeUnit": "ms",
        "baseTimeNanoseconds": base_ns,
        "otherData": {"generator": "hf-eco2ai", "clock": "unix", "clock_alignment": timeline.clock_note},
    }


def _free_pid(events: Iterable[Mapping[str, Any]]) -> int:
    taken = [event.get("pid") for event in events]
    numeric = [pid for pid in taken if isinstance(pid, int) and not isinstance(pid, bool)]
    return max(numeric, default=0) + 1


def merged_trace(torch_trace: Mapping[str, Any], timeline: RunTimeline) -> Dict[str, Any]:
    """``torch_trace`` (a ``torch.profiler`` Chrome trace) with ``timeline``'s tracks added.

    The new tracks use the torch trace's own ``baseTimeNanoseconds`` (0 when absent: absolute
    Unix microseconds) and a process id no event of it uses. The torch trace's events and keys
    are kept as they are.

    Raises:
        ConfigurationError: ``torch_trace`` is not a JSON-object trace with a ``traceEvents`` list.
    """
    events = torch_trace.get("traceEvents") if isinstance(torch_trace, Mapping) else None
    if not isinstance(events, list):
        raise ConfigurationError(
            "the trace to merge into has no traceEvents list: give a torch.profiler trace written by "
            "prof.export_chrome_trace(path) or tensorboard_trace_handler"
        )
    base_ns = torch_trace.get("baseTimeNanoseconds", 0)
    if isinstance(base_ns, bool) or not isinstance(base_ns, (int, float)):
        raise ConfigurationError(f"the trace to merge into has baseTimeNanoseconds={base_ns!r}: it must be a number")
    ours = timeline_events(timeline, pid=_free_pid(events), base_us=base_ns / 1000.0)
    other_data = dict(torch_trace.get("otherData") or {})
    other_data["hf_eco2ai_clock_alignment"] = timeline.clock_note
    return {**torch_trace, "traceEvents": [*events, *ours], "otherData": other_data}


def read_trace(path: PathLike) -> Dict[str, Any]:
    """A Chrome trace JSON file as a dict.

    Raises:
        ConfigurationError: the file is missing or is not a JSON object (names the path and the fix).
    """
    try:
        with open(path, encoding="utf-8") as handle:
            loaded = json.load(handle)
    except OSError as error:
        raise ConfigurationError(f"cannot read the trace {str(path)!r}: {error.strerror or error}") from error
    except ValueError as error:
        raise ConfigurationError(f"{str(path)!r} is not JSON ({error}); give a Chrome trace file") from error
    if not isinstance(loaded, dict):
        raise ConfigurationError(
            f"{str(path)!r} holds a JSON {type(loaded).__name__}, not a trace object; "
            "give the file torch.profiler's export_chrome_trace wrote"
        )
    return loaded


def write_trace(trace: Mapping[str, Any], path: PathLike) -> Path:
    """Writes ``trace`` as strict JSON (no NaN or Infinity), atomically; returns the path."""
    return write_text_atomically(path, json.dumps(trace, allow_nan=False, separators=(",", ":")))
