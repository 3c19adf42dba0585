"""Every snippet of the README runs as a user would paste it.

Each ``python`` block runs in its own process, after a short prelude that defines the names a
reader supplies (``model``, ``data``, ``loader``, ``step``, ``train``, ``evaluate``) with a tiny
random model, offline, in a scratch directory. Each ``hf-eco2ai`` line of a ``bash`` block runs
too, a block's lines in order in one directory (``python train.py`` stands for a tiny script,
``RUN`` and ``OTHER`` for the newest and second newest stored run). The README's setup commands (``make``,
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


def _cli_blocks() -> List[Tuple[int, List[Tuple[int, List[str]]]]]:
    """Each bash block's ``hf-eco2ai`` lines, (line number, words), in order."""
    blocks = []
    for line, block in _blocks("bash"):
        commands = []
        for offset, text in enumerate(block.splitlines()):
            command = re.sub(r"\s+#.*$", "", text).strip()
            if command.startswith("hf-eco2ai "):
                commands.append((line + offset, shlex.split(command)))
        if commands:
            blocks.append((line, commands))
    return blocks


CLI_BLOCKS = _cli_blocks()


def _newest_run_ids(directory: Path) -> List[str]:
    from hf_eco2ai.store.run_store import RunStore

    store = directory / "carbon_reports" / "runs.sqlite"
    return [run.run_id for run in RunStore(store, read_only=True).list_runs()] if store.is_file() else []


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("line", "commands"), CLI_BLOCKS, ids=[f"README.md:{line}" for line, _ in CLI_BLOCKS])
def test_each_command_line_runs(line: int, commands: List[Tuple[int, List[str]]], tmp_path: Path) -> None:
    """A block's lines run in order in one directory, as a user types them: ``RUN`` and ``OTHER``
    stand for the newest and the second newest stored run."""
    (tmp_path / "train.py").write_text("import time\ntime.sleep(0.2)\nprint('trained')\n", encoding="utf-8")
    for command_line, words in commands:
        run_ids = _newest_run_ids(tmp_path)
        placeholders = {"RUN": run_ids[0] if run_ids else "RUN", "OTHER": run_ids[1] if len(run_ids) > 1 else "OTHER"}
        arguments = [sys.executable if word == "python" else placeholders.get(word, word) for word in words[1:]]
        result = subprocess.run(
            [sys.executable, "-m", "hf_eco2ai.cli", *arguments],
            cwd=tmp_path,
            env=_environment(tmp_path),
            capture_output=True,
            text=True,
            timeout=110,
        )
        assert result.returncode == 0, f"README.md:{command_line}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
