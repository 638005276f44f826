"""The processing queue: every CPU-heavy task (building an export, parsing and writing an import) goes through it.

A bounded number of workers run tasks; a bounded waiting list holds the ones that wait; past that, new work
is refused at once (:class:`~sheetstream.errors.Busy`) instead of piling up memory. Where the work runs is the
:mod:`strategy <sheetstream.runtime.strategies>`'s business, not the queue's. Once nothing has run or waited for
``rest_after`` seconds, the strategy rests (gives back the memory a burst left behind).
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing, asynccontextmanager
from typing import Any

from ..errors import Busy, ShuttingDown
from .strategies import Strategy, Task

#: Idle seconds before the strategy rests: long enough that a user's next request (a download, then its upload)
#: usually finds the workers still there, short enough that a burst's memory goes soon after it.
REST_AFTER = 3.0


class TaskStream:
    """The chunks of a streamed task (``async for``); ``result`` is what the task's generator returned, once
    the iteration has ended."""

    def __init__(self) -> None:
        self.returned: list[Any] = []
        self.chunks: AsyncIterator[bytes] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        assert self.chunks is not None
        return self.chunks

    @property
    def result(self) -> Any:
        return self.returned[0] if self.returned else None


class ProcessingQueue:
    def __init__(self, strategy: Strategy, workers: int, max_waiting: int | None = None,
                 rest_after: float | None = REST_AFTER):
        self.strategy = strategy
        self.rest_after = rest_after  # None: never rest
        self.workers = workers
        self.max_waiting = self.workers * 4 if max_waiting is None else max_waiting
        self.active: Counter[str] = Counter()
        self.queued: Counter[str] = Counter()
        self._order: list[object] = []  # waiting tickets, first come first served
        self._free: asyncio.Semaphore | None = None
        self.closed = False  # draining before a stop: no new work is admitted
        self._retry_after_closed = 5
        self._rest_timer: asyncio.TimerHandle | None = None

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._free = asyncio.Semaphore(self.workers)
        await self.strategy.start()

    def close(self, retry_after: int = 5) -> None:
        """Admit nothing more (the server is draining); work already admitted goes on."""
        self.closed = True
        self._retry_after_closed = retry_after

    def check_open(self) -> None:
        if self.closed:
            raise ShuttingDown("the server is shutting down and takes no new work; try again shortly (another "
                               "instance, or this one restarted, will take it)", retry_after=self._retry_after_closed)

    async def stop(self) -> None:
        self._cancel_rest()
        await self.strategy.stop()

    # -- admission and positions ------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return len(self._order)

    def admit(self, kind: str, ticket: object | None = None) -> None:
        """Refuse at once (429) when every worker is busy and the waiting list is full.

        With a ``ticket``, the admitted task takes its place in the waiting list now (an import, while its body
        is still arriving); it keeps it until :meth:`slot` starts it, or :meth:`withdraw` gives it back.
        """
        self.check_open()
        busy = sum(self.active.values()) >= self.workers
        if busy and self.waiting >= self.max_waiting:
            raise Busy(
                f"the server is busy: {self.workers} task(s) running and {self.waiting} waiting, the most it queues; "
                "try again shortly",
                retry_after=self.retry_after(),
                active=sum(self.active.values()),
                waiting=self.waiting,
            )

        if ticket is not None:
            self.reserve(kind, ticket)

    def reserve(self, kind: str, ticket: object) -> None:
        """Take a place in the waiting list for ``ticket`` without the admission check: for a task admitted
        earlier (an upload, checked when it began and whose body has now arrived), so it is not refused after its
        body was read. Such places can overshoot the list by as many uploads as the spool holds."""
        self._order.append(ticket)
        self.queued[kind] += 1

    def withdraw(self, kind: str, ticket: object) -> None:
        """Give back a place taken by :meth:`admit` for a task that will not run."""
        if ticket in self._order:
            self._order.remove(ticket)
            self.queued[kind] -= 1
            self._schedule_rest()  # an upload that will not run may have been all there was

    def retry_after(self) -> int:
        return max(1, min(30, 2 * (self.waiting // self.workers + 1)))

    def position(self, ticket: object) -> int | None:
        """1 for the next task to start; None when ``ticket`` is not waiting here."""
        try:
            return self._order.index(ticket) + 1
        except ValueError:
            return None

    @asynccontextmanager
    async def slot(self, kind: str, ticket: object | None = None):
        assert self._free is not None, "start() the queue first"
        ticket = ticket if ticket is not None else object()
        self._cancel_rest()
        if ticket not in self._order:  # not reserved by admit()
            self._order.append(ticket)
            self.queued[kind] += 1
        try:
            await self._free.acquire()
        finally:
            self.withdraw(kind, ticket)
        self.active[kind] += 1
        try:
            yield
        finally:
            self.active[kind] -= 1
            self._free.release()
            self._schedule_rest()

    # -- resting ----------------------------------------------------------------------------------

    def _idle(self) -> bool:
        return not self.closed and not sum(self.active.values()) and not self.waiting

    def _schedule_rest(self) -> None:
        if self.rest_after is not None and self._rest_timer is None and self._idle():
            self._rest_timer = asyncio.get_running_loop().call_later(self.rest_after, self._rest)

    def _cancel_rest(self) -> None:
        if self._rest_timer is not None:
            self._rest_timer.cancel()
            self._rest_timer = None

    def _rest(self) -> None:
        self._rest_timer = None
        if self._idle():  # an upload may have taken a place in the waiting list meanwhile: its slot reschedules
            self.strategy.rest()

    # -- running tasks ----------------------------------------------------------------------------

    async def call(self, kind: str, fn: Callable[..., Any], *args: Any, ticket: object | None = None) -> Any:
        """Run ``fn(*args)`` on a worker and return its result."""
        async with self.slot(kind, ticket):
            return await self.strategy.call(fn, *args)

    def stream(self, kind: str, fn: Task, *args: Any) -> TaskStream:
        """The chunks of the generator ``fn(*args)``, produced on a worker, at most a bounded amount ahead."""
        task = TaskStream()

        async def chunks() -> AsyncIterator[bytes]:
            async with self.slot(kind), aclosing(self.strategy.stream(fn, args, task.returned)) as stream:
                async for chunk in stream:
                    yield chunk

        task.chunks = chunks()
        return task

    async def check(self, timeout: float) -> str | None:
        """None when a trivial task runs on a worker within ``timeout`` seconds, or when every worker is busy (then
        429 answers for the queue, and a probe would only wait); otherwise what is wrong, in a sentence. A pool
        broken while idle is replaced by the probe itself."""
        if sum(self.active.values()) >= self.workers:
            return None
        try:
            async with asyncio.timeout(timeout):
                await self.strategy.call(os.getpid)
        except TimeoutError:
            return f"no worker ran a trivial task within {timeout:g} s"
        except Exception as exc:
            return f"the workers cannot run tasks: {getattr(exc, 'message', None) or exc!r}"
        return None

    def worker_rss(self) -> int:
        """Resident memory of the worker processes (0 unless they are processes of their own)."""
        return self.strategy.worker_rss()
