"""``hf-eco2ai trace RUN``: a stored run as Chrome/Perfetto trace JSON, alone or merged into a torch trace."""

from __future__ import annotations

from typing import Optional

from hf_eco2ai.cli.runs import open_store
from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.reporting.trace_sources import timeline_from_store, write_timeline_trace


def write_run_trace(store_path: Optional[str], run: str, output_path: str, merge_path: Optional[str]) -> int:
    """Writes the trace of ``run`` to ``output_path``; prints what it wrote. Returns the exit code.

    Raises:
        ConfigurationError: no store, an unknown or ambiguous run, or a ``merge_path`` that is no
            Chrome trace (the message names the fix).
    """
    store = open_store(store_path)
    try:
        timeline = timeline_from_store(store, run)
    except KeyError as error:
        raise ConfigurationError(
            f"run {run!r}: {error.args[0] if error.args else 'not found'}; `hf-eco2ai runs` lists them"
        ) from error
    try:
        written = write_timeline_trace(timeline, output_path, merge_into=merge_path)
    except OSError as error:
        raise ConfigurationError(
            f"cannot write {output_path!r}: {error.strerror or error}; choose another -o path"
        ) from error
    what = f"merged into {merge_path}" if merge_path else "for chrome://tracing or ui.perfetto.dev"
    print(
        f"wrote {written}: {len(timeline.steps)} steps, {len(timeline.windows)} windows, "
        f"{len(timeline.power_unix_s)} power readings of {len(timeline.channels)} channels, {what}"
    )
    return 0
