"""How a task leaves the event loop: :class:`Inline`, :class:`Thread` or :class:`Process`, one interface.

Tasks are plain module-level functions with picklable arguments (:mod:`sheetstream.pipeline`), so every
strategy runs exactly the same code. ``call`` runs a function and returns its result; ``stream`` runs a
generator of byte chunks, at most a bounded amount ahead of its consumer, and puts the generator's return
value in ``returned`` when it ends.

- ``inline``: on the event loop itself. The bad baseline the study needs: every other request waits.
- ``thread``: a thread pool. Cheap hand-offs; the GIL is shared with the event loop.
- ``process``: worker processes, one pool each (a worker's death fails only its own task); streams come back
  over a Unix socket (:mod:`.channel`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import aclosing
from typing import Any, Protocol

import psutil

from ..errors import OutOfMemory, SheetstreamError, WorkerLost
from ..pipeline.lifeline import Lifeline
from .channel import Channel
from .forked import forked_map
from .offload import iterate_in_thread
from .workers import release_memory, run_and_release, start_worker, stop_pools, warm_worker

Task = Callable[..., Generator[bytes, None, Any]]
#: Seconds the process strategy waits, at start, for its first worker to be ready.
WARM_TIMEOUT = 10.0

log = logging.getLogger("sheetstream.runtime")


class Strategy(Protocol):
    name: str
    #: How an import may run part of its work in a second process (``forked_map``), or None.
    split: Callable[..., Any] | None

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any: ...

    def stream(self, fn: Task, args: tuple, returned: list[Any]) -> AsyncIterator[bytes]: ...

    def worker_rss(self) -> int:
        """Resident memory of worker processes (0 when the work runs in the server's own process)."""

    def rest(self) -> None:
        """Nothing runs or waits: give back the memory the last burst of work left behind."""


def _capture(fn: Task, args: tuple, returned: list[Any]) -> Generator[bytes, None, None]:
    returned.append((yield from fn(*args)))


class Inline:
    name = "inline"
    split = None

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

    def rest(self) -> None:
        release_memory()


class Thread:
    name = "thread"
    split = None

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

    def rest(self) -> None:
        release_memory()


class Process:
    """Worker processes, each in a pool of its own (a *lane*: a one-worker ``ProcessPoolExecutor``), and a task
    goes to the least busy lane. ``concurrent.futures`` fails every task of a pool when one of its workers dies
    and stops the others: with one worker per pool, a worker that dies (killed, or by the out-of-memory killer)
    fails only its own task, with :class:`~sheetstream.errors.WorkerLost`, and only its lane is replaced; tasks
    running on the other workers go on."""

    name = "process"

    def __init__(self, workers: int, start_method: str = "forkserver", memory_limit: int = 0,
                 split_imports: bool = False):
        self.workers = workers
        # Only a worker process may fork a helper (.forked); the server's own process never does.
        self.split = forked_map if split_imports else None
        self.start_method = start_method
        self.memory_limit = memory_limit
        self.lanes: list[ProcessPoolExecutor] = []
        self.running: list[int] = []  # tasks submitted to each lane and not yet ended
        self.retiring: list[multiprocessing.process.BaseProcess] = []  # workers let go at rest, on their way out
        self.channel: Channel | None = None
        self.restarts = 0
        self.fresh_rss = 0  # a warm worker's resident memory before any task: what resting comes back to
        self.warming: Future[int] | None = None

    def _new_pool(self, warm: bool = False) -> ProcessPoolExecutor:
        # Workers die with this server (and never commit once it is gone: see .workers), within a memory cap. The
        # pool starts its worker at its first task.
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(self.start_method),
                                   initializer=start_worker, initargs=(Lifeline.of_this_process(), self.memory_limit))
        if warm:
            self.warming = pool.submit(warm_worker)  # one worker ready: a first byte in milliseconds
            self.warming.add_done_callback(self._warmed)
        return pool

    def _warmed(self, future: Any) -> None:
        try:
            self.fresh_rss = self.fresh_rss or psutil.Process(future.result()).memory_info().rss
        except Exception:  # the pool was shut down or broken meanwhile: the next pool warms again
            pass

    async def start(self) -> None:
        self.lanes = [self._new_pool(warm=i == 0) for i in range(self.workers)]
        self.running = [0] * self.workers
        self.channel = Channel()
        await self.channel.start()
        # The server starts answering once its first worker is ready (about 0.2 s): a request arriving earlier
        # would start a second worker beside the one warming up, and wait for it.
        try:
            assert self.warming is not None
            await asyncio.wait_for(asyncio.wrap_future(self.warming), WARM_TIMEOUT)
        except Exception:  # slow or failed: the pool starts workers on demand all the same
            log.warning("the first worker process was not ready within %s s", WARM_TIMEOUT)

    async def stop(self) -> None:
        if self.channel:
            await self.channel.stop()
        if self.lanes:
            # Whatever still runs has been given its deadline already (the server's drain): no process is left.
            await asyncio.to_thread(stop_pools, self.lanes, self.retiring)

    def _replace(self, lane: int, broken: ProcessPoolExecutor) -> None:
        """A new pool in lane ``lane`` in place of ``broken``, unless another task has replaced it already. No
        ``await`` here: on the event loop this check-and-swap cannot interleave with another."""
        if self.lanes[lane] is broken:
            log.warning("a worker process died; replacing it (lane %d)", lane)
            self.lanes[lane] = self._new_pool(warm=False)
            self.restarts += 1
            broken.shutdown(wait=False, cancel_futures=True)

    def _submit(self, fn: Callable[..., Any], *args: Any) -> tuple[int, ProcessPoolExecutor, asyncio.Future]:
        """``fn(*args)`` on the least busy lane (the first of equals: the warm one), that lane and its pool; a pool
        found broken before the task starts is replaced and the task goes to the new one (it never ran, so running
        it there is safe). The worker trims its heap after the task (:func:`~.workers.run_and_release`), so it
        does not rest at the peak of its largest task."""
        assert self.lanes, "start() the strategy first"
        loop = asyncio.get_running_loop()
        lane = min(range(len(self.lanes)), key=self.running.__getitem__)
        pool = self.lanes[lane]
        task = functools.partial(run_and_release, fn, *args)
        try:
            future = loop.run_in_executor(pool, task)
        except BrokenProcessPool:
            self._replace(lane, pool)
            pool = self.lanes[lane]
            future = loop.run_in_executor(pool, task)
        self.running[lane] += 1
        future.add_done_callback(lambda _: self._ended(lane))
        return lane, pool, future

    def _ended(self, lane: int) -> None:
        self.running[lane] -= 1

    def _lost(self, lane: int | None, pool: ProcessPoolExecutor | None, exc: BaseException) -> SheetstreamError:
        """The domain error for a task whose worker died (its lane is replaced) or ran out of its memory."""
        if isinstance(exc, MemoryError):  # raised inside the worker under its cap: the worker itself lives on
            return OutOfMemory.worker_limit(self.memory_limit)
        if lane is not None and pool is not None:
            self._replace(lane, pool)
        return WorkerLost("the worker process running this task stopped (killed, or out of memory); nothing it did "
                          "was kept. Try again; if it happens again, the file may need more memory than a worker has")

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        lane, pool, future = self._submit(fn, *args)
        try:
            return await future
        except (BrokenProcessPool, MemoryError) as exc:
            raise self._lost(lane, pool, exc) from None

    async def stream(self, fn: Task, args: tuple, returned: list[Any]) -> AsyncIterator[bytes]:
        assert self.channel is not None, "start() the strategy first"
        used: list[tuple[int, ProcessPoolExecutor]] = []

        def submit(produce: Callable[..., Any], *produce_args: Any) -> asyncio.Future:
            lane, pool, future = self._submit(produce, *produce_args)
            used.append((lane, pool))
            return future

        try:
            async with aclosing(self.channel.stream(submit, fn, args, returned)) as chunks:
                async for chunk in chunks:
                    yield chunk
        except (BrokenProcessPool, MemoryError) as exc:
            lane, pool = used[0] if used else (None, None)
            raise self._lost(lane, pool, exc) from None

    def rest(self) -> None:
        """Let the idle workers go and trim this process. A worker keeps the pages of its largest task (Python's
        arenas, even after ``malloc_trim``) and an idle pool keeps its worker, so at rest fresh pools take the old
        ones' places, the first with one warm worker; unless that is all there is already."""
        workers = [list((getattr(pool, "_processes", None) or {}).values()) for pool in self.lanes]
        if not any(workers) or self._fresh(workers):
            release_memory()
            return
        for lane, pool in enumerate(self.lanes):
            self.retiring = [p for p in self.retiring if p.is_alive()] + workers[lane]  # for stop(), should one linger
            self.lanes[lane] = self._new_pool(warm=lane == 0)
            pool.shutdown(wait=False)  # its worker finishes what it holds (nothing, or a probe) and exits
        release_memory()

    def _fresh(self, workers: list[list[Any]]) -> bool:
        """Only the first lane has a worker, within 16 MB of a warm one: replacing it would give nothing back."""
        if len(workers[0]) != 1 or any(workers[1:]) or not self.fresh_rss:
            return False
        try:
            return psutil.Process(workers[0][0].pid).memory_info().rss < self.fresh_rss + (16 << 20)
        except psutil.Error:
            return False

    def worker_rss(self) -> int:
        total = 0
        for child in psutil.Process().children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total


def make_strategy(name: str, workers: int, start_method: str = "forkserver", max_pending: int = 8,
                  memory_limit: int = 0, split_imports: bool = False) -> Strategy:
    """The strategy called ``name`` (one of :data:`sheetstream.config.STRATEGIES`)."""
    if name == "inline":
        return Inline()
    if name == "thread":
        return Thread(workers, max_pending)
    if name == "process":
        return Process(workers, start_method, memory_limit, split_imports)
    raise ValueError(f"unknown strategy {name!r}")
