"""The ``tensorboard`` backend: TensorBoard event files through ``SummaryWriter``.

``torch.utils.tensorboard`` is used when torch and tensorboard are installed, ``tensorboardX``
otherwise. A SummaryWriter flushes on its own only every ``flush_secs`` (120 s by default), so
this backend flushes at every ``flush()`` and when the run stops: nothing logged is left unwritten.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.base import TRACKING_EXTRA, Backend, BackendRun, Metric, plain_param

# Marks the writers this backend owns, so that capturing SummaryWriter.add_scalar (the Tracelet
# API's automagic) never routes their calls back to the backends.
INTERNAL_WRITER_ATTRIBUTE = "_hf_eco2ai_internal_writer"


def summary_writer_class() -> Any:
    """The SummaryWriter class available: torch's, else tensorboardX's.

    Raises:
        ConfigurationError: neither is installed (names the pip extra).
    """
    if importlib.util.find_spec("torch") is not None and importlib.util.find_spec("tensorboard") is not None:
        return importlib.import_module("torch.utils.tensorboard").SummaryWriter
    if importlib.util.find_spec("tensorboardX") is not None:
        return importlib.import_module("tensorboardX").SummaryWriter
    raise ConfigurationError(
        "backend = 'tensorboard' needs the 'tensorboard' package (with torch) or 'tensorboardX', "
        f"neither of which is installed: run `{TRACKING_EXTRA}`, or leave 'tensorboard' out of the backends"
    )


def _library_available() -> bool:
    torch_writer = importlib.util.find_spec("torch") is not None and importlib.util.find_spec("tensorboard") is not None
    return torch_writer or importlib.util.find_spec("tensorboardX") is not None


class TensorBoardBackend(Backend):
    """Writes scalars (and params/tags as text) to event files under ``log_dir``.

    Args:
        log_dir: the event file folder; None: ``<output dir>/tensorboard/<run name>``.

    Raises:
        ConfigurationError: neither tensorboard (with torch) nor tensorboardX is installed.
    """

    name = "tensorboard"

    def __init__(self, log_dir: Optional[str] = None) -> None:
        if not _library_available():
            summary_writer_class()
        self._log_dir = None if log_dir is None else Path(log_dir)
        self._writer: Any = None
        self._next_step = 0

    @property
    def log_dir(self) -> Optional[Path]:
        """Where the event files go (after ``start``)."""
        return self._log_dir

    def start(self, run: BackendRun) -> None:
        if self._log_dir is None:
            self._log_dir = run.output_dir / "tensorboard" / run.name
        writer = summary_writer_class()(log_dir=str(self._log_dir))
        setattr(writer, INTERNAL_WRITER_ATTRIBUTE, True)
        self._writer = writer
        if run.params:
            self.log_params(run.params)

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        if self._writer is None:
            return
        for metric in metrics:
            if metric.step is None:
                step = self._next_step
            else:
                step = metric.step
            self._next_step = max(self._next_step, step + 1)
            self._writer.add_scalar(metric.name, metric.value, global_step=step, walltime=metric.unix_time_s)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self._writer is not None and params:
            table = "| name | value |\n| --- | --- |\n" + "\n".join(
                f"| {key} | {plain_param(value)} |" for key, value in params.items()
            )
            self._writer.add_text("params", table, global_step=self._next_step)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if self._writer is not None and tags:
            for key, value in tags.items():
                self._writer.add_text(key, str(value), global_step=self._next_step)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def stop(self, status: str) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
