"""``GradientWatcher``: per-layer gradient statistics of a model, computed where the gradients are.

At every optimiser step (a global ``torch.optim`` step pre-hook, so gradients are complete and
not yet cleared) the watcher computes, per layer or per ``gradient_layers`` group:

- the L2 norm of the gradient, from ``torch._foreach_norm`` over every gradient at once;
- the largest absolute value (``_foreach_norm`` with ord=inf);
- the count of NaN/Inf values;

and reduces them per group with ``index_add_``/``scatter_reduce`` on the gradients' device: a
handful of fused kernels per step and no Python loop over the computation. CPU float32 gradients
(the common CPU case) take one pass of the Rust core over each buffer instead, which gives all
three figures at memory speed (``_core.gradient_group_stats_f32``). On a GPU the
``(layers, 3)`` float32 result is copied with ``non_blocking=True`` into a pinned host slot and
read at a later step, once its CUDA event has completed (``Event.query()``, which never waits):
no step forces a synchronisation. ``drain()`` (checkpoints, the run's end) waits for what is left.

Rows are handed to a sink as one contiguous float32 ``bytearray`` (reused, so a step allocates no
Python object per layer) together with a numpy view of it.

Threading: the hook runs on the thread that calls ``optimizer.step()``; ``collect``/``drain`` on
the training thread. Not for concurrent use from several threads.
"""

from __future__ import annotations

import fnmatch
import math
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from hf_eco2ai._core import gradient_group_stats_f32
from hf_eco2ai.errors import ConfigurationError

RowSink = Callable[[int, bytearray, np.ndarray], None]

# Pinned slots in flight on a GPU: the host may run this many steps ahead of the device before a
# slot is waited for (the oldest one only).
_PINNED_SLOTS = 4
# Elements per fused NaN/Inf counting pass on a GPU: bounds the temporary it needs.
_COUNT_CHUNK_ELEMENTS = 1 << 26


def layer_groups(
    parameter_names: Sequence[str], gradient_layers: Optional[Sequence[str]]
) -> Tuple[List[str], List[int]]:
    """Group names and, per parameter, its group index (-1: not watched).

    Without patterns each layer is the module that owns the parameter (``encoder.0.weight`` and
    ``encoder.0.bias`` form ``encoder.0``); with patterns each pattern is one group, and a
    parameter belongs to the first pattern it matches.
    """
    if gradient_layers is None:
        names: List[str] = []
        position: Dict[str, int] = {}
        group_of = []
        for name in parameter_names:
            layer = name.rsplit(".", 1)[0] if "." in name else name
            if layer not in position:
                position[layer] = len(names)
                names.append(layer)
            group_of.append(position[layer])
        return names, group_of
    group_of = [
        next((i for i, pattern in enumerate(gradient_layers) if fnmatch.fnmatchcase(name, pattern)), -1)
        for name in parameter_names
    ]
    return list(gradient_layers), group_of


class GradientWatcher:
    """Watches one model's gradients; see the module docstring.

    Args:
        model: a ``torch.nn.Module``; every parameter with ``requires_grad`` is a candidate.
        gradient_layers: glob patterns over parameter names (one group each), or None for one
            group per layer.
        sink: called with ``(step, row, row_view)`` for each step's row once it is on the host.
        optimizer_hook: capture at every ``optimizer.step()`` (the global pre-hook). ``False``
            leaves it to the caller to call ``capture()`` once the gradients are complete: an
            optimiser that takes a closure (Lightning, LBFGS) computes them inside ``step()``,
            after the pre-hook.

    Raises:
        ConfigurationError: the model has no trainable parameter, or a pattern matches none.
    """

    def __init__(
        self, model: Any, gradient_layers: Optional[Sequence[str]], sink: RowSink, optimizer_hook: bool = True
    ) -> None:
        import torch
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        self._torch = torch
        named = [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]
        if not named:
            raise ConfigurationError(
                "watch(model): the model has no parameter with requires_grad=True; there are no gradients to watch"
            )
        self.layer_names, group_of = layer_groups([name for name, _ in named], gradient_layers)
        if gradient_layers is not None:
            unmatched = [pattern for index, pattern in enumerate(gradient_layers) if index not in group_of]
            if unmatched:
                raise ConfigurationError(
                    f"gradient_layers = {list(gradient_layers)!r}: pattern(s) {unmatched} match no parameter of "
                    f"the model; parameter names look like {named[0][0]!r}"
                )
        kept = [(parameter, group) for (_, parameter), group in zip(named, group_of) if group >= 0]
        self._parameters = [parameter for parameter, _ in kept]
        self._groups = [group for _, group in kept]
        self._parameter_ids = {id(parameter) for parameter in self._parameters}
        self.device = self._parameters[0].device
        self._on_gpu = self.device.type == "cuda"
        self._sink = sink
        layers = len(self.layer_names)
        self._row = bytearray(layers * 3 * 4)
        self._row_view = np.frombuffer(self._row, dtype="<f4").reshape(layers, 3)
        self._cpu_row = bytearray(layers * 3 * 4)
        self._cpu_row_view = np.frombuffer(self._cpu_row, dtype="<f4").reshape(layers, 3)
        self._index_key: Optional[Tuple[int, ...]] = None
        self._index: Any = None
        self._present: Any = None
        self._owned_optimizers: Dict[int, bool] = {}
        self._captured: Any = None
        self._in_flight: Deque[Tuple[int, Any, Any]] = deque()
        self._free_slots: List[Any] = []
        if self._on_gpu:
            self._free_slots = [
                torch.empty((layers, 3), dtype=torch.float32, pin_memory=True) for _ in range(_PINNED_SLOTS)
            ]
        self.captures = 0
        self._hook = register_optimizer_step_pre_hook(self._before_optimizer_step) if optimizer_hook else None

    @property
    def n_layers(self) -> int:
        return len(self.layer_names)

    def close(self) -> None:
        """Remove the optimiser hook. Idempotent."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    # Capture ------------------------------------------------------------------------------------

    def _owns(self, optimizer: Any) -> bool:
        known = self._owned_optimizers.get(id(optimizer))
        if known is None:
            known = any(
                id(parameter) in self._parameter_ids
                for group in optimizer.param_groups
                for parameter in group["params"]
            )
            self._owned_optimizers[id(optimizer)] = known
        return known

    def _before_optimizer_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._captured is None and self._owns(optimizer):
            self.capture()

    def capture(self) -> None:
        """Compute this step's statistics from the gradients present now (the hook calls it; a
        later call in the same step replaces the earlier capture)."""
        torch = self._torch
        grads = []
        groups = []
        for parameter, group in zip(self._parameters, self._groups):
            grad = parameter.grad
            if grad is not None:
                grads.append(grad)
                groups.append(group)
        if not grads:
            return
        if not self._on_gpu and all(grad.dtype == torch.float32 and grad.is_contiguous() for grad in grads):
            # On the CPU one Rust pass over each buffer gives all three figures: memory-bound, where
            # the torch reductions take a pass (and a dispatch per tensor) each.
            gradient_group_stats_f32(
                [grad.data_ptr() for grad in grads],
                [grad.numel() for grad in grads],
                groups,
                self.n_layers,
                self._cpu_row,
            )
            self.captures += 1
            self._captured = (self._cpu_row_view.copy(), None)
            return
        key = tuple(groups)
        if key != self._index_key:
            self._index_key = key
            self._index = torch.tensor(groups, dtype=torch.long, device=self.device)
            self._present = torch.zeros(self.n_layers, dtype=torch.float64, device=self.device).index_add_(
                0, self._index, torch.ones(len(groups), dtype=torch.float64, device=self.device)
            )
        with torch.no_grad():
            norms = torch.stack(torch._foreach_norm(grads, 2, dtype=torch.float64))
            largest = torch.stack(torch._foreach_norm(grads, math.inf, dtype=torch.float64))
            counts = self._nonfinite_counts(grads, norms, largest)
            zeros = torch.zeros(self.n_layers, dtype=torch.float64, device=self.device)
            group_norm = zeros.index_add(0, self._index, norms * norms).sqrt()
            group_max = zeros.scatter_reduce(0, self._index, largest, "amax", include_self=False)
            group_count = zeros.index_add(0, self._index, counts)
            # A negative norm marks a group without gradient this step: skipped, not zero.
            group_norm = torch.where(self._present > 0, group_norm, torch.full_like(group_norm, -1.0))
            stats = torch.stack([group_norm, group_max, group_count], dim=1).float()
        self.captures += 1
        if self._on_gpu:
            slot = self._free_slots.pop() if self._free_slots else self._wait_oldest_slot()
            slot.copy_(stats, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self._captured = (slot, event)
        else:
            self._captured = (stats, None)

    def _nonfinite_counts(self, grads: List[Any], norms: Any, largest: Any) -> Any:
        torch = self._torch
        if not self._on_gpu:
            # On the CPU a branch costs nothing, so elements are counted only where a norm says
            # there is something to count.
            finite = torch.isfinite(norms) & torch.isfinite(largest)
            counts = torch.zeros(len(grads), dtype=torch.float64)
            if not bool(finite.all()):
                for position in (~finite).nonzero().flatten().tolist():
                    counts[position] = float((~torch.isfinite(grads[position])).sum())
            return counts
        # On a GPU a branch would wait for the device, so every element is counted, in fused passes:
        # 0 * x is 0 for finite x and NaN otherwise, and the L0 "norm" counts the non-zeros.
        parts = []
        start = 0
        while start < len(grads):
            end, elements = start, 0
            while end < len(grads) and (end == start or elements + grads[end].numel() <= _COUNT_CHUNK_ELEMENTS):
                elements += grads[end].numel()
                end += 1
            zeroed = torch._foreach_mul(grads[start:end], 0.0)
            parts.append(torch.stack(torch._foreach_norm(zeroed, 0, dtype=torch.float64)))
            del zeroed
            start = end
        return torch.cat(parts)

    def _wait_oldest_slot(self) -> Any:
        step, slot, event = self._in_flight.popleft()
        event.synchronize()
        self._emit(step, slot)
        return slot

    # Hand-over ----------------------------------------------------------------------------------

    def collect(self, step: int) -> None:
        """End of ``step``: tag what was captured during it with the step, and hand every row whose
        copy has completed (in step order) to the sink. Never waits for the device."""
        captured, self._captured = self._captured, None
        if captured is not None:
            data, event = captured
            if event is None:
                self._emit(step, data)
            else:
                self._in_flight.append((step, data, event))
        while self._in_flight and self._in_flight[0][2].query():
            done_step, slot, _ = self._in_flight.popleft()
            self._emit(done_step, slot)
            self._free_slots.append(slot)

    def drain(self) -> None:
        """Hand over every row still in flight, waiting for the device if need be (checkpoints and
        the run's end only)."""
        while self._in_flight:
            done_step, slot, event = self._in_flight.popleft()
            event.synchronize()
            self._emit(done_step, slot)
            self._free_slots.append(slot)

    def _emit(self, step: int, stats: Any) -> None:
        np.copyto(self._row_view, stats if isinstance(stats, np.ndarray) else stats.numpy())
        self._sink(step, self._row, self._row_view)
