"""The packaged CPU TDP table and the cpuinfo readers that feed the CPU energy estimate."""

from __future__ import annotations

import csv
import importlib.util
import re
from pathlib import Path
from typing import List

import pytest

from hf_eco2ai.datafiles import read_packaged_table
from hf_eco2ai.meter.cpu_tdp import count_cpu_packages, lookup_cpu_tdp, read_cpu_model_name


def _x86_processor_block(processor: int, physical_id: int, model_name: str) -> str:
    return (
        f"processor\t: {processor}\n"
        "vendor_id\t: GenuineIntel\n"
        "cpu family\t: 6\n"
        "model\t\t: 106\n"
        f"model name\t: {model_name}\n"
        "stepping\t: 6\n"
        "cpu MHz\t\t: 2900.000\n"
        "cache size\t: 55296 KB\n"
        f"physical id\t: {physical_id}\n"
        "siblings\t: 4\n"
        f"core id\t\t: {processor % 2}\n"
        "cpu cores\t: 2\n"
        "flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov\n"
        "\n"
    )


def _write_cpuinfo(directory: Path, model_name: str, physical_ids: List[int]) -> Path:
    path = directory / "cpuinfo"
    blocks = [_x86_processor_block(index, physical_id, model_name) for index, physical_id in enumerate(physical_ids)]
    path.write_text("".join(blocks), encoding="utf-8")
    return path


ARM_CPUINFO = (
    "processor\t: 0\n"
    "BogoMIPS\t: 243.75\n"
    "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid\n"
    "CPU implementer\t: 0x41\n"
    "CPU architecture: 8\n"
    "CPU variant\t: 0x1\n"
    "CPU part\t: 0xd0c\n"
    "CPU revision\t: 1\n"
    "\n"
)


@pytest.mark.parametrize(
    ("cpuinfo_model_name", "table_model", "watts"),
    [
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "Intel Xeon Platinum 8375C", 300.0),
        ("Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz", "Intel Xeon E5-2686 v4", 145.0),
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763", 280.0),
        ("AMD Ryzen 9 5950X 16-Core Processor", "AMD Ryzen 9 5950X", 105.0),
        ("AMD Ryzen Threadripper PRO 3995WX 64-Cores", "AMD Ryzen Threadripper PRO 3995WX", 280.0),
        ("AMD Ryzen 7 7840U w/ Radeon 780M Graphics", "AMD Ryzen 7 7840U", 28.0),
        ("Intel(R) Core(TM) i7-10700K CPU @ 3.80GHz", "Intel Core i7-10700K", 125.0),
        ("13th Gen Intel(R) Core(TM) i9-13900K", "Intel Core i9-13900K", 125.0),
        ("Intel(R) Xeon(R) Platinum 8480+", "Intel Xeon Platinum 8480+", 350.0),
    ],
)
def test_cpuinfo_style_names_find_their_table_row(cpuinfo_model_name: str, table_model: str, watts: float) -> None:
    found = lookup_cpu_tdp(cpuinfo_model_name)
    assert found is not None
    assert (found.matched_model, found.watts) == (table_model, watts)
    assert "codecarbon" in found.source


def test_a_name_missing_its_tier_word_still_matches_by_family_and_model_number() -> None:
    found = lookup_cpu_tdp("Intel(R) Xeon(R) CPU 8375C @ 2.90GHz")
    assert found is not None
    assert found.matched_model == "Intel Xeon Platinum 8375C"


@pytest.mark.parametrize(
    "name",
    [
        "Intel(R) Xeon(R) CPU @ 2.20GHz",  # GCP's virtual CPUs name no model
        "QEMU Virtual CPU version 2.5+",
        "AMD EPYC-Rome Processor",
        "Intel(R) Core(TM) i7-99999Z CPU @ 9.99GHz",
        "",
        "   ",
    ],
)
def test_names_without_a_known_model_give_none_rather_than_a_guess(name: str) -> None:
    assert lookup_cpu_tdp(name) is None


def test_a_model_number_shared_by_two_families_is_not_matched_across_them() -> None:
    # "7763" is an EPYC; a Ryzen claiming it must not borrow the EPYC's 280 W.
    assert lookup_cpu_tdp("AMD Ryzen 5 7763") is None


def test_every_table_row_is_found_by_its_own_name_with_its_own_tdp() -> None:
    table = read_packaged_table("meter", "cpu_tdp.csv")
    for row in table.rows:
        found = lookup_cpu_tdp(row["model"])
        assert found is not None, row
        assert found.watts == float(row["tdp_watts"]), row


def test_cpu_table_holds_codecarbons_models_with_plausible_tdps_and_its_provenance() -> None:
    table = read_packaged_table("meter", "cpu_tdp.csv")
    assert 4_800 <= len(table.rows) <= 5_000
    assert table.columns == ("model", "tdp_watts")
    assert all(0.5 <= float(row["tdp_watts"]) <= 600.0 for row in table.rows)
    assert "Intel ARK" in table.metadata["source"]
    assert table.metadata["licence"].startswith("MIT")
    assert 2000 <= int(table.metadata["year"]) <= 2100


def test_codecarbons_cpu_models_find_codecarbons_tdp_by_their_own_names() -> None:
    # The count recorded in docs/carbon-data.md. The 39 misses are rows whose names the lookup
    # cannot tell apart (a "(95W)" and a "(125W)" variant of one model), malformed TDP cells and
    # one 0 W microcontroller.
    codecarbon_spec = importlib.util.find_spec("codecarbon")  # the test extra pins codecarbon 3.3.2
    assert codecarbon_spec is not None and codecarbon_spec.origin is not None
    codecarbon_csv = Path(codecarbon_spec.origin).parent / "data" / "hardware" / "cpu_power.csv"
    with codecarbon_csv.open(encoding="utf-8-sig", newline="") as source:
        models = [(row["Name"], row["TDP"]) for row in csv.DictReader(source)]

    def found_with_codecarbons_tdp(name: str, tdp_cell: str) -> bool:
        found = lookup_cpu_tdp(name)
        return (
            found is not None and re.fullmatch(r"\d+(\.\d+)?", tdp_cell) is not None and found.watts == float(tdp_cell)
        )

    matched = sum(found_with_codecarbons_tdp(name, tdp_cell) for name, tdp_cell in models)
    assert (len(models), matched) == (4_918, 4_879)


def test_model_name_is_read_from_a_real_cpuinfo_layout(tmp_path: Path) -> None:
    path = _write_cpuinfo(tmp_path, "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", [0, 0, 1, 1])
    assert read_cpu_model_name(str(path)) == "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"


def test_two_socket_cpuinfo_counts_two_packages(tmp_path: Path) -> None:
    path = _write_cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", [0, 0, 0, 1, 1, 1])
    assert count_cpu_packages(str(path)) == 2


def test_single_socket_cpuinfo_counts_one_package(tmp_path: Path) -> None:
    path = _write_cpuinfo(tmp_path, "AMD EPYC 7763 64-Core Processor", [0, 0, 0, 0])
    assert count_cpu_packages(str(path)) == 1


def test_arm_cpuinfo_without_model_name_or_physical_id(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(ARM_CPUINFO * 4, encoding="utf-8")
    assert read_cpu_model_name(str(path)) is None
    assert count_cpu_packages(str(path)) == 1


def test_unreadable_cpuinfo_gives_no_name_and_one_package(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-cpuinfo")
    assert read_cpu_model_name(missing) is None
    assert count_cpu_packages(missing) == 1


def test_this_machines_cpuinfo_reads_without_error() -> None:
    name = read_cpu_model_name()
    assert name is None or name.strip() == name and name
    assert count_cpu_packages() >= 1
