"""A run's long-lived background loops (the session's drainer, the store's writer) on threads
kept for the process's later runs.

Starting a thread costs the caller a few milliseconds under load: ``Thread.start()`` returns
only once the new thread has been scheduled. A run starts two such loops, so a second run in
the same process (a sweep, evaluation after training, a notebook) reuses the idle threads of
the runs before it: ``start_loop`` hands the loop to an idle thread with one queue put.

The threads are daemon threads, like the loops' own threads were: a loop that is never stopped
does not hold up interpreter exit (the store's writer flushes at exit on its own). A forked child
starts its own threads on first need.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Callable, List, Optional

logger = logging.getLogger("hf_eco2ai")

_IDLE_NAME = "hf-eco2ai-idle"


class LoopHandle:
    """One loop handed to a background thread: ``join`` waits for it to return.

    In a forked child the loop is not running (its thread stayed in the parent), as for a
    ``threading.Thread``: ``is_alive()`` is False and ``join`` returns at once.
    """

    def __init__(self, loop: Callable[[], None], name: str) -> None:
        self.loop = loop
        self.name = name
        self._returned = threading.Event()
        self._pid = os.getpid()

    def join(self, timeout_s: Optional[float] = None) -> bool:
        """Wait until the loop has returned (at most ``timeout_s``); True once it has."""
        return self._pid != os.getpid() or self._returned.wait(timeout_s)

    def is_alive(self) -> bool:
        return self._pid == os.getpid() and not self._returned.is_set()

    def _run(self) -> None:
        thread = threading.current_thread()
        thread.name = self.name
        try:
            self.loop()
        except BaseException:  # noqa: BLE001 - the thread serves later loops: log, never die
            logger.exception("hf-eco2ai: the background loop %s failed", self.name)
        finally:
            thread.name = _IDLE_NAME
            self._returned.set()


class _Worker:
    def __init__(self) -> None:
        self.loops: "queue.SimpleQueue[LoopHandle]" = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=_IDLE_NAME, daemon=True).start()

    def _serve(self) -> None:
        while True:
            handle = self.loops.get()
            handle._run()
            _release(self)


_idle: List[_Worker] = []
_idle_lock = threading.Lock()


def _release(worker: _Worker) -> None:
    with _idle_lock:
        _idle.append(worker)


def start_loop(loop: Callable[[], None], name: str) -> LoopHandle:
    """Run ``loop`` on a background thread (an idle one when there is one) and return at once.

    ``loop`` should handle its own errors; one that escapes is logged, and the thread goes on
    serving later loops. While it runs, the thread is named ``name``.
    """
    handle = LoopHandle(loop, name)
    with _idle_lock:
        worker = _idle.pop() if _idle else None
    if worker is None:
        worker = _Worker()
    worker.loops.put(handle)
    return handle


def _forget_idle_threads_in_child() -> None:
    # The parent's threads do not exist in a forked child: a loop handed to one would never run.
    global _idle_lock
    _idle.clear()
    _idle_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_idle_threads_in_child)
