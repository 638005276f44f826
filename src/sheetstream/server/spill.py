"""The spill: a download's worker writes as fast as it can, whatever its reader's pace (nginx's
``proxy_buffering`` with temporary files).

What the socket cannot take yet goes to a small buffer in memory (:data:`MEMORY`), then to a file in the spool
folder; the response goes on from there. The worker and its queue slot are freed when the workbook is complete,
not when the client has taken its last byte. A client that keeps up never spills to disk: the memory buffer
absorbs the bursts. Bounded per download (``SHEETSTREAM_EXPORT_SPILL_BYTES``) and in total (a quarter of the
spool's ``SHEETSTREAM_MAX_SPOOL_MB``, counted in the spool's budget); past either bound the worker waits for the
client (the back-pressure there was before the spill: it holds its worker). A spill file is removed when the
download ends, however it ends, and at start after a crash (:func:`remove_dead`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections import deque
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path

import psutil
from starlette.concurrency import run_in_threadpool

from .uploads import SpoolBudget

#: Bytes of a download held in memory before its spill goes to a file: a few chunks, the bursts of a client
#: that keeps up.
MEMORY = 1 << 20
#: Bytes read back from the file at a time.
READ = 256 << 10
PREFIX = "spill-"


def remove_dead(folder: Path) -> list[Path]:
    """Remove the spill files in ``folder`` of servers that are gone (killed: they could not), and of this process's
    pid (a restarted container often has the dead server's pid; this one has spilled nothing yet)."""
    removed = []
    for path in folder.glob(f"{PREFIX}*-*"):
        pid = path.name.removeprefix(PREFIX).split("-")[0]
        if pid.isdigit() and (int(pid) == os.getpid() or not psutil.pid_exists(int(pid))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


class SpillBudget:
    """The bounds: ``per_download`` bytes for one download, ``total`` for all, taken from the spool's budget."""

    def __init__(self, spool: SpoolBudget, per_download: int, total: int):
        self.spool, self.per_download, self.total = spool, per_download, total
        self.held = 0
        self.spilled = 0  # bytes ever written to spill files (the metrics read it)

    def take(self, held: int, more: int) -> bool:
        """Room for ``more`` bytes beside the ``held`` ones of one download; taken when there is."""
        if held + more > self.per_download or self.held + more > self.total:
            return False
        if self.spool.bytes + more > self.spool.max_bytes:
            return False
        self.held += more
        self.spool.bytes += more
        return True

    def force(self, more: int) -> None:
        """Count ``more`` bytes past the bounds (one chunk of a download that holds nothing else)."""
        self.held += more
        self.spool.bytes += more

    def give(self, amount: int) -> None:
        self.held -= amount
        self.spool.bytes -= amount


class Spill:
    """One download's bytes between its worker (:meth:`put`) and its client (:meth:`take`), in order: the memory
    buffer holds the oldest, the file the newer ones while it has any unread."""

    def __init__(self, budget: SpillBudget):
        self.budget = budget
        self.memory: deque[bytes] = deque()
        self.in_memory = 0
        self.file = None
        self.path: Path | None = None
        self.written = self.read = 0  # the file's end, and how far the client has taken it
        self.held = 0  # bytes counted in the budget: the memory buffer and the file's size
        self.ended = self.removed = False
        self.failure: BaseException | None = None
        self._readable = asyncio.Event()
        self._room = asyncio.Event()

    async def put(self, chunk: bytes) -> None:
        """Hold ``chunk`` for the client; waits while the bounds leave no room for it (back-pressure)."""
        while not self._reserve(len(chunk)):
            self._room.clear()
            await self._room.wait()
        if self.removed:
            return
        if self.read == self.written and self.in_memory + len(chunk) <= max(MEMORY, len(chunk)):
            self.memory.append(chunk)
            self.in_memory += len(chunk)
        else:
            await self._append(chunk)
        self._readable.set()

    def _reserve(self, size: int) -> bool:
        if self.removed:
            return True
        if self.held == 0:  # nothing held: one chunk always goes, the pace of a download without a spill
            self.budget.force(size)
        elif not self.budget.take(self.held, size):
            return False
        self.held += size
        return True

    async def _append(self, chunk: bytes) -> None:
        if self.file is None:
            folder = self.budget.spool.folder
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=".part", dir=folder)
            self.file, self.path = os.fdopen(fd, "w+b", buffering=0), Path(name)
        await run_in_threadpool(os.pwrite, self.file.fileno(), chunk, self.written)
        self.written += len(chunk)
        self.budget.spilled += len(chunk)

    def finish(self, failure: BaseException | None = None) -> None:
        self.ended, self.failure = True, failure
        self._readable.set()

    async def take(self) -> bytes | None:
        """The next bytes for the client; None at the end. Raises the worker's failure at once."""
        while True:
            if self.failure is not None:
                raise self.failure
            if self.memory:
                chunk = self.memory.popleft()
                self.in_memory -= len(chunk)
                self._give(len(chunk))
                return chunk
            if self.read < self.written:
                assert self.file is not None
                data = await run_in_threadpool(os.pread, self.file.fileno(), min(READ, self.written - self.read),
                                               self.read)
                self.read += len(data)
                if self.read == self.written:  # caught up: the file starts again from empty, its room given back
                    self.file.truncate(0)  # here, not in a thread: the worker's next chunk must not go in first
                    self._give(self.written)
                    self.read = self.written = 0
                return data
            if self.ended:
                return None
            self._readable.clear()
            await self._readable.wait()

    def _give(self, amount: int) -> None:
        self.held -= amount
        self.budget.give(amount)
        self._room.set()

    def remove(self) -> None:
        """Give the room back and remove the file now; its descriptor is closed by :meth:`close`, once no write
        of the worker's chunks is in flight (a descriptor closed under a write could be reused by then)."""
        self.removed = True
        self.budget.give(self.held)
        self.held = 0
        self.memory.clear()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


async def spilled(source: AsyncIterator[bytes], budget: SpillBudget) -> AsyncIterator[bytes]:
    """``source``'s chunks, read by a task of their own as fast as the bounds allow and spilled until the client
    takes them. Closing this stops the task and closes ``source`` (freeing its worker) and removes the file."""
    spill = Spill(budget)

    async def produce() -> None:
        try:
            async with aclosing(source) as chunks:
                async for chunk in chunks:
                    await spill.put(chunk)
        except Exception as exc:
            spill.finish(exc)
        else:
            spill.finish()

    producer = asyncio.create_task(produce())
    try:
        while (chunk := await spill.take()) is not None:
            yield chunk
    finally:
        # Nothing here may wait before the removal: the response's cancellation cuts every await short.
        producer.cancel()
        spill.remove()
        producer.add_done_callback(lambda _: spill.close())
        await asyncio.gather(producer, return_exceptions=True)
