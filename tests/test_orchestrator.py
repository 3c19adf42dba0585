"""The Orchestrator: every metric logged before stop() is delivered, a failing backend is isolated
and counted, and a full queue follows its overflow policy without losing anything silently."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, List, Mapping, Sequence

import pytest

from hf_eco2ai import ConfigurationError
from hf_eco2ai.integrations.backends import Backend, BackendRun, Metric, Orchestrator

RUN = BackendRun(name="run", project="project", run_id="run-id", output_dir=Path("."))


class RecordingBackend(Backend):
    """Keeps everything it receives; optionally sleeps per call to play a slow backend."""

    def __init__(self, name: str, seconds_per_call: float = 0.0) -> None:
        self.name = name
        self.seconds_per_call = seconds_per_call
        self.metrics: List[Metric] = []
        self.calls: List[str] = []
        self.batch_sizes: List[int] = []
        self.thread_names: set = set()

    def start(self, run: BackendRun) -> None:
        self.calls.append("start")

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        self.thread_names.add(threading.current_thread().name)
        time.sleep(self.seconds_per_call)
        self.batch_sizes.append(len(metrics))
        self.metrics.extend(metrics)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self.calls.append(f"params:{sorted(params)}")

    def flush(self) -> None:
        self.calls.append("flush")

    def stop(self, status: str) -> None:
        self.calls.append(f"stop:{status}")


class FailingBackend(Backend):
    name = "failing"

    def log_metrics(self, metrics: Sequence[Metric]) -> None:
        raise OSError("disk full")

    def log_params(self, params: Mapping[str, Any]) -> None:
        raise OSError("disk full")


def test_stop_delivers_every_one_of_100000_metrics_in_order_to_every_backend() -> None:
    fast, slow = RecordingBackend("fast"), RecordingBackend("slow", seconds_per_call=0.01)
    orchestrator = Orchestrator([fast, slow]).start(RUN)
    for step in range(100_000):
        orchestrator.log_metric("loss", float(step), step)
    stats = orchestrator.stop()

    for backend in (fast, slow):
        assert [m.step for m in backend.metrics] == list(range(100_000))
        assert stats[backend.name].delivered == 100_000 and stats[backend.name].dropped == 0
        assert backend.calls[0] == "start" and backend.calls[-2:] == ["flush", "stop:finished"]
    assert max(slow.batch_sizes) == 1000  # MLflow's log_batch limit: batches never exceed it


def test_each_backend_is_called_from_its_own_worker_thread() -> None:
    first, second = RecordingBackend("first"), RecordingBackend("second")
    orchestrator = Orchestrator([first, second]).start(RUN)
    orchestrator.log_metric("loss", 1.0, 0)
    orchestrator.stop()
    assert first.thread_names == {"hf-eco2ai-backend-first"}
    assert second.thread_names == {"hf-eco2ai-backend-second"}


def test_a_failing_backend_is_isolated_counted_and_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    healthy, failing = RecordingBackend("healthy"), FailingBackend()
    faults: List[str] = []
    orchestrator = Orchestrator([failing, healthy], on_fault=lambda name, error: faults.append(name)).start(RUN)
    with caplog.at_level(logging.WARNING, logger="hf_eco2ai.integrations.backends.orchestrator"):
        for step in range(5000):
            orchestrator.log_metric("loss", 1.0, step)
            if step % 1000 == 0:
                orchestrator.log_params({"step": step})
        stats = orchestrator.stop()

    assert len(healthy.metrics) == 5000 and stats["healthy"].failures == 0
    assert stats["failing"].delivered == 0 and stats["failing"].failed == 5000
    assert stats["failing"].failures >= 6 and stats["failing"].last_error == "OSError: disk full"
    assert set(faults) == {"failing"} and len(faults) == stats["failing"].failures
    warnings = [r for r in caplog.records if "'failing' failed" in r.getMessage()]
    assert len(warnings) == 1


def test_drop_oldest_keeps_the_newest_metrics_and_counts_every_drop(caplog: pytest.LogCaptureFixture) -> None:
    gate = threading.Event()

    class GatedBackend(RecordingBackend):
        def log_metrics(self, metrics: Sequence[Metric]) -> None:
            gate.wait()
            super().log_metrics(metrics)

    backend = GatedBackend("gated")
    orchestrator = Orchestrator([backend], capacity=100, overflow="drop-oldest", linger_s=0).start(RUN)
    orchestrator.log_metric("loss", 0.0, 0)
    while orchestrator.stats()["gated"].queued:  # the worker holds step 0 at the gate
        time.sleep(0.001)
    with caplog.at_level(logging.WARNING, logger="hf_eco2ai.integrations.backends.orchestrator"):
        for step in range(1, 1001):
            orchestrator.log_metric("loss", float(step), step)
    gate.set()
    stats = orchestrator.stop()

    assert [m.step for m in backend.metrics] == [0, *range(901, 1001)]
    assert stats["gated"].dropped == 900 and stats["gated"].delivered == 101
    assert len([r for r in caplog.records if "dropped metrics" in r.getMessage()]) == 1


def test_block_waits_for_room_then_drops_and_counts_after_its_timeout() -> None:
    gate = threading.Event()

    class GatedBackend(RecordingBackend):
        def log_metrics(self, metrics: Sequence[Metric]) -> None:
            gate.wait()
            super().log_metrics(metrics)

    backend = GatedBackend("gated")
    orchestrator = Orchestrator([backend], capacity=10, overflow="block", block_timeout_s=0.05, linger_s=0).start(RUN)
    orchestrator.log_metric("loss", 0.0, 0)
    while orchestrator.stats()["gated"].queued:
        time.sleep(0.001)
    for step in range(1, 11):
        orchestrator.log_metric("loss", float(step), step)
    started = time.monotonic()
    orchestrator.log_metric("loss", 11.0, 11)  # the queue is full: waits 50 ms, then drops
    waited_s = time.monotonic() - started
    gate.set()
    stats = orchestrator.stop()

    assert waited_s >= 0.05
    assert [m.step for m in backend.metrics] == list(range(11))
    assert stats["gated"].dropped == 1


def test_metrics_routed_before_start_are_delivered_once_it_runs() -> None:
    backend = RecordingBackend("early")
    orchestrator = Orchestrator([backend])
    orchestrator.log_metric("loss", 1.0, 0)
    orchestrator.start(RUN)
    orchestrator.stop()
    assert backend.calls[0] == "start" and [m.value for m in backend.metrics] == [1.0]


def test_a_backend_added_while_running_is_started_and_a_removed_one_is_drained_and_stopped() -> None:
    first, late = RecordingBackend("first"), RecordingBackend("late")
    orchestrator = Orchestrator([first]).start(RUN)
    orchestrator.log_metric("a", 1.0, 0)
    orchestrator.add_backend(late)
    orchestrator.log_metric("b", 2.0, 1)
    orchestrator.remove_backend("first")
    orchestrator.log_metric("c", 3.0, 2)
    stats = orchestrator.stop()

    assert [m.name for m in first.metrics] == ["a", "b"] and first.calls[-1] == "stop:finished"
    assert [m.name for m in late.metrics] == ["b", "c"] and late.calls[0] == "start"
    assert stats["first"].delivered == 2 and stats["late"].delivered == 2


def test_metrics_routed_after_stop_are_counted_as_dropped() -> None:
    backend = RecordingBackend("closed")
    orchestrator = Orchestrator([backend]).start(RUN)
    orchestrator.stop()
    orchestrator.log_metric("late", 1.0, 0)
    assert orchestrator.stats()["closed"].dropped == 1 and backend.metrics == []


def test_flush_returns_once_every_backend_has_taken_what_was_routed() -> None:
    backend = RecordingBackend("slowish", seconds_per_call=0.02)
    orchestrator = Orchestrator([backend]).start(RUN)
    for step in range(3000):
        orchestrator.log_metric("loss", 1.0, step)
    assert orchestrator.flush(timeout_s=30)
    assert len(backend.metrics) == 3000 and backend.calls[-1] == "flush"
    orchestrator.stop()


@pytest.mark.parametrize(
    "arguments, field",
    [
        ({"capacity": 0}, "capacity"),
        ({"overflow": "drop-newest"}, "overflow"),
        ({"batch_size": -1}, "batch_size"),
        ({"block_timeout_s": 0}, "block_timeout_s"),
        ({"linger_s": -0.1}, "linger_s"),
    ],
)
def test_invalid_settings_raise_configuration_error_naming_the_field(arguments: dict, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        Orchestrator(**arguments)


def test_the_same_backend_name_cannot_be_attached_twice() -> None:
    with pytest.raises(ConfigurationError, match="already attached"):
        Orchestrator([RecordingBackend("twin"), RecordingBackend("twin")])
