"""The run store: one SQLite file (WAL) per output directory, written by a batched background writer."""

from hf_eco2ai.store.run_store import (
    STORE_FILE_NAME,
    STORE_SCHEMA_VERSION,
    DamagedRunError,
    RunIdentity,
    RunStore,
    RunSummary,
    RunWriter,
    StoredSteps,
    StoreRowsDropped,
    default_store_path,
)

__all__ = [
    "STORE_FILE_NAME",
    "STORE_SCHEMA_VERSION",
    "DamagedRunError",
    "RunIdentity",
    "RunStore",
    "RunSummary",
    "RunWriter",
    "StoredSteps",
    "StoreRowsDropped",
    "default_store_path",
]
