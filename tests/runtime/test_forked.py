"""The two-process map: results in order, errors in their item's turn, and no helper left in any outcome."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

from sheetstream.errors import BadRequest, WorkerLost
from sheetstream.runtime.forked import forked_map
from tests.helpers import wait_for


def _helpers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children() if p.status() != psutil.STATUS_ZOMBIE]


def _square_with_pid(n: int) -> tuple[int, int]:
    return n * n, os.getpid()


def test_results_come_in_order_and_half_of_them_from_the_helper() -> None:
    results = list(forked_map(_square_with_pid, range(11)))
    assert [r for r, _ in results] == [n * n for n in range(11)]
    pids = {pid for _, pid in results}
    assert os.getpid() in pids and len(pids) == 2  # items 1, 3, 5, ... ran in another process
    assert [pid == os.getpid() for _, pid in results] == [n % 2 == 0 for n in range(11)]
    assert _helpers() == []


@pytest.mark.parametrize("bad", [3, 4])  # raised by the helper, raised by this process
def test_an_error_is_raised_in_its_items_turn_and_the_helper_is_gone(bad: int) -> None:
    seen = []

    def work(n: int) -> int:
        if n == bad:
            raise BadRequest(f"item {n} is bad", item=n)
        return n

    with pytest.raises(BadRequest) as raised:
        for result in forked_map(work, range(10)):
            seen.append(result)
    assert seen == list(range(bad)) and raised.value.detail == {"item": bad}  # details cross with the error
    assert _helpers() == []


def test_an_error_that_does_not_pickle_still_arrives() -> None:
    class Local(Exception):  # a local class cannot be pickled
        pass

    def work(n: int) -> int:
        if n == 1:
            raise Local("no pickle")
        return n

    with pytest.raises(RuntimeError, match="Local: no pickle"):
        list(forked_map(work, range(4)))


def test_stopping_early_kills_the_helper() -> None:
    results = forked_map(_square_with_pid, range(1_000))
    next(results), next(results)
    assert len(_helpers()) == 1
    results.close()
    assert _helpers() == []


def test_a_killed_helper_fails_the_task_as_a_lost_worker() -> None:
    def work(n: int) -> int:
        if n == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return n

    with pytest.raises(WorkerLost, match="nothing was written"):
        list(forked_map(work, range(4)))
    assert _helpers() == []


def test_the_helper_dies_with_its_process() -> None:
    """A worker killed mid-task (SIGKILL: no finally runs) takes its helper with it."""
    script = textwrap.dedent("""
        import os, time
        from sheetstream.runtime.forked import forked_map
        def work(n):
            if n % 2:
                print(os.getpid(), flush=True)
            time.sleep(60)
        list(forked_map(work, range(4)))
    """)
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        helper = psutil.Process(int(worker.stdout.readline()))
        assert helper.ppid() == worker.pid
        worker.kill()
        worker.wait(5)
        assert wait_for(lambda: not helper.is_running() or helper.status() == psutil.STATUS_ZOMBIE, seconds=5)
    finally:
        worker.kill()
        worker.wait(5)


def test_without_a_process_to_fork_one_process_does_it_all(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    results = list(forked_map(_square_with_pid, range(5)))
    assert results == [(n * n, os.getpid()) for n in range(5)]
