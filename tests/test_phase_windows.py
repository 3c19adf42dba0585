"""Forward, backward and optimizer windows from torch hooks on a real model and optimizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_eco2ai import EnergyMeter
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.phase_windows import attach_phase_windows
from hf_eco2ai.meter.flags import FLAG_WINDOW_NESTING, FLAG_WINDOW_UNCLOSED


def train(model: torch.nn.Module, optimizer: torch.optim.Optimizer, steps: int, accumulate: int = 1) -> None:
    for _ in range(steps):
        for _ in range(accumulate):
            loss = model(torch.randn(8, 4)).pow(2).mean()
            loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def test_each_training_step_opens_one_window_per_phase_in_order() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with EnergyMeter(sources="synthetic", rate_hz=500) as meter:
        handle = attach_phase_windows(model, optimizer, meter.window)
        train(model, optimizer, steps=3)
        handle.remove()
        train(model, optimizer, steps=2)
    windows = meter.drain_windows()
    order = np.argsort(windows.t0_s)
    names = [windows.name[i] for i in order]
    assert names == ["forward", "backward", "optimizer"] * 3
    t0, t1 = windows.t0_s[order], windows.t1_s[order]
    assert np.all(t1[:-1] <= t0[1:]), "phases do not overlap"
    assert np.all(windows.flags & (FLAG_WINDOW_NESTING | FLAG_WINDOW_UNCLOSED) == 0)


def test_accumulated_backward_passes_each_close_at_the_next_forward() -> None:
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with EnergyMeter(sources="synthetic", rate_hz=500) as meter:
        handle = attach_phase_windows(model, optimizer, meter.window)
        train(model, optimizer, steps=1, accumulate=3)
        handle.remove()
    windows = meter.drain_windows()
    names = [windows.name[i] for i in np.argsort(windows.t0_s)]
    assert names == ["forward", "backward"] * 3 + ["optimizer"]


def test_a_model_that_is_not_a_torch_module_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="torch.nn.Module"):
        attach_phase_windows(object(), None, lambda name: None)  # type: ignore[arg-type,return-value]
