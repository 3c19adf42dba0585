"""A series of any length kept in at most ``max_points`` buckets, with min, mean and max per bucket.

Rows arrive in batches with a key that grows (a step index, a time in seconds). Each bucket covers
``width`` key units; when the buckets outnumber ``max_points`` the width doubles and neighbours
merge, so memory stays O(max_points) however long the run, and the largest value of each column
survives every merge (a one-step spike is never averaged away). Not thread-safe: the session holds
its lock around it.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np


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
        self._ids = np.empty(0, dtype=np.int64)
        self._count = np.empty(0)
        self._first_key = np.empty(0)
        self._last_key = np.empty(0)
        self._key_sum = np.empty(0)
        self._max_key = np.empty(0)
        self._sum = np.empty((0, self.n_columns))
        self._min = np.empty((0, self.n_columns))
        self._max = np.empty((0, self.n_columns))

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def copy(self) -> "Downsampler":
        """An independent copy (the arrays are shared: they are replaced, never changed in place)."""
        twin = Downsampler(self.n_columns, self.max_points, self.width)
        twin.rows = self.rows
        twin._keep(self._buckets())
        return twin

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Take rows: ``keys`` (n,) and ``values`` (n, n_columns). Keys should not decrease; rows
        that go back in key are still counted in the right bucket, only more slowly."""
        if len(keys) == 0:
            return
        keys = np.asarray(keys, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64).reshape(len(keys), self.n_columns)
        self.rows += len(keys)
        ids = np.floor(keys / self.width).astype(np.int64)
        batch = _Buckets(ids, np.ones(len(keys)), keys, keys, keys, keys, values, values, values)
        if np.any(ids[1:] < ids[:-1]):
            batch = batch.take(np.argsort(ids, kind="stable"))
        batch = batch.grouped()
        if len(self._ids) and batch.ids[0] < self._ids[-1]:
            merged = self._buckets().concatenated(batch)
            self._keep(merged.take(np.argsort(merged.ids, kind="stable")).grouped())
        elif len(self._ids) and batch.ids[0] == self._ids[-1]:
            # The usual case: the batch continues the last bucket; only that one merges.
            everything = self._buckets()
            joined = everything.take(slice(-1, None)).concatenated(batch).grouped()
            self._keep(everything.take(slice(None, -1)).concatenated(joined))
        else:
            self._keep(self._buckets().concatenated(batch))
        while len(self._ids) > self.max_points:
            self.width *= 2.0
            coarser = self._buckets()
            coarser.ids = coarser.ids // 2
            self._keep(coarser.grouped())

    def _buckets(self) -> "_Buckets":
        return _Buckets(self._ids, self._count, self._first_key, self._last_key, self._key_sum,
                        self._max_key, self._sum, self._min, self._max)

    def _keep(self, buckets: "_Buckets") -> None:
        (self._ids, self._count, self._first_key, self._last_key, self._key_sum, self._max_key,
         self._sum, self._min, self._max) = buckets.fields()

    def series(self, column_names: List[str]) -> Dict[str, object]:
        """The buckets as JSON lists: ``count``, ``first_key``, ``last_key``, ``mean_key``,
        ``max_key`` (where column 0 peaked) and, per column name, ``min``/``mean``/``max``."""
        mean = self._sum / self._count[:, None] if len(self._count) else self._sum
        return {
            "count": self._count.astype(np.int64).tolist(),
            "first_key": self._first_key.tolist(),
            "last_key": self._last_key.tolist(),
            "mean_key": (self._key_sum / self._count).tolist() if len(self._count) else [],
            "max_key": self._max_key.tolist(),
            "columns": {
                name: {"min": self._min[:, column].tolist(), "mean": mean[:, column].tolist(),
                       "max": self._max[:, column].tolist()}
                for column, name in enumerate(column_names)
            },
        }


class _Buckets:
    """Bucket aggregates as parallel arrays (a single row is a bucket of one)."""

    __slots__ = ("ids", "count", "first_key", "last_key", "key_sum", "max_key", "sum", "min", "max")

    def __init__(self, ids: np.ndarray, count: np.ndarray, first_key: np.ndarray, last_key: np.ndarray,
                 key_sum: np.ndarray, max_key: np.ndarray, total: np.ndarray, low: np.ndarray,
                 high: np.ndarray) -> None:
        self.ids, self.count, self.first_key, self.last_key = ids, count, first_key, last_key
        self.key_sum, self.max_key, self.sum, self.min, self.max = key_sum, max_key, total, low, high

    def fields(self) -> tuple:
        return (self.ids, self.count, self.first_key, self.last_key, self.key_sum, self.max_key,
                self.sum, self.min, self.max)

    def take(self, order: Any) -> "_Buckets":
        return _Buckets(*(field[order] for field in self.fields()))

    def concatenated(self, other: "_Buckets") -> "_Buckets":
        return _Buckets(*(np.concatenate([mine, theirs]) for mine, theirs in zip(self.fields(), other.fields())))

    def grouped(self) -> "_Buckets":
        """Buckets with equal (sorted) ids merged into one."""
        ids = self.ids
        if len(ids) < 2 or not np.any(ids[1:] == ids[:-1]):
            return self
        starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
        high = np.maximum.reduceat(self.max, starts, axis=0)
        group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(ids))))
        holds_max = np.flatnonzero(self.max[:, 0] == high[group, 0])
        holder_groups = group[holds_max]
        first_holder = holds_max[np.flatnonzero(np.diff(holder_groups, prepend=-1) != 0)]
        return _Buckets(
            ids[starts], np.add.reduceat(self.count, starts), np.minimum.reduceat(self.first_key, starts),
            np.maximum.reduceat(self.last_key, starts), np.add.reduceat(self.key_sum, starts),
            self.max_key[first_holder], np.add.reduceat(self.sum, starts, axis=0),
            np.minimum.reduceat(self.min, starts, axis=0), high,
        )
