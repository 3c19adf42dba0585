"""Reading the CSV tables packaged inside hf_eco2ai.

Every packaged table is a UTF-8 CSV file that opens with ``# key: value`` lines saying where its
data came from (at least ``dataset``, ``source``, ``year`` and ``licence``), followed by an ordinary
CSV header row and the data rows. Keeping the provenance inside the file means it travels with
every copy of the data, and a human can read both with any text viewer.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from typing import Dict, Tuple

REQUIRED_METADATA_KEYS: Tuple[str, ...] = ("dataset", "source", "year", "licence")


@dataclass(frozen=True)
class PackagedTable:
    """One packaged table: its ``# key: value`` metadata and its rows as column -> text."""

    metadata: Dict[str, str]
    columns: Tuple[str, ...]
    rows: Tuple[Dict[str, str], ...]


def parse_table_text(text: str) -> PackagedTable:
    """Parse the text of a packaged table.

    Raises ``ValueError`` when a required metadata key is missing or the file has no header row;
    both mean the package is damaged, not that the user did something wrong.
    """
    lines = text.splitlines()
    metadata: Dict[str, str] = {}
    data_start = 0
    while data_start < len(lines) and lines[data_start].startswith("#"):
        key, separator, value = lines[data_start][1:].partition(":")
        if separator:
            metadata[key.strip()] = value.strip()
        data_start += 1
    missing = [key for key in REQUIRED_METADATA_KEYS if key not in metadata]
    if missing:
        raise ValueError(f"packaged table lacks metadata lines for {missing}")
    reader = csv.DictReader(io.StringIO("\n".join(lines[data_start:])))
    if not reader.fieldnames:
        raise ValueError("packaged table has no CSV header row")
    return PackagedTable(metadata=metadata, columns=tuple(reader.fieldnames), rows=tuple(reader))


def read_packaged_table(*path_parts: str) -> PackagedTable:
    """Read ``hf_eco2ai/<path_parts...>`` from the installed package (wheel, sdist or source tree).

    Raises ``FileNotFoundError`` if the file is not packaged and ``ValueError`` as
    :func:`parse_table_text`. Safe to call from any thread; callers cache the result.
    """
    resource = resources.files("hf_eco2ai")
    for part in path_parts:
        resource = resource / part
    return parse_table_text(resource.read_text(encoding="utf-8"))
