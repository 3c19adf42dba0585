"""Automagic: hyperparameters from the calling frame, model and dataset summaries, and the capture
of ``SummaryWriter.add_scalar`` calls.

The capture replaces the ``add_scalar`` function on the SummaryWriter class (the class itself is
untouched) and puts the original back on ``restore()``: after the experiment stops, the class and
its method are exactly what they were before. Writers owned by the ``tensorboard`` backend are
skipped, so their scalars are never routed back into the backends.
"""

from __future__ import annotations

import inspect
import sys
import threading
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Tuple

from hf_eco2ai.integrations.backends.tensorboard_backend import INTERNAL_WRITER_ATTRIBUTE
from hf_eco2ai.tracking.settings import AutomagicConfig

WRITER_MODULES = ("torch.utils.tensorboard", "torch.utils.tensorboard.writer", "tensorboardX")
_PACKAGE_PREFIX = "hf_eco2ai.tracking"

ScalarSink = Callable[[str, float, Optional[int]], None]


def calling_frame() -> Optional[FrameType]:
    """The innermost frame outside ``hf_eco2ai.tracking``: the user's code."""
    frame = inspect.currentframe()
    while frame is not None and str(frame.f_globals.get("__name__", "")).startswith(_PACKAGE_PREFIX):
        frame = frame.f_back
    return frame


def hyperparameters_in(frame: Optional[FrameType], config: AutomagicConfig) -> Dict[str, Any]:
    """The frame's local variables named like hyperparameters whose values are plain."""
    if frame is None:
        return {}
    names = set(config.hyperparameter_names) | set(config.extra_hyperparameter_names)
    found: Dict[str, Any] = {}
    for name, value in frame.f_locals.items():
        if name not in names:
            continue
        if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= config.max_str_length):
            found[name] = value
    return found


def describe_model(model: Any) -> Dict[str, Any]:
    """Class, framework and (for anything with ``parameters()``) parameter counts."""
    info: Dict[str, Any] = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "framework": type(model).__module__.split(".")[0],
    }
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        values = list(parameters())
        info["parameters"] = int(sum(p.numel() for p in values))
        info["trainable_parameters"] = int(sum(p.numel() for p in values if getattr(p, "requires_grad", False)))
    return info


def describe_dataset(dataset: Any) -> Dict[str, Any]:
    """Class, length and (when indexable) the shape or type of the first sample."""
    info: Dict[str, Any] = {"class": f"{type(dataset).__module__}.{type(dataset).__qualname__}"}
    try:
        info["size"] = len(dataset)
    except TypeError:
        return info
    if info["size"]:
        try:
            sample = dataset[0]
        except (TypeError, KeyError, IndexError):
            return info
        items = sample if isinstance(sample, (tuple, list)) else (sample,)
        info["sample"] = ", ".join(
            str(tuple(getattr(item, "shape", ()))) if hasattr(item, "shape") else type(item).__name__ for item in items
        )
    return info


class SummaryWriterCapture:
    """Routes ``add_scalar`` calls of every SummaryWriter class already imported to ``sink``.

    Threading: install/restore are guarded; one capture is active per process at a time (the
    newest experiment's), and restoring puts back exactly what was installed over.
    """

    _lock = threading.Lock()
    _installed: Optional["SummaryWriterCapture"] = None

    def __init__(self, sink: ScalarSink) -> None:
        self._sink = sink
        self._patched: List[Tuple[type, Any]] = []

    @staticmethod
    def writer_classes(import_torch_writer: bool) -> List[type]:
        """SummaryWriter classes of modules already imported (importing torch's when asked)."""
        if import_torch_writer and "torch.utils.tensorboard" not in sys.modules:
            try:
                import torch.utils.tensorboard  # noqa: F401 - imported for its SummaryWriter
            except ImportError:
                pass
        classes: List[type] = []
        for module_name in WRITER_MODULES:
            module = sys.modules.get(module_name)
            writer = getattr(module, "SummaryWriter", None) if module is not None else None
            if isinstance(writer, type) and writer not in classes:
                classes.append(writer)
        return classes

    def install(self, classes: List[type]) -> bool:
        """Capture the classes' ``add_scalar``; False (nothing done) while another capture is on."""
        with self._lock:
            if SummaryWriterCapture._installed is not None:
                return False
            SummaryWriterCapture._installed = self
            for writer_class in classes:
                original = writer_class.__dict__.get("add_scalar")
                if original is None:
                    continue
                writer_class.add_scalar = self._wrap(original)  # type: ignore[attr-defined]
                self._patched.append((writer_class, original))
            return True

    def _wrap(self, original: Any) -> Any:
        sink = self._sink

        def add_scalar(
            writer: Any, tag: str, scalar_value: Any, global_step: Optional[int] = None, *args: Any, **kwargs: Any
        ) -> Any:
            result = original(writer, tag, scalar_value, global_step, *args, **kwargs)
            if not getattr(writer, INTERNAL_WRITER_ATTRIBUTE, False):
                try:
                    value = float(scalar_value.item() if hasattr(scalar_value, "item") else scalar_value)
                    sink(str(tag), value, None if global_step is None else int(global_step))
                except (TypeError, ValueError):
                    pass  # not a scalar the backends can hold; the writer has it anyway
            return result

        add_scalar.__wrapped__ = original  # type: ignore[attr-defined]
        add_scalar.__doc__ = getattr(original, "__doc__", None)
        return add_scalar

    def restore(self) -> None:
        with self._lock:
            for writer_class, original in reversed(self._patched):
                writer_class.add_scalar = original  # type: ignore[attr-defined]
            self._patched.clear()
            if SummaryWriterCapture._installed is self:
                SummaryWriterCapture._installed = None

    @property
    def active(self) -> bool:
        return bool(self._patched)
