"""Label hygiene for the Prometheus exporter: clean-up of label values and a cap on projects.

Every distinct label value becomes a new time series in Prometheus, kept for the whole retention
period. The documented troubleshooting advice names the defences implemented here:
``label_cleanup_enabled`` (values made printable, single-line and bounded),
``aggregate_similar_models`` (the checkpoint directories of one model share its series) and
``max_projects`` (a bound on distinct ``project_name`` values; later projects are folded into
``OVERFLOW_PROJECT``).
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Optional, Set

from hf_eco2ai.errors import ConfigurationError

OVERFLOW_PROJECT = "other"
MAX_LABEL_CHARS = 120

_logger = logging.getLogger("hf_eco2ai.prometheus")
_CHECKPOINT_DIR = re.compile(r"^(checkpoint|ckpt|step|epoch)[-_]?\d+$", re.IGNORECASE)
_PATH_PREFIXES = ("/", "./", "../", "~", "\\")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")


def clean_label_value(value: Optional[object]) -> str:
    """A label value that is printable, single-spaced and at most ``MAX_LABEL_CHARS`` long.

    None becomes the empty string, which Prometheus treats as "label not set".
    """
    if value is None:
        return ""
    text = str(value)
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:MAX_LABEL_CHARS]


def model_label(model_name: Optional[str]) -> str:
    """The model's label value: a local path is reduced to the model's own directory name.

    ``/runs/bert-tiny/checkpoint-500`` and ``./runs/bert-tiny`` both become ``bert-tiny``, so
    every checkpoint of one model shares its series. Hub ids (``org/name``) are kept whole.
    """
    text = clean_label_value(model_name)
    if not (text.startswith(_PATH_PREFIXES) or _WINDOWS_DRIVE.match(text)):
        return text
    parts = [part for part in re.split(r"[\\/]+", text) if part not in ("", ".", "..", "~")]
    while parts and _CHECKPOINT_DIR.match(parts[-1]):
        parts.pop()
    return parts[-1] if parts else text


class ProjectLabelGuard:
    """Admits at most ``max_projects`` distinct ``project_name`` label values per exporter.

    Projects are admitted in the order they are first seen and stay admitted; once the cap is
    reached every new project is exported as ``OVERFLOW_PROJECT``, with one warning naming the
    setting to raise. Thread-safe: scrapes arrive on the HTTP server's threads.
    """

    def __init__(self, max_projects: int) -> None:
        if isinstance(max_projects, bool) or not isinstance(max_projects, int) or max_projects < 1:
            raise ConfigurationError(
                f"max_projects={max_projects!r} is invalid: it must be an integer >= 1, the number "
                "of distinct project_name label values the Prometheus exporter may create"
            )
        self.max_projects = max_projects
        self._admitted: Set[str] = set()
        self._folded: Set[str] = set()
        self._lock = threading.Lock()

    @property
    def folded_count(self) -> int:
        """How many distinct projects were folded into ``OVERFLOW_PROJECT`` so far."""
        with self._lock:
            return len(self._folded)

    def label_for(self, project_name: str) -> str:
        """The label value under which ``project_name`` is exported."""
        with self._lock:
            if project_name in self._admitted:
                return project_name
            if len(self._admitted) < self.max_projects:
                self._admitted.add(project_name)
                return project_name
            first_fold = not self._folded
            self._folded.add(project_name)
        if first_fold:
            _logger.warning(
                "hf-eco2ai: Prometheus exporter: more than max_projects=%d distinct project names; project %r "
                "and any later new ones are exported as project_name=%r. Raise max_projects if "
                "every project needs its own series.",
                self.max_projects,
                project_name,
                OVERFLOW_PROJECT,
            )
        return OVERFLOW_PROJECT
