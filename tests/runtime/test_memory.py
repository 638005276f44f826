"""A process that has finished its work hands its memory back: workers after each task, the pool when idle."""

from __future__ import annotations

import asyncio
import os
import time

import psutil

from sheetstream.runtime import ProcessingQueue, make_strategy

from ..helpers import pool_workers

MB = 2**20
_pinned: list[bytes] = []


def allocate_and_free(megabytes: int) -> tuple[int, int, int]:
    """In a worker: (pid, RSS before, RSS once ``megabytes`` of 1-2 kB blocks are freed). The blocks are malloc's
    (too big for Python's own allocator), and one in 500 stays alive, as a parse leaves a few long-lived objects
    among its buffers: the heap cannot shrink from its top, so glibc keeps the holes until ``malloc_trim``."""
    me = psutil.Process()
    before = me.memory_info().rss
    blocks = [bytes(1000 + i % 1000) for i in range(megabytes * MB // 1500)]
    _pinned.extend(blocks[::500])
    del blocks
    return os.getpid(), before, me.memory_info().rss


def test_a_worker_gives_back_what_its_task_freed() -> None:
    async def go():
        queue = ProcessingQueue(make_strategy("process", 1, "forkserver"), 1)
        await queue.start()
        try:
            pid, before, freed = await queue.call("import", allocate_and_free, 300)
            return before, freed, psutil.Process(pid).memory_info().rss
        finally:
            await queue.stop()

    before, freed, after = asyncio.run(asyncio.wait_for(go(), 30))
    assert freed > before + 200 * MB, "the task's freed memory should still be resident inside the task"
    assert after < before + 100 * MB, (before // MB, freed // MB, after // MB)


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


async def until(condition, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def test_an_idle_pool_lets_its_workers_go_and_starts_afresh() -> None:
    async def go():
        queue = ProcessingQueue(make_strategy("process", 2, "forkserver"), 2, rest_after=0.3)
        await queue.start()
        try:
            # Tasks from the standard library: a task importing this test module would grow its worker by 30 MB.
            await asyncio.gather(*(queue.call("export", time.sleep, 0.3) for _ in range(2)))
            workers_after_burst = {p.pid for p in pool_workers()}
            gone = await until(lambda: not {p.pid for p in pool_workers()} & workers_after_burst)
            await asyncio.sleep(1)  # the new pool's worker warms up (imports what tasks need)
            fresh = {p.pid for p in pool_workers()}
            again = await queue.call("export", os.getpid)
            await asyncio.sleep(1)  # rests again: a pool that is one warm worker already stays as it is
            return workers_after_burst, gone, fresh, again, {p.pid for p in pool_workers()}

        finally:
            await queue.stop()

    workers_after_burst, gone, fresh, again, later = asyncio.run(asyncio.wait_for(go(), 30))
    assert len(workers_after_burst) == 2
    assert gone, "the idle workers should have exited"
    assert len(fresh) == 1 and again in fresh, "one warm worker waits for the next task"
    assert later == fresh


def test_the_pool_does_not_rest_while_tasks_keep_coming() -> None:
    async def go():
        queue = ProcessingQueue(make_strategy("process", 1, "forkserver"), 1, rest_after=0.2)
        await queue.start()
        try:
            first = await queue.call("export", sleep_then_pid, 0)
            second = await queue.call("export", sleep_then_pid, 0.6)  # longer than rest_after, but not idle
            return first, second
        finally:
            await queue.stop()

    first, second = asyncio.run(asyncio.wait_for(go(), 30))
    assert first == second
