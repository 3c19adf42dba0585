"""The SQLite run store: runs, per-step records, windows, power trace, logged metrics, reports.

One file holds many runs (of many processes: each rank writes its own run). The database is in
WAL mode, so readers (``hf-eco2ai runs``, ``serve --run``) never block the writer and a process
killed mid-run leaves everything up to its last commit readable.

Writes go through a ``RunWriter``: callers enqueue rows and return at once; one background thread
commits them in batches every ``flush_interval_s``. Nothing here is ever called from a training
step: the session feeds the writer at drain time. Reads (``RunStore`` methods) open a short-lived
connection each, so they are safe from any thread.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import sqlite3
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.store.tracer_tables import SCHEMA_VERSION as STORE_SCHEMA_VERSION, upgrade_schema
STORE_FILE_NAME = "runs.sqlite"
_BUSY_TIMEOUT_MS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    project_name TEXT NOT NULL,
    experiment_id TEXT,
    model_name TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    local_rank INTEGER NOT NULL,
    world_size INTEGER NOT NULL,
    status TEXT NOT NULL,
    started_unix_s REAL NOT NULL,
    ended_unix_s REAL,
    updated_unix_s REAL NOT NULL,
    channels_json TEXT NOT NULL,
    intensity_json TEXT,
    config_json TEXT,
    latest_json TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL,
    step_index INTEGER NOT NULL,
    epoch INTEGER,
    t0_s REAL NOT NULL,
    t1_s REAL NOT NULL,
    joules REAL NOT NULL,
    flags INTEGER NOT NULL,
    joules_by_channel BLOB NOT NULL,
    PRIMARY KEY (run_id, step_index)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS windows (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    t0_s REAL NOT NULL,
    t1_s REAL NOT NULL,
    joules REAL NOT NULL,
    flags INTEGER NOT NULL,
    joules_by_channel BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS windows_by_run ON windows (run_id, t0_s);
CREATE TABLE IF NOT EXISTS power (
    run_id TEXT NOT NULL,
    t_s REAL NOT NULL,
    watts_by_channel BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS power_by_run ON power (run_id, t_s);
CREATE TABLE IF NOT EXISTS logs (
    run_id TEXT NOT NULL,
    unix_time_s REAL NOT NULL,
    step INTEGER,
    metrics_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_by_run ON logs (run_id, unix_time_s);
CREATE TABLE IF NOT EXISTS reports (
    run_id TEXT PRIMARY KEY,
    created_unix_s REAL NOT NULL,
    report_json TEXT NOT NULL
);
"""

StorePath = Union[str, "os.PathLike[str]"]


def default_store_path(output_dir: StorePath) -> Path:
    """Where a session keeps its runs unless told otherwise: ``<output_dir>/runs.sqlite``."""
    return Path(output_dir) / STORE_FILE_NAME


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                 check_same_thread=True)
    connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    # NORMAL is durable across process crashes in WAL mode; only a power cut can lose the last
    # commits, which is an acceptable trade for not fsyncing on every batch.
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def _floats_to_blob(values: Sequence[float]) -> bytes:
    return np.asarray(values, dtype="<f8").tobytes()


def _blob_to_floats(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8")


def _step_rows(run_id: str, index: np.ndarray, epoch: np.ndarray, t0_s: np.ndarray, t1_s: np.ndarray,
               joules: np.ndarray, flags: np.ndarray, joules_by_channel: np.ndarray) -> List[Tuple[Any, ...]]:
    return [
        (run_id, step, None if step_epoch < 0 else step_epoch, start, end, energy, step_flags,
         _floats_to_blob(row))
        for step, step_epoch, start, end, energy, step_flags, row in zip(
            index.tolist(), epoch.tolist(), t0_s.tolist(), t1_s.tolist(), joules.tolist(), flags.tolist(),
            joules_by_channel)
    ]


def _json_or_none(text: Optional[str]) -> Any:
    return None if text is None else json.loads(text)


def _pid_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunSummary:
    """One run as the CLI lists it. Energy in kWh (PUE applied), CO2 in kg CO2e.

    ``status`` is ``running``, ``finished`` or ``failed`` as the run last wrote it, except that a
    ``running`` run whose process is gone from this host reads as ``interrupted``.
    """

    run_id: str
    project_name: str
    experiment_id: Optional[str]
    model_name: Optional[str]
    host: str
    pid: int
    rank: int
    local_rank: int
    world_size: int
    status: str
    started_unix_s: float
    ended_unix_s: Optional[float]
    updated_unix_s: float
    channels: List[Dict[str, Any]]
    intensity: Optional[Dict[str, Any]]
    config: Optional[Dict[str, Any]]
    latest: Dict[str, Any]
    step_count: int

    @property
    def energy_kwh_total(self) -> Optional[float]:
        return self.latest.get("energy_kwh_total")

    @property
    def co2_kg_total(self) -> Optional[float]:
        return self.latest.get("co2_kg_total")

    @property
    def duration_s(self) -> float:
        end = self.ended_unix_s if self.ended_unix_s is not None else self.updated_unix_s
        return max(0.0, end - self.started_unix_s)


@dataclass(frozen=True)
class StoredSteps:
    """A run's step records as columns, in step order; ``joules_by_channel`` has one column per
    channel in ``channels`` order (J, no PUE); ``joules`` sums the top-level channels."""

    channels: List[str]
    index: np.ndarray
    epoch: List[Optional[int]]
    t0_s: np.ndarray
    t1_s: np.ndarray
    joules: np.ndarray
    flags: np.ndarray
    joules_by_channel: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])


class RunStore:
    """Read access to a run store file, and the factory of its writers.

    Creating a ``RunStore`` creates the file and its tables if they do not exist. Every method
    opens its own connection, so one instance may be shared between threads.

    Raises:
        ConfigurationError: the path cannot be opened as a store (names the path and the reason).
    """

    def __init__(self, path: StorePath) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = _connect(self.path)
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.executescript(_SCHEMA)
                connection.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(STORE_SCHEMA_VERSION),),
                )
                version = connection.execute(
                    "SELECT value FROM meta WHERE key = 'schema_version'"
                ).fetchone()[0]
                version = upgrade_schema(connection, int(version))
            finally:
                connection.close()
        except (OSError, sqlite3.Error) as error:
            raise ConfigurationError(
                f"store_path {str(self.path)!r} cannot be used as a run store: {error}; "
                "give a writable file path"
            ) from error
        if int(version) != STORE_SCHEMA_VERSION:
            raise ConfigurationError(
                f"store_path {str(self.path)!r} holds store schema {version}; this hf_eco2ai "
                f"reads schema {STORE_SCHEMA_VERSION} only; use another file"
            )

    def writer(self, flush_interval_s: float = 0.5,
               on_error: Optional[Callable[[BaseException], None]] = None) -> "RunWriter":
        """A new background writer for this file (starts its thread at once)."""
        return RunWriter(self.path, flush_interval_s=flush_interval_s, on_error=on_error)

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        connection = _connect(self.path)
        try:
            return connection.execute(sql, parameters).fetchall()
        finally:
            connection.close()

    def resolve_run_id(self, run_id_or_prefix: str) -> str:
        """The full run id that ``run_id_or_prefix`` names (a unique prefix is enough).

        Raises:
            KeyError: no run, or more than one run, matches; the message lists the candidates.
        """
        escaped = run_id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._read("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY run_id",
                          (escaped + "%",))
        ids = [row[0] for row in rows]
        if run_id_or_prefix in ids:
            return run_id_or_prefix
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise KeyError(f"no run {run_id_or_prefix!r} in {self.path}")
        raise KeyError(f"{run_id_or_prefix!r} is ambiguous in {self.path}: it matches {', '.join(ids)}")

    _SUMMARY_COLUMNS = (
        "r.run_id, r.project_name, r.experiment_id, r.model_name, r.host, r.pid, r.rank, "
        "r.local_rank, r.world_size, r.status, r.started_unix_s, r.ended_unix_s, r.updated_unix_s, "
        "r.channels_json, r.intensity_json, r.config_json, r.latest_json, "
        "(SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id)"
    )

    def _summary(self, row: Tuple[Any, ...]) -> RunSummary:
        status = row[9]
        if status == "running" and row[4] == socket.gethostname() and not _pid_is_alive(row[5]):
            status = "interrupted"
        return RunSummary(
            run_id=row[0], project_name=row[1], experiment_id=row[2], model_name=row[3],
            host=row[4], pid=row[5], rank=row[6], local_rank=row[7], world_size=row[8],
            status=status, started_unix_s=row[10], ended_unix_s=row[11], updated_unix_s=row[12],
            channels=json.loads(row[13]), intensity=_json_or_none(row[14]),
            config=_json_or_none(row[15]), latest=_json_or_none(row[16]) or {}, step_count=row[17],
        )

    def list_runs(self, project_name: Optional[str] = None, limit: Optional[int] = None) -> List[RunSummary]:
        """Runs, newest first; only ``project_name``'s when given; at most ``limit``."""
        sql = f"SELECT {self._SUMMARY_COLUMNS} FROM runs r"
        parameters: List[Any] = []
        if project_name is not None:
            sql += " WHERE r.project_name = ?"
            parameters.append(project_name)
        sql += " ORDER BY r.started_unix_s DESC, r.run_id"
        if limit is not None:
            sql += " LIMIT ?"
            parameters.append(int(limit))
        return [self._summary(row) for row in self._read(sql, parameters)]

    def get_run(self, run_id_or_prefix: str) -> RunSummary:
        """One run's summary. Raises KeyError if no run (or several) match."""
        run_id = self.resolve_run_id(run_id_or_prefix)
        rows = self._read(f"SELECT {self._SUMMARY_COLUMNS} FROM runs r WHERE r.run_id = ?", (run_id,))
        return self._summary(rows[0])

    def compare(self, run_ids_or_prefixes: Sequence[str]) -> List[RunSummary]:
        """The summaries of the runs named, in the order given. Raises KeyError for an unknown one."""
        return [self.get_run(run_id) for run_id in run_ids_or_prefixes]

    def latest(self, run_id_or_prefix: str) -> Dict[str, Any]:
        """The latest figures the run wrote (energy, CO2, steps, power, budget...): the dict that
        ``hf-eco2ai serve --run`` exposes. Empty until the run's first drain."""
        return self.get_run(run_id_or_prefix).latest

    def steps(self, run_id_or_prefix: str) -> StoredSteps:
        """All step records of a run, in step order (the tail record, flag 16, included)."""
        summary = self.get_run(run_id_or_prefix)
        rows = self._read(
            "SELECT step_index, epoch, t0_s, t1_s, joules, flags, joules_by_channel FROM steps "
            "WHERE run_id = ? ORDER BY step_index",
            (summary.run_id,),
        )
        channel_names = [channel["name"] for channel in summary.channels]
        by_channel = np.zeros((len(rows), len(channel_names)))
        for position, row in enumerate(rows):
            by_channel[position, :] = _blob_to_floats(row[6])
        return StoredSteps(
            channels=channel_names,
            index=np.array([row[0] for row in rows], dtype=np.int64),
            epoch=[row[1] for row in rows],
            t0_s=np.array([row[2] for row in rows], dtype=np.float64),
            t1_s=np.array([row[3] for row in rows], dtype=np.float64),
            joules=np.array([row[4] for row in rows], dtype=np.float64),
            flags=np.array([row[5] for row in rows], dtype=np.uint32),
            joules_by_channel=by_channel,
        )

    def windows(self, run_id_or_prefix: str) -> List[Dict[str, Any]]:
        """Named window records of a run in time order: ``name``, ``t0_s``, ``t1_s``, ``joules``,
        ``flags`` and ``joules_by_channel`` (channel -> J)."""
        summary = self.get_run(run_id_or_prefix)
        channel_names = [channel["name"] for channel in summary.channels]
        rows = self._read(
            "SELECT name, t0_s, t1_s, joules, flags, joules_by_channel FROM windows "
            "WHERE run_id = ? ORDER BY t0_s", (summary.run_id,),
        )
        return [
            {"name": row[0], "t0_s": row[1], "t1_s": row[2], "joules": row[3], "flags": row[4],
             "joules_by_channel": dict(zip(channel_names, _blob_to_floats(row[5]).tolist()))}
            for row in rows
        ]

    def power_trace(self, run_id_or_prefix: str) -> Tuple[List[float], Dict[str, List[float]]]:
        """The run's power samples: times (s since run start) and watts per channel."""
        summary = self.get_run(run_id_or_prefix)
        channel_names = [channel["name"] for channel in summary.channels]
        rows = self._read("SELECT t_s, watts_by_channel FROM power WHERE run_id = ? ORDER BY t_s",
                          (summary.run_id,))
        watts: Dict[str, List[float]] = {name: [] for name in channel_names}
        for _, blob in rows:
            for name, value in zip(channel_names, _blob_to_floats(blob).tolist()):
                watts[name].append(value)
        return [row[0] for row in rows], watts

    def logs(self, run_id_or_prefix: str) -> List[Dict[str, Any]]:
        """Metrics logged through ``TrackingSession.log`` in order, each with ``unix_time_s``/``step``."""
        run_id = self.resolve_run_id(run_id_or_prefix)
        rows = self._read("SELECT unix_time_s, step, metrics_json FROM logs WHERE run_id = ? "
                          "ORDER BY unix_time_s", (run_id,))
        return [{"unix_time_s": row[0], "step": row[1], **json.loads(row[2])} for row in rows]

    def report(self, run_id_or_prefix: str) -> Optional[Dict[str, Any]]:
        """The run's final ``tracking_data`` report, or None if the run never finished."""
        run_id = self.resolve_run_id(run_id_or_prefix)
        rows = self._read("SELECT report_json FROM reports WHERE run_id = ?", (run_id,))
        return json.loads(rows[0][0]) if rows else None


@dataclass(frozen=True)
class RunIdentity:
    """What the store records about a run when it begins."""

    run_id: str
    project_name: str
    experiment_id: Optional[str]
    model_name: Optional[str]
    host: str
    rank: int
    local_rank: int
    world_size: int
    started_unix_s: float
    channels: List[Dict[str, Any]]
    intensity: Optional[Dict[str, Any]]
    config: Optional[Dict[str, Any]]


_Operation = Tuple[str, Any]


class RunWriter:
    """A background thread that commits queued rows to the store in batches.

    Every ``add_*``/``update_*`` method only enqueues and returns at once (safe from any thread);
    the thread commits whatever is queued every ``flush_interval_s`` in one transaction. A failed
    commit calls ``on_error`` (the session counts it and warns once) and the writer goes on.
    ``flush()`` waits until everything enqueued before it is committed; ``close()`` flushes and
    stops the thread. Both are idempotent.
    """

    def __init__(self, path: StorePath, flush_interval_s: float = 0.5,
                 on_error: Optional[Callable[[BaseException], None]] = None) -> None:
        if not flush_interval_s > 0:
            raise ConfigurationError(
                f"flush_interval_s is {flush_interval_s!r}; it must be a positive number of seconds"
            )
        self.path = Path(path)
        self.flush_interval_s = float(flush_interval_s)
        self._on_error = on_error
        self._queue: "queue.SimpleQueue[_Operation]" = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self.errors = 0
        self._thread = threading.Thread(target=self._run, name="hf-eco2ai-store-writer", daemon=True)
        self._thread.start()

    # Producers ----------------------------------------------------------------------------------

    def begin_run(self, identity: RunIdentity) -> None:
        """Record a new run as ``running``."""
        self._queue.put(("begin", identity))

    def add_steps(self, run_id: str, index: np.ndarray, epoch: np.ndarray,
                  t0_s: np.ndarray, t1_s: np.ndarray, joules: np.ndarray, flags: np.ndarray,
                  joules_by_channel: np.ndarray) -> None:
        """Queue step records: columns as in ``StepRecords``, ``joules`` the top-level sum (J),
        ``epoch`` negative for none. The arrays are kept as given (the caller must not change
        them), so the rows are built on the writer's thread, not the caller's."""
        if len(index):
            self._queue.put(("steps", (run_id, index, epoch, t0_s, t1_s, joules, flags, joules_by_channel)))

    def add_windows(self, run_id: str, names: Sequence[str], t0_s: np.ndarray, t1_s: np.ndarray,
                    joules: np.ndarray, flags: np.ndarray, joules_by_channel: np.ndarray) -> None:
        """Queue window records."""
        rows = [
            (run_id, str(names[i]), float(t0_s[i]), float(t1_s[i]), float(joules[i]), int(flags[i]),
             _floats_to_blob(joules_by_channel[i]))
            for i in range(len(names))
        ]
        if rows:
            self._queue.put(("windows", rows))

    def add_power(self, run_id: str, t_s: float, watts_by_channel: Sequence[float]) -> None:
        """Queue one power sample: seconds since run start, W per channel in channel order."""
        self._queue.put(("power", (run_id, float(t_s), _floats_to_blob(watts_by_channel))))

    def add_log(self, run_id: str, unix_time_s: float, step: Optional[int],
                metrics: Mapping[str, Any]) -> None:
        """Queue one set of logged metrics (JSON types; the mapping must not change afterwards)."""
        self._queue.put(("log", (run_id, float(unix_time_s), step, metrics)))

    def update_latest(self, run_id: str, latest: Mapping[str, Any],
                      intensity: Optional[Mapping[str, Any]] = None) -> None:
        """Replace the run's latest figures (and its intensity when given); the mappings must not
        change afterwards (they are serialised on the writer's thread)."""
        self._queue.put(("latest", (run_id, latest, intensity)))

    def finish_run(self, run_id: str, status: str, ended_unix_s: float,
                   report: Optional[Mapping[str, Any]]) -> None:
        """Mark the run ``finished``/``failed`` and keep its final report."""
        report_json = None if report is None else json.dumps(report, allow_nan=False)
        self._queue.put(("finish", (run_id, status, float(ended_unix_s), report_json)))

    def add_rows(self, sql: str, rows: Iterable[Tuple[Any, ...]]) -> None:
        """Queue ``executemany(sql, rows)``; ``rows`` may be a generator, consumed on the writer's thread."""
        self._queue.put(("rows", (sql, rows)))

    def flush(self, timeout_s: Optional[float] = 30.0) -> bool:
        """Wait until everything queued so far is committed; False if ``timeout_s`` ran out."""
        if not self._thread.is_alive():
            return self._queue.empty()
        done = threading.Event()
        self._queue.put(("barrier", done))
        return done.wait(timeout_s)

    def close(self, timeout_s: Optional[float] = 30.0) -> None:
        """Commit what is queued and stop the thread."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(("close", None))
        self._thread.join(timeout_s)

    # The thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        connection: Optional[sqlite3.Connection] = None
        stopping = False
        while not stopping:
            batch: List[_Operation] = []
            try:
                batch.append(self._queue.get(timeout=self.flush_interval_s))
            except queue.Empty:
                continue
            # Batching is the point: take whatever piled up during the interval in one commit.
            deadline = time.monotonic() + self.flush_interval_s
            while batch[-1][0] not in ("barrier", "close"):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            try:
                if connection is None:
                    connection = _connect(self.path)
                self._commit(connection, batch)
            except (sqlite3.Error, OSError, ValueError) as error:
                self.errors += 1
                if self._on_error is not None:
                    self._on_error(error)
                else:
                    warnings.warn(f"hf_eco2ai run store {self.path}: a write failed: {error}",
                                  RuntimeWarning, stacklevel=1)
            for kind, payload in batch:
                if kind == "barrier":
                    payload.set()
                elif kind == "close":
                    stopping = True
        if connection is not None:
            connection.close()

    @staticmethod
    def _commit(connection: sqlite3.Connection, batch: List[_Operation]) -> None:
        now = time.time()
        connection.execute("BEGIN IMMEDIATE")
        try:
            for kind, payload in batch:
                if kind == "begin":
                    identity: RunIdentity = payload
                    connection.execute(
                        "INSERT OR REPLACE INTO runs (run_id, project_name, experiment_id, model_name, "
                        "host, pid, rank, local_rank, world_size, status, started_unix_s, ended_unix_s, "
                        "updated_unix_s, channels_json, intensity_json, config_json, latest_json) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, NULL, ?, ?, ?, ?, NULL)",
                        (identity.run_id, identity.project_name, identity.experiment_id,
                         identity.model_name, identity.host, os.getpid(), identity.rank,
                         identity.local_rank, identity.world_size, identity.started_unix_s, now,
                         json.dumps(identity.channels),
                         None if identity.intensity is None else json.dumps(identity.intensity),
                         None if identity.config is None else json.dumps(identity.config)),
                    )
                elif kind == "steps":
                    connection.executemany(
                        "INSERT OR REPLACE INTO steps (run_id, step_index, epoch, t0_s, t1_s, joules, "
                        "flags, joules_by_channel) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", _step_rows(*payload))
                elif kind == "windows":
                    connection.executemany(
                        "INSERT INTO windows (run_id, name, t0_s, t1_s, joules, flags, "
                        "joules_by_channel) VALUES (?, ?, ?, ?, ?, ?, ?)", payload)
                elif kind == "power":
                    connection.execute(
                        "INSERT INTO power (run_id, t_s, watts_by_channel) VALUES (?, ?, ?)", payload)
                elif kind == "log":
                    run_id, unix_time_s, step, metrics = payload
                    connection.execute(
                        "INSERT INTO logs (run_id, unix_time_s, step, metrics_json) VALUES (?, ?, ?, ?)",
                        (run_id, unix_time_s, step, json.dumps(dict(metrics))))
                elif kind == "latest":
                    run_id, latest, intensity = payload
                    connection.execute(
                        "UPDATE runs SET latest_json = ?, updated_unix_s = ?, "
                        "intensity_json = COALESCE(?, intensity_json) WHERE run_id = ?",
                        (json.dumps(dict(latest)), now, None if intensity is None else json.dumps(dict(intensity)),
                         run_id))
                elif kind == "rows":
                    connection.executemany(*payload)
                elif kind == "finish":
                    run_id, status, ended_unix_s, report_json = payload
                    connection.execute(
                        "UPDATE runs SET status = ?, ended_unix_s = ?, updated_unix_s = ? WHERE run_id = ?",
                        (status, ended_unix_s, now, run_id))
                    if report_json is not None:
                        connection.execute(
                            "INSERT OR REPLACE INTO reports (run_id, created_unix_s, report_json) "
                            "VALUES (?, ?, ?)", (run_id, now, report_json))
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
