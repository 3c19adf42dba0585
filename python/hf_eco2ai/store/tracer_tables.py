"""The run store's Tracer tables (schema version 2) and the upgrade of a version-1 file.

Version 2 adds, beside the energy tables of version 1:

- ``tracer_runs``: a run's Tracer identity (run name, tags, notes), its watched layer names and
  the Tracer settings it ran with;
- ``step_statistics``: per-step rows, stored as one row per batch the writer received (a
  chunk): the steps (int64), ``recorded`` (uint8: bit 0 a loss, bit 1 a memory figure was
  recorded), loss and device memory (float64, NaN kept), ``has_gradients`` (uint8) and the
  gradient rows (float32, norm / max |g| / NaN-Inf count per layer; a negative norm marks a layer
  without gradient that step), all little-endian columns. One insert per batch is what lets the
  writer keep up with fast training loops;
- ``checkpoints``: every ``checkpoint_interval`` steps: metrics, gradient statistics, system
  metrics (JSON) and the energy since the previous checkpoint (J, before PUE);
- ``anomalies``: one row per anomaly (step, type, layer, value, threshold, rolling statistic),
  unique per run, step, type and layer, so storing the same anomaly twice keeps one row.

Upgrading only adds tables: a version-1 file keeps every row, and readers of version 1 tables see
no change. Everything here runs inside the caller's transaction or connection; nothing here is
called on a training step.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable, List, Sequence

SCHEMA_VERSION = 2
# A version-1 file opened read-only (not upgraded) is still read: it simply has no Tracer rows.
READABLE_OLDER_VERSIONS = (1,)
LOSS_RECORDED = 1
MEMORY_RECORDED = 2

TRACER_SCHEMA = """
CREATE TABLE IF NOT EXISTS tracer_runs (
    run_id TEXT PRIMARY KEY,
    run_name TEXT NOT NULL,
    tags_json TEXT NOT NULL,
    notes TEXT,
    layers_json TEXT NOT NULL,
    config_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS step_statistics (
    run_id TEXT NOT NULL,
    first_step INTEGER NOT NULL,
    last_step INTEGER NOT NULL,
    row_count INTEGER NOT NULL,
    layer_count INTEGER NOT NULL,
    steps BLOB NOT NULL,
    recorded BLOB NOT NULL,
    loss BLOB NOT NULL,
    memory_bytes BLOB NOT NULL,
    has_gradients BLOB NOT NULL,
    gradients BLOB,
    UNIQUE (run_id, first_step)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    unix_time_s REAL NOT NULL,
    metrics_json TEXT NOT NULL,
    gradient_stats_json TEXT NOT NULL,
    system_metrics_json TEXT NOT NULL,
    energy_joules REAL,
    PRIMARY KEY (run_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS anomalies (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    anomaly_type TEXT NOT NULL,
    layer TEXT NOT NULL,
    value REAL,
    threshold REAL,
    statistic REAL,
    unix_time_s REAL NOT NULL,
    PRIMARY KEY (run_id, step, anomaly_type, layer)
) WITHOUT ROWID;
"""

TRACER_TABLES = ("tracer_runs", "step_statistics", "checkpoints", "anomalies")
# Every table that holds rows of a run, for deleting a run whole.
RUN_TABLES = (
    "steps",
    "windows",
    "power",
    "logs",
    "reports",
    "tracer_runs",
    "step_statistics",
    "checkpoints",
    "anomalies",
    "runs",
)

INSERT_STEP_STATISTICS = (
    "INSERT OR REPLACE INTO step_statistics (run_id, first_step, last_step, row_count, layer_count, steps, "
    "recorded, loss, memory_bytes, has_gradients, gradients) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_CHECKPOINT = (
    "INSERT OR REPLACE INTO checkpoints (run_id, step, unix_time_s, metrics_json, gradient_stats_json, "
    "system_metrics_json, energy_joules) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
INSERT_ANOMALY = (
    "INSERT OR IGNORE INTO anomalies (run_id, step, anomaly_type, layer, value, threshold, statistic, "
    "unix_time_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_TRACER_RUN = (
    "INSERT OR REPLACE INTO tracer_runs (run_id, run_name, tags_json, notes, layers_json, config_json) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def upgrade_schema(connection: sqlite3.Connection, version: Any) -> Any:
    """Bring a store at ``version`` (1 or 2, as stored: text) to version 2 and return the version
    it is at now.

    Idempotent; a version it does not know (another number, or damaged text) is returned
    unchanged for the caller to refuse.
    """
    if str(version).strip() not in ("1", str(SCHEMA_VERSION)):
        return version
    version = int(version)
    present = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    # Only a file that lacks the tables takes the write lock the script needs.
    if not set(TRACER_TABLES) <= present:
        connection.executescript(TRACER_SCHEMA)
    if version == 1:
        connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    return SCHEMA_VERSION


def delete_runs(connection: sqlite3.Connection, run_ids: Sequence[str]) -> None:
    """Delete every row of the runs named, in one transaction."""
    if not run_ids:
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        for table in RUN_TABLES:
            connection.executemany(f"DELETE FROM {table} WHERE run_id = ?", [(run_id,) for run_id in run_ids])
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def runs_started_before(connection: sqlite3.Connection, project_name: str, cutoff_unix_s: float) -> List[str]:
    """Run ids of ``project_name`` that started before ``cutoff_unix_s`` and have ended, or have
    written nothing since (a process killed mid-run leaves its run ``running`` for ever)."""
    rows: Iterable = connection.execute(
        "SELECT run_id FROM runs WHERE project_name = ? AND started_unix_s < ? "
        "AND (status != 'running' OR updated_unix_s < ?)",
        (project_name, cutoff_unix_s, cutoff_unix_s),
    )
    return [row[0] for row in rows]
