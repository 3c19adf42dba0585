"""One run's aggregates, kept incrementally between drains: epochs, windows, a step series and a
power trace, each bounded in memory however many steps the run has.

``RunRecords`` takes what ``EnergyMeter.drain_steps``/``drain_windows``/``drain_trace`` return and
keeps only aggregates: per-epoch and per-window-name totals, a downsampled step series (at most
``MAX_SERIES_POINTS`` buckets with min/mean/max) and a downsampled power trace. Every step itself
is streamed to the store and the per-step file by the writer thread, never held here. Times become
seconds since the run's first reading. Not thread-safe: the session holds its lock around it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from hf_eco2ai import units
from hf_eco2ai.meter.flags import FLAG_TAIL
from hf_eco2ai.session.downsample import Downsampler

MAX_SERIES_POINTS = 2000
MAX_POWER_TRACE_POINTS = 2000
# Power readings arrive at the sampler rate (100 Hz by default); binning them on arrival keeps the
# store's trace small while staying far finer than the report's 2,000 points need.
POWER_BIN_S = 0.2
NO_EPOCH = -1
# Spans kept per window name for the report's timeline charts; a name repeated more often (a phase
# of every step) is a breakdown, not a timeline, and keeps only its totals beyond this.
MAX_SPANS_PER_WINDOW_NAME = 200
MAX_LOSS_POINTS = 2000


def _distinct(values: np.ndarray) -> List[int]:
    """The distinct values of an integer array, ascending. (``np.unique`` would import
    ``numpy.ma`` on its first call, 70 ms that a run's first log should not pay.)"""
    if len(values) == 0:
        return []
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))].tolist()


class _EpochTotals:
    __slots__ = ("first_step", "last_step", "t0_s", "t1_s", "joules_by_channel")

    def __init__(self, n_channels: int) -> None:
        self.first_step: Optional[int] = None
        self.last_step: Optional[int] = None
        self.t0_s: Optional[float] = None
        self.t1_s: Optional[float] = None
        self.joules_by_channel = np.zeros(n_channels)


class _WindowTotals:
    __slots__ = ("count", "duration_s", "joules_by_channel", "flags", "span_t0_s", "span_t1_s", "span_joules")

    def __init__(self, n_channels: int) -> None:
        self.count = 0
        self.duration_s = 0.0
        self.joules_by_channel = np.zeros(n_channels)
        self.flags = 0
        self.span_t0_s: List[float] = []
        self.span_t1_s: List[float] = []
        self.span_joules: List[float] = []


class StepBatch:
    """One drain's steps, with run-relative times, epochs (``NO_EPOCH`` for none) and the
    top-level sum (J)."""

    def __init__(
        self,
        index: np.ndarray,
        epoch: np.ndarray,
        t0_s: np.ndarray,
        t1_s: np.ndarray,
        joules: np.ndarray,
        flags: np.ndarray,
        joules_by_channel: np.ndarray,
    ) -> None:
        self.index = index
        self.epoch = epoch
        self.t0_s = t0_s
        self.t1_s = t1_s
        self.joules = joules
        self.flags = flags
        self.joules_by_channel = joules_by_channel

    def __len__(self) -> int:
        return int(self.index.shape[0])


def _finite_or_none(values: List[float]) -> List[Optional[float]]:
    return [value if math.isfinite(value) else None for value in values]


class RunRecords:
    """Accumulates one run's aggregates.

    Args:
        channel_names: the meter's channel names, in column order.
        top_level: for each channel, whether it counts towards totals (its ``parent`` is None).
    """

    def __init__(self, channel_names: Sequence[str], top_level: Sequence[bool]) -> None:
        self.channel_names = list(channel_names)
        self.top_level = np.asarray(top_level, dtype=bool)
        self.origin_s: Optional[float] = None
        n_channels = len(self.channel_names)
        self._epoch_boundaries: List[int] = []
        self._epochs: Dict[int, _EpochTotals] = {}
        self._windows: Dict[str, _WindowTotals] = {}
        # Columns: top-level joules, duration, then each channel's joules.
        self._series = Downsampler(2 + n_channels, MAX_SERIES_POINTS, width=1.0)
        self._power = Downsampler(max(n_channels, 1), MAX_POWER_TRACE_POINTS, width=POWER_BIN_S)
        self._loss = Downsampler(1, MAX_LOSS_POINTS, width=1.0)
        self._pending_bin: Optional[List[Any]] = None
        self._tail: Optional[Dict[str, Any]] = None
        self.power_readings = 0
        self.steps_resolved = 0
        self.training_steps_resolved = 0

    def set_origin(self, first_reading_s: Optional[float]) -> None:
        """The run's time zero: its first reading (monotonic seconds)."""
        if self.origin_s is None and first_reading_s is not None:
            self.origin_s = float(first_reading_s)

    def relative(self, monotonic_s: Optional[float]) -> float:
        if monotonic_s is None or self.origin_s is None:
            return 0.0
        return float(monotonic_s) - self.origin_s

    @property
    def epoch_count(self) -> int:
        return len(self._epoch_boundaries)

    def end_epoch(self, steps_marked: int, now_monotonic_s: Optional[float]) -> None:
        """Steps with index below ``steps_marked`` belong to the epoch that ends now or to earlier ones."""
        self._epoch_boundaries.append(int(steps_marked))
        totals = self._epochs.setdefault(len(self._epoch_boundaries) - 1, _EpochTotals(len(self.channel_names)))
        if totals.t1_s is None:
            totals.t1_s = self.relative(now_monotonic_s)

    def add_steps(self, steps: Any) -> StepBatch:
        """Take a ``StepRecords``; returns the batch to stream (relative times, epochs assigned).

        Cost: O(len(steps)) plus O(MAX_SERIES_POINTS) at most; nothing of the batch is kept."""
        top_joules = steps.joules[:, self.top_level].sum(axis=1)
        t0_s = steps.t0_s - (self.origin_s or 0.0)
        t1_s = steps.t1_s - (self.origin_s or 0.0)
        # Whether the loop will ever end an epoch is unknown until it does, so every step gets the
        # number of the epoch it falls in (0 before the first end). The tail (last mark to stop)
        # is no training step: NO_EPOCH.
        epochs = np.searchsorted(np.asarray(self._epoch_boundaries, dtype=np.int64), steps.index, side="right")
        is_tail = (steps.flags & FLAG_TAIL) != 0
        epochs[is_tail] = NO_EPOCH
        training = ~is_tail
        for epoch in _distinct(epochs[training]):
            rows = np.flatnonzero(epochs == epoch)
            totals = self._epochs.setdefault(epoch, _EpochTotals(len(self.channel_names)))
            if totals.first_step is None:
                totals.first_step, totals.t0_s = int(steps.index[rows[0]]), float(t0_s[rows[0]])
            totals.last_step = int(steps.index[rows[-1]])
            totals.t1_s = max(float(t1_s[rows[-1]]), totals.t1_s or 0.0)
            totals.joules_by_channel += steps.joules[rows].sum(axis=0)
        batch = StepBatch(steps.index.copy(), epochs, t0_s, t1_s, top_joules, steps.flags.copy(), steps.joules.copy())
        if training.all():
            self._series.add(batch.index, np.column_stack([top_joules, t1_s - t0_s, batch.joules_by_channel]))
        else:
            self._series.add(
                batch.index[training],
                np.column_stack([top_joules[training], (t1_s - t0_s)[training], batch.joules_by_channel[training]]),
            )
            last = int(np.flatnonzero(is_tail)[-1])
            self._tail = {
                "index": int(batch.index[last]),
                "epoch": None,
                "t0_s": float(t0_s[last]),
                "t1_s": float(t1_s[last]),
                "duration_s": float(t1_s[last] - t0_s[last]),
                "joules": float(top_joules[last]),
                "joules_by_channel": dict(zip(self.channel_names, batch.joules_by_channel[last].tolist())),
                "flags": int(batch.flags[last]),
            }
        self.steps_resolved += len(batch)
        self.training_steps_resolved += int(training.sum())
        return batch

    def add_windows(
        self, names: Sequence[str], t0_s: np.ndarray, t1_s: np.ndarray, joules: np.ndarray, flags: np.ndarray
    ) -> None:
        """Add drained window records to the per-name totals."""
        for position, name in enumerate(names):
            totals = self._windows.setdefault(str(name), _WindowTotals(len(self.channel_names)))
            totals.count += 1
            totals.duration_s += float(t1_s[position] - t0_s[position])
            totals.joules_by_channel += joules[position]
            totals.flags |= int(flags[position])
            if totals.count <= MAX_SPANS_PER_WINDOW_NAME:
                totals.span_t0_s.append(float(t0_s[position]))
                totals.span_t1_s.append(float(t1_s[position]))
                totals.span_joules.append(float(np.sum(joules[position][self.top_level])))

    def add_loss(self, step: int, loss: float) -> None:
        """A training loss logged at optimiser step ``step`` (kept in at most MAX_LOSS_POINTS
        buckets of consecutive steps)."""
        if math.isfinite(loss):
            self._loss.add(np.array([float(step)]), np.array([[float(loss)]]))

    def add_power(self, t_s: np.ndarray, watts: np.ndarray) -> List[Any]:
        """Take power readings (monotonic s, W per channel); returns the finished bins
        ``[(t_s relative, watts row), ...]`` for the store."""
        if len(t_s) == 0:
            return []
        self.power_readings += len(t_s)
        relative = t_s - (self.origin_s or 0.0)
        bins = np.floor(relative / POWER_BIN_S).astype(np.int64)
        finished: List[Any] = []
        for bin_index in _distinct(bins):
            mask = bins == bin_index
            count, total = int(mask.sum()), watts[mask].sum(axis=0)
            pending = self._pending_bin
            if pending is not None and pending[0] == bin_index:
                pending[1] += count
                pending[2] = pending[2] + total
                continue
            if pending is not None:
                finished.append(self._close_bin(pending))
            self._pending_bin = [int(bin_index), count, total]
        return finished

    def flush_power(self) -> List[Any]:
        """Close the bin still open (at the end of the run)."""
        if self._pending_bin is None:
            return []
        finished = [self._close_bin(self._pending_bin)]
        self._pending_bin = None
        return finished

    def _close_bin(self, pending: List[Any]) -> Any:
        centre_s = (pending[0] + 0.5) * POWER_BIN_S
        mean_watts = pending[2] / pending[1]
        if self.channel_names:
            self._power.add(np.array([centre_s]), mean_watts[None, :])
        return centre_s, mean_watts

    # Report sections ----------------------------------------------------------------------------

    def epoch_dicts(self, pue: float, g_per_kwh: float) -> List[Dict[str, Any]]:
        names = self.channel_names
        result = []
        for epoch in range(self.epoch_count):
            totals = self._epochs.get(epoch) or _EpochTotals(len(names))
            joules = float(totals.joules_by_channel[self.top_level].sum()) if names else 0.0
            t1_s = totals.t1_s if totals.t1_s is not None else 0.0
            t0_s = totals.t0_s if totals.t0_s is not None else t1_s
            kwh = units.kwh_from_joules(joules, pue)
            result.append(
                {
                    "epoch": epoch,
                    "first_step": totals.first_step,
                    "last_step": totals.last_step,
                    "t0_s": t0_s,
                    "t1_s": t1_s,
                    "duration_s": t1_s - t0_s,
                    "joules": joules,
                    "joules_by_channel": dict(zip(names, totals.joules_by_channel.tolist())),
                    "energy_kwh": kwh,
                    "co2_kg": units.co2_kg(kwh, g_per_kwh),
                }
            )
        return result

    def window_dicts(self, pue: float, g_per_kwh: float) -> List[Dict[str, Any]]:
        """One entry per window name: how many closed, their summed duration and energy."""
        result = []
        for name, totals in self._windows.items():
            joules = float(totals.joules_by_channel[self.top_level].sum()) if self.channel_names else 0.0
            kwh = units.kwh_from_joules(joules, pue)
            result.append(
                {
                    "name": name,
                    "count": totals.count,
                    "duration_s": totals.duration_s,
                    "joules": joules,
                    "joules_by_channel": dict(zip(self.channel_names, totals.joules_by_channel.tolist())),
                    "energy_kwh": kwh,
                    "co2_kg": units.co2_kg(kwh, g_per_kwh),
                    "flags": totals.flags,
                }
            )
        return result

    def window_spans(self) -> Dict[str, Dict[str, Any]]:
        """Per window name, when its first MAX_SPANS_PER_WINDOW_NAME windows ran (s since the run's
        start), their top-level joules (without PUE) and whether that is all of them."""
        return {
            name: {
                "t0_s": list(totals.span_t0_s),
                "t1_s": list(totals.span_t1_s),
                "joules": list(totals.span_joules),
                "complete": totals.count == len(totals.span_t0_s),
            }
            for name, totals in self._windows.items()
        }

    def loss_series(self) -> Optional[Dict[str, Any]]:
        """The training loss as logged, in at most MAX_LOSS_POINTS buckets: each bucket's mean
        step and mean loss. None when no loss was logged."""
        if len(self._loss) == 0:
            return None
        raw = self._loss.series(["loss"])
        columns: Dict[str, Dict[str, List[float]]] = raw["columns"]  # type: ignore[assignment]
        return {"step": raw["mean_key"], "loss": columns["loss"]["mean"], "points": int(self._loss.rows)}

    def step_series(self) -> Optional[Dict[str, Any]]:
        """The training steps (tail excluded) in at most ``MAX_SERIES_POINTS`` buckets of
        ``steps_per_point`` consecutive steps: per bucket its step range, count, the top-level
        joules' min/mean/max and the step where the max occurred, the mean duration and each
        channel's mean joules. None before any step resolved."""
        if len(self._series) == 0 and self._tail is None:
            return None
        raw = self._series.series(["joules", "duration_s"] + self.channel_names)
        columns: Dict[str, Dict[str, List[float]]] = raw["columns"]  # type: ignore[assignment]
        return {
            "steps_per_point": int(self._series.width),
            "steps": int(self._series.rows),
            "first_step": [int(key) for key in raw["first_key"]],  # type: ignore[attr-defined]
            "last_step": [int(key) for key in raw["last_key"]],  # type: ignore[attr-defined]
            "count": raw["count"],
            "joules_min": columns["joules"]["min"],
            "joules_mean": columns["joules"]["mean"],
            "joules_max": columns["joules"]["max"],
            "max_step": [int(key) for key in raw["max_key"]],  # type: ignore[attr-defined]
            "duration_s_mean": columns["duration_s"]["mean"],
            "joules_by_channel_mean": {name: columns[name]["mean"] for name in self.channel_names},
            "tail": self._tail,
        }

    def power_trace(self) -> Optional[Dict[str, Any]]:
        """Mean power per channel in at most MAX_POWER_TRACE_POINTS time buckets (the open bin
        included)."""
        if not self.channel_names:
            return None
        power = self._power
        if self._pending_bin is not None:
            # A copy, so that asking for the report does not close the bin still filling.
            power = power.copy()
            pending = self._pending_bin
            power.add(np.array([(pending[0] + 0.5) * POWER_BIN_S]), (pending[2] / pending[1])[None, :])
        if len(power) == 0:
            return None
        raw = power.series(self.channel_names)
        columns: Dict[str, Dict[str, List[float]]] = raw["columns"]  # type: ignore[assignment]
        return {
            "t_s": raw["mean_key"],
            # A bucket holding a failed reading (NaN) has no mean: null, as the schema allows.
            "watts": {name: _finite_or_none(columns[name]["mean"]) for name in self.channel_names},
            "watts_max": {name: _finite_or_none(columns[name]["max"]) for name in self.channel_names},
            "raw_points": int(self.power_readings),
        }
