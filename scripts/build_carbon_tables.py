#!/usr/bin/env python3
"""Regenerate hf_eco2ai's packaged data tables from the upstream files they derive from.

Upstream inputs (both pinned, both fetched from PyPI with ``pip download --no-deps``):

* codecarbon 3.3.2 (MIT): ``codecarbon/data/`` holds the CPU TDP list, Our World in Data country
  intensities, EPA eGRID US states, Canadian provincial mixes, Nordic bidding zones, Chinese
  provincial factors and Google's GCP region intensities;
* pycountry 26.2.16 (LGPL-2.1; its ISO 3166 database comes from Debian's iso-codes): only the
  ISO 3166-1 alpha-2 <-> alpha-3 pairs, which are facts, are used.

Hand-written inputs (cloud region -> grid zone, neighbouring grids) live beside this script in
carbon_table_inputs.py with their sources noted, so that every packaged file has one generator.

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
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import carbon_table_inputs as inputs

# The TDP table keeps only names the package's own lookup can tell apart, so the generator uses
# the lookup's normalisation rather than a copy of it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
from hf_eco2ai.meter.cpu_tdp import normalise_cpu_name  # noqa: E402

CODECARBON_VERSION = "3.3.2"
# The year codecarbon 3.3.2 was published; its CPU list carries no date of its own.
CODECARBON_RELEASE_YEAR = 2026
PYCOUNTRY_VERSION = "26.2.16"
REPO_ROOT = Path(__file__).resolve().parent.parent
GENERATOR = "scripts/build_carbon_tables.py"

CPU_TDP_PATH = "python/hf_eco2ai/meter/cpu_tdp.csv"
CARBON_DATA_DIR = "python/hf_eco2ai/carbon/data"
SUBNATIONAL_TABLES = ("us_states.csv", "canada_provinces.csv", "nordic_zones.csv", "china_provinces.csv")
GRAMS_PER_POUND = 453.59237
# Fuel names of canada_energy_mix.json -> keys of carbon_intensity_per_source.json. Tidal power has
# no factor of its own; its lifecycle emissions are of the same order as run-of-river hydro.
CANADA_FUEL_FACTORS = {
    "naturalGas": "natural_gas",
    "petroleum": "petroleum",
    "coal": "coal",
    "nuclear": "nuclear",
    "hydro": "hydroelectricity",
    "tidal": "hydroelectricity",
    "wind": "wind",
    "solar": "solar",
    "biomass": "biomass",
}
# codecarbon 3.3.2's impact.csv misspells one region name.
GCP_REGION_SPELLING_FIXES = {"me-cenrtal1": "me-central1"}

# A TDP cell must be one positive number: codecarbon 3.3.2 has four cells such as "27.29.5"
# (two figures run together) and one 0 W row, which no estimate can use.
TDP_CELL = re.compile(r"\d+(?:\.\d+)?")


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
    """Every usable row of codecarbon's CPU list, except names the lookup cannot tell apart.

    Two rows whose names normalise alike (``normalise_cpu_name``, the lookup's own rule) but
    whose TDPs differ are both left out: ``/proc/cpuinfo`` could not say which one a CPU is.
    """
    source_path = upstream.codecarbon_package / "data" / "hardware" / "cpu_power.csv"
    with source_path.open(encoding="utf-8-sig", newline="") as source:
        source_rows = list(csv.DictReader(source))
    watts_by_model: Dict[str, float] = {}
    for row in source_rows:
        cell = row["TDP"].strip()
        if TDP_CELL.fullmatch(cell) and float(cell) > 0:
            watts_by_model[row["Name"].strip()] = float(cell)
    watts_by_normalised: Dict[str, Set[float]] = {}
    for model, watts in watts_by_model.items():
        watts_by_normalised.setdefault(normalise_cpu_name(model), set()).add(watts)
    rows = [
        (model, format_number(watts))
        for model, watts in sorted(watts_by_model.items())
        if len(watts_by_normalised[normalise_cpu_name(model)]) == 1
    ]
    metadata = (
        ("dataset", f"codecarbon {CODECARBON_VERSION} cpu_power.csv"),
        (
            "source",
            "codecarbon/data/hardware/cpu_power.csv in codecarbon "
            f"{CODECARBON_VERSION}, compiled by CodeCarbon from Intel ARK and AMD product pages; "
            "every row with one positive TDP, less the names that normalise alike with different TDPs",
        ),
        ("year", CODECARBON_RELEASE_YEAR),
        ("licence", "MIT (codecarbon); TDP values are manufacturer specifications"),
        ("units", "tdp_watts: rated thermal design power of one package (socket), W"),
        ("generated-by", GENERATOR),
    )
    return render_table(metadata, ("model", "tdp_watts"), rows)


def _load_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as source:
        return json.load(source)


def _private_infra(upstream: UpstreamDirs) -> Path:
    return upstream.codecarbon_package / "data" / "private_infra"


def _place_name(lower_case_name: str) -> str:
    small_words = {"and", "of"}
    words = lower_case_name.split()
    return " ".join(word if word in small_words else word.capitalize() for word in words)


def _aliases(zone: str, name: str, upstream_aliases: Iterable[str] = ()) -> str:
    candidates = list(upstream_aliases) + list(inputs.EXTRA_REGION_ALIASES.get(zone, ()))
    kept = sorted({alias for alias in candidates if alias.lower() != name.lower()})
    return ";".join(kept)


def build_countries(upstream: UpstreamDirs) -> str:
    mix = _load_json(_private_infra(upstream) / "global_energy_mix.json")
    iso = _load_json(upstream.pycountry_package / "databases" / "iso3166-1.json")["3166-1"]
    alpha2_by_alpha3 = {country["alpha_3"]: country["alpha_2"] for country in iso}
    rows = []
    for alpha3, country in mix.items():
        if alpha3 not in alpha2_by_alpha3:
            raise SystemExit(f"global_energy_mix.json has {alpha3!r}, which is no ISO 3166-1 alpha-3 code")
        rows.append(
            (
                alpha2_by_alpha3[alpha3],
                alpha3,
                country["country_name"],
                format_number(country["carbon_intensity"]),
                str(country["year"]),
            )
        )
    rows.sort()
    years = sorted({int(row[4]) for row in rows})
    metadata = (
        ("dataset", "Our World in Data electricity carbon intensity (Ember, Energy Institute)"),
        (
            "source",
            "carbon_intensity and year of each country in codecarbon/data/private_infra/"
            f"global_energy_mix.json (codecarbon {CODECARBON_VERSION}), compiled from Our World in "
            "Data's energy dataset, which takes Ember and the Energy Institute Statistical Review; "
            "lifecycle gCO2eq per kWh generated. ISO 3166-1 alpha-2 codes from pycountry "
            f"{PYCOUNTRY_VERSION} (Debian iso-codes)",
        ),
        ("year", years[-1]),
        ("years", f"each row's year column; {years[0]}-{years[-1]}, most rows 2022 or 2023"),
        ("licence", "CC BY 4.0 (Our World in Data); compilation MIT (codecarbon)"),
        ("units", "g_per_kwh: grams CO2-equivalent per kWh of electricity generated"),
        ("generated-by", GENERATOR),
    )
    return render_table(metadata, ("alpha2", "alpha3", "name", "g_per_kwh", "year"), rows)


def build_world_average(upstream: UpstreamDirs) -> str:
    mix = _load_json(_private_infra(upstream) / "global_energy_mix.json")
    total_twh = sum(country["total_TWh"] for country in mix.values())
    weighted = sum(country["carbon_intensity"] * country["total_TWh"] for country in mix.values())
    twh_by_year: Dict[int, float] = {}
    for country in mix.values():
        twh_by_year[country["year"]] = twh_by_year.get(country["year"], 0.0) + country["total_TWh"]
    main_year = max(twh_by_year, key=lambda year: twh_by_year[year])
    share_of_main_year = 100.0 * twh_by_year[main_year] / total_twh
    metadata = (
        ("dataset", "World average: generation-weighted mean of the Our World in Data country table"),
        (
            "source",
            "sum(carbon_intensity x total_TWh) / sum(total_TWh) over every country of "
            "codecarbon/data/private_infra/global_energy_mix.json (codecarbon "
            f"{CODECARBON_VERSION}; Our World in Data). Chosen over the fixed figures of other tools "
            "(CodeCarbon 475 from IEA 2019, carbontracker 445, eco2ai 436.5) because it is the same "
            "data, method and year as countries.csv, so a fallback is comparable with a country "
            f"figure; {share_of_main_year:.0f}% of the generation weighed is from {main_year}",
        ),
        ("year", main_year),
        ("licence", "CC BY 4.0 (Our World in Data); compilation MIT (codecarbon)"),
        ("units", "g_per_kwh: grams CO2-equivalent per kWh; generation_twh: TWh weighed"),
        ("generated-by", GENERATOR),
    )
    row = (
        "WORLD",
        "World",
        format_number(round(weighted / total_twh, 1)),
        str(main_year),
        str(len(mix)),
        format_number(round(total_twh, 1)),
    )
    return render_table(metadata, ("zone", "name", "g_per_kwh", "year", "countries", "generation_twh"), [row])


SUBNATIONAL_COLUMNS = ("zone", "country", "region", "name", "aliases", "g_per_kwh", "year")


def build_us_states(upstream: UpstreamDirs) -> str:
    egrid = _load_json(_private_infra(upstream) / "2023" / "usa_emissions.json")
    source_note = egrid["_source"]
    rows = []
    for key, state in egrid.items():
        if key.startswith("_") or state["regionCode"] == "usa":
            continue
        code = state["regionCode"]
        zone = f"US-{code}"
        name = _place_name(key)
        g_per_kwh = round(state["emissions"] * GRAMS_PER_POUND / 1000.0, 1)
        rows.append(
            (
                zone,
                "US",
                code,
                name,
                _aliases(zone, name),
                format_number(g_per_kwh),
                str(source_note["year"]),
                format_number(state["emissions"]),
            )
        )
    rows.sort()
    metadata = (
        ("dataset", f"EPA eGRID{source_note['year']} state CO2e output emission rates"),
        (
            "source",
            f"{source_note['name']} (field {source_note['field']}, {source_note['url']}), "
            f"as compiled in codecarbon/data/private_infra/2023/usa_emissions.json (codecarbon "
            f"{CODECARBON_VERSION}); converted from lb/MWh with 1 lb = 453.59237 g",
        ),
        ("year", source_note["year"]),
        ("licence", "Public domain (US EPA); compilation MIT (codecarbon)"),
        (
            "units",
            "g_per_kwh: grams CO2-equivalent per kWh generated in the state (operational, "
            "not lifecycle); egrid_lbs_per_mwh: the upstream figure before conversion",
        ),
        ("generated-by", GENERATOR),
    )
    return render_table(metadata, SUBNATIONAL_COLUMNS + ("egrid_lbs_per_mwh",), rows)


def build_canada_provinces(upstream: UpstreamDirs) -> str:
    mixes = _load_json(_private_infra(upstream) / "2023" / "canada_energy_mix.json")
    factors = _load_json(_private_infra(upstream) / "carbon_intensity_per_source.json")
    rows = []
    for key, mix in mixes.items():
        if mix.get("other", 0.0):
            raise SystemExit(f"{key} has an 'other' generation share, which has no emission factor")
        shares = {fuel: share for fuel, share in mix.items() if fuel not in ("total", "other")}
        weighted = sum(share * factors[CANADA_FUEL_FACTORS[fuel]] for fuel, share in shares.items())
        code = inputs.CANADA_PROVINCE_CODES[key]
        zone = f"CA-{code}"
        name = _place_name(key)
        rows.append(
            (
                zone,
                "CA",
                code,
                name,
                _aliases(zone, name),
                format_number(round(weighted / sum(shares.values()), 1)),
                "2023",
            )
        )
    rows.sort()
    metadata = (
        ("dataset", "Canada Energy Regulator, Canada's Energy Future 2023, provincial generation mix"),
        (
            "source",
            "generation shares per fuel from codecarbon/data/private_infra/2023/"
            f"canada_energy_mix.json (codecarbon {CODECARBON_VERSION}; Canada Energy Regulator, "
            "Canada's Energy Future Data Appendices, doi:10.35002/zjr8-8x75), each multiplied by its "
            "lifecycle factor from codecarbon's carbon_intensity_per_source.json (coal 995, "
            "petroleum 816, natural gas 743, biomass 230, solar 48, nuclear 29, hydro and wind 26; "
            "tidal counted as hydro) and divided by the sum of the shares",
        ),
        ("year", 2023),
        (
            "licence",
            "Open Government Licence - Canada (Canada Energy Regulator); factors and compilation MIT (codecarbon)",
        ),
        ("units", "g_per_kwh: grams CO2-equivalent per kWh generated in the province (lifecycle)"),
        ("generated-by", GENERATOR),
    )
    return render_table(metadata, SUBNATIONAL_COLUMNS, rows)


def build_nordic_zones(upstream: UpstreamDirs) -> str:
    nordic = _load_json(_private_infra(upstream) / "nordic_emissions.json")
    rows = []
    years = set()
    for code, zone_data in nordic["data"].items():
        if not re.fullmatch(r"(SE|NO)\d", code):
            continue  # Finland is one zone; countries.csv already has it
        country = code[:2]
        zone = f"{country}-{code}"
        name = zone_data["description"]
        years.add(zone_data["year"])
        rows.append(
            (
                zone,
                country,
                code,
                name,
                _aliases(zone, name),
                format_number(zone_data["emission_factor"]),
                str(zone_data["year"]),
            )
        )
    rows.sort()
    metadata = (
        ("dataset", f"ENTSO-E {max(years)} bidding-zone generation mix (Sweden, Norway)"),
        (
            "source",
            "SE1-SE4 and NO1-NO5 from codecarbon/data/private_infra/nordic_emissions.json "
            f"(codecarbon {CODECARBON_VERSION}): ENTSO-E Transparency Platform actual generation per "
            "production type (A75), full year, each type weighted by codecarbon's per-fuel lifecycle "
            "factor; types without a factor count as 0, so low-coverage zones (SE4) are lower bounds",
        ),
        ("year", max(years)),
        ("licence", "ENTSO-E Transparency Platform data, reuse with attribution; derived values MIT (codecarbon)"),
        ("units", "g_per_kwh: grams CO2-equivalent per kWh generated in the bidding zone"),
        ("generated-by", GENERATOR),
    )
    return render_table(metadata, SUBNATIONAL_COLUMNS, rows)


def build_china_provinces(upstream: UpstreamDirs) -> str:
    china = _load_json(_private_infra(upstream) / "2023" / "china_provincial_emissions.json")
    rows = []
    for zone, province in china["data"].items():
        name = province["description"]
        rows.append(
            (
                zone,
                "CN",
                zone.split("-", 1)[1],
                name,
                _aliases(zone, name, province["names"]),
                format_number(province["emission_factor"]),
                str(province["year"]),
            )
        )
    rows.sort()
    metadata = (
        ("dataset", f"MEE/NBS China {china['metadata']['year']} provincial electricity CO2 factors"),
        (
            "source",
            f"{china['metadata']['source']} As compiled in codecarbon/data/private_infra/"
            f"2023/china_provincial_emissions.json (codecarbon {CODECARBON_VERSION}). CO2 only and "
            "operational, so somewhat lower than a lifecycle CO2-equivalent figure; Tibet, Hong Kong, "
            "Macao and Taiwan are not published",
        ),
        ("year", china["metadata"]["year"]),
        (
            "licence",
            "Official statistics of the Ministry of Ecology and Environment and the "
            "National Bureau of Statistics of China; compilation MIT (codecarbon)",
        ),
        ("units", "g_per_kwh: grams CO2 per kWh consumed in the province"),
        ("generated-by", GENERATOR),
    )
    return render_table(metadata, SUBNATIONAL_COLUMNS, rows)


def _google_intensities(upstream: UpstreamDirs) -> Dict[str, float]:
    path = upstream.codecarbon_package / "data" / "cloud" / "impact.csv"
    with path.open(encoding="utf-8-sig", newline="") as source:
        rows = [row for row in csv.DictReader(source) if row["provider"] == "gcp"]
    intensities = {}
    for row in rows:
        region = GCP_REGION_SPELLING_FIXES.get(row["region"], row["region"])
        if region not in inputs.GCP_REGIONS:
            raise SystemExit(f"impact.csv has GCP region {region!r}; add its zone to carbon_table_inputs.py")
        intensities[region] = float(row["impact"])
    return intensities


def build_cloud_gcp(upstream: UpstreamDirs) -> str:
    intensities = _google_intensities(upstream)
    rows = []
    for region, (location, zone, grid_note) in sorted(inputs.GCP_REGIONS.items()):
        google = intensities.get(region)
        rows.append((region, location, zone, grid_note, "" if google is None else format_number(google)))
    metadata = (
        ("dataset", "Google Cloud region grid carbon intensity 2023"),
        (
            "source",
            "google_g_per_kwh: 'Grid carbon intensity (gCO2eq/kWh)' of Google's "
            "region-carbon data for 2023 (cloud.google.com/sustainability/region-carbon), as copied "
            f"into codecarbon/data/cloud/impact.csv (codecarbon {CODECARBON_VERSION}; its "
            "'me-cenrtal1' is read as me-central1). Regions without a Google figure there take their "
            "zone's figure. Zones: hand-written from Google Cloud's public list of region locations "
            "(scripts/carbon_table_inputs.py)",
        ),
        ("year", 2023),
        (
            "licence",
            "Google figures published openly by Google, compilation MIT (codecarbon); "
            "zone mapping Apache-2.0 (hf-eco2ai)",
        ),
        ("units", "google_g_per_kwh: grams CO2-equivalent per kWh, average for the region's grid"),
        ("generated-by", GENERATOR),
    )
    return render_table(metadata, ("region", "location", "zone", "grid_note", "google_g_per_kwh"), rows)


def build_cloud_mapping(provider_title: str, regions: Dict[str, Tuple[str, str, str]], list_name: str) -> str:
    rows = [(region, location, zone, grid_note) for region, (location, zone, grid_note) in sorted(regions.items())]
    metadata = (
        ("dataset", f"hf-eco2ai {provider_title} region to grid zone map"),
        (
            "source",
            f"region cities from {provider_title}'s public region list ({list_name}), 2025; "
            "each region takes the intensity of its zone's row in the country or sub-national tables "
            "(scripts/carbon_table_inputs.py)",
        ),
        ("year", 2025),
        ("licence", "Apache-2.0 (hf-eco2ai)"),
        ("units", "zone: key of a row in countries.csv (alpha2) or a sub-national table (zone)"),
        ("generated-by", GENERATOR),
    )
    return render_table(metadata, ("region", "location", "zone", "grid_note"), rows)


def _pairs(text: str, prefix: str = "") -> List[Tuple[str, str]]:
    pairs = []
    for token in text.split():
        first, second = token.split("/")
        pairs.append((prefix + first, prefix + second))
    return pairs


def build_neighbours(known_zones: Set[str]) -> str:
    pairs = (
        _pairs(inputs.NEIGHBOUR_PAIRS_EUROPE)
        + _pairs(inputs.NEIGHBOUR_PAIRS_AMERICAS)
        + _pairs(inputs.NEIGHBOUR_PAIRS_ASIA_AFRICA)
        + _pairs(inputs.NEIGHBOUR_PAIRS_US_STATES, prefix="US-")
        + _pairs(inputs.NEIGHBOUR_PAIRS_CANADA)
    )
    neighbours: Dict[str, Set[str]] = {}
    for first, second in pairs:
        for zone in (first, second):
            if zone not in known_zones:
                raise SystemExit(f"neighbour pair {first}/{second} names {zone!r}, which no table has")
        for zone, other in ((first, second), (second, first)):
            # A country lists only countries: its bidding zones or states would repeat it.
            if "-" in zone or "-" not in other:
                neighbours.setdefault(zone, set()).add(other)
    rows = [(zone, ";".join(sorted(others))) for zone, others in sorted(neighbours.items())]
    metadata = (
        ("dataset", "hf-eco2ai neighbouring grids"),
        (
            "source",
            "hand-written (scripts/carbon_table_inputs.py): pairs of zones sharing a land "
            "border (countries, US states, Canadian provinces) or a direct interconnector (ENTSO-E "
            "grid map and bidding-zone borders for Europe, Canada-US interties); says nothing about "
            "transfer capacity",
        ),
        ("year", 2025),
        ("licence", "Apache-2.0 (hf-eco2ai)"),
        (
            "units",
            "neighbours: ';'-separated zones; a country lists only countries, a "
            "sub-national zone lists zones and countries",
        ),
        ("generated-by", GENERATOR),
    )
    return render_table(metadata, ("zone", "neighbours"), rows)


def _zones_of(table_text: str, column: str) -> Set[str]:
    body = "\n".join(line for line in table_text.splitlines() if not line.startswith("#"))
    return {row[column] for row in csv.DictReader(io.StringIO(body))}


def build_all(upstream: UpstreamDirs) -> Dict[str, str]:
    """Every packaged table, as repository-relative path -> file text.

    Raises SystemExit when an upstream file changed shape or a hand-written zone names no row.
    """
    tables = {
        CPU_TDP_PATH: build_cpu_tdp(upstream),
        f"{CARBON_DATA_DIR}/countries.csv": build_countries(upstream),
        f"{CARBON_DATA_DIR}/world_average.csv": build_world_average(upstream),
        f"{CARBON_DATA_DIR}/us_states.csv": build_us_states(upstream),
        f"{CARBON_DATA_DIR}/canada_provinces.csv": build_canada_provinces(upstream),
        f"{CARBON_DATA_DIR}/nordic_zones.csv": build_nordic_zones(upstream),
        f"{CARBON_DATA_DIR}/china_provinces.csv": build_china_provinces(upstream),
        f"{CARBON_DATA_DIR}/cloud_gcp.csv": build_cloud_gcp(upstream),
        f"{CARBON_DATA_DIR}/cloud_aws.csv": build_cloud_mapping(
            "AWS", inputs.AWS_REGIONS, "Regions and Availability Zones"
        ),
        f"{CARBON_DATA_DIR}/cloud_azure.csv": build_cloud_mapping("Azure", inputs.AZURE_REGIONS, "Azure geographies"),
    }
    known_zones = _zones_of(tables[f"{CARBON_DATA_DIR}/countries.csv"], "alpha2")
    for name in SUBNATIONAL_TABLES:
        known_zones |= _zones_of(tables[f"{CARBON_DATA_DIR}/{name}"], "zone")
    for provider in ("gcp", "aws", "azure"):
        for zone in _zones_of(tables[f"{CARBON_DATA_DIR}/cloud_{provider}.csv"], "zone"):
            if zone not in known_zones:
                raise SystemExit(f"a {provider} region maps to zone {zone!r}, which no table has")
    tables[f"{CARBON_DATA_DIR}/neighbours.csv"] = build_neighbours(known_zones)
    return tables


def _installed_package_dir(distribution: str, version: str) -> Path:
    try:
        installed_version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise SystemExit(
            f"{distribution} is not installed in {sys.executable}; "
            f"pip install {distribution}=={version}, or run without --installed"
        ) from None
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
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--dest",
                str(workdir),
                requirement,
            ],
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
    parser.add_argument(
        "--installed", action="store_true", help="read the codecarbon and pycountry installed in this Python"
    )
    parser.add_argument("--codecarbon", type=Path, help="an unpacked codecarbon wheel (or its package folder)")
    parser.add_argument("--pycountry", type=Path, help="an unpacked pycountry wheel (or its package folder)")
    parser.add_argument(
        "--output-root",
        type=Path,
        default=REPO_ROOT,
        help="repository root to write into (default: this script's repository)",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if any file under --output-root differs"
    )
    arguments = parser.parse_args(argv)
    if (arguments.codecarbon is None) != (arguments.pycountry is None):
        parser.error("give both --codecarbon and --pycountry, or neither")
    with tempfile.TemporaryDirectory() as workdir:
        if arguments.codecarbon is not None:
            upstream = UpstreamDirs(
                _unpacked_package_dir(arguments.codecarbon, "codecarbon"),
                _unpacked_package_dir(arguments.pycountry, "pycountry"),
            )
        elif arguments.installed:
            upstream = UpstreamDirs(
                _installed_package_dir("codecarbon", CODECARBON_VERSION),
                _installed_package_dir("pycountry", PYCOUNTRY_VERSION),
            )
        else:
            upstream = _download_and_unpack(Path(workdir))
        return _write_or_check(build_all(upstream), arguments.output_root, arguments.check)


if __name__ == "__main__":
    sys.exit(main())
