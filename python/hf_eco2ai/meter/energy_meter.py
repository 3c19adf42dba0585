"""EnergyMeter: the Python face of the Rust sampler.

The meter chooses sources (``"auto"``), opens them, and turns the core's raw columns into numpy
arrays. It computes no carbon: that is the carbon layer's job.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from contextlib import ContextDecorator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    cast,
)

from hf_eco2ai import _core
from hf_eco2ai.errors import ConfigurationError, SensorUnavailableError
from hf_eco2ai.logs import warn
from hf_eco2ai.meter.channels import CPU_SCOPES, ChannelInfo
from hf_eco2ai.meter.flags import (
    FLAG_TAIL,
    FLAG_WINDOW_NESTING,
    FLAG_WINDOW_UNCLOSED,
    NODE_WIDE_SOURCES,
    SOURCE_NAMES,
)

if TYPE_CHECKING:
    import numpy as np

    from hf_eco2ai.meter.window_estimates import CounterStairs, WindowEstimates

KNOWN_SOURCES = ("auto",) + SOURCE_NAMES
DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
DEFAULT_PROC_STAT = "/proc/stat"
DEFAULT_PROC_ROOT = "/proc"
# CodeCarbon's fallback for a CPU missing from every table: a documented assumption, flagged.
FALLBACK_WATTS_PER_LOGICAL_CPU = 4.0


_RECORD_KIND_STEP = 0
# Stairs and windows kept for the window estimator: enough for hours at 100 ms stairs and
# thousands of windows per minute, bounded so a long run cannot grow without limit.
MAX_RETAINED_ROWS = 1_000_000
# Drains pull a full ring in chunks, each processed before the next is pulled, so that no array of
# a drain is large: glibc's malloc serves a block over its mmap threshold (128 KiB at first) with
# mmap, and freeing one raises the threshold to that size for good, after which such blocks come
# from the heap and its high-water mark stays resident. The widest array a chunk makes downstream
# is a row of every channel plus three columns (the step series' key, joules and duration).
DRAIN_CHUNK_BYTES = 64 * 1024
MAX_ROWS_PER_PULL = 1024


def rows_per_pull(n_channels: int) -> int:
    """Rows per pull from the core for a meter of ``n_channels``: at most ``MAX_ROWS_PER_PULL``,
    and few enough that a float64 array of ``n_channels + 3`` columns fits ``DRAIN_CHUNK_BYTES``
    (234 rows at the most channels a meter has)."""
    return max(1, min(MAX_ROWS_PER_PULL, DRAIN_CHUNK_BYTES // (8 * (n_channels + 3))))


@dataclass(frozen=True)
class StepRecords:
    """Resolved steps, one row each, in order. ``joules`` has one column per channel.

    Times are seconds on the monotonic clock (``time.monotonic()``). The last record of a run is
    the *tail* (flag 16, see ``is_tail``): the time from the last mark to ``stop()``, no training
    step, but part of the run's energy, so that all records add up to the total.
    """

    channels: List[str]
    index: np.ndarray
    t0_s: np.ndarray
    t1_s: np.ndarray
    joules: np.ndarray
    flags: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def duration_s(self) -> np.ndarray:
        return self.t1_s - self.t0_s

    @property
    def mean_watts(self) -> np.ndarray:
        np = _numpy()
        duration = self.duration_s[:, None]
        return np.divide(self.joules, duration, out=np.full_like(self.joules, np.nan), where=duration > 0)

    @property
    def is_tail(self) -> np.ndarray:
        return (self.flags & FLAG_TAIL) != 0

    def training_steps(self) -> "StepRecords":
        """The records without the tail."""
        keep = ~self.is_tail
        return StepRecords(
            self.channels, self.index[keep], self.t0_s[keep], self.t1_s[keep], self.joules[keep], self.flags[keep]
        )


@dataclass(frozen=True)
class WindowRecords:
    """Closed named windows, in the order they closed (inner before outer)."""

    channels: List[str]
    name: List[str]
    depth: np.ndarray
    t0_s: np.ndarray
    t1_s: np.ndarray
    joules: np.ndarray
    flags: np.ndarray

    def __len__(self) -> int:
        return len(self.name)

    @property
    def duration_s(self) -> np.ndarray:
        return self.t1_s - self.t0_s


@dataclass(frozen=True)
class PowerTrace:
    """Power readings: ``t_s`` (monotonic seconds) and ``watts`` (rows x channels)."""

    channels: List[str]
    t_s: np.ndarray
    watts: np.ndarray


def _numpy() -> Any:
    """numpy, imported on first use: it is most of this module's import time, and
    `hf-eco2ai profile` or a meter that is never drained does not need it."""
    import numpy

    return numpy


def _column(raw: Mapping[str, Any], key: str, dtype: str) -> np.ndarray:
    np = _numpy()
    return np.frombuffer(raw[key], dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype, copy=False)


def _normalise_sources(sources: Union[str, Sequence[str]]) -> List[str]:
    names = [sources] if isinstance(sources, str) else list(sources)
    if not names:
        raise ConfigurationError(f"sources={sources!r} is empty: give 'auto' or some of {KNOWN_SOURCES}")
    for name in names:
        if name not in KNOWN_SOURCES:
            raise ConfigurationError(
                f"sources={sources!r}: unknown source {name!r}; allowed: {', '.join(KNOWN_SOURCES)}"
            )
    if "auto" in names and len(names) > 1:
        raise ConfigurationError(f"sources={sources!r}: 'auto' cannot be combined with other sources")
    return names


def _synthetic_traces(spec: Union[Mapping[str, Any], Sequence[Mapping[str, Any]], None]) -> List[tuple]:
    if spec is None:
        return [("constant", [100.0])]
    specs = [spec] if isinstance(spec, Mapping) else list(spec)
    parameter_names = {
        "constant": ("watts",),
        "square": ("low_watts", "high_watts", "period_s"),
        "ramp": ("start_watts", "watts_per_s"),
    }
    traces = []
    for item in specs:
        kind = item.get("kind")
        if kind == "piecewise":
            points = item.get("points")
            if not points:
                raise ConfigurationError(f"synthetic={item!r}: a piecewise trace needs points=[(t_s, watts), ...]")
            traces.append(("piecewise", [float(v) for point in points for v in point]))
        elif kind in parameter_names:
            missing = [p for p in parameter_names[kind] if p not in item]
            if missing:
                raise ConfigurationError(f"synthetic={item!r}: kind {kind!r} needs {', '.join(missing)}")
            traces.append((kind, [float(item[p]) for p in parameter_names[kind]]))
        else:
            raise ConfigurationError(f"synthetic={item!r}: kind must be one of constant, square, ramp, piecewise")
    return traces


def _cpu_tdp(cpu_tdp_watts: Optional[float]) -> tuple:
    """The TDP for the CPU estimate and a sentence saying where it came from."""
    if cpu_tdp_watts is not None:
        if not (isinstance(cpu_tdp_watts, (int, float)) and cpu_tdp_watts > 0):
            raise ConfigurationError(
                f"cpu_tdp_watts={cpu_tdp_watts!r} is not allowed: give the CPU's TDP in watts, > 0"
            )
        return float(cpu_tdp_watts), "set by cpu_tdp_watts"
    return _tabled_cpu_tdp()


@lru_cache(maxsize=1)
def _tabled_cpu_tdp() -> Tuple[float, str]:
    """The TDP from the packaged table (or the fallback), looked up once per process: the CPU
    does not change under it, and matching its name costs milliseconds at every run's start."""
    from hf_eco2ai.meter.cpu_tdp import count_cpu_packages, lookup_cpu_tdp, read_cpu_model_name

    model = read_cpu_model_name()
    packages = count_cpu_packages()
    match = lookup_cpu_tdp(model) if model else None
    if match is not None:
        return (
            match.watts * packages,
            f"{match.matched_model} ({match.watts:g} W x {packages} package(s), {match.source})",
        )
    logical_cpus = os.cpu_count() or 1
    watts = FALLBACK_WATTS_PER_LOGICAL_CPU * logical_cpus
    return watts, (
        f"CPU model {model!r} is not in the TDP table: assumed {FALLBACK_WATTS_PER_LOGICAL_CPU:g} W per logical CPU "
        f"x {logical_cpus}; set cpu_tdp_watts for a better estimate"
    )


class _Window(ContextDecorator):
    """A named span; a context manager and a decorator. Windows nest."""

    def __init__(self, core: Any, name_id: int) -> None:
        self._core = core
        self._name_id = name_id

    def __enter__(self) -> "_Window":
        self._core.open_window(self._name_id)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._core.close_window(self._name_id)


_live_meters: "weakref.WeakSet[EnergyMeter]" = weakref.WeakSet()


@atexit.register
def _stop_live_meters() -> None:
    for meter in list(_live_meters):
        meter.stop()


class EnergyMeter:
    """Samples energy sensors on a background thread and splits energy at step boundaries.

    Args:
        sources: ``"auto"`` (NVML for this process's GPUs, then RAPL, else the CPU estimate),
            one of ``"nvml"``, ``"rapl"``, ``"cpu-estimate"``, ``"synthetic"``, or a list.
            A source named explicitly must work, or ``SensorUnavailableError`` says why.
        rate_hz: sampler rate, 0 < rate_hz <= 20,000.
        devices: GPUs to measure, as positions among the visible ones or UUID prefixes;
            None = every GPU that ``CUDA_VISIBLE_DEVICES`` lets this process see.
        rapl_root: the powercap tree (default ``/sys/class/powercap``).
        ring_capacity: records and power readings buffered between drains.
        boundary_capacity: boundaries buffered between sampler ticks.
        cpu_tdp_watts: TDP for the CPU estimate; default from the packaged table.
        synthetic: trace spec(s) for the synthetic source (see docs/api.md).
        synthetic_fail_after_s: the synthetic source fails every read after this many seconds,
            to rehearse a sensor dying mid-run.
        include_host: with ``"auto"``, also measure node-wide sensors (RAPL or the CPU
            estimate). Distributed runs set it on local rank 0 only.
        proc_stat_path: where the CPU estimate reads utilisation.
        cpu_scope: ``"machine"`` (default): RAPL and the CPU estimate report the whole node.
            ``"process"``: they report this process tree's share of it, the CPU time of this
            process and its children (``/proc/<pid>/stat``, reaped children included) over the
            machine's CPU time (``/proc/stat``) since the previous reading, times the node's
            energy. The share is taken at most every 100 ms on the sampler thread.
        cpu_scope_children_only: with ``cpu_scope="process"``, count only the children of this
            process, not its own CPU time (``hf-eco2ai profile`` charges the command it runs).
        proc_root: where the process share reads ``stat`` and ``<pid>/stat`` (default ``/proc``).

    ``mark_step()`` is the hot path: one clock read and one lock-free push, from any thread.

    Raises:
        ConfigurationError: a bad argument, named with its value.
        SensorUnavailableError: an explicitly requested source cannot run here.
    """

    mark_step: Callable[[], bool]

    def __init__(
        self,
        sources: Union[str, Sequence[str]] = "auto",
        rate_hz: float = 100.0,
        devices: Optional[Sequence[Union[int, str]]] = None,
        rapl_root: Union[str, Path, None] = None,
        ring_capacity: int = 8192,
        boundary_capacity: int = 65536,
        cpu_tdp_watts: Optional[float] = None,
        synthetic: Union[Mapping[str, Any], Sequence[Mapping[str, Any]], None] = None,
        synthetic_fail_after_s: Optional[float] = None,
        include_host: bool = True,
        proc_stat_path: Union[str, Path] = DEFAULT_PROC_STAT,
        cpu_scope: str = "machine",
        cpu_scope_children_only: bool = False,
        proc_root: Union[str, Path] = DEFAULT_PROC_ROOT,
    ) -> None:
        names = _normalise_sources(sources)
        if cpu_scope not in CPU_SCOPES:
            raise ConfigurationError(
                f"cpu_scope={cpu_scope!r} is not allowed: give 'machine' (the whole node's CPU) or "
                "'process' (this process tree's share of it)"
            )
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, (int, float)) or not 0 < rate_hz <= _core.MAX_RATE_HZ:
            raise ConfigurationError(
                f"rate_hz={rate_hz!r} is not allowed: it must be a number > 0 and <= {_core.MAX_RATE_HZ:g}"
            )
        for field, value in (("ring_capacity", ring_capacity), ("boundary_capacity", boundary_capacity)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ConfigurationError(f"{field}={value!r} is not allowed: it must be an integer >= 2")
        if rapl_root is not None and not Path(rapl_root).is_dir():
            raise ConfigurationError(
                f"rapl_root={str(rapl_root)!r} does not exist or is not a directory: point it at a powercap tree"
            )
        self._rapl_root = str(rapl_root) if rapl_root is not None else DEFAULT_POWERCAP_ROOT
        self._devices = None if devices is None else [str(d) for d in devices]
        self._cpu_tdp_watts = cpu_tdp_watts
        self._synthetic = synthetic
        self._synthetic_fail_after_s = synthetic_fail_after_s
        self._proc_stat_path = str(proc_stat_path)
        self._cpu_scope = cpu_scope
        self._cpu_scope_children_only = bool(cpu_scope_children_only)
        self._proc_root = str(proc_root)
        self.skipped_sources: Dict[str, str] = {}

        handles = self._open_auto(include_host) if names == ["auto"] else [self._open(name) for name in names]
        self._core = _core.Meter(handles, float(rate_hz), ring_capacity, boundary_capacity)
        self._note_unmeasurable_gpus()
        # A plain C function over the core's mark: no method trampoline on the per-step path.
        self.mark_step = self._core.mark_function()
        scoped_sources = {source for source, facts in self._core.source_facts() if ("scope", "process") in facts}
        self._channels = [
            ChannelInfo(name, kind, provenance, source, parent, "process" if source in scoped_sources else "machine")
            for name, kind, provenance, source, parent in cast(List[Tuple[Any, ...]], self._core.channels())
        ]
        self._channel_names = [c.name for c in self._channels]
        self._rows_per_pull = rows_per_pull(len(self._channel_names))
        self._window_ids: Dict[str, int] = {}
        self._window_names: Dict[int, str] = {}
        self._drain_lock = threading.Lock()
        self._pending_steps: List[Dict[str, np.ndarray]] = []
        self._pending_windows: List[Dict[str, Any]] = []
        self._retained_stairs: List[Dict[str, np.ndarray]] = []
        self._retained_windows: List[Dict[str, np.ndarray]] = []
        _live_meters.add(self)

    def _open(self, name: str) -> Any:
        handle = self._open_unscoped(name)
        if self._cpu_scope == "process" and name in NODE_WIDE_SOURCES:
            return _core.process_share_source(handle, os.getpid(), self._cpu_scope_children_only, self._proc_root)
        return handle

    def _open_unscoped(self, name: str) -> Any:
        if name == "nvml":
            return _core.nvml_source(os.environ.get("CUDA_VISIBLE_DEVICES"), self._devices)
        if name == "rapl":
            return _core.rapl_source(self._rapl_root)
        if name == "cpu-estimate":
            tdp_watts, origin = _cpu_tdp(self._cpu_tdp_watts)
            return _core.cpu_estimate_source(tdp_watts, origin, self._proc_stat_path)
        return _core.synthetic_source(_synthetic_traces(self._synthetic), self._synthetic_fail_after_s)

    def _open_auto(self, include_host: bool) -> List[Any]:
        handles: List[Any] = []
        candidates = ["nvml"] + (["rapl", "cpu-estimate"] if include_host else [])
        for name in candidates:
            if name == "cpu-estimate" and any(h.name == "rapl" for h in handles):
                self.skipped_sources[name] = "RAPL measures the CPU, no estimate needed"
                continue
            try:
                handles.append(self._open(name))
            except SensorUnavailableError as unavailable:
                self.skipped_sources[name] = str(unavailable)
        if not handles:
            reasons = "; ".join(f"{n}: {r}" for n, r in self.skipped_sources.items())
            raise SensorUnavailableError(f"sources='auto' found nothing to measure ({reasons})")
        return handles

    def _note_unmeasurable_gpus(self) -> None:
        """GPUs the NVML source left out (MIG) while measuring the others: one warning each,
        and an entry in ``skipped_sources`` naming the GPU and the fix."""
        for source, facts in self._core.source_facts():
            for key, reason in facts:
                if key.startswith("skipped "):
                    label = f"{source}:{key[len('skipped ') :]}"
                    self.skipped_sources[label] = reason
                    warn(f"{label} is not measured: {reason}", stacklevel=3)

    @property
    def cpu_scope(self) -> str:
        """``machine`` or ``process``: what RAPL and the CPU estimate channels cover."""
        return self._cpu_scope

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EnergyMeter(channels={self._channel_names}, rate_hz={self._core.rate_hz:g}, {state})"

    # Lifecycle --------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """False before start(), after stop(), and in a fork()ed child."""
        return bool(self._core.running)

    def start(self) -> "EnergyMeter":
        """Starts sampling; returns after the first reading. Opens step 0. Idempotent."""
        self._core.start()
        return self

    def stop(self) -> None:
        """Stops after a final reading; closes the open step as the tail record. Idempotent."""
        self._core.stop()

    def __enter__(self) -> "EnergyMeter":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def window(self, name: str) -> _Window:
        """A named span, as ``with meter.window("eval"):`` or ``@meter.window("eval")``."""
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"window name={name!r} is not allowed: give a non-empty string")
        name_id = self._window_ids.get(name)
        if name_id is None:
            name_id = len(self._window_ids) + 1
            self._window_ids[name] = name_id
            self._window_names[name_id] = name
        return _Window(self._core, name_id)

    # Reading ----------------------------------------------------------------------------

    def channels(self) -> List[ChannelInfo]:
        return list(self._channels)

    def totals(self) -> Dict[str, Any]:
        """The live snapshot, without draining: joules and watts per channel, counters.

        Joules are cumulative since the first ``start()``, up to the newest reading (``t_s``).
        """
        return dict(self._core.totals())

    def log_point(self) -> Tuple[Optional[float], int, float, List[float]]:
        """What a training loop's log needs, without building ``totals()``: the newest reading's
        ``t_s`` (None before the first), the steps marked, the joules of the top-level channels
        (those without a parent, so nothing is counted twice), and each channel's latest watts,
        in the order of ``channels()``."""
        return self._core.log_point()

    def _pull(self) -> None:
        """Moves the resolved records from the core to the pending lists, a chunk at a time (at
        most ``ring_capacity`` of them: records resolved meanwhile wait for the next drain)."""
        self._pull_stairs()
        for raw, count in self._bounded_pulls(self._core.drain_records):
            self._take_records(raw, count)

    def _bounded_pulls(self, drain: Callable[[int], Dict[str, Any]]) -> Iterator[Tuple[Dict[str, Any], int]]:
        """``drain``'s pulls of at most ``rows_per_pull`` rows each (columns, row count), until one
        comes back short or ``ring_capacity`` rows were pulled in all."""
        pulled = 0
        while pulled < self._core.ring_capacity:
            raw = drain(self._rows_per_pull)
            count = int(cast(int, raw["count"]))
            if count == 0:
                return
            yield raw, count
            pulled += count
            if count < self._rows_per_pull:
                return

    def _pull_chunk(self) -> int:
        """Moves at most ``rows_per_pull`` records from the core to the pending lists (one entry
        each for steps and windows); returns how many."""
        raw = self._core.drain_records(self._rows_per_pull)
        count = int(cast(int, raw["count"]))
        if count:
            self._take_records(raw, count)
        return count

    def _take_records(self, raw: Dict[str, Any], count: int) -> None:
        """One pull of ``count`` records into the pending lists (one entry each for steps and
        windows), and the sound windows into those the estimator keeps."""
        np = _numpy()
        n_channels = len(self._channel_names)
        kind = _column(raw, "kind", "uint8")
        columns = {
            "index": _column(raw, "index", "uint64").astype(np.int64),
            "name_id": _column(raw, "name_id", "uint32"),
            "flags": _column(raw, "flags", "uint32"),
            "t0_s": _column(raw, "t0_s", "float64"),
            "t1_s": _column(raw, "t1_s", "float64"),
            "joules": _column(raw, "joules", "float64").reshape(count, n_channels),
        }
        steps = kind == _RECORD_KIND_STEP
        self._pending_steps.append({k: v[steps] for k, v in columns.items()})
        self._pending_windows.append({k: v[~steps] for k, v in columns.items()})
        # Only windows whose span is certain feed the estimator.
        sound = ~steps & ((columns["flags"] & (FLAG_WINDOW_UNCLOSED | FLAG_WINDOW_NESTING)) == 0)
        if np.any(sound):
            self._retain(self._retained_windows, {k: columns[k][sound] for k in ("name_id", "t0_s", "t1_s")})

    @staticmethod
    def _retain(chunks: List[Dict[str, np.ndarray]], chunk: Dict[str, np.ndarray]) -> None:
        chunks.append(chunk)
        rows = sum(len(c["t0_s"]) for c in chunks)
        while len(chunks) > 1 and rows > MAX_RETAINED_ROWS:
            rows -= len(chunks.pop(0)["t0_s"])

    def _pull_stairs(self) -> None:
        for raw, _ in self._bounded_pulls(self._core.drain_stairs):
            self._retain(
                self._retained_stairs,
                {
                    "channel": _column(raw, "channel", "uint32"),
                    "t0_s": _column(raw, "t0_s", "float64"),
                    "t1_s": _column(raw, "t1_s", "float64"),
                    "joules": _column(raw, "joules", "float64"),
                },
            )

    @staticmethod
    def _concat(chunks: List[Dict[str, np.ndarray]], key: str, empty: np.ndarray) -> np.ndarray:
        return _numpy().concatenate([c[key] for c in chunks]) if chunks else empty

    def _merged(self, chunks: List[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
        """Pending record columns end to end; a single chunk as it is (pending chunks are handed
        over, not kept)."""
        if len(chunks) == 1:
            return chunks[0]
        np = _numpy()
        if chunks:
            return {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
        return {
            "index": np.empty(0, np.int64),
            "name_id": np.empty(0, np.uint32),
            "flags": np.empty(0, np.uint32),
            "t0_s": np.empty(0),
            "t1_s": np.empty(0),
            "joules": np.empty((0, len(self._channel_names))),
        }

    def _step_records(self, chunks: List[Dict[str, np.ndarray]]) -> StepRecords:
        columns = self._merged(chunks)
        return StepRecords(
            list(self._channel_names),
            columns["index"],
            columns["t0_s"],
            columns["t1_s"],
            columns["joules"],
            columns["flags"],
        )

    def _window_records(self, chunks: List[Dict[str, np.ndarray]]) -> WindowRecords:
        columns = self._merged(chunks)
        return WindowRecords(
            list(self._channel_names),
            [self._window_names.get(int(i), f"window-{int(i)}") for i in columns["name_id"]],
            columns["index"],
            columns["t0_s"],
            columns["t1_s"],
            columns["joules"],
            columns["flags"],
        )

    def drain_steps(self) -> StepRecords:
        """Steps resolved since the last call (a step resolves one sampler period after its mark)."""
        with self._drain_lock:
            self._pull()
            chunks, self._pending_steps = self._pending_steps, []
        return self._step_records(chunks)

    def drain_windows(self) -> WindowRecords:
        """Windows closed since the last call."""
        with self._drain_lock:
            self._pull()
            chunks, self._pending_windows = self._pending_windows, []
        return self._window_records(chunks)

    def drain_in_chunks(self) -> Iterator[Tuple[StepRecords, WindowRecords]]:
        """What ``drain_steps()`` and ``drain_windows()`` return together, as consecutive chunks
        of at most ``rows_per_pull`` records (steps and windows together), oldest first.

        Drains that make no large array: handle each chunk before asking for the next. A chunk's
        records are drained once it is yielded; stopping early leaves the rest for the next
        drain. Records resolved after ``ring_capacity`` were pulled wait for the next drain too.
        Safe from any thread (each chunk is taken under the meter's drain lock).
        """
        with self._drain_lock:
            self._pull_stairs()
        pulled, ring_empty = 0, False
        while True:
            with self._drain_lock:
                if not self._pending_steps and not self._pending_windows:
                    if ring_empty or pulled >= self._core.ring_capacity:
                        return
                    count = self._pull_chunk()
                    pulled += count
                    ring_empty = count < self._rows_per_pull
                    if count == 0:
                        return
                steps = [self._pending_steps.pop(0)] if self._pending_steps else []
                windows = [self._pending_windows.pop(0)] if self._pending_windows else []
            yield self._step_records(steps), self._window_records(windows)

    def drain_trace(self) -> PowerTrace:
        """Power readings since the last call (bounded by ring_capacity; overflow is counted)."""
        np = _numpy()
        chunks = list(self.drain_trace_in_chunks())
        if len(chunks) == 1:
            return chunks[0]
        return PowerTrace(
            channels=list(self._channel_names),
            t_s=np.concatenate([c.t_s for c in chunks]) if chunks else np.empty(0),
            watts=np.concatenate([c.watts for c in chunks]) if chunks else np.empty((0, len(self._channel_names))),
        )

    def drain_trace_in_chunks(self) -> Iterator[PowerTrace]:
        """What ``drain_trace()`` returns, as consecutive chunks of at most ``rows_per_pull``
        readings, oldest first, each pulled when the previous one has been handled; at most
        ``ring_capacity`` readings in all (later ones wait for the next drain)."""
        n_channels = len(self._channel_names)
        for raw, count in self._bounded_pulls(self._core.drain_trace):
            yield PowerTrace(
                channels=list(self._channel_names),
                t_s=_column(raw, "t_s", "float64"),
                watts=_column(raw, "watts", "float64").reshape(count, n_channels),
            )

    def export_trace(
        self,
        path: Union[str, Path],
        *,
        steps: Optional[StepRecords] = None,
        windows: Optional[WindowRecords] = None,
        power: Optional[PowerTrace] = None,
    ) -> Path:
        """Writes a Chrome/Perfetto trace JSON of this meter's records; returns its path.

        The trace holds a counter track per channel (watts), a slice per step and per window with
        their joules as arguments, on the Unix clock that ``torch.profiler`` traces use (see
        ``hf_eco2ai.reporting.chrome_trace``). Records not given are drained now, so they are gone
        from later ``drain_*`` calls; pass what you drained to export it too. The power readings
        are those still in the ring (at most ``ring_capacity``). Raises OSError when ``path``
        cannot be written.
        """
        from hf_eco2ai.reporting.trace_sources import timeline_from_meter_records, write_timeline_trace

        timeline = timeline_from_meter_records(
            self,
            steps if steps is not None else self.drain_steps(),
            windows if windows is not None else self.drain_windows(),
            power if power is not None else self.drain_trace(),
        )
        return write_timeline_trace(timeline, path)

    def stairs(self) -> CounterStairs:
        """Every counter stair kept so far (the newest MAX_RETAINED_ROWS): when each counter
        channel changed and by how many joules. Does not drain records."""
        from hf_eco2ai.meter.window_estimates import CounterStairs

        with self._drain_lock:
            self._pull_stairs()
            chunks = list(self._retained_stairs)
        np = _numpy()
        return CounterStairs(
            channels=list(self._channel_names),
            channel=self._concat(chunks, "channel", np.empty(0, np.uint32)),
            t0_s=self._concat(chunks, "t0_s", np.empty(0)),
            t1_s=self._concat(chunks, "t1_s", np.empty(0)),
            joules=self._concat(chunks, "joules", np.empty(0)),
        )

    def estimate_windows(
        self, observed_fraction: float = 1.0, names: Optional[Sequence[str]] = None
    ) -> WindowEstimates:
        """Mean joules and watts per window name, for windows shorter than the sensor's update
        period, estimated over every repetition so far (see ``hf_eco2ai.meter.window_estimates``).

        Uses the counter channels' stairs (NVML GPUs) and every closed window with sound nesting.
        ``observed_fraction``: the share of each update period the sensor observes (about 0.25
        on A100/H100, published). Does not drain records.

        Raises:
            ConfigurationError: ``observed_fraction`` outside (0, 1].
        """
        from hf_eco2ai.meter.window_estimates import estimate_windows

        stairs = self.stairs()
        with self._drain_lock:
            self._pull()
            chunks = list(self._retained_windows)
        np = _numpy()
        name_ids = self._concat(chunks, "name_id", np.empty(0, np.uint32))
        return estimate_windows(
            stairs,
            [self._window_names.get(int(i), f"window-{int(i)}") for i in name_ids],
            self._concat(chunks, "t0_s", np.empty(0)),
            self._concat(chunks, "t1_s", np.empty(0)),
            observed_fraction=observed_fraction,
            names=names,
        )

    def window_estimates_section(self) -> Optional[Dict[str, Any]]:
        """The report's ``window_estimates`` section, or None when the run has no named windows
        or no counter stairs to estimate them from."""
        if not self._window_ids or not any(c.kind == "counter" for c in self._channels):
            return None
        estimates = self.estimate_windows()
        if estimates.stairs_used == 0 and not estimates.notes:
            return None
        return estimates.as_dict()

    def info(self) -> Dict[str, Any]:
        """Which sources are active or skipped (and why), each channel with its provenance,
        observed sensor update period and counter resets, the rate, and the drop and error
        counters."""
        periods = self._core.update_periods_s()
        totals = self.totals()
        resets = totals.get("counter_resets_by_channel", {})
        return {
            "rate_hz": self._core.rate_hz,
            "ring_capacity": self._core.ring_capacity,
            "boundary_capacity": self._core.boundary_capacity,
            "running": self.running,
            "sources": [
                {"name": name, **{k: v for k, v in facts if not k.startswith("skipped ")}}
                for name, facts in self._core.source_facts()
            ],
            "skipped_sources": dict(self.skipped_sources),
            "channels": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "provenance": c.provenance,
                    "source": c.source,
                    "parent": c.parent,
                    "scope": c.scope,
                    "observed_update_period_s": period,
                    "counter_resets": int(resets.get(c.name, 0)),
                }
                for c, period in zip(self._channels, periods)
            ],
            "counter_resets": int(totals.get("counter_resets", 0)),
            "totals": totals,
        }
