"""Every snippet of the README runs as a user would paste it.

Each ``python`` block runs in its own process, after a short prelude that defines the names a
reader supplies (``model``, ``data``, ``loader``, ``step``, ``train``, ``evaluate``) with a tiny
random model, offline, in a scratch directory. Each ``hf-eco2ai`` line of a ``bash`` block runs
too (``python train.py`` stands for a tiny script). The README's setup commands (``make``,
``pip install``) are what CI itself runs, so they are not repeated here.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent

HF_PRELUDE = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from tiny_training import TokenDataset, tiny_bert
model = tiny_bert()
data = TokenDataset(32)
"""

LIGHTNING_PRELUDE = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
import lightning
from tiny_lightning import random_loader, tiny_module
model = tiny_module(lightning)
loader = random_loader(32)
"""

LOOP_PRELUDE = """
import time
loader = range(20)
def step(batch):
    time.sleep(0.002)
def evaluate():
    time.sleep(0.01)
def train():
    time.sleep(0.05)
"""


def _blocks(language: str) -> List[Tuple[int, str]]:
    """(line number, text) of every fenced block of ``language`` in the README."""
    found = []
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        if lines[index].strip() == f"```{language}":
            start = index + 1
            end = next(i for i in range(start, len(lines)) if lines[i].strip() == "```")
            found.append((start + 1, "\n".join(lines[start:end])))
            index = end
        index += 1
    return found


def _prelude(snippet: str) -> str:
    if "lightning" in snippet.lower():
        return LIGHTNING_PRELUDE
    if "Trainer(" in snippet:
        return HF_PRELUDE
    return LOOP_PRELUDE


def _environment(scratch: Path) -> Dict[str, str]:
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("HF_ECO2AI_") and name != "CO2_SIGNAL_API_TOKEN"
    }
    environ.update(
        {
            # Offline: no live intensity API and no cloud-metadata probes leave this machine.
            "HF_ECO2AI_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "python"), environ.get("PYTHONPATH")])),
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    return environ


PYTHON_SNIPPETS = _blocks("python")


def test_the_readme_has_python_snippets() -> None:
    assert len(PYTHON_SNIPPETS) >= 4


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("line", "snippet"), PYTHON_SNIPPETS, ids=[f"README.md:{line}" for line, _ in PYTHON_SNIPPETS])
def test_each_python_snippet_runs(line: int, snippet: str, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(_prelude(snippet) + "\n" + textwrap.dedent(snippet) + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, f"README.md:{line}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


def _cli_lines() -> List[Tuple[int, List[str]]]:
    commands = []
    for line, block in _blocks("bash"):
        for offset, text in enumerate(block.splitlines()):
            command = re.sub(r"\s+#.*$", "", text).strip()
            if command.startswith("hf-eco2ai "):
                commands.append((line + offset, shlex.split(command)))
    return commands


CLI_LINES = _cli_lines()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("line", "words"), CLI_LINES, ids=[f"README.md:{line}" for line, _ in CLI_LINES])
def test_each_command_line_runs(line: int, words: List[str], tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("import time\ntime.sleep(0.2)\nprint('trained')\n", encoding="utf-8")
    arguments = [sys.executable if word == "python" else word for word in words[1:]]
    result = subprocess.run(
        [sys.executable, "-m", "hf_eco2ai.cli", *arguments],
        cwd=tmp_path,
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, f"README.md:{line}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
