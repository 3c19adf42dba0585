"""The slow remainder of a run's end, on a thread of its own.

A run's end on the training thread stops the meter and builds the (bounded) report; what takes
long and scales with the run (the store and per-step file catching up, the report files, uploads
to tracker backends) runs here. ``result()`` waits for it, and so does interpreter exit: the
thread is not a daemon, so a script that ends straight after ``train()`` still leaves every file
complete. Each file is still written atomically.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, Optional, TypeVar

T = TypeVar("T")


class BackgroundFinish(Generic[T]):
    """Runs ``work`` once on a new (non-daemon) thread, started at construction.

    ``work`` must not raise: it is the caller's job to turn failures into warnings (a run's end
    never fails training). Should it raise anyway, ``result()`` raises the same exception.
    """

    def __init__(self, work: Callable[[], T], name: str = "hf-eco2ai-finish") -> None:
        self._work = work
        self._result: Optional[T] = None
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=False)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as error:  # noqa: BLE001 - handed to whoever waits for the result
            self._error = error

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self, timeout_s: Optional[float] = None) -> T:
        """Wait for the work (at most ``timeout_s``) and return what it returned.

        Raises:
            TimeoutError: ``timeout_s`` ran out first.
        """
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"the end of the run is still being written after {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]
