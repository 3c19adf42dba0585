"""``hf-eco2ai compare A B --html OUT``: the comparison page, written atomically."""

from __future__ import annotations

from typing import Sequence

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.reporting.atomic import write_text_atomically
from hf_eco2ai.store.run_store import RunStore


def write_comparison_page(store: RunStore, runs: Sequence[str], output_path: str) -> None:
    """Raises ConfigurationError for an unknown run or a path that cannot be written."""
    try:
        comparison = store.compare(runs)
    except KeyError as error:
        raise ConfigurationError(
            f"{error.args[0] if error.args else 'a run was not found'}; `hf-eco2ai runs` lists them"
        ) from None
    try:
        write_text_atomically(output_path, comparison.to_html())
    except OSError as error:
        raise ConfigurationError(
            f"--html {output_path!r} cannot be written ({error.strerror or error}): choose a writable path"
        ) from None
    print(f"comparison page written to {output_path}")
