"""Forward, backward and optimizer windows from torch hooks, for any training loop.

``attach_phase_windows(model, optimizer, window_factory)`` opens a named window around each
phase of every training step, so the window estimator (``EnergyMeter.estimate_windows``, the
report's ``window_estimates`` section) can say what each phase costs even when it is shorter
than the GPU's energy counter update period. Framework-free: the Trainer and Lightning
callbacks call it when asked to; a plain PyTorch loop calls it directly::

    handle = attach_phase_windows(model, optimizer, session.window)
    ...  # train
    handle.remove()

The phases, as the hooks see them:
- ``forward``: the model's ``forward`` call (forward pre-hook to forward hook);
- ``backward``: from the first gradient reaching the model's output to the optimizer step, or
  to the next forward when gradients accumulate (gradient clipping counts as backward);
- ``optimizer``: ``optimizer.step()``.

The windows are timed on the host, as kernels are queued: with CUDA's asynchronous launches a
phase's window is only as accurate as the synchronisation the loop already does. The hooks add
a few microseconds of Python per phase and never synchronise the GPU.

Threading: one training thread per handle. ``remove()`` is idempotent and closes any window
still open.
"""

from __future__ import annotations

from typing import Any, Callable, ContextManager, Dict, Iterable, List, Mapping, Optional

PHASES = ("forward", "backward", "optimizer")


class PhaseWindows:
    """The hooks of one model (and optimizer); ``remove()`` takes them all off."""

    def __init__(self, window_factory: Callable[[str], ContextManager[Any]]) -> None:
        self._factory = window_factory
        self._open: Dict[str, ContextManager[Any]] = {}
        self._handles: List[Any] = []

    def _enter(self, phase: str) -> None:
        if phase in self._open:
            return
        window = self._factory(phase)
        window.__enter__()
        self._open[phase] = window

    def _exit(self, phase: str) -> None:
        window = self._open.pop(phase, None)
        if window is not None:
            window.__exit__(None, None, None)

    # Hooks ------------------------------------------------------------------------------------

    def _before_forward(self, module: Any, args: Any) -> None:
        self._exit("backward")
        self._enter("forward")

    def _after_forward(self, module: Any, args: Any, output: Any) -> None:
        self._exit("forward")
        # A hook on the output tensor rather than a module backward hook: models that return a
        # mapping (transformers' ModelOutput) get no module backward hooks at all.
        tensor = _first_tensor_needing_grad(output)
        if tensor is not None:
            tensor.register_hook(self._gradient_reached_output)

    def _gradient_reached_output(self, grad: Any) -> None:
        self._enter("backward")

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._exit("backward")
        self._enter("optimizer")

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._exit("optimizer")

    def remove(self) -> None:
        """Removes every hook and closes the windows still open. Idempotent."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for phase in list(self._open):
            self._exit(phase)


def _first_tensor_needing_grad(value: Any) -> Any:
    """The first tensor in ``value`` (a tensor, a sequence or a mapping of them) that gradients
    will flow through, or None (in evaluation, under ``torch.no_grad``)."""
    if getattr(value, "requires_grad", False) and hasattr(value, "register_hook"):
        return value
    if isinstance(value, Mapping):
        items: Iterable[Any] = value.values()
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        return None
    for item in items:
        found = _first_tensor_needing_grad(item)
        if found is not None:
            return found
    return None


def attach_phase_windows(
    model: Any, optimizer: Optional[Any], window_factory: Callable[[str], ContextManager[Any]]
) -> PhaseWindows:
    """Opens ``forward``, ``backward`` and ``optimizer`` windows around each phase of training.

    Args:
        model: a ``torch.nn.Module`` (the whole model: its hooks mark the phases).
        optimizer: a ``torch.optim.Optimizer``, or None for no ``optimizer`` window (``backward``
            then closes at the next forward).
        window_factory: returns the context manager of a named window, e.g.
            ``EnergyMeter.window`` or ``TrackingSession.window``.

    Returns:
        The handle whose ``remove()`` takes the hooks off.

    Raises:
        ConfigurationError: ``model`` has no torch module hooks, or ``optimizer`` no step hooks.
    """
    from hf_eco2ai.errors import ConfigurationError

    if not hasattr(model, "register_forward_pre_hook"):
        raise ConfigurationError(f"model={type(model).__name__}: attach_phase_windows needs a torch.nn.Module")
    if optimizer is not None and not hasattr(optimizer, "register_step_pre_hook"):
        raise ConfigurationError(
            f"optimizer={type(optimizer).__name__}: attach_phase_windows needs a torch.optim.Optimizer "
            "(torch >= 2.0), or None"
        )
    phases = PhaseWindows(window_factory)
    phases._handles.append(model.register_forward_pre_hook(phases._before_forward))
    phases._handles.append(model.register_forward_hook(phases._after_forward))
    if optimizer is not None:
        phases._handles.append(optimizer.register_step_pre_hook(phases._before_step))
        phases._handles.append(optimizer.register_step_post_hook(phases._after_step))
    return phases
