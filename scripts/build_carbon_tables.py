#!/usr/bin/env python3
"""Regenerate hf_eco2ai's packaged data tables from the upstream files they derive from.

Upstream inputs (both pinned, both fetched from PyPI with ``pip download --no-deps``):

* codecarbon 3.3.2 (MIT): ``codecarbon/data/`` holds the CPU TDP list, Our World in Data country
  intensities, EPA eGRID US states, Canadian provincial mixes, Nordic bidding zones and Google's
  GCP region intensities;
* pycountry 26.2.16 (LGPL-2.1; its ISO 3166 database comes from Debian's iso-codes): only the
  ISO 3166-1 alpha-2 <-> alpha-3 pairs, which are facts, are used.

Hand-written inputs (AWS/Azure region -> grid zone, neighbouring grids) live in this script as
literal tables with their sources noted, so that every packaged file has exactly one generator.

Usage::

    python scripts/build_carbon_tables.py                # pip-download the pinned wheels, write
    python scripts/build_carbon_tables.py --installed    # use the copies installed in this Python
    python scripts/build_carbon_tables.py --codecarbon DIR --pycountry DIR   # unpacked wheels
    python scripts/build_carbon_tables.py --installed --check   # exit 1 if a committed file differs

The output is deterministic: running it on the same inputs reproduces the committed files byte for
byte (tests/test_carbon_tables.py checks this with ``--installed``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import importlib.util
import io
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

CODECARBON_VERSION = "3.3.2"
# The year codecarbon 3.3.2 was published; its CPU list carries no date of its own.
CODECARBON_RELEASE_YEAR = 2026
PYCOUNTRY_VERSION = "26.2.16"
REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATOR = "scripts/build_carbon_tables.py"

CPU_TDP_PATH = "python/hf_eco2ai/hardware/cpu_tdp.csv"

# Which rows of codecarbon's 4,900-row CPU list to ship: CPUs that ML training plausibly runs on
# (servers, workstations, desktops, and laptops of the last few generations). Old, embedded and
# low-power parts are left out to keep the package small.
CPU_FAMILIES_KEPT = (
    r"AMD EPYC \S+",
    r"AMD Ryzen Threadripper( PRO)? \S+",
    r"AMD Ryzen [3579]( PRO)? [1-9]\d{3}(X|XT|X3D|G|GT|F)?",
    r"AMD Ryzen [3579]( PRO)? [4-9]\d{3}(U|H|HS|HX|HX3D)",
    r"Intel Xeon (Platinum|Gold|Silver|Bronze) \S+",
    r"Intel Xeon E[57]-\d{4}[A-Z]* v[34]",
    r"Intel Xeon (W-\d{4,5}[A-Z]*|w[3579]-\d{4,5}[A-Z]*)",
    r"Intel Xeon 6\d{3}[A-Z]*(-[A-Z]+)?",
    r"Intel Xeon E-2\d{3}[A-Z]*",
    r"Intel Xeon CPU Max \S+",
    r"Intel Core i[3579]-([89]\d{3}|1\d{4})(K|KF|KS|F|T)?",
    r"Intel Core i[3579]-1\d{3,4}(U|H|HK|HX|G\d|P)",
    r"Intel Core Ultra [579] \d{3}(K|KF|F|T|U|H|HX|V)?",
    r"Apple M\d( Pro| Max| Ultra)?",
)


@dataclass(frozen=True)
class UpstreamDirs:
    """Where the unpacked upstream packages are: the ``codecarbon`` and ``pycountry`` package dirs."""

    codecarbon_package: Path
    pycountry_package: Path


def format_number(value: float) -> str:
    """Shortest text for a number: integers without a decimal point, others as Python prints them."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_table(metadata: Sequence[Tuple[str, object]], columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A packaged table's text: ``# key: value`` lines, then CSV with ``\\n`` line endings."""
    buffer = io.StringIO()
    for key, value in metadata:
        buffer.write(f"# {key}: {value}\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def build_cpu_tdp(upstream: UpstreamDirs) -> str:
    source_path = upstream.codecarbon_package / "data" / "hardware" / "cpu_power.csv"
    with source_path.open(encoding="utf-8-sig", newline="") as source:
        source_rows = list(csv.DictReader(source))
    kept = re.compile("|".join(f"(?:{pattern})" for pattern in CPU_FAMILIES_KEPT))
    watts_by_model: Dict[str, float] = {}
    for row in source_rows:
        model = row["Name"].strip()
        if kept.fullmatch(model):
            watts_by_model[model] = float(row["TDP"])
    rows = [(model, format_number(watts)) for model, watts in sorted(watts_by_model.items())]
    metadata = (
        ("dataset", f"codecarbon {CODECARBON_VERSION} cpu_power.csv"),
        ("source", "codecarbon/data/hardware/cpu_power.csv in codecarbon "
         f"{CODECARBON_VERSION}, compiled by CodeCarbon from Intel ARK and AMD product pages; "
         "filtered to server, workstation, desktop and recent laptop CPUs"),
        ("year", CODECARBON_RELEASE_YEAR),
        ("licence", "MIT (codecarbon); TDP values are manufacturer specifications"),
        ("units", "tdp_watts: rated thermal design power of one package (socket), W"),
        ("generated-by", GENERATOR),
    )
    return render_table(metadata, ("model", "tdp_watts"), rows)


def build_all(upstream: UpstreamDirs) -> Dict[str, str]:
    """Every packaged table, as repository-relative path -> file text."""
    return {CPU_TDP_PATH: build_cpu_tdp(upstream)}


def _installed_package_dir(distribution: str, version: str) -> Path:
    installed_version = importlib.metadata.version(distribution)
    if installed_version != version:
        raise SystemExit(f"{distribution} {installed_version} is installed; the tables derive from {version}")
    spec = importlib.util.find_spec(distribution)
    if spec is None or spec.origin is None:
        raise SystemExit(f"{distribution} is not importable from {sys.executable}")
    return Path(spec.origin).parent


def _unpacked_package_dir(root: Path, package: str) -> Path:
    """Accept either an unpacked wheel (holding ``<package>/``) or the package folder itself."""
    return root / package if (root / package / "__init__.py").exists() else root


def _download_and_unpack(workdir: Path) -> UpstreamDirs:
    for requirement in (f"codecarbon=={CODECARBON_VERSION}", f"pycountry=={PYCOUNTRY_VERSION}"):
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
             "--dest", str(workdir), requirement],
            check=True,
        )
    for wheel in workdir.glob("*.whl"):
        zipfile.ZipFile(wheel).extractall(workdir / "unpacked")
    return UpstreamDirs(workdir / "unpacked" / "codecarbon", workdir / "unpacked" / "pycountry")


def _write_or_check(tables: Dict[str, str], output_root: Path, check: bool) -> int:
    differing: List[str] = []
    for relative_path, text in tables.items():
        target = output_root / relative_path
        encoded = text.encode("utf-8")
        if check:
            if not target.exists() or target.read_bytes() != encoded:
                differing.append(relative_path)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(encoded)
        print(f"wrote {relative_path} ({len(encoded)} bytes)")
    for relative_path in differing:
        print(f"differs from a fresh build: {relative_path}", file=sys.stderr)
    return 1 if differing else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--installed", action="store_true",
                        help="read the codecarbon and pycountry installed in this Python")
    parser.add_argument("--codecarbon", type=Path, help="an unpacked codecarbon wheel (or its package folder)")
    parser.add_argument("--pycountry", type=Path, help="an unpacked pycountry wheel (or its package folder)")
    parser.add_argument("--output-root", type=Path, default=REPO_ROOT,
                        help="repository root to write into (default: this script's repository)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if any file under --output-root differs")
    arguments = parser.parse_args(argv)
    if (arguments.codecarbon is None) != (arguments.pycountry is None):
        parser.error("give both --codecarbon and --pycountry, or neither")
    with tempfile.TemporaryDirectory() as workdir:
        if arguments.codecarbon is not None:
            upstream = UpstreamDirs(_unpacked_package_dir(arguments.codecarbon, "codecarbon"),
                                    _unpacked_package_dir(arguments.pycountry, "pycountry"))
        elif arguments.installed:
            upstream = UpstreamDirs(_installed_package_dir("codecarbon", CODECARBON_VERSION),
                                    _installed_package_dir("pycountry", PYCOUNTRY_VERSION))
        else:
            upstream = _download_and_unpack(Path(workdir))
        return _write_or_check(build_all(upstream), arguments.output_root, arguments.check)


if __name__ == "__main__":
    sys.exit(main())
