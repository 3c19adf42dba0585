"""The per-step file: every step of a run, streamed while it runs, never held in memory.

The writer thread appends each drained batch of steps: as CSV rows (the ``csv`` report format of
docs/reports.md, one row per step) or, with ``step_file_format = "parquet"`` and the ``parquet``
extra installed (pyarrow), as one Parquet row group per batch. CSV rows are flushed after every
batch, so a process killed mid-run leaves every row up to the last flush readable (a Parquet file
is readable only once closed). ``read_step_file`` reads either back.

Threading: a ``StepFileWriter`` is used by one thread (the store writer's); open it lazily there so
that nothing is imported or opened on the training thread.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Sequence

import numpy as np

from hf_eco2ai import units
from hf_eco2ai._core import csv_rows
from hf_eco2ai.config import STEP_FILE_FORMATS
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.meter.flags import STEP_FLAG_NAMES
from hf_eco2ai.reporting.csv_format import channel_column, step_columns

if TYPE_CHECKING:
    from hf_eco2ai.session.run_records import StepBatch

_SUFFIXES = {"csv": ".steps.csv", "parquet": ".steps.parquet"}
# Rows formatted per call: each chunk's text stays well under glibc's 128 KiB mmap threshold.
_ROWS_PER_CHUNK = 256


def step_file_path(output_dir: Any, run_id: str, file_format: str) -> Path:
    """``<output_dir>/carbon_report_<first 12 of run id>.steps.<csv|parquet>``."""
    return Path(output_dir) / f"carbon_report_{run_id[:12]}{_SUFFIXES[file_format]}"


def check_step_file_format(file_format: str) -> str:
    """The format, checked. Raises ``ConfigurationError`` naming the fix."""
    if file_format not in STEP_FILE_FORMATS:
        raise ConfigurationError(f"step_file_format = {file_format!r} is invalid: expected 'csv' or 'parquet'")
    if file_format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ConfigurationError(
            "step_file_format = 'parquet' needs pyarrow, which is not installed: "
            "pip install 'hf-eco2ai[parquet]', or use step_file_format='csv'"
        )
    return file_format


class StepCarbon:
    """What turns a batch's joules into kWh and CO2: the PUE and the intensity in use when it was
    drained (with its source and year, repeated on every row)."""

    __slots__ = ("pue", "g_per_kwh", "source", "year")

    def __init__(self, pue: float, g_per_kwh: float, source: str, year: Optional[int]) -> None:
        self.pue, self.g_per_kwh, self.source, self.year = pue, g_per_kwh, source, year


class StepFileWriter:
    """Appends batches of steps to one file (created with its header on the first batch).

    Args:
        path: where the file goes (parent directories are created).
        file_format: ``csv`` or ``parquet``.
        run_id: written on every row.
        channel_names: the meter's channels, in column order.

    Raises (from ``write``/``close``): ``OSError`` when the file cannot be written.
    """

    def __init__(self, path: Any, file_format: str, run_id: str, channel_names: Sequence[str]) -> None:
        self.path = Path(path)
        self.file_format = file_format
        self.run_id = run_id
        self.channel_names = list(channel_names)
        self.rows = 0
        self._handle: Any = None
        self._parquet: Any = None
        self._flag_names: Dict[int, str] = {}

    def _flag_text(self, flags: int) -> str:
        text = self._flag_names.get(flags)
        if text is None:
            text = self._flag_names[flags] = "|".join(name for bit, name in STEP_FLAG_NAMES if flags & bit)
        return text

    def write(self, batch: StepBatch, carbon: StepCarbon) -> None:
        """Append one batch and flush it."""
        if len(batch) == 0:
            return
        if self.file_format == "parquet":
            self._write_parquet(batch, carbon)
        else:
            self._write_csv(batch, carbon)
        self.rows += len(batch)

    def _write_csv(self, batch: StepBatch, carbon: StepCarbon) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "wb")
            self._handle.write(_header_line(self.channel_names))
        run_id = _csv_cells([self.run_id]).encode()
        constant = _csv_cells([carbon.g_per_kwh, carbon.source, carbon.year]).encode()
        flags = np.ascontiguousarray(batch.flags, dtype="<i8")
        flag_cells = [(value, _lone_cell(self._flag_text(value))) for value in np.unique(flags).tolist()]
        measures = list(_measures(batch, carbon).values())
        for first in range(0, len(batch), _ROWS_PER_CHUNK):
            part = slice(first, first + _ROWS_PER_CHUNK)
            chunk_flags = flags[part].tobytes()
            columns = [
                ("constant", run_id),
                ("int", _int64_bytes(batch.index[part])),
                ("int_or_empty", _int64_bytes(batch.epoch[part])),
                *(("float", _float64_bytes(column[part])) for column in measures),
                ("constant", constant),
                ("int", chunk_flags),
                ("lookup", (chunk_flags, flag_cells)),
                *(
                    ("float", _float64_bytes(batch.joules_by_channel[part, column]))
                    for column in range(batch.joules_by_channel.shape[1])
                ),
            ]
            # Formatted in the core with the interpreter released: the training thread keeps
            # running while the writer thread turns floats into text.
            self._handle.write(csv_rows(len(chunk_flags) // 8, columns))
        self._handle.flush()

    def _write_parquet(self, batch: StepBatch, carbon: StepCarbon) -> None:
        pyarrow = importlib.import_module("pyarrow")
        parquet = importlib.import_module("pyarrow.parquet")
        n = len(batch)
        flags = batch.flags
        columns: Dict[str, Any] = {
            "run_id": pyarrow.array([self.run_id] * n, pyarrow.string()),
            "step": pyarrow.array(batch.index, pyarrow.int64()),
            "epoch": pyarrow.array(batch.epoch, pyarrow.int64(), mask=np.asarray(batch.epoch) < 0),
            **_measures(batch, carbon),
            "intensity_g_per_kwh": np.full(n, carbon.g_per_kwh),
            "intensity_source": pyarrow.array([carbon.source] * n, pyarrow.string()),
            "intensity_year": pyarrow.array([carbon.year] * n, pyarrow.int64()),
            "flags": pyarrow.array(flags.astype(np.int64), pyarrow.int64()),
            "flag_names": pyarrow.array([self._flag_text(int(value)) for value in flags.tolist()], pyarrow.string()),
        }
        for column, name in enumerate(self.channel_names):
            columns[channel_column(name)] = np.ascontiguousarray(batch.joules_by_channel[:, column])
        table = pyarrow.table(columns)
        if self._parquet is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._parquet = parquet.ParquetWriter(str(self.path), table.schema)
        self._parquet.write_table(table)

    def close(self) -> None:
        """Finish the file (a run with no step still gets the CSV header). Idempotent."""
        if self.file_format == "csv" and self._handle is None and self.rows == 0:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb") as handle:
                handle.write(_header_line(self.channel_names))
            self._handle = False
        if self._handle:
            self._handle.close()
            self._handle = False
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


def _measures(batch: StepBatch, carbon: StepCarbon) -> Dict[str, np.ndarray]:
    """The float columns of the step file, named and in file order (the same in both formats)."""
    kwh = units.kwh_from_joules(batch.joules, carbon.pue)
    return {
        "t0_s": batch.t0_s,
        "t1_s": batch.t1_s,
        "duration_s": batch.t1_s - batch.t0_s,
        "joules": batch.joules,
        "kwh": kwh,
        "co2_kg": units.co2_kg(kwh, carbon.g_per_kwh),
    }


def _header_line(channel_names: Sequence[str]) -> bytes:
    return (_csv_cells(step_columns(channel_names)) + "\r\n").encode()


def _lone_cell(text: str) -> bytes:
    """One cell as it reads inside a row (alone, csv would quote an empty cell)."""
    return _csv_cells([text]).encode() if text else b""


def _int64_bytes(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<i8").tobytes()


def _float64_bytes(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


def _csv_cells(values: Sequence[Any]) -> str:
    """``values`` as CSV cells joined by commas (quoted where CSV needs it; None is empty)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(["" if value is None else value for value in values])
    return buffer.getvalue()


def _number(text: str) -> Optional[float]:
    return None if text == "" else float(text)


def read_step_file(path: Any) -> Iterator[Dict[str, Any]]:
    """The steps of a per-step file, one dict per step in file order: ``index``, ``epoch``
    (None for none), ``t0_s``, ``t1_s``, ``duration_s``, ``joules``, ``kwh``, ``co2_kg``, ``flags``
    and ``joules_by_channel`` (channel -> J). Reads CSV or (with pyarrow) Parquet by suffix."""
    target = Path(path)
    if target.suffix == ".parquet":
        parquet = importlib.import_module("pyarrow.parquet")
        table = parquet.read_table(str(target))
        names = [name for name in table.column_names if name.startswith("joules[")]
        for row in table.to_pylist():
            yield {
                "index": row["step"],
                "epoch": row["epoch"],
                "t0_s": row["t0_s"],
                "t1_s": row["t1_s"],
                "duration_s": row["duration_s"],
                "joules": row["joules"],
                "kwh": row["kwh"],
                "co2_kg": row["co2_kg"],
                "flags": row["flags"],
                "joules_by_channel": {name[len("joules[") : -1]: row[name] for name in names},
            }
        return
    with open(target, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        names = [name for name in (reader.fieldnames or []) if name.startswith("joules[")]
        for row in reader:
            yield {
                "index": int(row["step"]),
                "epoch": None if row["epoch"] == "" else int(row["epoch"]),
                "t0_s": float(row["t0_s"]),
                "t1_s": float(row["t1_s"]),
                "duration_s": float(row["duration_s"]),
                "joules": float(row["joules"]),
                "kwh": _number(row["kwh"]),
                "co2_kg": _number(row["co2_kg"]),
                "flags": int(row["flags"]),
                "joules_by_channel": {name[len("joules[") : -1]: _number(row[name]) for name in names},
            }


def step_file_text(path: Any) -> str:
    """The whole CSV text of a per-step file (converting a Parquet one): for ``generate_carbon_report``
    asked for the ``csv`` format of a report whose steps live in a file."""
    target = Path(path)
    if target.suffix != ".parquet":
        return target.read_text(encoding="utf-8")
    parquet = importlib.import_module("pyarrow.parquet")
    table = parquet.read_table(str(target))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow(["" if value is None else value for value in row.values()])
    return buffer.getvalue()


__all__ = [
    "STEP_FILE_FORMATS",
    "StepCarbon",
    "StepFileWriter",
    "check_step_file_format",
    "read_step_file",
    "step_file_path",
    "step_file_text",
]
