"""Energy of windows shorter than the sensor, estimated over many repetitions.

An energy counter that moves in stairs (NVML: every 20-100 ms) cannot say what one 10 ms window
cost. Over many repetitions it can: each stair's energy is, over the window names, each name's
mean power times its overlap with the stair, plus the power of the rest times the rest of the
stair. That is a linear model in the unknown mean powers, solved by least squares over every
stair of the run; the residuals give the uncertainty.

Conditions for a good estimate: many repetitions (hundreds), windows that drift across stair
boundaries (random gaps between repetitions help), and windows of one name that do not overlap
each other. Windows of different names should not overlap either: each name's power is then
its own, not an increment over an enclosing window.

Some GPUs (A100, H100) observe only a part of each update period (about 25 %, published). Pass
``observed_fraction`` so that each stair is compared with the part of time its energy came from.

Stair boundaries are where the counter was seen to change: the midpoint between two reads, off
by up to half a read interval (about 1 ms at 1 kHz). An error that size is a fifth of a 5 ms
window. A counter that updates on a regular clock (NVML does) lets the boundaries be fitted to
one regular grid per measured span, which averages the read error away over hundreds of stairs.
The estimate is solved with the boundaries as read and as fitted, and keeps the one whose
energies the model explains better (smaller residuals): a sensor with irregular updates keeps its
boundaries as read.

Pure numpy functions; no I/O; safe from any thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from hf_eco2ai.errors import ConfigurationError


@dataclass(frozen=True)
class CounterStairs:
    """Stairs of counter channels: ``channel`` (index into ``channels``), ``t0_s``, ``t1_s``
    (monotonic seconds, each end within half a sampling interval of the true change) and
    ``joules`` added in the stair."""

    channels: List[str]
    channel: np.ndarray
    t0_s: np.ndarray
    t1_s: np.ndarray
    joules: np.ndarray

    def __len__(self) -> int:
        return int(self.channel.shape[0])


@dataclass(frozen=True)
class WindowEstimate:
    """Mean power and energy of one window name, summed over the channels estimated.

    ``*_stderr`` are one standard error (from the least-squares residuals). ``repetitions`` is
    the number of windows of this name the estimate used.
    """

    name: str
    repetitions: int
    mean_duration_s: float
    mean_watts: float
    mean_watts_stderr: float
    mean_joules: float
    mean_joules_stderr: float

    def as_dict(self) -> Dict[str, Any]:
        return {
            "repetitions": self.repetitions,
            "mean_duration_s": self.mean_duration_s,
            "mean_watts": self.mean_watts,
            "mean_watts_stderr": self.mean_watts_stderr,
            "mean_joules": self.mean_joules,
            "mean_joules_stderr": self.mean_joules_stderr,
        }


@dataclass(frozen=True)
class WindowEstimates:
    """The estimate for every window name, and what it was made from."""

    channels: List[str]
    windows: Dict[str, WindowEstimate]
    rest_watts: float
    stairs_used: int
    observed_fraction: float
    method: str = "least squares over counter stairs"
    notes: List[str] = field(default_factory=list)
    # Per channel estimated: "fitted grid" (boundaries fitted to the counter's regular updates)
    # or "as read" (the midpoint between the reads around each change).
    stair_timing: Dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        """The report's ``window_estimates`` section (plain JSON types)."""
        return {
            "method": self.method,
            "channels": list(self.channels),
            "stairs_used": self.stairs_used,
            "observed_fraction": self.observed_fraction,
            "rest_watts": self.rest_watts,
            "windows": {name: estimate.as_dict() for name, estimate in self.windows.items()},
            "stair_timing": dict(self.stair_timing),
            "notes": list(self.notes),
        }


def _coverage(starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Seconds covered by the sorted, non-overlapping intervals up to each time in ``at``."""
    durations = ends - starts
    before = np.concatenate(([0.0], np.cumsum(durations)))
    k = np.searchsorted(starts, at, side="right") - 1
    inside = np.clip(at - starts[np.maximum(k, 0)], 0.0, durations[np.maximum(k, 0)])
    return np.where(k >= 0, before[np.maximum(k, 0)] + inside, 0.0)


def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple:
    """Sorted, with overlapping intervals of one name merged, so no time counts twice."""
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    merged_starts: List[float] = []
    merged_ends: List[float] = []
    for start, end in zip(starts.tolist(), ends.tolist()):
        if merged_ends and start <= merged_ends[-1]:
            merged_ends[-1] = max(merged_ends[-1], end)
        else:
            merged_starts.append(start)
            merged_ends.append(end)
    return np.asarray(merged_starts), np.asarray(merged_ends)


# A span needs this many stairs before its boundaries are fitted to a grid.
_MIN_STAIRS_FOR_GRID = 8
# Consecutive stairs closer than this (seconds) share a boundary: one measured span.
_CONTIGUOUS_S = 1e-6


def _grid_boundaries(t0: np.ndarray, t1: np.ndarray) -> Optional[tuple]:
    """Stair boundaries fitted to one regular grid per contiguous span (least squares of the
    boundaries against their update count), or None when the stairs do not look regular
    (a stair shorter than half the median). Spans too short to fit keep their boundaries."""
    if t1.size < _MIN_STAIRS_FOR_GRID:
        return None
    fitted0, fitted1 = t0.copy(), t1.copy()
    breaks = np.flatnonzero(np.abs(t0[1:] - t1[:-1]) > _CONTIGUOUS_S) + 1
    for first, end in zip(np.concatenate(([0], breaks)), np.concatenate((breaks, [t1.size]))):
        if end - first < _MIN_STAIRS_FOR_GRID:
            continue
        boundaries = np.concatenate(([t0[first]], t1[first:end]))
        lengths = np.diff(boundaries)
        period = float(np.median(lengths))
        updates = np.rint(lengths / period) if period > 0 else np.zeros_like(lengths)
        if np.any(updates < 1):
            return None
        count = np.concatenate(([0.0], np.cumsum(updates)))
        slope, intercept = np.polyfit(count, boundaries, 1)
        grid = intercept + slope * count
        fitted0[first:end], fitted1[first:end] = grid[:-1], grid[1:]
    return fitted0, fitted1


def _solve_channel(
    a0: np.ndarray,
    a1: np.ndarray,
    y: np.ndarray,
    intervals: Dict[str, tuple],
    wanted: List[str],
    observed_fraction: float,
) -> Optional[tuple]:
    """(solution, covariance, residual variance) of one channel's stairs, or None when the
    windows never vary across stairs (rank-deficient design)."""
    columns = []
    for name in wanted:
        starts, ends = intervals[name]
        overlap = _coverage(starts, ends, a1) - _coverage(starts, ends, a0) if starts.size else np.zeros_like(a1)
        columns.append(overlap)
    covered = np.sum(columns, axis=0) if columns else np.zeros_like(a1)
    columns.append((a1 - a0) - covered)
    design = np.stack(columns, axis=1) / observed_fraction
    solution, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
    if rank < design.shape[1]:
        return None
    residuals = y - design @ solution
    dof = max(y.shape[0] - design.shape[1], 1)
    sigma2 = float(residuals @ residuals) / dof
    return solution, sigma2 * np.linalg.inv(design.T @ design), sigma2


def estimate_windows(
    stairs: CounterStairs,
    window_names: Sequence[str],
    window_t0_s: np.ndarray,
    window_t1_s: np.ndarray,
    observed_fraction: float = 1.0,
    names: Optional[Sequence[str]] = None,
) -> WindowEstimates:
    """Mean watts and joules per window name, from counter stairs and named windows.

    Args:
        stairs: the run's counter stairs (``EnergyMeter.stairs()``).
        window_names, window_t0_s, window_t1_s: the named windows (monotonic seconds).
        observed_fraction: the share of each stair the sensor actually observes, at its end
            (1.0: all of it; about 0.25 on A100/H100, published, not yet confirmed here).
        names: the window names to estimate; default every name present.

    Each channel is solved on its own and the results are summed, so several GPUs whose stairs
    are not aligned add up correctly.

    Raises:
        ConfigurationError: ``observed_fraction`` outside (0, 1], or mismatched window arrays.
    """
    if not 0.0 < observed_fraction <= 1.0:
        raise ConfigurationError(f"observed_fraction={observed_fraction!r} is not allowed: it must be > 0 and <= 1")
    t0 = np.asarray(window_t0_s, dtype=float)
    t1 = np.asarray(window_t1_s, dtype=float)
    labels = np.asarray(list(window_names), dtype=object)
    if not (len(labels) == t0.shape[0] == t1.shape[0]):
        raise ConfigurationError(
            f"window_names, window_t0_s and window_t1_s have {len(labels)}, {t0.shape[0]} and {t1.shape[0]} "
            "entries: they must pair up"
        )
    wanted = list(dict.fromkeys(labels.tolist())) if names is None else list(names)
    notes: List[str] = []
    intervals = {}
    durations = {}
    for name in wanted:
        chosen = labels == name
        intervals[name] = _merge(t0[chosen], t1[chosen])
        durations[name] = t1[chosen] - t0[chosen]

    n_names = len(wanted)
    watts = np.zeros(n_names)
    variance = np.zeros(n_names)
    rest_watts = 0.0
    stairs_used = 0
    stair_timing: Dict[str, str] = {}
    for channel_index in range(len(stairs.channels)):
        channel_name = stairs.channels[channel_index]
        mine = stairs.channel == channel_index
        y = stairs.joules[mine]
        if y.shape[0] <= n_names + 1:
            notes.append(f"{channel_name}: {y.shape[0]} stairs, too few for {n_names} window names")
            continue
        t0_read, t1_read = stairs.t0_s[mine], stairs.t1_s[mine]
        candidates = {"as read": (t0_read, t1_read)}
        fitted = _grid_boundaries(t0_read, t1_read)
        if fitted is not None:
            candidates["fitted grid"] = fitted
        best = None
        for timing, (s0, s1) in candidates.items():
            a0 = s1 - observed_fraction * (s1 - s0)
            solved = _solve_channel(a0, s1, y, intervals, wanted, observed_fraction)
            if solved is not None and (best is None or solved[2] < best[1][2]):
                best = (timing, solved)
        if best is None:
            notes.append(f"{channel_name}: windows never vary across stairs; add random gaps between repetitions")
            continue
        timing, (solution, covariance, _) = best
        stair_timing[channel_name] = timing
        watts += solution[:n_names]
        variance += np.diag(covariance)[:n_names]
        rest_watts += float(solution[n_names])
        stairs_used += int(y.shape[0])

    estimates = {}
    for i, name in enumerate(wanted):
        mean_duration = float(np.mean(durations[name])) if durations[name].size else float("nan")
        stderr = float(np.sqrt(variance[i]))
        ok = stairs_used > 0 and durations[name].size > 0
        estimates[name] = WindowEstimate(
            name=name,
            repetitions=int(durations[name].size),
            mean_duration_s=mean_duration,
            mean_watts=float(watts[i]) if ok else float("nan"),
            mean_watts_stderr=stderr if ok else float("nan"),
            mean_joules=float(watts[i]) * mean_duration if ok else float("nan"),
            mean_joules_stderr=stderr * mean_duration if ok else float("nan"),
        )
    return WindowEstimates(
        channels=list(stairs.channels),
        windows=estimates,
        rest_watts=rest_watts if stairs_used else float("nan"),
        stairs_used=stairs_used,
        observed_fraction=observed_fraction,
        notes=notes,
        stair_timing=stair_timing,
    )


def shaped_energy_at(
    stairs: CounterStairs,
    channel_index: int,
    trace_t_s: np.ndarray,
    trace_watts: np.ndarray,
    at_s: np.ndarray,
) -> np.ndarray:
    """Cumulative joules of one counter channel at each time in ``at_s``, each stair's energy
    spread over the stair in proportion to the instant-power readings inside it.

    Linear interpolation between stairs gives every instant of a stair the same power; shaping
    with the instant readings moves energy to the phases that drew it. Where a stair saw no
    valid reading, its energy is spread evenly. Times outside the stairs are clamped to the
    first or last stair. Zero at the start of the first stair.
    """
    mine = stairs.channel == channel_index
    s0, s1, joules = stairs.t0_s[mine], stairs.t1_s[mine], stairs.joules[mine]
    at = np.asarray(at_s, dtype=float)
    if s0.size == 0:
        return np.full(at.shape, np.nan)
    t = np.asarray(trace_t_s, dtype=float)
    w = np.nan_to_num(np.asarray(trace_watts, dtype=float), nan=0.0)
    # Q(t): the integral of the instant readings, trapezoid; the shape inside each stair.
    q_points = np.concatenate(([0.0], np.cumsum(np.diff(t) * 0.5 * (w[1:] + w[:-1])))) if t.size else np.zeros(0)

    def q(x: np.ndarray) -> np.ndarray:
        if t.size < 2:
            return x.copy()
        return np.interp(x, t, q_points)

    before = np.concatenate(([0.0], np.cumsum(joules)))
    clamped = np.clip(at, s0[0], s1[-1])
    j = np.clip(np.searchsorted(s1, clamped, side="left"), 0, s0.size - 1)
    q0, q1, qt = q(s0[j]), q(s1[j]), q(clamped)
    span = s1[j] - s0[j]
    linear = np.where(span > 0, (clamped - s0[j]) / np.where(span > 0, span, 1.0), 1.0)
    shaped = np.where(q1 - q0 > 0, (qt - q0) / np.where(q1 - q0 > 0, q1 - q0, 1.0), linear)
    return before[j] + joules[j] * np.clip(shaped, 0.0, 1.0)
