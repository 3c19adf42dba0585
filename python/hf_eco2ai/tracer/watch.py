"""``GradientWatcher``: per-layer gradient statistics of a model, computed where the gradients are.

At every optimiser step (a global ``torch.optim`` step pre-hook, so gradients are complete and
not yet cleared) the watcher computes, per layer or per ``gradient_layers`` group:

- the L2 norm of the gradient;
- the largest absolute value;
- the count of NaN/Inf values.

CPU float32 gradients (the common CPU case) take one pass of the Rust core over their memory, in
place (no copy), all layers in one call (``_core.gradient_group_stats_f32``): it reads each
buffer once for all three figures, in vector lanes. The Python side per step is a handful of
``map`` calls over the parameter list (the gradients, their addresses, and the checks that make
reading their memory safe: present, float32, CPU, contiguous, of the parameter's size), not a
Python loop per parameter.

Any other gradient (a GPU, another dtype) takes fused torch ops over all gradients at once
(``torch._foreach_norm`` with ord 2 and inf, the NaN/Inf count as the L0 norm of ``0 * g``),
reduced per group with ``index_add_``/``scatter_reduce`` on the gradients' device, without any
read of a device value on the host. On a GPU the ``(layers, 3)`` float32 result is copied with
``non_blocking=True`` into a pinned host slot and read at a later step, once its CUDA event has
completed (``Event.query()``, which never waits): no step forces a synchronisation. The one wait
is back-pressure: when the host runs ``_PINNED_SLOTS`` steps ahead of the device, the oldest slot
is waited for (the device then still has that many steps queued). ``drain()`` (checkpoints, the
run's end) waits for what is left.

Rows are handed to a sink as one contiguous float32 ``bytearray`` (``layers`` x 3, little-endian
as the Rust pass writes it and the ring reads it; reused, so a step allocates no Python object per
layer).

Threading: the hook runs on the thread that calls ``optimizer.step()``; ``collect``/``drain`` on
the training thread. Not for concurrent use from several threads.
"""

from __future__ import annotations

import fnmatch
import math
import operator
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from hf_eco2ai._core import gradient_group_stats_f32
from hf_eco2ai.errors import ConfigurationError

RowSink = Callable[[int, bytearray], None]

# Per-step reads over the parameter list, as C-level callables for ``map``: no Python frame per
# parameter.
_grad_of = operator.attrgetter("grad")
_dtype_of = operator.attrgetter("dtype")
_is_cpu = operator.attrgetter("is_cpu")
# The row was written in place into the watcher's bytearray (the Rust pass).
_IN_ROW = object()

# Pinned slots in flight on a GPU: the host may run this many steps ahead of the device before a
# slot is waited for (the oldest one only). ``StepRows`` holds a row this long for its gradients.
_PINNED_SLOTS = 8
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
        sink: called with ``(step, row)`` for each step's row once it is on the host; ``row`` is
            reused for the next step.
        optimizer_hook: capture at every ``optimizer.step()`` (the global pre-hook). ``False``
            leaves it to the caller to call ``capture()`` once the gradients are complete: an
            optimiser that takes a closure (Lightning, LBFGS) computes them inside ``step()``,
            after the pre-hook.
        on_error: receives a fault of the capture run by the optimiser hook (a gradient torch
            cannot reduce), so that it never ends ``optimizer.step()``; None re-raises it.

    Raises:
        ConfigurationError: the model has no trainable parameter, or a pattern matches none.
    """

    def __init__(
        self,
        model: Any,
        gradient_layers: Optional[Sequence[str]],
        sink: RowSink,
        optimizer_hook: bool = True,
        on_error: Optional[Callable[[BaseException], None]] = None,
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
        self._numels = [parameter.numel() for parameter in self._parameters]
        self._parameter_ids = {id(parameter) for parameter in self._parameters}
        self.device = self._parameters[0].device
        self._on_gpu = self.device.type == "cuda"
        # Gradients have their parameter's dtype and device, so the Rust pass applies when the
        # parameters are CPU float32 (each step still checks every gradient before reading it).
        self._host_pass = all(
            parameter.device.type == "cpu" and parameter.dtype == torch.float32 for parameter in self._parameters
        )
        self._sink = sink
        self._on_error = on_error
        layers = len(self.layer_names)
        self._row = bytearray(layers * 3 * 4)
        self._row_view = np.frombuffer(self._row, dtype="<f4").reshape(layers, 3)
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
            try:
                self.capture()
            except Exception as error:  # noqa: BLE001 - the hook runs inside the user's optimizer.step()
                if self._on_error is None:
                    raise
                self._on_error(error)

    def capture(self) -> None:
        """Compute this step's statistics from the gradients present now (the hook calls it; a
        later call in the same step replaces the earlier capture). Never reads a device value on
        the host.

        Raises:
            RuntimeError: a gradient torch cannot reduce (a sparse one).
        """
        grads = list(map(_grad_of, self._parameters))
        groups, numels = self._groups, self._numels
        if self._host_pass and self._pass_in_place(grads, numels, groups):
            return
        present = [position for position, grad in enumerate(grads) if grad is not None]
        if not present:
            return
        if len(present) < len(grads):
            grads = [grads[position] for position in present]
            groups = [groups[position] for position in present]
            numels = [numels[position] for position in present]
            if self._host_pass and self._pass_in_place(grads, numels, groups):
                return
        stats = self._device_stats(grads, groups)
        self.captures += 1
        if self._on_gpu:
            slot = self._free_slots.pop() if self._free_slots else self._wait_oldest_slot()
            slot.copy_(stats, non_blocking=True)
            event = self._torch.cuda.Event()
            event.record()
            self._captured = (slot, event)
        else:
            self._captured = (stats, None)

    def _pass_in_place(self, grads: List[Any], numels: List[int], groups: List[int]) -> bool:
        """The Rust pass over the gradients' memory, into the row; False (nothing done) unless
        every gradient is present, float32, on the CPU, contiguous and of its parameter's size
        (``.data`` assignments can change a gradient's dtype or size after torch's checks)."""
        tensor = self._torch.Tensor
        try:
            addresses = list(map(tensor.data_ptr, grads))
        except (TypeError, RuntimeError):  # data_ptr(None): no gradient this step; a sparse one
            return False
        if not (
            list(map(tensor.numel, grads)) == numels
            and all(map(tensor.is_contiguous, grads))
            and all(map(_is_cpu, grads))
            and all(map(self._torch.float32.__eq__, map(_dtype_of, grads)))
        ):
            return False
        gradient_group_stats_f32(addresses, numels, groups, self.n_layers, self._row)
        self.captures += 1
        self._captured = (_IN_ROW, None)
        return True

    def _device_stats(self, grads: List[Any], groups: List[int]) -> Any:
        """The ``(layers, 3)`` float32 figures on the gradients' device: fused torch ops, no value
        read on the host (no ``.item()``, no branch on a device value), so no synchronisation."""
        torch = self._torch
        key = tuple(groups)
        if key != self._index_key:
            self._index_key = key
            index = torch.tensor(groups, dtype=torch.long)
            if self._on_gpu:
                # From pinned memory a host-to-device copy is asynchronous; from pageable memory
                # it waits for the device.
                index = index.pin_memory().to(self.device, non_blocking=True)
            self._index = index
            self._present = torch.zeros(self.n_layers, dtype=torch.float64, device=self.device).index_add_(
                0, self._index, torch.ones(len(groups), dtype=torch.float64, device=self.device)
            )
        with torch.no_grad():
            norms = torch.stack(torch._foreach_norm(grads, 2, dtype=torch.float64))
            largest = torch.stack(torch._foreach_norm(grads, math.inf, dtype=torch.float64))
            counts = self._nonfinite_counts(grads)
            zeros = torch.zeros(self.n_layers, dtype=torch.float64, device=self.device)
            group_norm = zeros.index_add(0, self._index, norms * norms).sqrt()
            group_max = zeros.scatter_reduce(0, self._index, largest, "amax", include_self=False)
            group_count = zeros.index_add(0, self._index, counts)
            # A negative norm marks a group without gradient this step: skipped, not zero.
            group_norm = torch.where(self._present > 0, group_norm, torch.full_like(group_norm, -1.0))
            return torch.stack([group_norm, group_max, group_count], dim=1).float()

    def _nonfinite_counts(self, grads: List[Any]) -> Any:
        """NaN/Inf count per gradient, in fused passes over every element (a branch on whether
        there is anything to count would read a device value): 0 * x is 0 for finite x and NaN
        otherwise, and the L0 "norm" counts the non-zeros."""
        torch = self._torch
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
        if stats is not _IN_ROW:
            np.copyto(self._row_view, stats.numpy())
        self._sink(step, self._row)
