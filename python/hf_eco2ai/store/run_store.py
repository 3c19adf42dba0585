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

import atexit
import json
import os
import queue
import socket
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

from hf_eco2ai.background import start_loop
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.logs import warn
from hf_eco2ai.meter.flags import FLAG_TAIL
from hf_eco2ai.session.run_records import StepBatch
from hf_eco2ai.store.tracer_tables import (
    READABLE_OLDER_VERSIONS,
    upgrade_schema,
)
from hf_eco2ai.store.tracer_tables import (
    SCHEMA_VERSION as STORE_SCHEMA_VERSION,
)

if TYPE_CHECKING:
    from hf_eco2ai.reporting.comparison import RunComparison

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
    connection = sqlite3.connect(
        str(path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=True
    )
    connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    # NORMAL is durable across process crashes in WAL mode; only a power cut can lose the last
    # commits, which is an acceptable trade for not fsyncing on every batch.
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


def _switch_to_wal(connection: sqlite3.Connection) -> None:
    """Put a new file in WAL mode, waiting for another connection that is creating it too.

    SQLite answers a journal-mode change with "database is locked" at once, without the busy
    timeout, while another connection holds the file; two runs, or a run and a reader, may be
    creating the same store at the same moment.
    """
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    pause_s = 0.001
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() + pause_s > deadline:
                raise
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 0.05)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that can never write: no tables, no WAL switch, no new file.

    ``immutable=1`` is the fallback for a store on read-only media, where SQLite cannot create the
    WAL index it needs to read in WAL mode; such a file cannot change while it is read.
    """
    location = path.resolve().as_uri()
    connection: Optional[sqlite3.Connection] = None
    try:
        connection = sqlite3.connect(
            f"{location}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None
        )
        connection.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
    except sqlite3.OperationalError as error:
        if connection is not None:
            connection.close()
        if "locked" in str(error):
            raise  # a live writer, not read-only media: reading it as immutable could see a torn state
        connection = sqlite3.connect(f"{location}?mode=ro&immutable=1", uri=True, isolation_level=None)
    connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    return connection


def _stored_schema_version(connection: sqlite3.Connection) -> Optional[str]:
    """The file's schema version, or None for a file without the tables yet."""
    try:
        row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else str(row[0])


def _floats_to_blob(values: Sequence[float]) -> bytes:
    return np.asarray(values, dtype="<f8").tobytes()


def _blob_to_floats(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8")


def _step_rows(run_id: str, batch: StepBatch) -> Iterator[Tuple[Any, ...]]:
    # One conversion of each column, then one slice of a single bytes object per row: building
    # a blob per row through numpy costs more than the SQLite insert itself.
    joules_by_channel = batch.joules_by_channel
    width = joules_by_channel.shape[1] * 8 if joules_by_channel.ndim == 2 else 0
    blob = np.ascontiguousarray(joules_by_channel, dtype="<f8").tobytes()
    epochs = [None if value < 0 else value for value in batch.epoch.tolist()]
    offsets = range(0, len(blob), width) if width else [0] * len(batch)
    return zip(
        [run_id] * len(batch),
        batch.index.tolist(),
        epochs,
        batch.t0_s.tolist(),
        batch.t1_s.tolist(),
        batch.joules.tolist(),
        batch.flags.tolist(),
        [blob[offset : offset + width] for offset in offsets],
    )


class DamagedRunError(ConfigurationError):
    """A stored run's row cannot be read; the message names the run and the field."""


# A stored time outside this range cannot be a run's (and breaks date formatting).
_LATEST_PLAUSIBLE_UNIX_S = 4_102_444_800.0  # 2100-01-01


def _json_field(run_id: str, field: str, text: Any, kind: type, optional: bool = True) -> Any:
    if text is None and optional:
        return None
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError) as error:
        raise DamagedRunError(f"run {run_id}: field {field} is not valid JSON ({type(error).__name__})") from None
    if not isinstance(value, kind):
        raise DamagedRunError(
            f"run {run_id}: field {field} holds a JSON {type(value).__name__}, expected {kind.__name__}"
        )
    return value


def _time_field(run_id: str, field: str, value: Any, optional: bool = False) -> Optional[float]:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= _LATEST_PLAUSIBLE_UNIX_S:
        raise DamagedRunError(f"run {run_id}: field {field} = {str(value)[:40]!r} is not a time between 1970 and 2100")
    return float(value)


def _int_field(run_id: str, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DamagedRunError(f"run {run_id}: field {field} = {str(value)[:40]!r} is not an integer")
    return value


def _floats_field(run_id: str, field: str, blob: Any, count: int) -> np.ndarray:
    """``count`` little-endian doubles, one per channel; raises DamagedRunError for any other blob."""
    if not isinstance(blob, bytes) or len(blob) != 8 * count:
        raise DamagedRunError(f"run {run_id}: a {field} value is not {count} numbers (one per channel)")
    return _blob_to_floats(blob)


def _text_field(run_id: str, field: str, value: Any, optional: bool = False) -> Optional[str]:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise DamagedRunError(f"run {run_id}: field {field} = {str(value)[:40]!r} is not text")
    return value


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
    ``step_count`` counts the stored steps, not the tail record (the energy after the last step).
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

    Creating a ``RunStore`` creates the file and its tables if they do not exist. With
    ``create_later=True`` (a run's start, on the training thread) a file that does not exist yet
    is created by the first writer or read instead, off that thread: only its folder is made and
    checked writable now. With ``read_only=True`` (the CLI's read commands) nothing is ever
    written: the file must already be a run store, and may sit on read-only media. Every method
    opens its own connection, so one instance may be shared between threads.

    Raises:
        ConfigurationError: the path cannot be opened as a store, or (read-only) is not one: a
            missing, empty or foreign file, or a damaged schema version (names the path and reason).
    """

    def __init__(self, path: StorePath, read_only: bool = False, create_later: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._creation_lock = threading.Lock()
        self._created = True
        if read_only:
            self._check_is_store()
            return
        if create_later and not self.path.exists():
            self._check_creatable()
            self._created = False
            return
        self._create_or_check()

    def _unusable(self, reason: Any) -> ConfigurationError:
        return ConfigurationError(
            f"store_path {str(self.path)!r} cannot be used as a run store: {reason}; give a writable file path"
        )

    def _check_creatable(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise self._unusable(error) from error
        if not os.access(self.path.parent, os.W_OK | os.X_OK):
            raise self._unusable(f"its folder {str(self.path.parent)!r} is not writable")

    def ensure_created(self) -> None:
        """Create the file and its tables now if ``create_later`` left them for later (the
        writer's thread calls this before its first write). Idempotent and thread-safe.

        Raises:
            ConfigurationError: the file cannot be created or is not a run store.
        """
        if self._created:
            return
        with self._creation_lock:
            if not self._created:
                self._create_or_check()
                self._created = True

    def _create_or_check(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = _connect(self.path)
            try:
                version = _stored_schema_version(connection)
                if version is None:
                    # A new file: the only case that needs the schema script (and its write lock).
                    _switch_to_wal(connection)
                    connection.executescript(_SCHEMA)
                    connection.execute(
                        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(STORE_SCHEMA_VERSION),),
                    )
                    version = _stored_schema_version(connection)
                version = upgrade_schema(connection, version)
            finally:
                connection.close()
        except (OSError, sqlite3.Error) as error:
            raise self._unusable(error) from error
        self._check_version(version)

    def _check_version(self, version: Any) -> None:
        if not str(version).strip().isdigit():
            raise ConfigurationError(
                f"store_path {str(self.path)!r} is damaged: its schema_version is {str(version)[:40]!r}, "
                f"not a number; this hf_eco2ai reads schema {STORE_SCHEMA_VERSION}"
            )
        if int(version) not in (STORE_SCHEMA_VERSION, *READABLE_OLDER_VERSIONS):
            raise ConfigurationError(
                f"store_path {str(self.path)!r} holds store schema {version}; this hf_eco2ai "
                f"reads schema {STORE_SCHEMA_VERSION} only; use another file"
            )

    def _check_is_store(self) -> None:
        """Read-only opening: refuses a missing or empty file, and any SQLite file without our tables."""
        where = f"store_path {str(self.path)!r}"
        if not self.path.is_file() or self.path.stat().st_size == 0:
            state = "is empty" if self.path.is_file() else "does not exist"
            raise ConfigurationError(f"{where} {state}: it is not a run store; pass --store PATH/runs.sqlite")
        try:
            connection = _connect_read_only(self.path)
            try:
                tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                missing = {"meta", "runs", "steps", "reports"} - tables
                if missing:
                    raise ConfigurationError(
                        f"{where} is an SQLite file but not a run store (no {', '.join(sorted(missing))} table); "
                        "it was left unchanged"
                    )
                row = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            finally:
                connection.close()
        except sqlite3.DatabaseError as error:
            raise ConfigurationError(f"{where} cannot be read as a run store: {error}") from None
        if row is None:
            raise ConfigurationError(f"{where} is damaged: its meta table has no schema_version")
        self._check_version(row[0])

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        """The rows of one reading statement, on a connection of its own (read-only when the store is)."""
        return self._read(sql, parameters)

    def writer(
        self,
        flush_interval_s: float = 0.5,
        on_error: Optional[Callable[[BaseException], None]] = None,
        step_file: Optional["StepSink"] = None,
        batch_step_rows: Optional[int] = None,
    ) -> "RunWriter":
        """A new background writer for this file (starts its thread at once); see ``RunWriter``.

        Raises:
            ConfigurationError: the store was opened ``read_only``.
        """
        if self.read_only:
            raise ConfigurationError(f"store_path {str(self.path)!r} was opened read-only: it has no writer")
        return RunWriter(
            self.path,
            flush_interval_s=flush_interval_s,
            on_error=on_error,
            step_file=step_file,
            batch_step_rows=batch_step_rows,
            before_first_write=self.ensure_created,
        )

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> List[Tuple[Any, ...]]:
        self.ensure_created()
        connection = _connect_read_only(self.path) if self.read_only else _connect(self.path)
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
        rows = self._read("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY run_id", (escaped + "%",))
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
        # Steps a person counts: the tail record (after the last step) is energy, not a step.
        f"(SELECT COUNT(*) FROM steps s WHERE s.run_id = r.run_id AND (s.flags & {FLAG_TAIL}) = 0)"
    )

    def _summary(self, row: Tuple[Any, ...]) -> RunSummary:
        """Raises DamagedRunError for a row that is not what the writer stores."""
        run_id = str(row[0])[:64]
        pid = _int_field(run_id, "pid", row[5])
        status = _text_field(run_id, "status", row[9])
        if status == "running" and row[4] == socket.gethostname() and not _pid_is_alive(pid):
            status = "interrupted"
        return RunSummary(
            run_id=run_id,
            project_name=_text_field(run_id, "project_name", row[1]) or "",
            experiment_id=_text_field(run_id, "experiment_id", row[2], optional=True),
            model_name=_text_field(run_id, "model_name", row[3], optional=True),
            host=_text_field(run_id, "host", row[4]) or "",
            pid=pid,
            rank=_int_field(run_id, "rank", row[6]),
            local_rank=_int_field(run_id, "local_rank", row[7]),
            world_size=_int_field(run_id, "world_size", row[8]),
            status=status or "",
            started_unix_s=_time_field(run_id, "started_unix_s", row[10]) or 0.0,
            ended_unix_s=_time_field(run_id, "ended_unix_s", row[11], optional=True),
            updated_unix_s=_time_field(run_id, "updated_unix_s", row[12]) or 0.0,
            channels=_json_field(run_id, "channels_json", row[13], list, optional=False),
            intensity=_json_field(run_id, "intensity_json", row[14], dict),
            config=_json_field(run_id, "config_json", row[15], dict),
            latest=_json_field(run_id, "latest_json", row[16], dict) or {},
            step_count=row[17],
        )

    def list_runs(
        self,
        project_name: Optional[str] = None,
        limit: Optional[int] = None,
        on_damaged: Optional[Callable[[DamagedRunError], None]] = None,
    ) -> List[RunSummary]:
        """Runs, newest first; only ``project_name``'s when given; at most ``limit``.

        Raises:
            DamagedRunError: a row cannot be read, unless ``on_damaged`` is given: then each damaged
                row is passed to it and left out.
        """
        sql = f"SELECT {self._SUMMARY_COLUMNS} FROM runs r"
        parameters: List[Any] = []
        if project_name is not None:
            sql += " WHERE r.project_name = ?"
            parameters.append(project_name)
        sql += " ORDER BY r.started_unix_s DESC, r.run_id"
        if limit is not None:
            sql += " LIMIT ?"
            parameters.append(int(limit))
        summaries = []
        for row in self._read(sql, parameters):
            try:
                summaries.append(self._summary(row))
            except DamagedRunError as damaged:
                if on_damaged is None:
                    raise
                on_damaged(damaged)
        return summaries

    def get_run(self, run_id_or_prefix: str) -> RunSummary:
        """One run's summary. Raises KeyError if no run (or several) match."""
        run_id = self.resolve_run_id(run_id_or_prefix)
        rows = self._read(f"SELECT {self._SUMMARY_COLUMNS} FROM runs r WHERE r.run_id = ?", (run_id,))
        return self._summary(rows[0])

    def compare(self, run_ids_or_prefixes: Sequence[str]) -> "RunComparison":
        """The runs named, in the order given: a list of their summaries with each run's figures
        (``runs``: energy and CO2 per step and per sample), ``to_html()`` for the comparison page,
        and cards and curves in Jupyter. Raises KeyError for an unknown one."""
        from hf_eco2ai.reporting.comparison import compare_runs

        return compare_runs(self, run_ids_or_prefixes)

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
            by_channel[position, :] = _floats_field(
                summary.run_id, "steps.joules_by_channel", row[6], len(channel_names)
            )
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
            "SELECT name, t0_s, t1_s, joules, flags, joules_by_channel FROM windows WHERE run_id = ? ORDER BY t0_s",
            (summary.run_id,),
        )
        return [
            {
                "name": row[0],
                "t0_s": row[1],
                "t1_s": row[2],
                "joules": row[3],
                "flags": row[4],
                "joules_by_channel": dict(
                    zip(
                        channel_names,
                        _floats_field(summary.run_id, "windows.joules_by_channel", row[5], len(channel_names)).tolist(),
                    )
                ),
            }
            for row in rows
        ]

    def power_trace(self, run_id_or_prefix: str) -> Tuple[List[float], Dict[str, List[float]]]:
        """The run's power samples: times (s since run start) and watts per channel."""
        summary = self.get_run(run_id_or_prefix)
        channel_names = [channel["name"] for channel in summary.channels]
        rows = self._read("SELECT t_s, watts_by_channel FROM power WHERE run_id = ? ORDER BY t_s", (summary.run_id,))
        watts: Dict[str, List[float]] = {name: [] for name in channel_names}
        for _, blob in rows:
            values = _floats_field(summary.run_id, "power.watts_by_channel", blob, len(channel_names))
            for name, value in zip(channel_names, values.tolist()):
                watts[name].append(value)
        return [row[0] for row in rows], watts

    def logs(self, run_id_or_prefix: str) -> List[Dict[str, Any]]:
        """Metrics logged through ``TrackingSession.log`` in order, each with ``unix_time_s``/``step``."""
        run_id = self.resolve_run_id(run_id_or_prefix)
        rows = self._read(
            "SELECT unix_time_s, step, metrics_json FROM logs WHERE run_id = ? ORDER BY unix_time_s", (run_id,)
        )
        return [
            {"unix_time_s": row[0], "step": row[1], **_json_field(run_id, "metrics_json", row[2], dict, optional=False)}
            for row in rows
        ]

    def report(self, run_id_or_prefix: str) -> Optional[Dict[str, Any]]:
        """The run's final ``tracking_data`` report, or None if the run never finished."""
        run_id = self.resolve_run_id(run_id_or_prefix)
        rows = self._read("SELECT report_json FROM reports WHERE run_id = ?", (run_id,))
        return _json_field(run_id, "report_json", rows[0][0], dict) if rows else None


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

DEFAULT_MAX_UNWRITTEN_ROWS = 100_000
# Rows a failed commit keeps for the next try, oldest dropped first; the run's own row and its
# latest figures are never dropped (a few per run).
_DROPPABLE = ("steps", "windows", "power", "log")


class StoreRowsDropped(RuntimeError):
    """Rows that could not be written (disk full, store unwritable) and were given up."""

    def __init__(self, rows: int, path: Path, cause: str) -> None:
        super().__init__(f"{rows} row(s) could not be written to {path} and were dropped; last failure: {cause}")
        self.rows = rows


class _ReplayableRows:
    """Rows built on first iteration and kept, so that a retried commit inserts them again."""

    def __init__(self, source: Iterable[Tuple[Any, ...]]) -> None:
        self._source = source
        self._rows: Optional[List[Tuple[Any, ...]]] = None

    def __iter__(self) -> Iterator[Tuple[Any, ...]]:
        if self._rows is None:
            self._rows = list(self._source)
        return iter(self._rows)


def _row_count(operation: _Operation) -> int:
    kind, payload = operation
    if kind == "steps":
        return len(payload[1])
    if kind == "windows":
        return len(payload)
    return 1


def _bounded(operations: List[_Operation], max_rows: int) -> Tuple[List[_Operation], int]:
    """``operations`` with the oldest droppable ones removed until at most ``max_rows`` remain,
    and the number of rows removed. Only the newest ``latest`` of each run is kept."""
    newest_latest: Dict[str, int] = {}
    newest_intensity: Dict[str, Any] = {}
    for position, (kind, payload) in enumerate(operations):
        if kind == "latest":
            newest_latest[payload[0]] = position
            if payload[2] is not None:
                newest_intensity[payload[0]] = payload[2]
    kept: List[_Operation] = []
    for position, (kind, payload) in enumerate(operations):
        if kind != "latest":
            kept.append((kind, payload))
        elif newest_latest[payload[0]] == position:
            # An update dropped here may have carried the intensity that this one leaves as is.
            kept.append((kind, (payload[0], payload[1], newest_intensity.get(payload[0]))))
    excess = sum(_row_count(operation) for operation in kept) - max_rows
    dropped = 0
    result: List[_Operation] = []
    for operation in kept:
        if excess > 0 and operation[0] in _DROPPABLE:
            rows = _row_count(operation)
            excess -= rows
            dropped += rows
            continue
        result.append(operation)
    return result, dropped


# Step rows queued but not yet written, beyond which add_steps waits for the writer: the queue is
# what keeps a run's memory O(1) when steps come faster than the disk takes them.
MAX_QUEUED_STEP_ROWS = 262_144
_ROWS_PER_INSERT = 256


class StepSink(Protocol):
    """Where the writer thread streams step batches besides the store (the per-step file)."""

    def write(self, batch: StepBatch, carbon: Any) -> None: ...

    def close(self) -> None: ...


_open_writers: "weakref.WeakSet[RunWriter]" = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    # atexit runs before daemon threads are stopped: rows queued by a run that ended without
    # waiting (or never stopped) still reach the disk before the interpreter goes.
    for writer in list(_open_writers):
        writer.close()


class RunWriter:
    """A background thread that commits queued rows to the store in batches.

    Every ``add_*``/``update_*`` method only enqueues and returns at once (safe from any thread),
    except that ``add_steps`` waits while more than ``MAX_QUEUED_STEP_ROWS`` step rows are queued.
    The thread commits whatever is queued every ``flush_interval_s`` in one transaction, then
    appends the step batches to ``step_file`` when one is given (a write it fails is reported to
    ``on_error`` and not retried). A failed
    commit (a full disk, a locked or vanished file) calls ``on_error`` with SQLite's own error (the
    session counts it and warns once) and keeps the batch in memory: it is retried with the next
    batch, every ``flush_interval_s``, so rows written while the disk is full are stored once space
    returns. The rows kept are bounded by ``max_unwritten_rows``, oldest steps, windows, power
    samples and logs given up first; rows given up, and rows still unwritten at ``close()``, are
    counted in ``rows_dropped`` and reported to ``on_error`` as ``StoreRowsDropped``.
    ``flush()`` waits until everything enqueued before it is written; ``close()`` flushes, closes
    the step file and stops the thread (also run at interpreter exit). Both are idempotent.

    Args:
        path: the store file, or None to stream the step file only.
        batch_step_rows: commit as soon as this many step rows are waiting, without waiting for
            the rest of ``flush_interval_s`` (``CarbonConfig.export_batch_size``); None waits
            for the interval.
        before_first_write: called on the writer's thread before it first connects to the
            store (``RunStore.ensure_created``); a failure counts as a failed commit (reported,
            retried with the next batch).
    """

    def __init__(
        self,
        path: Optional[StorePath],
        flush_interval_s: float = 0.5,
        on_error: Optional[Callable[[BaseException], None]] = None,
        max_unwritten_rows: int = DEFAULT_MAX_UNWRITTEN_ROWS,
        step_file: Optional[StepSink] = None,
        batch_step_rows: Optional[int] = None,
        before_first_write: Optional[Callable[[], None]] = None,
    ) -> None:
        if not flush_interval_s > 0:
            raise ConfigurationError(
                f"flush_interval_s is {flush_interval_s!r}; it must be a positive number of seconds"
            )
        if batch_step_rows is not None and (
            isinstance(batch_step_rows, bool) or not isinstance(batch_step_rows, int) or batch_step_rows < 1
        ):
            raise ConfigurationError(f"batch_step_rows is {batch_step_rows!r}; it must be an integer >= 1 or None")
        self.batch_step_rows = batch_step_rows
        self.path = None if path is None else Path(path)
        self.flush_interval_s = float(flush_interval_s)
        self._on_error = on_error
        self._step_file = step_file
        self._before_first_write = before_first_write
        self._queued_step_rows = 0
        self._room = threading.Condition()
        self._queue: "queue.SimpleQueue[_Operation]" = queue.SimpleQueue()
        self._closed = False
        self._close_lock = threading.Lock()
        self.errors = 0
        self.rows_dropped = 0
        self._max_unwritten_rows = int(max_unwritten_rows)
        self._unwritten: List[_Operation] = []
        self._loop = start_loop(self._run, "hf-eco2ai-store-writer")
        _open_writers.add(self)

    # Producers ----------------------------------------------------------------------------------

    def begin_run(self, identity: RunIdentity) -> None:
        """Record a new run as ``running``."""
        self._queue.put(("begin", identity))

    def add_steps(self, run_id: str, batch: StepBatch, carbon: Any = None) -> None:
        """Queue step records (a ``StepBatch``: columns as in ``StepRecords``, ``joules`` the
        top-level sum (J), ``epoch`` negative for none); ``carbon`` (a ``StepCarbon``) goes to the
        step file with them. The batch is kept as given (the caller must not change it), so the
        rows are built on the writer's thread, not the caller's."""
        if not len(batch):
            return
        with self._room:
            while self._queued_step_rows > MAX_QUEUED_STEP_ROWS and self._loop.is_alive():
                self._room.wait(self.flush_interval_s)
            self._queued_step_rows += len(batch)
        self._queue.put(("steps", (run_id, batch, carbon)))

    def add_windows(
        self,
        run_id: str,
        names: Sequence[str],
        t0_s: np.ndarray,
        t1_s: np.ndarray,
        joules: np.ndarray,
        flags: np.ndarray,
        joules_by_channel: np.ndarray,
    ) -> None:
        """Queue window records."""
        rows = [
            (
                run_id,
                str(names[i]),
                float(t0_s[i]),
                float(t1_s[i]),
                float(joules[i]),
                int(flags[i]),
                _floats_to_blob(joules_by_channel[i]),
            )
            for i in range(len(names))
        ]
        if rows:
            self._queue.put(("windows", rows))

    def add_power(self, run_id: str, t_s: float, watts_by_channel: Sequence[float]) -> None:
        """Queue one power sample: seconds since run start, W per channel in channel order."""
        self._queue.put(("power", (run_id, float(t_s), _floats_to_blob(watts_by_channel))))

    def add_log(self, run_id: str, unix_time_s: float, step: Optional[int], metrics: Mapping[str, Any]) -> None:
        """Queue one set of logged metrics (JSON types; the mapping must not change afterwards)."""
        self._queue.put(("log", (run_id, float(unix_time_s), step, metrics)))

    def update_latest(
        self, run_id: str, latest: Mapping[str, Any], intensity: Optional[Mapping[str, Any]] = None
    ) -> None:
        """Replace the run's latest figures (and its intensity when given); the mappings must not
        change afterwards (they are serialised on the writer's thread)."""
        self._queue.put(("latest", (run_id, latest, intensity)))

    def finish_run(self, run_id: str, status: str, ended_unix_s: float, report: Optional[Mapping[str, Any]]) -> None:
        """Mark the run ``finished``/``failed`` and keep its final report (serialised on the
        writer's thread: the mapping's values must not change afterwards)."""
        # A shallow copy: the caller may add sections (``training``) to its own dict afterwards.
        self._queue.put(("finish", (run_id, status, float(ended_unix_s), None if report is None else dict(report))))

    def add_rows(self, sql: str, rows: Iterable[Tuple[Any, ...]]) -> None:
        """Queue ``executemany(sql, rows)``; ``rows`` may be a generator, run on the writer's thread
        (once: its rows are kept for a retry)."""
        self._queue.put(("rows", (sql, _ReplayableRows(rows))))

    @property
    def unwritten_rows(self) -> int:
        """Rows kept in memory after a failed commit, waiting for the next try."""
        return sum(_row_count(operation) for operation in list(self._unwritten))

    def flush(self, timeout_s: Optional[float] = 30.0) -> bool:
        """Wait until everything queued so far is committed; False if ``timeout_s`` ran out or
        the commit failed (the rows stay queued for the next try)."""
        if not self._loop.is_alive():
            return self._queue.empty() and not self._unwritten
        done = threading.Event()
        self._queue.put(("barrier", done))
        return done.wait(timeout_s) and not self._unwritten

    def close(self, timeout_s: Optional[float] = 30.0, wait: bool = True) -> None:
        """Write what is queued, close the step file and stop the thread; with ``wait=False``
        return at once and let the thread finish (``join`` waits for it)."""
        with self._close_lock:
            if self._closed:
                if wait:
                    self._loop.join(timeout_s)
                return
            self._closed = True
        self._queue.put(("close", None))
        if wait:
            self._loop.join(timeout_s)

    def join(self, timeout_s: Optional[float] = None) -> bool:
        """Wait for the thread to end after ``close``; False if ``timeout_s`` ran out."""
        self._loop.join(timeout_s)
        return not self._loop.is_alive()

    # The thread ---------------------------------------------------------------------------------

    def _batch_is_full(self, batch: List[_Operation]) -> bool:
        if self.batch_step_rows is None:
            return False
        return sum(len(payload[1]) for kind, payload in batch if kind == "steps") >= self.batch_step_rows

    def _run(self) -> None:
        connection: Optional[sqlite3.Connection] = None
        stopping = False
        if self.path is not None and self._before_first_write is not None:
            # At once rather than at the first commit, a flush interval later, so that a new
            # store file exists (for `hf-eco2ai runs`, `serve --run`) as soon as its run starts;
            # a failure here is retried before the first commit.
            try:
                self._before_first_write()
            except (sqlite3.Error, OSError, ValueError) as error:
                self.errors += 1
                self._report(error)
        while not stopping:
            batch: List[_Operation] = []
            try:
                batch.append(self._queue.get(timeout=self.flush_interval_s))
            except queue.Empty:
                if not self._unwritten:
                    continue
            # Batching is the point: take whatever piled up during the interval in one commit, or
            # commit early once a batch's worth of step rows is waiting.
            deadline = time.monotonic() + self.flush_interval_s
            while batch and batch[-1][0] not in ("barrier", "close") and not self._batch_is_full(batch):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            fresh = [self._serialised(operation) for operation in batch if operation[0] not in ("barrier", "close")]
            work = self._unwritten + fresh
            try:
                if self.path is not None:
                    if connection is None:
                        if self._before_first_write is not None:
                            self._before_first_write()
                        connection = _connect(self.path)
                        # A connection that appends rows in bulk: a 32 MiB page cache, and a
                        # checkpoint every 8,192 pages (32 MiB of WAL) instead of every 1,000.
                        connection.execute("PRAGMA cache_size = -32768")
                        connection.execute("PRAGMA wal_autocheckpoint = 8192")
                    self._commit(connection, work)
                self._unwritten = []
            except (sqlite3.Error, OSError, ValueError) as error:
                self.errors += 1
                self._report(error)
                # A fresh connection for the next try: the file may have been replaced or remounted.
                if connection is not None:
                    connection.close()
                    connection = None
                if isinstance(error, (sqlite3.OperationalError, OSError)):
                    self._unwritten, dropped = _bounded(work, self._max_unwritten_rows)
                else:
                    # Rows SQLite refuses as such (not the disk's fault) would fail every retry.
                    self._unwritten, dropped = [], sum(_row_count(operation) for operation in work)
                if dropped:
                    self._drop(dropped, error)
            self._stream_steps(fresh)
            stopping = any(kind == "close" for kind, _ in batch)
            if stopping and self._unwritten:
                # Closing: what the last try could not write is given up and counted.
                self._drop(sum(_row_count(operation) for operation in self._unwritten), "still failing at close")
                self._unwritten = []
            for kind, payload in batch:
                if kind == "barrier":
                    payload.set()
        if self._step_file is not None:
            try:
                self._step_file.close()
            except (OSError, ValueError) as error:
                self._report(error)
        if connection is not None:
            connection.close()
        _open_writers.discard(self)

    def _serialised(self, operation: _Operation) -> _Operation:
        """A ``finish`` with its report as JSON text: a report that cannot be serialised is
        dropped alone (and counted), not with the rows committed beside it."""
        kind, payload = operation
        if kind != "finish" or payload[3] is None:
            return operation
        try:
            return kind, (*payload[:3], json.dumps(payload[3], allow_nan=False))
        except (TypeError, ValueError) as error:
            self.errors += 1
            self._report(error)
            return kind, (*payload[:3], None)

    def _stream_steps(self, operations: List[_Operation]) -> None:
        """Append the batch's steps to the step file, once each (a failed store commit retries
        its rows; the file is not rewritten), and make room for the producers."""
        written = 0
        for kind, payload in operations:
            if kind != "steps":
                continue
            _, batch, carbon = payload
            written += len(batch)
            if self._step_file is not None and carbon is not None:
                try:
                    self._step_file.write(batch, carbon)
                except (OSError, ValueError) as error:
                    self.errors += 1
                    self._report(error)
        if written:
            with self._room:
                self._queued_step_rows -= written
                self._room.notify_all()

    def _drop(self, rows: int, cause: Any) -> None:
        self.rows_dropped += rows
        self._report(StoreRowsDropped(rows, self.path or Path(), str(cause)))

    def _report(self, error: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(error)
        else:
            warn(f"run store {self.path}: a write failed: {error}", stacklevel=1)

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
                        (
                            identity.run_id,
                            identity.project_name,
                            identity.experiment_id,
                            identity.model_name,
                            identity.host,
                            os.getpid(),
                            identity.rank,
                            identity.local_rank,
                            identity.world_size,
                            identity.started_unix_s,
                            now,
                            json.dumps(identity.channels),
                            None if identity.intensity is None else json.dumps(identity.intensity),
                            None if identity.config is None else json.dumps(identity.config),
                        ),
                    )
                elif kind == "steps":
                    run_id, steps, _ = payload
                    rows = list(_step_rows(run_id, steps))
                    for first in range(0, len(rows), _ROWS_PER_INSERT):
                        connection.executemany(
                            "INSERT OR REPLACE INTO steps (run_id, step_index, epoch, t0_s, t1_s, joules, "
                            "flags, joules_by_channel) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            rows[first : first + _ROWS_PER_INSERT],
                        )
                        # The training thread's next log should not wait a whole switch interval
                        # (5 ms) for the interpreter while a large batch goes in.
                        time.sleep(0)
                elif kind == "windows":
                    connection.executemany(
                        "INSERT INTO windows (run_id, name, t0_s, t1_s, joules, flags, "
                        "joules_by_channel) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        payload,
                    )
                elif kind == "power":
                    connection.execute("INSERT INTO power (run_id, t_s, watts_by_channel) VALUES (?, ?, ?)", payload)
                elif kind == "log":
                    run_id, unix_time_s, step, metrics = payload
                    connection.execute(
                        "INSERT INTO logs (run_id, unix_time_s, step, metrics_json) VALUES (?, ?, ?, ?)",
                        (run_id, unix_time_s, step, json.dumps(dict(metrics))),
                    )
                elif kind == "latest":
                    run_id, latest, intensity = payload
                    connection.execute(
                        "UPDATE runs SET latest_json = ?, updated_unix_s = ?, "
                        "intensity_json = COALESCE(?, intensity_json) WHERE run_id = ?",
                        (
                            json.dumps(dict(latest)),
                            now,
                            None if intensity is None else json.dumps(dict(intensity)),
                            run_id,
                        ),
                    )
                elif kind == "rows":
                    connection.executemany(*payload)
                elif kind == "finish":
                    run_id, status, ended_unix_s, report_json = payload
                    connection.execute(
                        "UPDATE runs SET status = ?, ended_unix_s = ?, updated_unix_s = ? WHERE run_id = ?",
                        (status, ended_unix_s, now, run_id),
                    )
                    if report_json is not None:
                        connection.execute(
                            "INSERT OR REPLACE INTO reports (run_id, created_unix_s, report_json) VALUES (?, ?, ?)",
                            (run_id, now, report_json),
                        )
            connection.execute("COMMIT")
        except BaseException:
            # SQLite has already rolled back after some errors (SQLITE_FULL among them); a second
            # ROLLBACK would replace the real cause ("database or disk is full") with its own.
            if connection.in_transaction:
                try:
                    connection.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise
