"""The records of one run, kept between drains: steps, epochs and a decimated power trace.

``RunRecords`` takes what ``EnergyMeter.drain_steps``/``drain_trace`` return and turns it into the
``steps``, ``epochs`` and ``power_trace`` sections of the report (docs/reports.md). Times become
seconds since the run's first reading. Not thread-safe: the session holds its lock around it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from hf_eco2ai.carbon.impact import JOULES_PER_KWH
from hf_eco2ai.meter.flags import FLAG_TAIL

MAX_POWER_TRACE_POINTS = 2000
# Power readings arrive at the sampler rate (100 Hz by default); binning them on arrival keeps a
# long run's trace small while staying far finer than the report's 2,000 points need.
POWER_BIN_S = 0.2
NO_EPOCH = -1


class _EpochTotals:
    __slots__ = ("first_step", "last_step", "t0_s", "t1_s", "joules_by_channel")

    def __init__(self, n_channels: int) -> None:
        self.first_step: Optional[int] = None
        self.last_step: Optional[int] = None
        self.t0_s: Optional[float] = None
        self.t1_s: Optional[float] = None
        self.joules_by_channel = np.zeros(n_channels)


class StepBatch:
    """One drain's steps, with run-relative times, epochs (``NO_EPOCH`` for none) and the
    top-level sum."""

    def __init__(self, index: np.ndarray, epoch: np.ndarray, t0_s: np.ndarray, t1_s: np.ndarray,
                 joules: np.ndarray, flags: np.ndarray, joules_by_channel: np.ndarray) -> None:
        self.index = index
        self.epoch = epoch
        self.t0_s = t0_s
        self.t1_s = t1_s
        self.joules = joules
        self.flags = flags
        self.joules_by_channel = joules_by_channel

    def __len__(self) -> int:
        return int(self.index.shape[0])


class RunRecords:
    """Accumulates one run's step records, epoch totals and power trace.

    Args:
        channel_names: the meter's channel names, in column order.
        top_level: for each channel, whether it counts towards totals (its ``parent`` is None).
    """

    def __init__(self, channel_names: Sequence[str], top_level: Sequence[bool]) -> None:
        self.channel_names = list(channel_names)
        self.top_level = np.asarray(top_level, dtype=bool)
        self.origin_s: Optional[float] = None
        self._batches: List[StepBatch] = []
        self._epoch_boundaries: List[int] = []
        self._epochs: Dict[int, _EpochTotals] = {}
        self._power_t_s: List[np.ndarray] = []
        self._power_watts: List[np.ndarray] = []
        self._pending_bin: Optional[List[Any]] = None
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
        """Take a ``StepRecords``; returns the batch as stored (relative times, epochs assigned)."""
        top_joules = steps.joules[:, self.top_level].sum(axis=1)
        t0_s = steps.t0_s - (self.origin_s or 0.0)
        t1_s = steps.t1_s - (self.origin_s or 0.0)
        # Whether the loop will ever end an epoch is unknown until it does, so every step gets the
        # number of the epoch it falls in (0 before the first end); the report leaves the numbers
        # out when no epoch ended. The tail (last mark to stop) is no training step: NO_EPOCH.
        epochs = np.searchsorted(np.asarray(self._epoch_boundaries, dtype=np.int64), steps.index, side="right")
        epochs[(steps.flags & FLAG_TAIL) != 0] = NO_EPOCH
        for epoch in np.unique(epochs[epochs != NO_EPOCH]).tolist():
            rows = np.flatnonzero(epochs == epoch)
            totals = self._epochs.setdefault(epoch, _EpochTotals(len(self.channel_names)))
            if totals.first_step is None:
                totals.first_step, totals.t0_s = int(steps.index[rows[0]]), float(t0_s[rows[0]])
            totals.last_step = int(steps.index[rows[-1]])
            totals.t1_s = max(float(t1_s[rows[-1]]), totals.t1_s or 0.0)
            totals.joules_by_channel += steps.joules[rows].sum(axis=0)
        batch = StepBatch(steps.index.copy(), epochs, t0_s, t1_s, top_joules, steps.flags.copy(),
                          steps.joules.copy())
        self._batches.append(batch)
        self.steps_resolved += len(batch)
        self.training_steps_resolved += int(((batch.flags & FLAG_TAIL) == 0).sum())
        return batch

    def add_power(self, t_s: np.ndarray, watts: np.ndarray) -> List[Any]:
        """Take power readings (monotonic s, W per channel); returns the finished bins
        ``[(t_s relative, watts row), ...]`` for the store."""
        if len(t_s) == 0:
            return []
        self.power_readings += len(t_s)
        relative = t_s - (self.origin_s or 0.0)
        bins = np.floor(relative / POWER_BIN_S).astype(np.int64)
        finished: List[Any] = []
        for bin_index in np.unique(bins):
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
        self._power_t_s.append(np.array([centre_s]))
        self._power_watts.append(mean_watts[None, :])
        return centre_s, mean_watts

    # Report sections ----------------------------------------------------------------------------

    def step_dicts(self) -> List[Dict[str, Any]]:
        names = self.channel_names
        epochs_marked = self.epoch_count > 0
        result: List[Dict[str, Any]] = []
        for batch in self._batches:
            epochs = ([None if e == NO_EPOCH else e for e in batch.epoch.tolist()] if epochs_marked
                      else [None] * len(batch))
            for index, epoch, t0, t1, joules, flags, row in zip(
                batch.index.tolist(), epochs, batch.t0_s.tolist(), batch.t1_s.tolist(),
                batch.joules.tolist(), batch.flags.tolist(), batch.joules_by_channel.tolist(),
            ):
                result.append({"index": index, "epoch": epoch, "t0_s": t0, "t1_s": t1, "duration_s": t1 - t0,
                               "joules": joules, "joules_by_channel": dict(zip(names, row)), "flags": flags})
        return result

    def step_joules_total(self) -> float:
        """Sum of every resolved record (the tail included), top-level channels, J."""
        return float(sum(batch.joules.sum() for batch in self._batches))

    def epoch_dicts(self, pue: float, g_per_kwh: float) -> List[Dict[str, Any]]:
        names = self.channel_names
        result = []
        for epoch in range(self.epoch_count):
            totals = self._epochs.get(epoch) or _EpochTotals(len(names))
            joules = float(totals.joules_by_channel[self.top_level].sum()) if names else 0.0
            t1_s = totals.t1_s if totals.t1_s is not None else 0.0
            t0_s = totals.t0_s if totals.t0_s is not None else t1_s
            kwh = joules / JOULES_PER_KWH * pue
            result.append({
                "epoch": epoch, "first_step": totals.first_step, "last_step": totals.last_step,
                "t0_s": t0_s, "t1_s": t1_s, "duration_s": t1_s - t0_s, "joules": joules,
                "joules_by_channel": dict(zip(names, totals.joules_by_channel.tolist())),
                "energy_kwh": kwh, "co2_kg": kwh * g_per_kwh / 1000.0,
            })
        return result

    def power_trace(self) -> Optional[Dict[str, Any]]:
        """Mean power per channel in at most MAX_POWER_TRACE_POINTS equal time buckets."""
        pending = [] if self._pending_bin is None else [(
            (self._pending_bin[0] + 0.5) * POWER_BIN_S, self._pending_bin[2] / self._pending_bin[1])]
        t_parts = self._power_t_s + [np.array([t]) for t, _ in pending]
        w_parts = self._power_watts + [w[None, :] for _, w in pending]
        if not t_parts or not self.channel_names:
            return None
        t_s = np.concatenate(t_parts)
        watts = np.concatenate(w_parts)
        n_buckets = int(min(MAX_POWER_TRACE_POINTS, len(t_s)))
        start, end = float(t_s.min()), float(t_s.max())
        width = (end - start) / n_buckets if end > start else 1.0
        bucket = np.clip(((t_s - start) // width).astype(np.int64), 0, n_buckets - 1)
        sums = np.zeros((n_buckets, watts.shape[1]))
        counts = np.zeros(n_buckets)
        np.add.at(sums, bucket, watts)
        np.add.at(counts, bucket, 1)
        keep = counts > 0
        means = sums[keep] / counts[keep][:, None]
        centres = (start + (np.arange(n_buckets)[keep] + 0.5) * width) if end > start else t_s[:1]
        return {
            "t_s": centres.tolist(),
            # A bucket holding a failed reading (NaN) has no mean: null, as the schema allows.
            "watts": {name: [w if np.isfinite(w) else None for w in means[:, column].tolist()]
                      for column, name in enumerate(self.channel_names)},
            "raw_points": int(self.power_readings),
        }
