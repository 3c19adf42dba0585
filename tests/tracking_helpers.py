"""Readers that get tracked data back out of each backend with the library's own reader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

from hf_eco2ai import EnergyMeter


def synthetic_meter(watts: float = 100.0) -> EnergyMeter:
    return EnergyMeter(sources="synthetic", synthetic={"kind": "constant", "watts": watts})


def wandb_records(run_dir: Path) -> List[Dict[str, Any]]:
    """Every record of an offline W&B run, read by wandb's own reader (``wandb leet inspect``)."""
    [run_file] = run_dir.glob("run-*.wandb")
    done = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def wandb_history(run_dir: Path) -> List[Dict[str, Any]]:
    return [record["history"]["item"] for record in wandb_records(run_dir) if record["type"] == "history"]


def wandb_summary(run_dir: Path) -> Dict[str, Any]:
    summary: Dict[str, Any] = {}
    for record in wandb_records(run_dir):
        if record["type"] == "summary":
            summary.update(record["summary"].get("update", {}))
    return summary


def tensorboard_scalars(log_dir: Path) -> Dict[str, List[Any]]:
    """Every scalar event under ``log_dir`` (no sampling: size_guidance SCALARS=0)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={SCALARS: 0})
    accumulator.Reload()
    return {tag: accumulator.Scalars(tag) for tag in accumulator.Tags()["scalars"]}
