"""A fake powercap tree in a temp dir: the same files the kernel exposes for RAPL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict


class FakeRaplZone:
    """One zone whose `energy_uj` a test rewrites in place, as the kernel does."""

    def __init__(self, root: Path, directory: str, name: str, max_energy_range_uj: int, energy_uj: int = 0) -> None:
        self.path = root / directory
        self.path.mkdir(parents=True)
        (self.path / "name").write_text(f"{name}\n")
        (self.path / "max_energy_range_uj").write_text(f"{max_energy_range_uj}\n")
        self.energy_file = self.path / "energy_uj"
        self.energy_file.write_text(f"{energy_uj:020d}\n")
        self._fd = os.open(self.energy_file, os.O_WRONLY)

    def write(self, energy_uj: int) -> None:
        # Fixed width and one pwrite: a concurrent reader never sees a shortened file.
        os.pwrite(self._fd, f"{energy_uj:020d}\n".encode(), 0)

    def close(self) -> None:
        os.close(self._fd)


def make_tree(root: Path, zones: Dict[str, tuple]) -> Dict[str, FakeRaplZone]:
    """`zones`: directory -> (name, max_energy_range_uj[, energy_uj])."""
    return {directory: FakeRaplZone(root, directory, *spec) for directory, spec in zones.items()}
