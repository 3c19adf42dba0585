"""CPU thermal design power (TDP) by model name, for the CPU energy estimate.

The estimate source multiplies a package's TDP by its utilisation when no RAPL counter exists, so it
needs the TDP of the CPU it runs on. ``/proc/cpuinfo`` names CPUs in vendor marketing style
("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"); the packaged table names them plainly
("Intel Xeon Platinum 8375C"). Lookup normalises both sides and then tries, in order:

1. the whole normalised name;
2. the CPU family word plus every token that carries a digit (so "Xeon 8375C" finds
   "Xeon Platinum 8375C"), accepted only when every candidate agrees on the TDP.

Anything else returns None: guessing a TDP from a different model would make an estimate look
better founded than it is, and the caller decides what to do without one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, FrozenSet, List, Optional, Tuple

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
class _TdpIndex:
    by_name: Dict[str, CpuTdp]
    by_family_and_numbers: Dict[_FuzzyKey, List[CpuTdp]]


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
def _index() -> _TdpIndex:
    table = read_packaged_table("meter", "cpu_tdp.csv")
    source = table.metadata["dataset"]
    by_name: Dict[str, CpuTdp] = {}
    by_family_and_numbers: Dict[_FuzzyKey, List[CpuTdp]] = {}
    for row in table.rows:
        entry = CpuTdp(watts=float(row["tdp_watts"]), matched_model=row["model"], source=source)
        normalised = normalise_cpu_name(entry.matched_model)
        by_name[normalised] = entry
        key = _fuzzy_key(normalised)
        if key is not None:
            by_family_and_numbers.setdefault(key, []).append(entry)
    return _TdpIndex(by_name=by_name, by_family_and_numbers=by_family_and_numbers)


def lookup_cpu_tdp(model_name: str) -> Optional[CpuTdp]:
    """The packaged TDP for a CPU model name as /proc/cpuinfo or a vendor page writes it.

    Returns None when the model is not in the table or the name is ambiguous (a virtual CPU such
    as "Intel(R) Xeon(R) CPU @ 2.20GHz" names no model). Loads the table on first use (cached,
    thread-safe); raises nothing for any string input.
    """
    normalised = normalise_cpu_name(model_name)
    if not normalised:
        return None
    index = _index()
    exact = index.by_name.get(normalised)
    if exact is not None:
        return exact
    key = _fuzzy_key(normalised)
    candidates = index.by_family_and_numbers.get(key, []) if key is not None else []
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
