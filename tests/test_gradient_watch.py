"""The gradient watcher: the Rust pass and the torch reductions give the same rows, layers without
gradient are marked, and only the watched model's optimiser triggers a capture."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch

from hf_eco2ai.tracer.watch import GradientWatcher, layer_groups


def model_with_gradients(dtype: torch.dtype) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).to(dtype)
    model(torch.randn(5, 6, dtype=dtype)).pow(2).sum().backward()
    with torch.no_grad():
        model[0].weight.grad[0, :2] = float("nan")
        model[2].bias.grad[1] = float("inf")
    return model


def captured_row(model: torch.nn.Module) -> np.ndarray:
    rows: List[Tuple[int, np.ndarray]] = []
    watcher = GradientWatcher(
        model,
        None,
        lambda step, row: rows.append((step, np.frombuffer(row, dtype="<f4").reshape(-1, 3).copy())),
        optimizer_hook=False,
    )
    watcher.capture()
    watcher.collect(7)
    watcher.close()
    assert [step for step, _ in rows] == [7]
    return rows[0][1]


def test_the_rust_pass_and_the_torch_reductions_give_the_same_row() -> None:
    rust = captured_row(model_with_gradients(torch.float32))
    reference = captured_row(model_with_gradients(torch.float64))  # float64 takes the torch path
    assert np.isnan(rust[0, 0]) and np.isnan(reference[0, 0])
    assert rust[0, 2] == reference[0, 2] == 2
    assert rust[1, 2] == reference[1, 2] == 1 and np.isinf(rust[1, 0])
    finite = np.isfinite(reference)
    assert np.array_equal(finite, np.isfinite(rust))
    assert np.allclose(rust[finite], reference[finite], rtol=1e-5)


def test_a_layer_without_gradient_is_marked_missing_not_zero() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    model[1](torch.randn(3, 4)).sum().backward()
    row = captured_row(model)
    assert row[0, 0] == -1.0
    assert row[1, 0] > 0


def test_only_an_optimiser_of_the_watched_model_captures() -> None:
    watched, other = torch.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    rows: List[int] = []
    watcher = GradientWatcher(watched, None, lambda step, row: rows.append(step))
    try:
        for model in (other, watched):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model(torch.randn(2, 3)).sum().backward()
            optimizer.step()
        watcher.collect(0)
        assert watcher.captures == 1 and rows == [0]
    finally:
        watcher.close()


def test_layer_groups_follow_the_owning_module_or_the_first_matching_pattern() -> None:
    names = ["encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "head.weight", "scale"]
    assert layer_groups(names, None) == (["encoder.0", "encoder.1", "head", "scale"], [0, 0, 1, 2, 3])
    assert layer_groups(names, ["encoder.*", "*.weight"]) == (["encoder.*", "*.weight"], [0, 0, 0, 1, -1])


def test_the_device_nan_count_equals_the_element_count_in_chunks(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sys

    # The package's `watch` is the function; the module is reached through sys.modules.
    watch_module = sys.modules["hf_eco2ai.tracer.watch"]
    model = model_with_gradients(torch.float32)
    watcher = GradientWatcher(model, None, lambda *row: None, optimizer_hook=False)
    grads = [parameter.grad for parameter in model.parameters()]
    expected = [float((~torch.isfinite(grad)).sum()) for grad in grads]
    # The device path counts every element in fused passes; small chunks exercise the splitting.
    monkeypatch.setattr(watch_module, "_COUNT_CHUNK_ELEMENTS", 10)
    assert watcher._nonfinite_counts(grads).tolist() == expected
    watcher.close()


def test_gradients_that_cannot_be_read_in_place_take_the_torch_path() -> None:
    """A gradient made non-contiguous, or resized through ``.data``, is never read as raw memory:
    the step's figures come from the torch reductions instead, and stay right."""
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    model(torch.randn(3, 4)).sum().backward()
    expected = captured_row(model)
    weight = model[0].weight
    assert weight.grad is not None
    weight.grad = weight.grad.t().contiguous().t()
    assert not weight.grad.is_contiguous()
    assert np.allclose(captured_row(model), expected, rtol=1e-6)
    model[1].bias.grad.data = torch.zeros(1000)
    resized = captured_row(model)
    assert np.isclose(resized[1, 0], np.sqrt(float(model[1].weight.grad.pow(2).sum())), rtol=1e-6)


def test_the_rust_pass_is_exact_for_tiny_and_huge_gradients() -> None:
    """Squares of tiny gradients are subnormal in float32 and those of huge ones overflow it:
    the norms still match a float64 reference, at every scale."""
    from hf_eco2ai._core import gradient_group_stats_f32

    generator = torch.Generator().manual_seed(3)
    for scale in (1e-33, 1e-25, 1e-19, 1e-3, 1.0, 1e4, 1e12, 1e30):
        values = torch.randn(3 * 4096 + 77, generator=generator) * scale
        row = bytearray(12)
        gradient_group_stats_f32([values.data_ptr()], [values.numel()], [0], 1, row)
        norm, largest, nonfinite = np.frombuffer(row, dtype="<f4")
        assert np.isclose(norm, float(values.double().norm()), rtol=1e-6), scale
        assert largest == float(values.abs().max()) and nonfinite == 0
