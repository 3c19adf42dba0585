"""The packaged carbon-intensity tables: sanity of every row, lookups, provenance headers, regeneration."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import List

import pytest

from hf_eco2ai.carbon import tables
from hf_eco2ai.datafiles import PackagedTable, parse_table_text, read_packaged_table

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_FILES = sorted(
    entry.name for entry in (resources.files("hf_eco2ai") / "carbon" / "data").iterdir() if entry.name.endswith(".csv")
)
LBS_PER_MWH_TO_G_PER_KWH = 0.4536


def _carbon_table(name: str) -> PackagedTable:
    return read_packaged_table("carbon", "data", name)


def _country_rows() -> List[dict]:
    return list(_carbon_table("countries.csv").rows)


def test_the_data_folder_holds_every_table_the_loader_reads() -> None:
    expected = {"countries.csv", "world_average.csv", "neighbours.csv"}
    expected |= set(tables.SUBNATIONAL_FILES)
    expected |= {f"cloud_{provider}.csv" for provider in tables.CLOUD_PROVIDERS}
    assert set(DATA_FILES) == expected


@pytest.mark.parametrize("name", DATA_FILES)
def test_every_carbon_table_states_dataset_source_year_and_licence(name: str) -> None:
    metadata = _carbon_table(name).metadata
    for key in ("dataset", "source", "licence"):
        assert len(metadata[key]) >= 10, (name, key)
    assert 2009 <= int(metadata["year"]) <= 2030
    assert metadata["generated-by"] == "scripts/build_carbon_tables.py"


def test_the_data_folder_stays_small() -> None:
    data_dir = resources.files("hf_eco2ai") / "carbon" / "data"
    total_bytes = sum(len(entry.read_bytes()) for entry in data_dir.iterdir() if entry.name.endswith(".csv"))
    assert total_bytes < 200_000


def test_every_iso_country_in_the_table_has_an_intensity_between_0_and_1500() -> None:
    rows = _country_rows()
    assert len(rows) >= 200
    for row in rows:
        entry = tables.country(row["alpha2"])
        assert entry is not None, row
        assert 0.0 <= entry.g_per_kwh <= 1500.0, row
        assert 2000 <= entry.year <= 2030, row


def test_alpha2_and_alpha3_codes_give_the_same_entry_in_any_case() -> None:
    for row in _country_rows():
        by_alpha2 = tables.country(row["alpha2"])
        assert by_alpha2 is not None
        assert tables.country(row["alpha3"]) == by_alpha2
        assert tables.country(row["alpha3"].lower()) == by_alpha2
        assert tables.country(f" {row['alpha2'].lower()} ") == by_alpha2
        assert by_alpha2.zone == by_alpha2.country == row["alpha2"]


def test_country_codes_are_distinct_iso_codes() -> None:
    rows = _country_rows()
    assert len({row["alpha2"] for row in rows}) == len(rows)
    assert len({row["alpha3"] for row in rows}) == len(rows)
    assert all(len(row["alpha2"]) == 2 and len(row["alpha3"]) == 3 for row in rows)


@pytest.mark.parametrize("code", ["", "X", "XX", "ZZZ", "FRANCE", "12", "us-va"])
def test_unknown_country_codes_give_none(code: str) -> None:
    assert tables.country(code) is None


def test_lookups_raise_nothing_for_values_of_the_wrong_type() -> None:
    assert tables.country(None) is None  # type: ignore[arg-type]
    assert tables.subnational("US", None) is None  # type: ignore[arg-type]
    assert tables.subnational(840, "VA") is None  # type: ignore[arg-type]
    assert tables.zone(None) is None  # type: ignore[arg-type]
    assert tables.cloud_region("aws", None) is None  # type: ignore[arg-type]
    assert dict(tables.cloud_regions(None)) == {}  # type: ignore[arg-type]
    assert tables.neighbours(None) == ()  # type: ignore[arg-type]


def test_us_state_figures_are_the_egrid_lbs_per_mwh_converted_to_grams_per_kwh() -> None:
    rows = _carbon_table("us_states.csv").rows
    assert len(rows) == 51  # 50 states and the District of Columbia
    for row in rows:
        entry = tables.subnational("US", row["region"])
        assert entry is not None
        expected = float(row["egrid_lbs_per_mwh"]) * LBS_PER_MWH_TO_G_PER_KWH
        assert entry.g_per_kwh == pytest.approx(expected, abs=0.1), row
        assert 0.0 <= entry.g_per_kwh <= 1500.0


def test_california_matches_egrid2023_published_rate() -> None:
    # eGRID2023 STC2ERTA for California: 394.769 lb CO2e/MWh.
    california = tables.subnational("US", "CA")
    assert california is not None
    assert california.g_per_kwh == pytest.approx(394.769 * LBS_PER_MWH_TO_G_PER_KWH, abs=0.1)
    assert california.year == 2023
    assert "eGRID" in california.dataset


@pytest.mark.parametrize(
    ("country_code", "region", "zone"),
    [
        ("US", "VA", "US-VA"),
        ("usa", "virginia", "US-VA"),
        ("US", "us-va", "US-VA"),
        ("US", "District of Columbia", "US-DC"),
        ("CA", "QC", "CA-QC"),
        ("CAN", "Québec", "CA-QC"),
        ("ca", "quebec", "CA-QC"),
        ("CA", "Newfoundland and Labrador", "CA-NL"),
        ("SE", "SE3", "SE-SE3"),
        ("NOR", "no4", "NO-NO4"),
        ("CN", "Nei Mongol", "CN-NM"),
        ("CHN", "Beijing", "CN-BJ"),
    ],
)
def test_subnational_regions_are_found_by_code_zone_name_or_alias(country_code: str, region: str, zone: str) -> None:
    entry = tables.subnational(country_code, region)
    assert entry is not None
    assert entry.zone == zone


@pytest.mark.parametrize(
    ("country_code", "region"), [("US", "QC"), ("CA", "VA"), ("FR", "IDF"), ("US", ""), ("XX", "VA"), ("US", "Narnia")]
)
def test_a_region_outside_the_country_or_unknown_gives_none(country_code: str, region: str) -> None:
    assert tables.subnational(country_code, region) is None


def test_every_subnational_row_is_sane_and_belongs_to_a_country_in_the_table() -> None:
    for file_name in tables.SUBNATIONAL_FILES:
        rows = _carbon_table(file_name).rows
        assert rows, file_name
        for row in rows:
            entry = tables.zone(row["zone"])
            assert entry is not None and entry.country is not None
            assert tables.country(entry.country) is not None, row
            assert entry.zone.startswith(f"{entry.country}-"), row
            assert 0.0 <= entry.g_per_kwh <= 1500.0, row


def test_hydro_provinces_are_far_cleaner_than_fossil_provinces() -> None:
    # Physical sanity of the mix x factor computation: Quebec and Manitoba run on hydro, Alberta
    # and Saskatchewan on gas and coal.
    clean = [tables.subnational("CA", code) for code in ("QC", "MB")]
    dirty = [tables.subnational("CA", code) for code in ("AB", "SK")]
    assert all(entry is not None and entry.g_per_kwh < 100 for entry in clean)
    assert all(entry is not None and entry.g_per_kwh > 400 for entry in dirty)


@pytest.mark.parametrize("provider", tables.CLOUD_PROVIDERS)
def test_every_cloud_region_maps_to_a_zone_present_in_the_tables(provider: str) -> None:
    regions = tables.cloud_regions(provider)
    assert len(regions) >= 35
    for name, entry in regions.items():
        zone = tables.zone(entry.zone)
        assert zone is not None, (provider, name)
        assert entry.country == zone.country
        assert 0.0 <= entry.g_per_kwh <= 1500.0
        assert entry.dataset and entry.year >= 2009
        assert tables.cloud_region(provider, name) == entry


@pytest.mark.parametrize(
    ("provider", "region", "zone"),
    [
        ("aws", "us-east-1", "US-VA"),
        ("AWS", "eu-central-1", "DE"),
        ("aws", "eu-north-1", "SE-SE3"),
        ("aws", "ca-central-1", "CA-QC"),
        ("azure", "westeurope", "NL"),
        ("azure", "West Europe", "NL"),
        ("azure", "northeurope", "IE"),
        ("azure", "eastus", "US-VA"),
        ("gcp", "us-central1", "US-IA"),
        ("gcp", "europe-west9", "FR"),
        ("gcp", "me-central1", "QA"),
    ],
)
def test_known_cloud_regions_map_to_their_grid(provider: str, region: str, zone: str) -> None:
    entry = tables.cloud_region(provider, region)
    assert entry is not None
    assert entry.zone == zone


def test_aws_and_azure_regions_take_their_zones_figure_and_provenance() -> None:
    for provider, region in (("aws", "us-east-1"), ("azure", "westeurope")):
        entry = tables.cloud_region(provider, region)
        assert entry is not None
        zone = tables.zone(entry.zone)
        assert zone is not None
        assert (entry.g_per_kwh, entry.dataset, entry.year) == (zone.g_per_kwh, zone.dataset, zone.year)
        assert provider.upper() in entry.mapping_dataset.upper()


def test_gcp_regions_carry_googles_own_figure_where_the_table_has_one() -> None:
    rows = {row["region"]: row for row in _carbon_table("cloud_gcp.csv").rows}
    with_figure = [region for region, row in rows.items() if row["google_g_per_kwh"]]
    assert len(with_figure) >= 40
    for region in with_figure:
        entry = tables.cloud_region("gcp", region)
        assert entry is not None
        assert entry.g_per_kwh == float(rows[region]["google_g_per_kwh"])
        assert "Google" in entry.dataset


@pytest.mark.parametrize(("provider", "region"), [("aws", "us-east-42"), ("ibm", "us-south"), ("", ""), ("gcp", "")])
def test_unknown_cloud_regions_and_providers_give_none(provider: str, region: str) -> None:
    assert tables.cloud_region(provider, region) is None


def test_cloud_regions_of_an_unknown_provider_is_empty_and_read_only() -> None:
    assert len(tables.cloud_regions("ibm")) == 0
    regions = tables.cloud_regions("aws")
    with pytest.raises(TypeError):
        regions["new-region"] = regions["us-east-1"]  # type: ignore[index]


def test_world_average_is_named_and_lies_within_the_country_range() -> None:
    world = tables.world_average()
    values = [float(row["g_per_kwh"]) for row in _country_rows()]
    assert min(values) < world.g_per_kwh < max(values)
    assert 300.0 <= world.g_per_kwh <= 700.0
    assert world.zone == "WORLD" and world.country is None
    assert "Our World in Data" in world.dataset
    assert tables.zone("world") == world


def test_world_average_is_the_generation_weighted_mean_it_claims() -> None:
    row = _carbon_table("world_average.csv").rows[0]
    assert int(row["countries"]) == len(_country_rows())
    assert float(row["generation_twh"]) > 20_000  # world generation is about 29,000 TWh a year


def test_neighbours_exist_and_are_listed_both_ways_at_the_same_level() -> None:
    rows = _carbon_table("neighbours.csv").rows
    assert len(rows) >= 100
    listed = {row["zone"]: set(row["neighbours"].split(";")) for row in rows}
    for zone, others in listed.items():
        assert tables.zone(zone) is not None, zone
        for other in others:
            assert tables.zone(other) is not None, (zone, other)
            assert other != zone
            if "-" in zone:
                continue
            assert "-" not in other, (zone, other)  # a country lists only countries
            assert zone in listed[other], (zone, other)


@pytest.mark.parametrize(
    ("zone", "expected_neighbour"),
    [("DE", "FR"), ("fr", "ES"), ("DEU", "PL"), ("US-VA", "US-MD"), ("CA-QC", "US-NY"), ("SE-SE3", "NO-NO1")],
)
def test_neighbours_of_a_zone_include_its_bordering_grid(zone: str, expected_neighbour: str) -> None:
    neighbour_zones = [entry.zone for entry in tables.neighbours(zone)]
    assert expected_neighbour in neighbour_zones
    assert all(entry.g_per_kwh >= 0 for entry in tables.neighbours(zone))


def test_a_zone_without_listed_neighbours_gives_an_empty_tuple() -> None:
    assert tables.neighbours("WORLD") == ()
    assert tables.neighbours("NOWHERE") == ()


def test_a_table_without_its_provenance_lines_is_rejected() -> None:
    with pytest.raises(ValueError, match="licence"):
        parse_table_text("# dataset: x\n# source: y\n# year: 2023\nzone,g_per_kwh\nFR,56\n")


def test_a_table_with_metadata_but_no_header_row_is_rejected() -> None:
    with pytest.raises(ValueError, match="header"):
        parse_table_text("# dataset: x\n# source: y\n# year: 2023\n# licence: z\n")


def test_committed_tables_are_what_the_build_script_generates_from_upstream() -> None:
    """Byte-for-byte regeneration from the codecarbon 3.3.2 and pycountry installed in this venv."""
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "build_carbon_tables.py"), "--installed", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_the_build_script_writes_the_same_bytes_into_a_fresh_tree(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "build_carbon_tables.py"),
            "--installed",
            "--output-root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    written = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*.csv"))
    assert [path.name for path in written if path.parent.name == "data"] == DATA_FILES
    for relative in written:
        assert (tmp_path / relative).read_bytes() == (REPO_ROOT / relative).read_bytes(), relative
