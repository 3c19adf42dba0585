"""Background loops run on threads kept for later runs: a second run starts no thread."""

from __future__ import annotations

import logging
import os
import threading

import pytest

from hf_eco2ai.background import start_loop


def test_a_later_loop_reuses_the_idle_thread_of_an_earlier_one() -> None:
    ran_on = []
    first = start_loop(lambda: ran_on.append(threading.current_thread()), "hf-eco2ai-test")
    assert first.join(10.0) and not first.is_alive()
    threads_before = set(threading.enumerate())
    second = start_loop(lambda: ran_on.append(threading.current_thread()), "hf-eco2ai-test")
    assert second.join(10.0)
    assert set(threading.enumerate()) == threads_before
    assert ran_on[0] is ran_on[1] and ran_on[0] is not threading.current_thread()


def test_a_loop_runs_under_its_name_and_join_waits_for_it_to_return() -> None:
    release = threading.Event()
    names = []

    def loop() -> None:
        names.append(threading.current_thread().name)
        release.wait(10.0)

    handle = start_loop(loop, "hf-eco2ai-named-loop")
    assert not handle.join(0.05) and handle.is_alive()
    release.set()
    assert handle.join(10.0) and not handle.is_alive()
    assert names == ["hf-eco2ai-named-loop"]


def test_two_loops_at_once_run_on_two_threads() -> None:
    both_running = threading.Barrier(2, timeout=10.0)
    handles = [start_loop(both_running.wait, "hf-eco2ai-test") for _ in range(2)]
    assert all(handle.join(10.0) for handle in handles)


def test_a_failing_loop_is_logged_and_its_thread_serves_the_next(caplog: pytest.LogCaptureFixture) -> None:
    def failing() -> None:
        raise ValueError("the loop broke")

    with caplog.at_level(logging.ERROR, logger="hf_eco2ai"):
        assert start_loop(failing, "hf-eco2ai-failing").join(10.0)
    assert "hf-eco2ai-failing" in caplog.text and "the loop broke" in caplog.text
    ran = threading.Event()
    assert start_loop(ran.set, "hf-eco2ai-test").join(10.0) and ran.is_set()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_in_a_forked_child_a_running_loop_is_not_alive_and_join_returns_at_once() -> None:
    release = threading.Event()
    handle = start_loop(lambda: release.wait(30.0), "hf-eco2ai-test")
    pid = os.fork()
    if pid == 0:
        # The loop's thread stayed in the parent; a fresh loop gets a thread of the child's own.
        ran = threading.Event()
        ok = not handle.is_alive() and handle.join(30.0) and start_loop(ran.set, "hf-eco2ai-test").join(10.0)
        os._exit(0 if ok and ran.is_set() else 1)
    _, status = os.waitpid(pid, 0)
    release.set()
    assert os.waitstatus_to_exitcode(status) == 0
    assert handle.join(10.0)
