"""The slow remainder of a run's end, on a background thread.

A run's end on the training thread stops the meter and builds the (bounded) report; what takes
long and scales with the run (the store and per-step file catching up, the report files, uploads
to tracker backends) runs here. ``result()`` waits for it, and so does interpreter exit: the
threads are joined at exit once their work is done, so a script that ends straight after
``train()`` still leaves every file complete. Each file is still written atomically.

The threads are kept for the process's later runs (at most ``MAX_FINISH_THREADS`` at once): a
run's end starts no thread when an earlier run's finishing thread is idle, which under load
costs the training thread a few milliseconds (a new thread must be scheduled before ``start``
returns). A forked child gets its own threads on first need.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from typing import Callable, Generic, Optional, TypeVar

T = TypeVar("T")

# Several, so that a run's end waiting for a stuck disk does not hold up the next run's.
MAX_FINISH_THREADS = 4

_pool: Optional[ThreadPoolExecutor] = None
_pool_lock = threading.Lock()


def _finishing_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=MAX_FINISH_THREADS, thread_name_prefix="hf-eco2ai-finish")
        return _pool


def _forget_pool_in_child() -> None:
    # The parent's threads do not exist in a forked child: a pool that believed one of them idle
    # would never run the child's work.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_in_child)


class BackgroundFinish(Generic[T]):
    """Runs ``work`` once on a finishing thread, submitted at construction.

    ``work`` must not raise: it is the caller's job to turn failures into warnings (a run's end
    never fails training). Should it raise anyway, ``result()`` raises the same exception.
    """

    def __init__(self, work: Callable[[], T]) -> None:
        self._work = work
        self._running_on: Optional[threading.Thread] = None
        try:
            self._future: "Future[T]" = _finishing_pool().submit(self._run)
        except RuntimeError:
            # Interpreter shutdown has begun (a run ending on a thread that outlived the main
            # one) and the pool takes no more work: a thread of its own, which exit still joins.
            self._future = Future()
            threading.Thread(target=self._run_into_future, name="hf-eco2ai-finish", daemon=False).start()

    def _run(self) -> T:
        self._running_on = threading.current_thread()
        return self._work()

    def _run_into_future(self) -> None:
        try:
            self._future.set_result(self._run())
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits for the result
            self._future.set_exception(error)

    @property
    def done(self) -> bool:
        return self._future.done()

    def result(self, timeout_s: Optional[float] = None) -> T:
        """Wait for the work (at most ``timeout_s``) and return what it returned. Asked from
        inside the work itself (an observer of the run's end), it does not wait: the work is
        not done, so this raises ``TimeoutError``.

        Raises:
            TimeoutError: ``timeout_s`` ran out first.
        """
        if threading.current_thread() is self._running_on and not self._future.done():
            raise TimeoutError("the end of the run is still being written (asked from the thread writing it)")
        try:
            return self._future.result(timeout_s)
        except FutureTimeoutError:
            raise TimeoutError(f"the end of the run is still being written after {timeout_s} s") from None
