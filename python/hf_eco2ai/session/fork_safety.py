"""What a forked child does with the sessions it inherits.

``fork()`` copies memory, not threads: a session's background drain and the meter's sampler do not
exist in the child, and a lock one of them held at that moment stays held forever there. A
DataLoader worker or a ``multiprocessing`` child that then called ``log()`` or ``drain()`` would
hang. An at-fork handler gives every inherited session a fresh lock; a session that was running
becomes a stopped copy that measures nothing and says so in its warnings (code ``forked-copy``).
The parent's run goes on untouched.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

FORKED_COPY_CODE = "forked-copy"

_sessions: "weakref.WeakSet[Any]" = weakref.WeakSet()


def register(session: Any) -> None:
    """Makes ``session`` (a ``TrackingSession``) fork-safe; call once, from its constructor."""
    _sessions.add(session)


def is_forked_copy(session: Any) -> bool:
    """True in a child for a session that was running in its parent when the process forked."""
    return any(warning.get("code") == FORKED_COPY_CODE for warning in session._health.warnings)


def _after_fork_in_child() -> None:
    # Runs in the child right after fork, with only the forking thread alive: no logging here (a
    # handler's lock may be held too); the warning is kept and reported by the session.
    for session in list(_sessions):
        session._lock = threading.RLock()
        session._records_lock = threading.RLock()
        session._health.replace_lock(session._lock)
        if session._state in ("running", "stopping"):
            session.__dict__.pop("mark_step", None)
            session._state = "stopped"
            session._drainer = None
            session._writer = None
            session._pipeline = None
            session._exporter = None
            session._final_report = {}
            session._health.warn_once(
                FORKED_COPY_CODE,
                f"this process (pid {os.getpid()}) was forked from the one running the session; "
                "its copy of the session measures and records nothing",
                log=False,
            )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
