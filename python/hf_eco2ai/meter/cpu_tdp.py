"""CPU thermal design power (TDP) by model name, for the CPU energy estimate.

The estimate source multiplies a package's TDP by its utilisation when no RAPL counter exists, so it
needs the TDP of the CPU it runs on. ``/proc/cpuinfo`` names CPUs in vendor marketing style
("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"); the packaged table names them plainly
("Intel Xeon Platinum 8375C"). Lookup normalises both sides and then tries, in order:

1. the whole normalised name;
2. the CPU family word plus every token that carries a digit (so "Xeon 8375C" finds
   "Xeon Platinum 8375C"), accepted only when every candidate agrees on the TDP.

Only the table rows that contain the query's most telling word (its longest model number) are
normalised: normalising drops text and never adds any, so every word of a row's normalised name
is in its raw name. A lookup costs a scan of the table's text, not a normalisation of its
4,877 names, which matters because it is part of the first run's start in a process.

Anything else returns None: guessing a TDP from a different model would make an estimate look
better founded than it is, and the caller decides what to do without one.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache
from typing import FrozenSet, List, Optional, Tuple

from hf_eco2ai.datafiles import read_packaged_table

_TRADEMARKS = re.compile(r"\((?:r|tm|c)\)|®|™", re.IGNORECASE)
_CLOCK_SPEED = re.compile(r"@.*$")
_INTEGRATED_GRAPHICS = re.compile(r"\s(?:with|w/)\s.*$", re.IGNORECASE)
_PARENTHESISED = re.compile(r"\([^)]*\)")
_CORE_COUNT = re.compile(r"\b\d+-cores?\b", re.IGNORECASE)
_GENERATION_PREFIX = re.compile(r"\b\d+(?:st|nd|rd|th)\s+gen\b", re.IGNORECASE)
_NOISE_WORDS = frozenset({"intel", "amd", "cpu", "processor"})
_HAS_DIGIT = re.compile(r"\d").search


@dataclass(frozen=True)
class CpuTdp:
    """The TDP found for a CPU model.

    ``watts`` is the rated TDP of one package (socket); ``matched_model`` is the table's name for
    the model that matched; ``source`` names the dataset the figure came from.
    """

    watts: float
    matched_model: str
    source: str


_FuzzyKey = Tuple[str, FrozenSet[str]]


@dataclass(frozen=True)
class _Table:
    source: str
    rows: List[Tuple[str, float]]
    # Every model name lower-cased, one per line, and where each line starts: one string that
    # str.find scans at C speed.
    text: str
    line_starts: List[int]


def normalise_cpu_name(model_name: str) -> str:
    """Lower-case ``model_name`` and drop trademarks, clock speed, core count and filler words.

    "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz" and "Intel Xeon Platinum 8375C" both become
    "xeon platinum 8375c".
    """
    # Each pattern runs only where its literal part occurs: most table names are plain, and
    # building the index (every name, once per process) is part of a run's start.
    lowered = model_name.lower()
    text = model_name
    if "(" in lowered or "®" in lowered or "™" in lowered:
        text = _TRADEMARKS.sub(" ", text)
    if "@" in lowered:
        text = _CLOCK_SPEED.sub(" ", text)
    if "with" in lowered or "w/" in lowered:
        text = _INTEGRATED_GRAPHICS.sub(" ", text)
    if "(" in lowered:
        text = _PARENTHESISED.sub(" ", text)
    if "core" in lowered:
        text = _CORE_COUNT.sub(" ", text)
    if "gen" in lowered:
        text = _GENERATION_PREFIX.sub(" ", text)
    words = [word for word in text.lower().split() if word not in _NOISE_WORDS]
    return " ".join(words)


def _fuzzy_key(normalised_name: str) -> Optional[_FuzzyKey]:
    words = normalised_name.split()
    numbered = frozenset(filter(_HAS_DIGIT, words))
    if not words or not numbered or words[0] in numbered:
        return None
    return words[0], numbered


@lru_cache(maxsize=1)
def _table() -> _Table:
    table = read_packaged_table("meter", "cpu_tdp.csv")
    rows = [(row["model"], float(row["tdp_watts"])) for row in table.rows]
    line_starts = []
    position = 0
    for model, _ in rows:
        line_starts.append(position)
        position += len(model) + 1
    text = "\n".join(model.lower() for model, _ in rows)
    return _Table(source=table.metadata["dataset"], rows=rows, text=text, line_starts=line_starts)


def _rows_containing(table: _Table, word: str) -> List[int]:
    """The rows whose lower-cased name contains ``word``, in table order."""
    found: List[int] = []
    position = table.text.find(word)
    while position != -1:
        row = bisect_right(table.line_starts, position) - 1
        found.append(row)
        next_row = row + 1
        if next_row == len(table.line_starts):
            break
        position = table.text.find(word, table.line_starts[next_row])
    return found


def lookup_cpu_tdp(model_name: str) -> Optional[CpuTdp]:
    """The packaged TDP for a CPU model name as /proc/cpuinfo or a vendor page writes it.

    Returns None when the model is not in the table or the name is ambiguous (a virtual CPU such
    as "Intel(R) Xeon(R) CPU @ 2.20GHz" names no model). Loads the table on first use (cached,
    thread-safe); raises nothing for any string input.
    """
    normalised = normalise_cpu_name(model_name)
    if not normalised:
        return None
    key = _fuzzy_key(normalised)
    anchor = max(key[1] if key is not None else normalised.split(), key=len)
    table = _table()
    exact: Optional[CpuTdp] = None
    candidates: List[CpuTdp] = []
    for row in _rows_containing(table, anchor):
        model, watts = table.rows[row]
        row_normalised = normalise_cpu_name(model)
        if row_normalised == normalised:
            # The last of equal names wins, as a name-keyed table would have it.
            exact = CpuTdp(watts=watts, matched_model=model, source=table.source)
        if key is not None and _fuzzy_key(row_normalised) == key:
            candidates.append(CpuTdp(watts=watts, matched_model=model, source=table.source))
    if exact is not None:
        return exact
    if candidates and len({candidate.watts for candidate in candidates}) == 1:
        return min(candidates, key=lambda candidate: candidate.matched_model)
    return None


def _cpuinfo_values(cpuinfo_path: str, field: str) -> List[str]:
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as cpuinfo:
            lines = cpuinfo.readlines()
    except OSError:
        return []
    values = []
    for line in lines:
        name, separator, value = line.partition(":")
        if separator and name.strip() == field:
            values.append(value.strip())
    return values


def read_cpu_model_name(cpuinfo_path: str = "/proc/cpuinfo") -> Optional[str]:
    """The first "model name" in a cpuinfo file, or None when it has none or cannot be read.

    ARM Linux kernels usually print no "model name" line, so None is an ordinary answer.
    """
    names = [name for name in _cpuinfo_values(cpuinfo_path, "model name") if name]
    return names[0] if names else None


def count_cpu_packages(cpuinfo_path: str = "/proc/cpuinfo") -> int:
    """How many CPU packages (sockets) a cpuinfo file lists: its distinct "physical id" values.

    Returns at least 1: a file without "physical id" lines (many VMs and ARM kernels) or one that
    cannot be read still describes a machine with one package as far as can be known.
    """
    return max(1, len(set(_cpuinfo_values(cpuinfo_path, "physical id"))))
