"""Real training of a small MLP on a CPU under the Tracer API, with faults planted at a given step."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from hf_eco2ai import CarbonConfig, tracer

FEATURES = 12


def mlp(layers: int = 4, width: int = 32) -> torch.nn.Module:
    torch.manual_seed(0)
    modules: List[torch.nn.Module] = [torch.nn.Linear(FEATURES, width), torch.nn.ReLU()]
    for _ in range(layers - 2):
        modules += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    modules.append(torch.nn.Linear(width, 2))
    return torch.nn.Sequential(*modules)


def quiet_carbon_config(tmp_path: Path) -> CarbonConfig:
    """No location lookups or warnings: a fixed intensity, reports under ``tmp_path``."""
    return CarbonConfig(
        project_name="tracer-tests",
        carbon_intensity_g_per_kwh=100.0,
        output_dir=str(tmp_path / "reports"),
        sources=["cpu-estimate"],
    )


def train(
    tmp_path: Path,
    steps: int = 120,
    plant: Optional[str] = None,
    plant_step: int = -1,
    stop_checked: bool = False,
    **settings: Any,
) -> Dict[str, Any]:
    """Train with SGD on a learnable task and trace it; ``plant`` is ``explosion`` (loss x 1e6),
    ``nan`` (loss x NaN) or ``loss_spike`` (a corrupt batch) at ``plant_step``.

    Returns the tracer and the steps trained."""
    generator = torch.Generator().manual_seed(1)
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    settings.setdefault("storage_path", str(tmp_path / "tracer"))
    settings.setdefault("checkpoint_interval", 25)
    run = tracer.init("tracer-tests", carbon_config=quiet_carbon_config(tmp_path), **settings)
    tracer.watch(model)
    trained = 0
    try:
        for step in range(steps):
            features = torch.randn(64, FEATURES, generator=generator)
            labels = (features[:, 0] + 0.5 * features[:, 1] > 0).long()
            if plant == "loss_spike" and step == plant_step:
                # A corrupt batch: inputs far out of range with the labels flipped.
                features, labels = features * 20.0, 1 - labels
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            if plant == "explosion" and step == plant_step:
                loss = loss * 1e6
            if plant == "nan" and step == plant_step:
                loss = loss * float("nan")
            optimizer.zero_grad()
            loss.backward()
            if plant == "explosion" and step == plant_step:
                # The planted explosion is in the gradients; a zero learning rate spares the
                # weights so that the run goes on healthy afterwards.
                optimizer.param_groups[0]["lr"], saved_lr = 0.0, optimizer.param_groups[0]["lr"]
                optimizer.step()
                optimizer.param_groups[0]["lr"] = saved_lr
            else:
                optimizer.step()
            tracer.log({"loss": loss.item(), "lr": optimizer.param_groups[0]["lr"]})
            tracer.step()
            trained += 1
            if stop_checked and run.stop_requested:
                break
    finally:
        tracer.finish()
    return {"tracer": run, "steps": trained, "model": model}
