"""How a task leaves the event loop: :class:`Inline`, :class:`Thread` or :class:`Process`, one interface.

Tasks are plain module-level functions with picklable arguments (:mod:`sheetstream.pipeline`), so every
strategy runs exactly the same code. ``call`` runs a function and returns its result; ``stream`` runs a
generator of byte chunks, at most a bounded amount ahead of its consumer, and puts the generator's return
value in ``returned`` when it ends.

- ``inline``: on the event loop itself. The bad baseline the study needs: every other request waits.
- ``thread``: a thread pool. Cheap hand-offs; the GIL is shared with the event loop.
- ``process``: a process pool; streams come back over a Unix socket (:mod:`.channel`).
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Protocol

import psutil

from ..pipeline.lifeline import Lifeline
from .channel import Channel
from .offload import iterate_in_thread
from .workers import start_worker, stop_pool

Task = Callable[..., Generator[bytes, None, Any]]


class Strategy(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def stream(self, fn: Task, args: tuple, returned: list[Any]) -> AsyncIterator[bytes]: ...

    def worker_rss(self) -> int:
        """Resident memory of worker processes (0 when the work runs in the server's own process)."""


def _capture(fn: Task, args: tuple, returned: list[Any]) -> Generator[bytes, None, None]:
    returned.append((yield from fn(*args)))


class Inline:
    name = "inline"

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)

    async def stream(self, fn: Task, args: tuple, returned: list[Any]) -> AsyncIterator[bytes]:
        iterator = _capture(fn, args, returned)
        try:
            for chunk in iterator:
                yield chunk
        finally:
            iterator.close()

    def worker_rss(self) -> int:
        return 0


class Thread:
    name = "thread"

    def __init__(self, workers: int, max_pending: int = 8):
        self.workers = workers
        self.max_pending = max_pending
        self.pool: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sheetstream-worker")

    async def stop(self) -> None:
        if self.pool:
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    def stream(self, fn: Task, args: tuple, returned: list[Any]) -> AsyncIterator[bytes]:
        return iterate_in_thread(functools.partial(_capture, fn, args, returned), max_pending=self.max_pending,
                                 executor=self.pool)

    def worker_rss(self) -> int:
        return 0


class Process:
    name = "process"

    def __init__(self, workers: int, start_method: str = "forkserver"):
        self.workers = workers
        self.start_method = start_method
        self.pool: ProcessPoolExecutor | None = None
        self.channel: Channel | None = None

    async def start(self) -> None:
        # Workers die with this server (and never commit once it is gone): see .workers.
        self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(self.start_method),
                                        initializer=start_worker, initargs=(Lifeline.of_this_process(),))
        self.channel = Channel()
        await self.channel.start()

    async def stop(self) -> None:
        if self.channel:
            await self.channel.stop()
        if self.pool:
            # Whatever still runs has been given its deadline already (the server's drain): no process is left.
            await asyncio.to_thread(stop_pool, self.pool)

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    def stream(self, fn: Task, args: tuple, returned: list[Any]) -> AsyncIterator[bytes]:
        assert self.pool is not None and self.channel is not None, "start() the strategy first"
        return self.channel.stream(self.pool, fn, args, returned)

    def worker_rss(self) -> int:
        total = 0
        for child in psutil.Process().children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total


def make_strategy(name: str, workers: int, start_method: str = "forkserver", max_pending: int = 8) -> Strategy:
    """The strategy called ``name`` (one of :data:`sheetstream.config.STRATEGIES`)."""
    if name == "inline":
        return Inline()
    if name == "thread":
        return Thread(workers, max_pending)
    if name == "process":
        return Process(workers, start_method)
    raise ValueError(f"unknown strategy {name!r}")
