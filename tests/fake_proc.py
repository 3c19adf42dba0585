"""A fake /proc in a temp dir: the machine's `stat` and a process tree's `<pid>/stat` and
`<pid>/task/<tid>/children`, rewritten in place with one fixed-width write as the kernel's
files change (the CPU estimate keeps `stat` open and rereads it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List


def _write_fixed(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(descriptor, text.encode(), 0)
    finally:
        os.close(descriptor)


class FakeProc:
    """``machine(busy, idle)`` sets the aggregate cpu line (ticks); ``process(pid, ...)`` sets a
    process's own and reaped children's ticks; ``children(pid, [...])`` its live children."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.machine(busy_ticks=0, idle_ticks=0)

    def machine(self, busy_ticks: int, idle_ticks: int) -> None:
        fields = [busy_ticks, 0, 0, idle_ticks, 0, 0, 0, 0, 0, 0]
        _write_fixed(self.root / "stat", "cpu  " + " ".join(f"{value:012d}" for value in fields) + "\n")

    def process(self, pid: int, utime: int, stime: int = 0, cutime: int = 0, cstime: int = 0) -> None:
        directory = self.root / str(pid) / "task" / str(pid)
        directory.mkdir(parents=True, exist_ok=True)
        # The command name holds a space and a parenthesis, as real ones may.
        fields: List[str] = ["S", "1", str(pid), str(pid), "0", "-1", "0", "0", "0", "0", "0"]
        fields += [f"{utime:012d}", f"{stime:012d}", f"{cutime:012d}", f"{cstime:012d}", "20", "0", "1"]
        _write_fixed(self.root / str(pid) / "stat", f"{pid} (py (worker) 1) " + " ".join(fields) + "\n")
        children_file = directory / "children"
        if not children_file.exists():
            children_file.write_text("")

    def children(self, pid: int, child_pids: List[int]) -> None:
        (self.root / str(pid) / "task" / str(pid) / "children").write_text(" ".join(map(str, child_pids)) + " ")
