"""The background end of a run: its threads are kept for later runs, and a forked child gets its own."""

from __future__ import annotations

import multiprocessing
import threading

import pytest

from hf_eco2ai.reporting.finishing import BackgroundFinish


def test_a_later_run_end_reuses_an_idle_finishing_thread() -> None:
    first = BackgroundFinish(threading.current_thread)
    assert first.result(10.0) is not threading.current_thread()
    threads_before = set(threading.enumerate())
    second = BackgroundFinish(threading.current_thread)
    assert second.result(10.0) in threads_before
    assert second.done


def test_the_result_is_what_the_work_returned_or_raised() -> None:
    assert BackgroundFinish(lambda: {"json": 1}).result(10.0) == {"json": 1}

    def failing() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        BackgroundFinish(failing).result(10.0)


def test_asking_for_the_result_from_inside_the_work_does_not_wait_for_itself() -> None:
    answers = []
    holder: list = []
    ready = threading.Event()

    def work() -> str:
        ready.wait(10.0)
        try:
            holder[0].result()
        except TimeoutError as error:
            answers.append(str(error))
        return "done"

    holder.append(BackgroundFinish(work))
    ready.set()
    assert holder[0].result(10.0) == "done"
    assert answers and "still being written" in answers[0]


def _finish_in_child(results: "multiprocessing.Queue[str]") -> None:
    results.put(BackgroundFinish(lambda: "finished in the child").result(10.0))


def test_a_forked_child_finishes_its_runs_on_threads_of_its_own() -> None:
    # The parent's pool has an idle thread, which does not exist in the child.
    BackgroundFinish(lambda: None).result(10.0)
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_finish_in_child, args=(results,))
    child.start()
    child.join(30.0)
    assert child.exitcode == 0
    assert results.get(timeout=5.0) == "finished in the child"
