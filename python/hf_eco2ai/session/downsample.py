"""A series of any length kept in at most ``max_points`` buckets, with min, mean and max per bucket.

Rows arrive in batches with a key that grows (a step index, a time in seconds). Each bucket covers
``width`` key units; when the buckets outnumber ``max_points`` the width doubles and neighbours
merge, so memory stays O(max_points) however long the run, and the largest value of each column
survives every merge (a one-step spike is never averaged away). Not thread-safe: the session holds
its lock around it.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np


class _Buckets:
    """Bucket aggregates as parallel arrays. Column 0 of ``total``/``low``/``high`` is the key
    itself (so one reduction gives the key's sum, first and last), the value columns follow."""

    __slots__ = ("ids", "count", "total", "low", "high", "max_key")

    def __init__(
        self,
        ids: np.ndarray,
        count: np.ndarray,
        total: np.ndarray,
        low: np.ndarray,
        high: np.ndarray,
        max_key: np.ndarray,
    ) -> None:
        self.ids, self.count, self.total, self.low, self.high, self.max_key = ids, count, total, low, high, max_key

    @classmethod
    def of_rows(cls, ids: np.ndarray, keyed: np.ndarray) -> "_Buckets":
        return cls(ids, np.ones(len(ids)), keyed, keyed, keyed, keyed[:, 0])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def fields(self) -> Tuple[np.ndarray, ...]:
        return self.ids, self.count, self.total, self.low, self.high, self.max_key

    def take(self, rows: Any) -> "_Buckets":
        return _Buckets(*(field[rows] for field in self.fields()))

    def then(self, other: "_Buckets") -> "_Buckets":
        return _Buckets(*(np.concatenate([mine, theirs]) for mine, theirs in zip(self.fields(), other.fields())))

    def grouped(self) -> "_Buckets":
        """Buckets with equal (sorted) ids merged into one."""
        ids = self.ids
        if len(ids) < 2:
            return self
        changes = np.flatnonzero(ids[1:] != ids[:-1]) + 1
        if len(changes) == len(ids) - 1:
            return self
        starts = np.concatenate(([0], changes))
        high = np.maximum.reduceat(self.high, starts, axis=0)
        # Where column 1 (the first value) peaked in each group: the first bucket holding the max.
        group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(ids))))
        holds_max = np.flatnonzero(self.high[:, 1] == high[group, 1])
        holder_groups = group[holds_max]
        first_holder = holds_max[np.concatenate(([True], holder_groups[1:] != holder_groups[:-1]))]
        return _Buckets(
            ids[starts],
            np.add.reduceat(self.count, starts),
            np.add.reduceat(self.total, starts, axis=0),
            np.minimum.reduceat(self.low, starts, axis=0),
            high,
            self.max_key[first_holder],
        )


class Downsampler:
    """Buckets of ``width`` key units over rows of ``n_columns`` values.

    Args:
        n_columns: values per row (column 0 is the one whose maximum's key is kept).
        max_points: most buckets kept (>= 2).
        width: the initial bucket width in key units (1 for step indices: one step per bucket
            until there are more than ``max_points`` steps).
    """

    def __init__(self, n_columns: int, max_points: int, width: float) -> None:
        self.n_columns = int(n_columns)
        self.max_points = int(max_points)
        self.width = float(width)
        self.rows = 0
        empty = np.empty((0, self.n_columns + 1))
        self._buckets = _Buckets(np.empty(0, dtype=np.int64), np.empty(0), empty, empty, empty, np.empty(0))

    def __len__(self) -> int:
        return len(self._buckets)

    def copy(self) -> "Downsampler":
        """An independent copy (the arrays are shared: they are replaced, never changed in place)."""
        twin = Downsampler(self.n_columns, self.max_points, self.width)
        twin.rows, twin._buckets = self.rows, self._buckets
        return twin

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Take rows: ``keys`` (n,) and ``values`` (n, n_columns). Keys should not decrease; rows
        that go back in key are still counted in the right bucket, only more slowly. Cost:
        O(len(keys) + max_points)."""
        if len(keys) == 0:
            return
        keyed = np.column_stack([np.asarray(keys, dtype=np.float64), values]).astype(np.float64, copy=False)
        self.rows += len(keyed)
        ids = np.floor(keyed[:, 0] / self.width).astype(np.int64)
        batch = _Buckets.of_rows(ids, keyed)
        if np.any(ids[1:] < ids[:-1]):
            batch = batch.take(np.argsort(ids, kind="stable"))
        batch = batch.grouped()
        kept = self._buckets
        if len(kept) and batch.ids[0] < kept.ids[-1]:
            merged = kept.then(batch)
            kept = merged.take(np.argsort(merged.ids, kind="stable")).grouped()
        elif len(kept) and batch.ids[0] == kept.ids[-1]:
            # The usual case: the batch continues the last bucket; only that one merges.
            kept = kept.take(slice(None, -1)).then(kept.take(slice(-1, None)).then(batch).grouped())
        else:
            kept = kept.then(batch)
        while len(kept) > self.max_points:
            self.width *= 2.0
            kept.ids = kept.ids // 2
            kept = kept.grouped()
        self._buckets = kept

    def series(self, column_names: List[str]) -> Dict[str, Any]:
        """The buckets as JSON lists: ``count``, ``first_key``, ``last_key``, ``mean_key``,
        ``max_key`` (where column 0 peaked) and, per column name, ``min``/``mean``/``max``."""
        buckets = self._buckets
        mean: Optional[np.ndarray] = buckets.total / buckets.count[:, None] if len(buckets) else buckets.total
        assert mean is not None
        return {
            "count": buckets.count.astype(np.int64).tolist(),
            "first_key": buckets.low[:, 0].tolist(),
            "last_key": buckets.high[:, 0].tolist(),
            "mean_key": mean[:, 0].tolist(),
            "max_key": buckets.max_key.tolist(),
            "columns": {
                name: {
                    "min": buckets.low[:, column + 1].tolist(),
                    "mean": mean[:, column + 1].tolist(),
                    "max": buckets.high[:, column + 1].tolist(),
                }
                for column, name in enumerate(column_names)
            },
        }
