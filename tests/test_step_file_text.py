"""The per-step CSV file's text: every value written as Python writes it, whatever the batch."""

from __future__ import annotations

import csv
import io
import struct
from pathlib import Path
from typing import List

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hf_eco2ai._core import csv_rows
from hf_eco2ai.meter.flags import STEP_FLAG_NAMES
from hf_eco2ai.reporting.csv_format import step_columns
from hf_eco2ai.reporting.step_file import StepCarbon, StepFileWriter, read_step_file
from hf_eco2ai.session.run_records import StepBatch

CHANNELS = ["cpu:package-0", "gpu:0", 'odd "name", quoted']
FLAG_BITS = [bit for bit, _ in STEP_FLAG_NAMES]


@settings(max_examples=2000, deadline=None)
@given(values=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=20))
# Exactly halfway between two shortest forms (...312.2 and ...312.3): Python writes the even one.
@example(values=[562949953421312.25, -562949953421312.25, 562949953421312.75])
def test_a_float_column_is_written_as_pythons_repr(values: List[float]) -> None:
    data = struct.pack(f"<{len(values)}d", *values)
    text = csv_rows(len(values), [("float", data)]).decode()
    assert text == "".join(f"{value!r}\r\n" for value in values)


def reference_rows(run_id: str, batch: StepBatch, carbon: StepCarbon) -> str:
    """The rows as Python's csv module writes them, from the same values."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    kwh = batch.joules / 3.6e6 * carbon.pue
    for row in range(len(batch)):
        flags = int(batch.flags[row])
        writer.writerow(
            [
                run_id,
                int(batch.index[row]),
                "" if batch.epoch[row] < 0 else int(batch.epoch[row]),
                float(batch.t0_s[row]),
                float(batch.t1_s[row]),
                float(batch.t1_s[row] - batch.t0_s[row]),
                float(batch.joules[row]),
                float(kwh[row]),
                float(kwh[row] * carbon.g_per_kwh / 1000.0),
                carbon.g_per_kwh,
                carbon.source,
                "" if carbon.year is None else carbon.year,
                flags,
                "|".join(name for bit, name in STEP_FLAG_NAMES if flags & bit),
                *(float(value) for value in batch.joules_by_channel[row]),
            ]
        )
    return buffer.getvalue()


batches = st.integers(1, 700).flatmap(
    lambda n: st.builds(
        lambda index0, epochs, times, joules, flags, by_channel: StepBatch(
            np.arange(index0, index0 + n, dtype=np.int64),
            epochs,
            times,
            times + np.abs(joules) / 100.0,
            joules,
            flags,
            by_channel,
        ),
        st.integers(0, 2**40),
        hnp.arrays(np.int64, n, elements=st.integers(-1, 5)),
        hnp.arrays(np.float64, n, elements=st.floats(0.0, 1e6)),
        hnp.arrays(np.float64, n, elements=st.floats(0.0, 1e4)),
        hnp.arrays(np.uint32, n, elements=st.sets(st.sampled_from(FLAG_BITS)).map(sum)),
        hnp.arrays(np.float64, (n, len(CHANNELS)), elements=st.floats(0.0, 1e4)),
    )
)


@settings(max_examples=40, deadline=None)
@given(batch=batches, year=st.one_of(st.none(), st.integers(2015, 2030)))
def test_the_file_holds_what_the_csv_module_writes_for_the_same_values(
    tmp_path_factory: pytest.TempPathFactory, batch: StepBatch, year: int | None
) -> None:
    path = tmp_path_factory.mktemp("steps") / "run.steps.csv"
    carbon = StepCarbon(1.2, 56.0, "ember, 2023", year)
    writer = StepFileWriter(path, "csv", "run-1", CHANNELS)
    writer.write(batch, carbon)
    writer.write(batch, carbon)
    writer.close()
    header = io.StringIO()
    csv.writer(header, lineterminator="\r\n").writerow(step_columns(CHANNELS))
    expected = header.getvalue() + 2 * reference_rows("run-1", batch, carbon)
    assert path.read_bytes().decode() == expected
    assert [step["index"] for step in read_step_file(path)] == 2 * batch.index.tolist()


def test_a_run_without_steps_still_gets_the_header(tmp_path: Path) -> None:
    writer = StepFileWriter(tmp_path / "empty.steps.csv", "csv", "run-1", CHANNELS)
    writer.close()
    assert (tmp_path / "empty.steps.csv").read_bytes().count(b"\r\n") == 1
    assert list(read_step_file(tmp_path / "empty.steps.csv")) == []


def test_bad_columns_are_errors_that_name_the_problem() -> None:
    with pytest.raises(ValueError, match='column kind "text" is unknown: use constant, int'):
        csv_rows(1, [("text", b"x")])
    with pytest.raises(ValueError, match="column 1 has 8 bytes; 2 rows of 8-byte values need 16"):
        csv_rows(2, [("constant", b"x"), ("int", struct.pack("<q", 1))])
    with pytest.raises(ValueError, match="code 3 has no cell"):
        csv_rows(1, [("lookup", (struct.pack("<q", 3), [(0, b"")]))])
