"""``StorageBackend``: the Tracer API's view of the run store (``<storage_path>/runs.sqlite``).

Writes go through the store's background writer (``RunWriter``): callers enqueue and return at
once, and one thread commits batches. With ``async_writes=False`` every checkpoint and anomaly
write waits until it is committed. Reads open their own connection, so they are safe from any
thread and while a run is writing (WAL).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from hf_eco2ai.store import tracer_tables
from hf_eco2ai.store.run_store import RunIdentity, RunStore, RunWriter
from hf_eco2ai.tracer.config import TracerConfig

__all__ = ["AnomalyRecord", "StorageBackend", "StepStatistics"]

logger = logging.getLogger("hf_eco2ai.tracer")

AnomalyRecord = Dict[str, Any]


def _json(value: Any) -> str:
    # Non-finite numbers are kept as null: the JSON columns must stay readable by any reader.
    return json.dumps(_finite(value), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, (np.floating, np.integer)):
        return _finite(value.item())
    if isinstance(value, Mapping):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if value is None or isinstance(value, (str, bool, int)):
        return value
    return str(value)


class StepStatistics:
    """A run's per-step rows as columns, in step order.

    ``gradients`` is ``(steps, layers, 3)`` float32 (norm, max |g|, NaN/Inf count; a negative norm
    marks a layer without gradient that step, NaN a step without a gradient row); ``loss`` and
    ``memory_bytes`` are float64, meaningful where ``loss_recorded``/``memory_recorded`` say so
    (a loss that was NaN in training reads back as NaN).
    """

    def __init__(
        self,
        layers: List[str],
        steps: np.ndarray,
        loss: np.ndarray,
        loss_recorded: np.ndarray,
        memory_bytes: np.ndarray,
        memory_recorded: np.ndarray,
        gradients: np.ndarray,
        has_gradients: np.ndarray,
    ) -> None:
        self.layers = layers
        self.steps = steps
        self.loss = loss
        self.loss_recorded = loss_recorded
        self.memory_bytes = memory_bytes
        self.memory_recorded = memory_recorded
        self.gradients = gradients
        self.has_gradients = has_gradients

    def __len__(self) -> int:
        return int(self.steps.shape[0])


class StorageBackend:
    """Low-level storage of traced runs, over the run store.

    Args:
        config: the ``TracerConfig`` (its ``storage_path``, ``async_writes``).
        store: an open ``RunStore`` to use instead of ``<storage_path>/runs.sqlite``.

    Threading: every method may be called from any thread; writes are ordered as they are made.

    Raises:
        ConfigurationError: the store file cannot be created or holds an unknown schema.
    """

    def __init__(
        self,
        config: TracerConfig,
        store: Optional[RunStore] = None,
        on_error: Optional[Callable[[BaseException], None]] = None,
    ) -> None:
        self.config = config
        # Absolute, so that the writer thread keeps the same file if the process changes directory.
        self.store = store if store is not None else RunStore(config.store_file.absolute())
        self.on_error = on_error
        self._writer: Optional[RunWriter] = None
        self._write_failures = 0

    @property
    def writer(self) -> RunWriter:
        """The background writer (started on first use). A failed commit goes to ``on_error``
        (the tracer counts it in the session's monitoring errors) or is logged once."""
        if self._writer is None:
            self._writer = self.store.writer(on_error=self._write_failed)
        return self._writer

    def _write_failed(self, error: BaseException) -> None:
        if self.on_error is not None:
            self.on_error(error)
            return
        self._write_failures += 1
        if self._write_failures == 1:
            logger.warning(
                "hf-eco2ai: tracer: a write to %s failed (%s: %s); later failures are counted only",
                self.store.path,
                type(error).__name__,
                error,
            )

    def _committed(self) -> None:
        if not self.config.async_writes:
            self.writer.flush()

    # Writes ---------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        project_name: str,
        run_name: Optional[str],
        start_time: float,
        config: Mapping[str, Any],
        *,
        layers: Sequence[str] = (),
        tags: Sequence[str] = (),
        notes: Optional[str] = None,
        register: bool = True,
    ) -> None:
        """Record a run: its identity in the store's ``runs`` table (unless ``register=False``,
        when a ``TrackingSession`` has recorded it already) and its Tracer details."""
        if register:
            self.writer.begin_run(
                RunIdentity(
                    run_id=run_id,
                    project_name=project_name,
                    experiment_id=None,
                    model_name=None,
                    host=socket.gethostname(),
                    rank=int(os.environ.get("RANK", 0)),
                    local_rank=int(os.environ.get("LOCAL_RANK", 0)),
                    world_size=int(os.environ.get("WORLD_SIZE", 1)),
                    started_unix_s=float(start_time),
                    channels=[],
                    intensity=None,
                    config=dict(config),
                )
            )
        self.writer.add_rows(
            tracer_tables.INSERT_TRACER_RUN,
            [
                (
                    run_id,
                    run_name or run_id,
                    _json(list(tags)),
                    notes,
                    _json(list(layers)),
                    _json(dict(config)),
                )
            ],
        )
        self._committed()

    def write_checkpoint(
        self,
        run_id: str,
        step: int,
        timestamp: float,
        metrics: Mapping[str, Any],
        gradient_stats: Mapping[str, Any],
        system_metrics: Mapping[str, Any],
        energy_joules: Optional[float] = None,
    ) -> None:
        """Keep one checkpoint (a later one at the same step replaces it). ``energy_joules`` is
        the energy since the previous checkpoint (J, before PUE)."""
        self.writer.add_rows(
            tracer_tables.INSERT_CHECKPOINT,
            [
                (
                    run_id,
                    int(step),
                    float(timestamp),
                    _json(dict(metrics)),
                    _json(dict(gradient_stats)),
                    _json(dict(system_metrics)),
                    None if energy_joules is None else float(energy_joules),
                )
            ],
        )
        self._committed()

    def write_anomalies(self, run_id: str, anomalies: Sequence[AnomalyRecord]) -> None:
        """Keep anomalies (dicts with ``step``, ``type``, ``layer``, ``value``, ``threshold``,
        ``statistic``); one already stored for the same step, type and layer is kept once."""
        now = time.time()
        rows = [
            (
                run_id,
                int(a["step"]),
                str(a["type"]),
                str(a["layer"]),
                _float_or_none(a.get("value")),
                _float_or_none(a.get("threshold")),
                _float_or_none(a.get("statistic")),
                now,
            )
            for a in anomalies
        ]
        if rows:
            self.writer.add_rows(tracer_tables.INSERT_ANOMALY, rows)
            self._committed()

    def write_step_statistics(
        self,
        run_id: str,
        steps: np.ndarray,
        recorded: np.ndarray,
        loss: np.ndarray,
        memory_bytes: np.ndarray,
        gradients: Optional[np.ndarray],
        has_gradients: np.ndarray,
    ) -> None:
        """Queue per-step rows: ``recorded`` holds the bits of ``tracer_tables`` (loss, memory)
        per step. The arrays are kept as given (the caller hands over copies) and turned into rows
        on the writer's thread."""
        if len(steps):
            self.writer.add_rows(
                tracer_tables.INSERT_STEP_STATISTICS,
                _step_rows(run_id, steps, recorded, loss, memory_bytes, gradients, has_gradients),
            )

    def finish_run(
        self, run_id: str, status: str, ended_unix_s: float, report: Optional[Mapping[str, Any]] = None
    ) -> None:
        self.writer.finish_run(run_id, status, ended_unix_s, report)

    def flush(self, timeout_s: Optional[float] = 30.0) -> bool:
        """Wait until everything written so far is committed; False on timeout."""
        return True if self._writer is None else self._writer.flush(timeout_s)

    def close(self) -> None:
        """Commit what is queued and stop the writer thread. Idempotent."""
        if self._writer is not None:
            self._writer.close()

    def delete_expired_runs(
        self, project_name: str, retention_days: int, now_unix_s: Optional[float] = None
    ) -> List[str]:
        """Delete ``project_name``'s runs that started over ``retention_days`` ago and have ended
        (0 keeps everything). Returns the deleted run ids."""
        if retention_days <= 0:
            return []
        cutoff = (time.time() if now_unix_s is None else now_unix_s) - retention_days * 86400.0
        connection = self._connect()
        try:
            expired = tracer_tables.runs_started_before(connection, project_name, cutoff)
            tracer_tables.delete_runs(connection, expired)
        finally:
            connection.close()
        return expired

    # Reads ----------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.store.ensure_created()
        connection = sqlite3.connect(str(self.store.path), timeout=10.0, isolation_level=None)
        connection.execute("PRAGMA busy_timeout = 10000")
        return connection

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        # Reads see this backend's own writes: what it queued is committed first.
        if self._writer is not None:
            self._writer.flush()
        try:
            return self.store.query(sql, parameters)
        except sqlite3.OperationalError as error:
            # A version-1 store opened read-only has no Tracer tables: no Tracer rows.
            if "no such table" in str(error) and self.store.read_only:
                return []
            raise

    def resolve_run_id(self, run_id_or_prefix: str) -> str:
        """The full run id a unique prefix names. Raises KeyError if none or several match."""
        if self._writer is not None:
            self._writer.flush()
        return self.store.resolve_run_id(run_id_or_prefix)

    def list_runs(self, project_name: Optional[str] = None) -> List[Dict[str, Any]]:
        """Runs, newest first (only ``project_name``'s when given): ``run_id``, ``project_name``,
        ``run_name``, ``status``, ``start_time``, ``end_time``, ``tags``, ``notes``."""
        sql = (
            "SELECT r.run_id, r.project_name, t.run_name, r.status, r.started_unix_s, r.ended_unix_s, "
            "t.tags_json, t.notes FROM runs r LEFT JOIN tracer_runs t ON t.run_id = r.run_id"
        )
        parameters: List[Any] = []
        if project_name is not None:
            sql += " WHERE r.project_name = ?"
            parameters.append(project_name)
        sql += " ORDER BY r.started_unix_s DESC, r.run_id"
        summaries = {summary.run_id: summary.status for summary in self.store.list_runs(project_name)}
        return [
            {
                "run_id": row[0],
                "project_name": row[1],
                "run_name": row[2] or row[0],
                "status": summaries.get(row[0], row[3]),
                "start_time": row[4],
                "end_time": row[5],
                "tags": json.loads(row[6]) if row[6] else [],
                "notes": row[7],
            }
            for row in self._read(sql, parameters)
        ]

    def get_run(self, run_id: str) -> Dict[str, Any]:
        """One run's Tracer details: ``run_name``, ``tags``, ``notes``, ``layers``, ``config``
        (empty for a run that the Tracer API did not write). Raises KeyError for an unknown run."""
        run_id = self.resolve_run_id(run_id)
        rows = self._read(
            "SELECT run_name, tags_json, notes, layers_json, config_json FROM tracer_runs WHERE run_id = ?", (run_id,)
        )
        if not rows:
            return {"run_id": run_id, "run_name": run_id, "tags": [], "notes": None, "layers": [], "config": {}}
        run_name, tags, notes, layers, config = rows[0]
        return {
            "run_id": run_id,
            "run_name": run_name,
            "tags": json.loads(tags),
            "notes": notes,
            "layers": json.loads(layers),
            "config": json.loads(config),
        }

    def get_checkpoints(self, run_id: str) -> List[Dict[str, Any]]:
        """A run's checkpoints in step order: ``step``, ``timestamp``, ``metrics``,
        ``gradient_stats``, ``system_metrics``, ``energy_joules``."""
        run_id = self.resolve_run_id(run_id)
        rows = self._read(
            "SELECT step, unix_time_s, metrics_json, gradient_stats_json, system_metrics_json, "
            "energy_joules FROM checkpoints WHERE run_id = ? ORDER BY step",
            (run_id,),
        )
        return [
            {
                "run_id": run_id,
                "step": row[0],
                "timestamp": row[1],
                "metrics": json.loads(row[2]),
                "gradient_stats": json.loads(row[3]),
                "system_metrics": json.loads(row[4]),
                "energy_joules": row[5],
            }
            for row in rows
        ]

    def get_anomalies(self, run_id: str, anomaly_types: Optional[Sequence[str]] = None) -> List[AnomalyRecord]:
        """A run's stored anomalies in step order (only the types listed, when given)."""
        run_id = self.resolve_run_id(run_id)
        rows = self._read(
            "SELECT step, anomaly_type, layer, value, threshold, statistic FROM anomalies "
            "WHERE run_id = ? ORDER BY step, anomaly_type, layer",
            (run_id,),
        )
        wanted = None if anomaly_types is None else set(anomaly_types)
        return [
            {
                "run_id": run_id,
                "step": row[0],
                "type": row[1],
                "layer": row[2],
                "value": row[3],
                "threshold": row[4],
                "statistic": row[5],
            }
            for row in rows
            if wanted is None or row[1] in wanted
        ]

    def get_step_statistics(self, run_id: str) -> StepStatistics:
        """A run's per-step rows (see ``StepStatistics``), in step order; a step stored twice
        (a batch written again) reads once, from its latest batch."""
        details = self.get_run(run_id)
        layers: List[str] = details["layers"]
        rows = self._read(
            "SELECT row_count, layer_count, steps, recorded, loss, memory_bytes, has_gradients, "
            "gradients FROM step_statistics WHERE run_id = ? ORDER BY first_step",
            (details["run_id"],),
        )
        width = len(layers)
        parts: Dict[str, List[np.ndarray]] = {
            name: [] for name in ("steps", "recorded", "loss", "memory", "has", "grads")
        }
        for count, layer_count, steps, recorded, loss, memory, has, gradients in rows:
            parts["steps"].append(np.frombuffer(steps, dtype="<i8"))
            parts["recorded"].append(np.frombuffer(recorded, dtype=np.uint8))
            parts["loss"].append(np.frombuffer(loss, dtype="<f8"))
            parts["memory"].append(np.frombuffer(memory, dtype="<f8"))
            chunk_has = np.frombuffer(has, dtype=np.uint8).astype(bool)
            chunk_grads = np.full((count, width, 3), np.nan, dtype=np.float32)
            if gradients is not None and layer_count == width and width:
                chunk_grads[:] = np.frombuffer(gradients, dtype="<f4").reshape(count, width, 3)
            else:
                chunk_has = np.zeros(count, dtype=bool)
            parts["has"].append(chunk_has)
            parts["grads"].append(chunk_grads)
        if not rows:
            empty = np.zeros(0)
            return StepStatistics(
                layers,
                empty.astype(np.int64),
                empty,
                empty.astype(bool),
                empty,
                empty.astype(bool),
                np.zeros((0, width, 3), dtype=np.float32),
                empty.astype(bool),
            )
        steps_all = np.concatenate(parts["steps"])
        # The last occurrence of each step wins; the result is in step order.
        reversed_unique = np.unique(steps_all[::-1], return_index=True)[1]
        keep = len(steps_all) - 1 - reversed_unique
        recorded_all = np.concatenate(parts["recorded"])[keep]
        return StepStatistics(
            layers=layers,
            steps=steps_all[keep].astype(np.int64),
            loss=np.concatenate(parts["loss"])[keep],
            loss_recorded=(recorded_all & tracer_tables.LOSS_RECORDED) != 0,
            memory_bytes=np.concatenate(parts["memory"])[keep],
            memory_recorded=(recorded_all & tracer_tables.MEMORY_RECORDED) != 0,
            gradients=np.concatenate(parts["grads"])[keep],
            has_gradients=np.concatenate(parts["has"])[keep],
        )


def _float_or_none(value: Any) -> Optional[float]:
    if value is None:
        return None
    number = float(value)
    return number if np.isfinite(number) else None


def _step_rows(
    run_id: str,
    steps: np.ndarray,
    recorded: np.ndarray,
    loss: np.ndarray,
    memory_bytes: np.ndarray,
    gradients: Optional[np.ndarray],
    has_gradients: np.ndarray,
) -> Iterator[Tuple[Any, ...]]:
    # One row per batch: the columns as little-endian blobs (NaN survives in a blob, where SQLite
    # would turn a NaN REAL into NULL).
    layer_count = 0 if gradients is None else int(gradients.shape[1])
    yield (
        run_id,
        int(steps[0]),
        int(steps[-1]),
        len(steps),
        layer_count,
        steps.astype("<i8").tobytes(),
        recorded.astype(np.uint8).tobytes(),
        loss.astype("<f8").tobytes(),
        memory_bytes.astype("<f8").tobytes(),
        has_gradients.astype(np.uint8).tobytes(),
        None if gradients is None else np.ascontiguousarray(gradients, dtype="<f4").tobytes(),
    )
