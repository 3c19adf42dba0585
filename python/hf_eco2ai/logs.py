"""How hf_eco2ai speaks to people: the ``hf_eco2ai`` logger, its level, and warnings.

Every message the package logs at WARNING or above, and every warning it emits through
``warnings``, starts with ``MESSAGE_PREFIX``, so that it says where it comes from wherever it lands
(a training log mixes many libraries). Warnings have the category ``HfEco2AIWarning``.
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

from hf_eco2ai.errors import HfEco2AIWarning

LOGGER_NAME = "hf_eco2ai"
MESSAGE_PREFIX = "hf-eco2ai: "

_handler_attached = False


def warn(message: str, stacklevel: int = 2) -> None:
    """``warnings.warn`` with the package's prefix and category; ``stacklevel`` counts from the
    caller of this function, as ``warnings.warn`` counts from its own caller."""
    warnings.warn(MESSAGE_PREFIX + message, HfEco2AIWarning, stacklevel=stacklevel + 1)


def apply_log_level(config: Any) -> None:
    """Set the ``hf_eco2ai`` logger to ``config.log_level`` when that was set (argument,
    environment or YAML).

    Left at its default, the level is the application's logging configuration's (Python's own
    default shows WARNING and above), so a ``logging.basicConfig(level=logging.INFO)`` shows the
    end-of-run summary line. When a level is set and no handler would show the records (no
    logging configured at all), one handler writing to stderr is attached to the ``hf_eco2ai``
    logger, once per process. Thread-safe as ``logging`` is.
    """
    if config.origin("log_level") == "default":
        return
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(config.log_level)
    attach_stderr_handler()


def attach_stderr_handler() -> None:
    """Show the ``hf_eco2ai`` logger's records on stderr, message only, unless a handler already
    would (on that logger or an ancestor). The command line calls this; so does a set ``log_level``."""
    global _handler_attached
    logger = logging.getLogger(LOGGER_NAME)
    if _handler_attached or logger.hasHandlers():
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    _handler_attached = True
