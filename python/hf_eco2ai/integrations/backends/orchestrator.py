"""The ``Orchestrator``: routes metrics to backends without ever making the caller wait on one.

One worker thread per backend, each with its own bounded queue. ``route_metric`` appends to every
queue and returns; each worker takes what has piled up (up to ``batch_size`` metrics) and hands it
to its backend in one call. So a slow backend delays only itself, a failing one is isolated (its
failures are counted and warned about once, the others keep receiving), and nothing is lost
silently:

- ``stop()`` delivers every metric routed before it, however many, then closes each backend;
- a full queue follows the ``overflow`` policy, and every metric it costs is counted:
  ``"block"`` waits up to ``block_timeout_s`` for room, then drops that metric;
  ``"drop-oldest"`` drops the oldest queued metric at once.

Threading: every public method may be called from any thread. Backends are only ever called from
their own worker (``prepare`` excepted, which runs on the thread that calls ``start``).
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from hf_eco2ai.errors import ConfigurationError
from hf_eco2ai.integrations.backends.base import SOURCE_USER, Backend, BackendRun, Metric

logger = logging.getLogger(__name__)

OVERFLOW_POLICIES = ("block", "drop-oldest")
DEFAULT_CAPACITY = 100_000
DEFAULT_BATCH_SIZE = 1000
DEFAULT_LINGER_S = 0.05
_IDLE_RECHECK_S = 0.1

FaultHandler = Callable[[str, BaseException], None]

# How long, at interpreter exit, an orchestrator that was never stopped (a run torn down without
# its end, an experiment left open) may take to deliver what it holds.
EXIT_DRAIN_TIMEOUT_S = 10.0
_running: "weakref.WeakSet[Orchestrator]" = weakref.WeakSet()


@atexit.register
def _stop_running_orchestrators() -> None:
    for orchestrator in list(_running):
        orchestrator.stop("failed", timeout_s=EXIT_DRAIN_TIMEOUT_S)


@dataclass(frozen=True)
class BackendStats:
    """What one backend's worker did: metrics ``delivered`` (in calls that returned), ``dropped``
    by the overflow policy, ``failed`` (in calls that raised), the number of ``failures`` (calls
    that raised, metrics or not), metrics still ``queued``, and the ``last_error`` as text."""

    backend: str
    delivered: int
    dropped: int
    failed: int
    failures: int
    queued: int
    last_error: Optional[str]


class _Call:
    """A backend method call queued in order with the metrics; its result lands in ``future``."""

    __slots__ = ("method", "args", "future")

    def __init__(self, method: str, args: Tuple[Any, ...]) -> None:
        self.method = method
        self.args = args
        self.future: "Future[Any]" = Future()


class _Worker:
    def __init__(
        self,
        backend: Backend,
        capacity: int,
        overflow: str,
        block_timeout_s: float,
        batch_size: int,
        linger_s: float,
        on_fault: Optional[FaultHandler],
    ) -> None:
        self.backend = backend
        self._linger_s = linger_s
        self._capacity = capacity
        self._overflow = overflow
        self._block_timeout_s = block_timeout_s
        self._batch_size = batch_size
        self._on_fault = on_fault
        self._queue: Deque[Any] = collections.deque()
        self._lock = threading.Lock()
        self._has_work = threading.Condition(self._lock)
        self._has_room = threading.Condition(self._lock)
        self._idle = False
        self._closing = False
        self._warned: set = set()
        self.delivered = 0
        self.dropped = 0
        self.failed = 0
        self.failures = 0
        self.last_error: Optional[str] = None
        self.thread = threading.Thread(target=self._run, name=f"hf-eco2ai-backend-{backend.name}", daemon=True)

    # Producer side -------------------------------------------------------------------------------

    def put(self, item: Any) -> None:
        # The common case takes no lock: deque.append is atomic, and only the worker pops.
        # Calls (flush, stop, artifacts) are few and never dropped: the capacity bounds metrics.
        queue = self._queue
        if self._closing or (len(queue) >= self._capacity and type(item) is Metric):
            self._put_contended(item)
            return
        queue.append(item)
        if self._idle:
            with self._lock:
                self._has_work.notify()

    def _put_contended(self, item: Any) -> None:
        with self._lock:
            if self._closing:
                if type(item) is _Call:
                    item.future.set_exception(
                        ConfigurationError(f"backend {self.backend.name!r} is stopped; {item.method} was not run")
                    )
                else:
                    self._count_dropped_locked(1, "closed")
                return
            if type(item) is Metric and len(self._queue) >= self._capacity and not self._make_room_locked():
                return
            self._queue.append(item)
            self._has_work.notify()

    def _make_room_locked(self) -> bool:
        """Apply the overflow policy to a full queue; False when the new item is dropped."""
        if self._overflow == "drop-oldest":
            # Only the worker pops, and it pops under this lock: the head is stable here.
            if type(self._queue[0]) is Metric:
                self._queue.popleft()
                self._count_dropped_locked(1, "overflow")
                return True
            self._count_dropped_locked(1, "overflow")
            return False
        if self._has_room.wait_for(lambda: len(self._queue) < self._capacity, self._block_timeout_s):
            return True
        self._count_dropped_locked(1, "overflow")
        return False

    def _count_dropped_locked(self, count: int, why: str) -> None:
        self.dropped += count
        if why not in self._warned:
            self._warned.add(why)
            reason = (
                "its queue was full (raise the capacity, or choose the other overflow policy)"
                if why == "overflow"
                else "it was already stopped"
            )
            logger.warning(
                "hf-eco2ai: backend %r dropped metrics because %s; every dropped metric is counted in its stats",
                self.backend.name,
                reason,
            )

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._has_work.notify()

    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def stats(self) -> BackendStats:
        with self._lock:
            return BackendStats(
                self.backend.name,
                self.delivered,
                self.dropped,
                self.failed,
                self.failures,
                len(self._queue),
                self.last_error,
            )

    # The worker thread ---------------------------------------------------------------------------

    def _take(self) -> Union[None, _Call, List[Metric]]:
        with self._lock:
            waited = False
            while not self._queue:
                if self._closing:
                    return None
                self._idle = True
                # A producer appends without the lock and may miss the idle flag just set: the
                # timeout bounds how late such a metric is picked up.
                self._has_work.wait(_IDLE_RECHECK_S)
                self._idle = False
                waited = True
            if waited and not self._closing and self._linger_s > 0 and type(self._queue[0]) is Metric:
                # Woken by the first metric of a burst: let the burst pile up into one batch
                # rather than paying a backend call (and the GIL) per metric.
                self._lock.release()
                try:
                    time.sleep(self._linger_s)
                finally:
                    self._lock.acquire()
            first = self._queue[0]
            if type(first) is _Call:
                item: Union[_Call, List[Metric]] = self._queue.popleft()
            else:
                batch: List[Metric] = []
                queue = self._queue
                while queue and len(batch) < self._batch_size and type(queue[0]) is Metric:
                    batch.append(queue.popleft())
                item = batch
            self._has_room.notify_all()
            return item

    def _run(self) -> None:
        while True:
            item = self._take()
            if item is None:
                return
            if type(item) is _Call:
                self._deliver_call(item)
            else:
                self._deliver_metrics(item)  # type: ignore[arg-type]

    def _deliver_metrics(self, batch: List[Metric]) -> None:
        try:
            self.backend.log_metrics(batch)
        except Exception as error:  # noqa: BLE001 - a backend's fault must never reach training
            self._fault(error, len(batch))
            return
        with self._lock:
            self.delivered += len(batch)

    def _deliver_call(self, call: _Call) -> None:
        try:
            result = getattr(self.backend, call.method)(*call.args)
        except Exception as error:  # noqa: BLE001 - isolated and counted, see _fault
            self._fault(error, 0)
            call.future.set_exception(error)
            return
        call.future.set_result(result)

    def _fault(self, error: BaseException, metrics_lost: int) -> None:
        with self._lock:
            self.failures += 1
            self.failed += metrics_lost
            self.last_error = f"{type(error).__name__}: {error}"
            first = "failed" not in self._warned
            self._warned.add("failed")
        if first:
            logger.warning(
                "hf-eco2ai: backend %r failed (%s: %s); it is isolated, the other backends "
                "keep receiving, and its failures are counted",
                self.backend.name,
                type(error).__name__,
                error,
            )
        if self._on_fault is not None:
            try:
                self._on_fault(self.backend.name, error)
            except Exception:  # noqa: BLE001 - the fault handler must not stop the worker
                logger.exception("hf-eco2ai: the backend fault handler failed")


def _positive(name: str, value: Any, kind: type = int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or value <= 0:
        raise ConfigurationError(f"{name} = {value!r} is invalid: expected a positive {kind.__name__}")


class Orchestrator:
    """Routes metrics and calls to backends, one worker thread and bounded queue per backend.

    Args:
        backends: the backends to route to (more with ``add_backend``).
        capacity: metrics each backend's queue holds before ``overflow`` applies.
        overflow: ``"block"`` (wait up to ``block_timeout_s`` for room, then drop that metric) or
            ``"drop-oldest"`` (drop the oldest queued metric); both count every metric dropped and
            warn once per backend.
        block_timeout_s: the longest ``route_metric`` waits on a full queue under ``"block"``.
        batch_size: the most metrics handed to a backend in one ``log_metrics`` call.
        linger_s: how long an idle worker, woken by a metric, waits for more to batch with it
            (metrics reach backends at most this much later; ``flush``/``stop`` do not wait).
        on_fault: called as ``on_fault(backend_name, error)`` on a worker thread for every failed
            backend call (sessions count these as monitoring errors).

    Raises:
        ConfigurationError: an invalid argument, named with its value.
    """

    def __init__(
        self,
        backends: Iterable[Backend] = (),
        *,
        capacity: int = DEFAULT_CAPACITY,
        overflow: str = "block",
        block_timeout_s: float = 5.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        linger_s: float = DEFAULT_LINGER_S,
        on_fault: Optional[FaultHandler] = None,
    ) -> None:
        _positive("capacity", capacity)
        _positive("batch_size", batch_size)
        _positive("block_timeout_s", block_timeout_s, float)
        if overflow not in OVERFLOW_POLICIES:
            raise ConfigurationError(
                f"overflow = {overflow!r} is invalid: expected one of {', '.join(map(repr, OVERFLOW_POLICIES))}"
            )
        if isinstance(linger_s, bool) or not isinstance(linger_s, (int, float)) or linger_s < 0:
            raise ConfigurationError(f"linger_s = {linger_s!r} is invalid: expected a number of seconds >= 0")
        self._settings = (capacity, overflow, float(block_timeout_s), batch_size, float(linger_s), on_fault)
        self._workers: Tuple[_Worker, ...] = ()
        self._retired: List[_Worker] = []
        self._lock = threading.Lock()
        self._state = "new"
        self._run: Optional[BackendRun] = None
        for backend in backends:
            self.add_backend(backend)

    @property
    def backends(self) -> List[Backend]:
        return [worker.backend for worker in self._workers]

    @property
    def running(self) -> bool:
        return self._state == "running"

    def _new_worker(self, backend: Backend) -> _Worker:
        if not isinstance(backend, Backend):
            raise ConfigurationError(
                f"backend = {backend!r} is invalid: expected an hf_eco2ai Backend (or a BackendPlugin)"
            )
        capacity, overflow, block_timeout_s, batch_size, linger_s, on_fault = self._settings
        return _Worker(backend, capacity, overflow, block_timeout_s, batch_size, linger_s, on_fault)

    def add_backend(self, backend: Backend) -> None:
        """Route to ``backend`` too; while running it is prepared and started at once.

        Raises:
            ConfigurationError: not a ``Backend``, or a backend of that name is already routed to.
        """
        with self._lock:
            if any(worker.backend.name == backend.name for worker in self._workers):
                raise ConfigurationError(f"backend {backend.name!r} is already attached; attach each backend once")
            worker = self._new_worker(backend)
            if self._state == "running":
                self._launch(worker)
            self._workers = self._workers + (worker,)

    def remove_backend(self, backend: Union[Backend, str], status: str = "finished") -> None:
        """Stop routing to ``backend`` (or the one of that name): what it has queued is delivered,
        then it is stopped. Unknown backends are ignored."""
        with self._lock:
            kept = tuple(w for w in self._workers if w.backend is not backend and w.backend.name != backend)
            removed = [w for w in self._workers if w not in kept]
            self._workers = kept
        for worker in removed:
            self._finish_worker(worker, status)
            self._retired.append(worker)

    def _launch(self, worker: _Worker) -> None:
        if self._run is not None:
            try:
                worker.backend.prepare()
            except Exception as error:  # noqa: BLE001 - counted like any backend fault
                worker._fault(error, 0)
            worker.put(_Call("start", (self._run,)))
        worker.thread.start()

    def start(self, run: Optional[BackendRun] = None) -> "Orchestrator":
        """Start the workers; with ``run``, each backend is prepared here and started (opened for
        ``run``) first thing on its worker. Idempotent.

        Raises:
            ConfigurationError: the orchestrator was stopped already.
        """
        with self._lock:
            if self._state == "running":
                return self
            if self._state == "stopped":
                raise ConfigurationError("this Orchestrator was stopped; create a new one")
            self._run = run
            for worker in self._workers:
                self._launch(worker)
            self._state = "running"
        _running.add(self)
        return self

    # The caller's side ---------------------------------------------------------------------------

    def prepare_backends(self) -> None:
        """Call every backend's ``prepare()`` here, on the caller's thread (an adopted MLflow run
        that became active since the start is found this way); a failure is counted."""
        for worker in self._workers:
            try:
                worker.backend.prepare()
            except Exception as error:  # noqa: BLE001 - counted like any backend fault
                worker._fault(error, 0)

    def route_metric(self, metric: Metric) -> None:
        """Queue ``metric`` for every backend and return (waits only under ``"block"`` with a full
        queue). Metrics routed before ``start()`` are delivered once it runs."""
        for worker in self._workers:
            worker.put(metric)

    def log_metric(self, name: str, value: float, step: Optional[int] = None, source: str = SOURCE_USER) -> None:
        """``route_metric`` of a new ``Metric`` stamped with the time now."""
        metric = Metric(name, value, step, time.time(), source)
        for worker in self._workers:
            worker.put(metric)

    def call(self, method: str, *args: Any) -> Dict[str, "Future[Any]"]:
        """Queue ``backend.<method>(*args)`` on every backend, in order with the metrics; returns
        each backend's future by name (its exception, if it raised, is also counted)."""
        futures: Dict[str, "Future[Any]"] = {}
        for worker in self._workers:
            queued = _Call(method, args)
            futures[worker.backend.name] = queued.future
            worker.put(queued)
        return futures

    def call_backend(self, backend_name: str, method: str, *args: Any) -> "Future[Any]":
        """Queue ``<backend>.<method>(*args)`` on one backend (by name); returns its future.

        Raises:
            ConfigurationError: no backend of that name is attached.
        """
        for worker in self._workers:
            if worker.backend.name == backend_name:
                queued = _Call(method, args)
                worker.put(queued)
                return queued.future
        raise ConfigurationError(
            f"backend = {backend_name!r} is not attached: expected one of "
            f"{', '.join(repr(w.backend.name) for w in self._workers) or 'none'}"
        )

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.call("log_params", dict(params))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.call("set_tags", dict(tags))

    def flush(self, timeout_s: Optional[float] = 30.0) -> bool:
        """Wait until every backend has taken and flushed what was routed before; False if
        ``timeout_s`` ran out first (work still pending is not lost)."""
        if self._state != "running":
            return all(worker.queued() == 0 for worker in self._workers)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for future in self.call("flush").values():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                future.exception(remaining)
            except TimeoutError:
                return False
        return True

    def _finish_worker(self, worker: _Worker, status: str, timeout_s: Optional[float] = None) -> None:
        if worker.thread.is_alive() or not worker.thread.ident:
            worker.put(_Call("flush", ()))
            worker.put(_Call("stop", (status,)))
            worker.close()
            if not worker.thread.ident:
                worker.thread.start()
            worker.thread.join(timeout_s)

    def stop(self, status: str = "finished", timeout_s: Optional[float] = None) -> Dict[str, BackendStats]:
        """Deliver everything queued, flush and stop every backend, end the workers; idempotent.

        Backends drain in parallel, so this takes as long as the slowest. ``timeout_s`` bounds the
        wait (None: no bound, every metric is delivered); a backend still busy then keeps its
        daemon thread and its undelivered metrics show as ``queued`` in the stats.
        """
        with self._lock:
            if self._state == "stopped":
                return self.stats()
            workers = self._workers
            self._state = "stopped"
        _running.discard(self)
        for worker in workers:
            worker.put(_Call("flush", ()))
            worker.put(_Call("stop", (status,)))
            worker.close()
            if not worker.thread.ident:
                worker.thread.start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for worker in workers:
            worker.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.stats()

    def stats(self) -> Dict[str, BackendStats]:
        """Each backend's counts, by name (removed backends included)."""
        return {worker.backend.name: worker.stats() for worker in (*self._retired, *self._workers)}

    @property
    def failures_total(self) -> int:
        return sum(stats.failures for stats in self.stats().values())

    @property
    def dropped_total(self) -> int:
        return sum(stats.dropped for stats in self.stats().values())
