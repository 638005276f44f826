"""A process that has finished its work hands its memory back: workers after each task, the pool when idle."""

from __future__ import annotations

import asyncio
import os

import psutil

from sheetstream.runtime import ProcessingQueue, make_strategy

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
