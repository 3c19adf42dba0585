"""A watched training step never waits for a device: the gradient capture and ``tracer.step()``
read no device value on the host.

On the CPU every host read that would synchronise a GPU (``item``, ``tolist``, ``cpu``, a tensor's
truth value or number, ``nonzero``, the CUDA synchronise calls) is made to raise during the
optimiser step (where the capture runs) and ``tracer.step()``. The float64 model takes the torch
path that gradients on a GPU take, the float32 model the in-place Rust pass. On a real GPU
(marker ``gpu``) the steps run under ``torch.cuda.set_sync_debug_mode("error")``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any, Iterator, List

import numpy as np
import pytest
import torch

from hf_eco2ai import tracer

sys.path.insert(0, str(Path(__file__).parent))
from tracer_training import FEATURES, mlp, quiet_carbon_config  # noqa: E402

SYNCHRONISING = [
    (torch.Tensor, "item"),
    (torch.Tensor, "tolist"),
    (torch.Tensor, "cpu"),
    (torch.Tensor, "__bool__"),
    (torch.Tensor, "__float__"),
    (torch.Tensor, "__int__"),
    (torch.Tensor, "nonzero"),
    (torch.cuda, "synchronize"),
    (torch.cuda.Event, "synchronize"),
    (torch.cuda.Stream, "synchronize"),
]


class HostRead(AssertionError):
    pass


@contextlib.contextmanager
def host_reads_forbidden(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def forbid(name: str) -> Any:
        def raising(*args: Any, **kwargs: Any) -> Any:
            raise HostRead(f"{name} was called on the step path")

        return raising

    with monkeypatch.context() as patch:
        for owner, name in SYNCHRONISING:
            patch.setattr(owner, name, forbid(f"{getattr(owner, '__name__', owner)}.{name}"))
        yield


def batch(step: int, dtype: torch.dtype, device: str = "cpu") -> Any:
    generator = torch.Generator().manual_seed(step)
    features = torch.randn(32, FEATURES, generator=generator, dtype=dtype)
    labels = (features[:, 0] > 0).long()
    return features.to(device), labels.to(device)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["rust-pass", "torch-path"])
def test_a_watched_step_reads_no_value_on_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype
) -> None:
    model = mlp().to(dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    run = tracer.init("sync-tests", storage_path=str(tmp_path / "tracer"), carbon_config=quiet_carbon_config(tmp_path))
    tracer.watch(model)
    steps = 12
    try:
        for step in range(steps):
            features, labels = batch(step, dtype)
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            optimizer.zero_grad()
            loss.backward()
            tracer.log({"loss": 0.5})
            with host_reads_forbidden(monkeypatch):
                optimizer.step()
                tracer.step()
    finally:
        tracer.finish()
    assert run.finish()["monitoring_errors_total"] == 0, "a step fault would be counted, not raised"
    rows = run.storage.get_step_statistics(run.run_id)
    assert len(rows) == steps and rows.has_gradients.all()
    assert np.isfinite(rows.gradients[:, :, 0]).all() and (rows.gradients[:, :, 0] > 0).all()


def test_the_forbidden_reads_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The guard itself works: a step path that read a value would fail the test above."""
    with host_reads_forbidden(monkeypatch), pytest.raises(HostRead):
        bool(torch.ones(1).sum() > 0)
    with host_reads_forbidden(monkeypatch), pytest.raises(HostRead):
        torch.ones(1).item()
    assert torch.ones(1).item() == 1.0


@pytest.mark.gpu
def test_watched_steps_on_a_gpu_never_synchronise(tmp_path: Path) -> None:
    model = mlp(layers=8, width=256).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    run = tracer.init("sync-tests", storage_path=str(tmp_path / "tracer"), carbon_config=quiet_carbon_config(tmp_path))
    tracer.watch(model)
    data = [batch(step, torch.float32, "cuda") for step in range(4)]
    waits: List[int] = []
    original_wait = run._watcher._wait_oldest_slot

    def counted_wait() -> Any:
        waits.append(1)
        return original_wait()

    run._watcher._wait_oldest_slot = counted_wait
    steps, warmup = 60, 5
    try:
        for step in range(steps):
            features, labels = data[step % len(data)]
            if step == warmup:
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            tracer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
        tracer.finish()
    rows = run.storage.get_step_statistics(run.run_id)
    assert len(rows) == steps and rows.has_gradients.all()
    assert (rows.gradients[:, :, 0] > 0).all()
    print(f"waits for a pinned slot in {steps - warmup} steps: {len(waits)}")
    assert len(waits) == 0


def test_a_gradient_the_capture_cannot_reduce_is_a_fault_not_a_crash(tmp_path: Path) -> None:
    """A sparse gradient (``Embedding(sparse=True)``) fails the capture inside the optimiser's
    step hook: the step goes on, and the fault is counted."""
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4, sparse=True), torch.nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    run = tracer.init("sync-tests", storage_path=str(tmp_path / "tracer"), carbon_config=quiet_carbon_config(tmp_path))
    tracer.watch(model)
    before = model[1].weight.detach().clone()
    try:
        for _ in range(3):
            optimizer.zero_grad()
            model(torch.tensor([1, 2, 3])).sum().backward()
            optimizer.step()
            tracer.step()
    finally:
        tracer.finish()
    report = run.finish()
    assert not torch.equal(model[1].weight.detach(), before), "the optimiser stepped"
    assert report["monitoring_errors_total"] >= 1
