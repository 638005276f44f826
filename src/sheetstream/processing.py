"""The processing queue: every CPU-heavy task (building an export, parsing and writing an import) goes through it.

A bounded number of workers run tasks; a bounded waiting list holds the ones that wait; past that, new work
is refused at once (:class:`~sheetstream.errors.Busy`, 429 with ``Retry-After``) instead of piling up memory.
The same code path runs with one of three strategies, chosen by configuration:

- ``inline``: on the event loop itself. The bad baseline the study needs: every other request waits.
- ``thread``: a thread pool. Cheap hand-offs; the GIL is shared with the event loop.
- ``process``: a process pool (start method ``forkserver``, ``spawn`` or ``fork``). Streams come back
  over a Unix socket, in length-prefixed frames; the socket's buffer is the bounded channel, so a slow
  client blocks the worker's ``send`` (back-pressure), and a client that leaves closes it (the worker stops).

Tasks are plain module-level functions (:mod:`sheetstream.tasks`) with picklable arguments, so that every
strategy runs exactly the same code.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import pickle
import socket
import struct
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psutil

from .errors import Busy
from .offload import iterate_in_thread

STRATEGIES = ("inline", "thread", "process")
START_METHODS = ("forkserver", "spawn", "fork")

_FRAME = struct.Struct(">I")
_END = 0xFFFFFFFF  # frame length meaning: the task ended; a pickled final item follows
_FAILED = 0xFFFFFFFE  # frame length meaning: the task raised; the pickled exception follows
_TOKEN = 16


class ProcessingQueue:
    def __init__(
        self,
        strategy: str = "thread",
        workers: int | None = None,
        max_waiting: int | None = None,
        start_method: str = "forkserver",
        max_pending_chunks: int = 8,
    ):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
        if start_method not in START_METHODS:
            raise ValueError(f"unknown start method {start_method!r}: use one of {', '.join(START_METHODS)}")
        self.strategy = strategy
        self.workers = workers or os.cpu_count() or 1
        self.max_waiting = self.workers * 4 if max_waiting is None else max_waiting
        self.start_method = start_method
        self.max_pending_chunks = max_pending_chunks
        self.active: Counter[str] = Counter()
        self.queued: Counter[str] = Counter()
        self._order: list[object] = []  # waiting tickets, first come first served
        self._free: asyncio.Semaphore | None = None
        self._pool: Executor | None = None
        self._channel: _Channel | None = None

    # -- life cycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self._free = asyncio.Semaphore(self.workers)
        if self.strategy == "thread":
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sheetstream-worker")
        elif self.strategy == "process":
            context = multiprocessing.get_context(self.start_method)
            self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            self._channel = _Channel()
            await self._channel.start()

    async def stop(self) -> None:
        if self._channel:
            await self._channel.stop()
        if self._pool:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- admission and positions ------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return len(self._order)

    def admit(self, kind: str, ticket: object | None = None) -> None:
        """Refuse at once (429) when every worker is busy and the waiting list is full.

        With a ``ticket``, the admitted task takes its place in the waiting list now (an import, while its body
        is still arriving); it keeps it until :meth:`slot` starts it, or :meth:`withdraw` gives it back.
        """
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
            self._order.append(ticket)
            self.queued[kind] += 1

    def withdraw(self, kind: str, ticket: object) -> None:
        """Give back a place taken by :meth:`admit` for a task that will not run."""
        if ticket in self._order:
            self._order.remove(ticket)
            self.queued[kind] -= 1

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

    # -- running tasks ----------------------------------------------------------------------------

    async def call(self, kind: str, fn: Callable[..., Any], *args: Any, ticket: object | None = None) -> Any:
        """Run ``fn(*args)`` on a worker and return its result."""
        async with self.slot(kind, ticket):
            if self.strategy == "inline":
                return fn(*args)
            return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    async def stream(self, kind: str, fn: Callable[..., Iterator[Any]], *args: Any) -> AsyncIterator[Any]:
        """The items of the generator ``fn(*args)``, produced on a worker, at most a bounded amount ahead."""
        async with self.slot(kind):
            if self.strategy == "inline":
                iterator = fn(*args)
                try:
                    for item in iterator:
                        yield item
                finally:
                    iterator.close()
            elif self.strategy == "thread":
                async for item in iterate_in_thread(functools.partial(fn, *args), max_pending=self.max_pending_chunks,
                                                    executor=self._pool):
                    yield item
            else:
                assert self._channel is not None
                async for item in self._channel.stream(self._pool, fn, args):
                    yield item

    # -- observability ----------------------------------------------------------------------------

    def worker_rss(self) -> int:
        """Resident memory of the worker processes (0 unless the strategy is ``process``)."""
        if self.strategy != "process":
            return 0
        total = 0
        for child in psutil.Process().children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
        return total


class _Channel:
    """Streams from worker processes: one Unix socket listener; each task connects with its token."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sheetstream-"))
        self.path = str(self.folder / "chunks.sock")
        self._expected: dict[bytes, asyncio.Future] = {}
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._accept, path=self.path)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        Path(self.path).unlink(missing_ok=True)
        self.folder.rmdir()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            token = await reader.readexactly(_TOKEN)
        except asyncio.IncompleteReadError:
            writer.close()
            return
        future = self._expected.pop(token, None)
        if future is None or future.done():
            writer.close()
        else:
            future.set_result((reader, writer))

    async def stream(self, pool: Executor, fn: Callable[..., Iterator[Any]], args: tuple) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        token = os.urandom(_TOKEN)
        connected: asyncio.Future = loop.create_future()
        self._expected[token] = connected
        task = loop.run_in_executor(pool, _produce, self.path, token, fn, args)
        writer = None
        try:
            done, _ = await asyncio.wait({connected, task}, return_when=asyncio.FIRST_COMPLETED)
            if connected not in done:
                task.result()  # the worker failed before it could connect: raise its error
                raise RuntimeError("the worker ended without streaming")
            reader, writer = connected.result()
            while True:
                (size,) = _FRAME.unpack(await reader.readexactly(_FRAME.size))
                if size == _END or size == _FAILED:
                    (length,) = _FRAME.unpack(await reader.readexactly(_FRAME.size))
                    payload = pickle.loads(await reader.readexactly(length))
                    if size == _FAILED:
                        raise payload
                    if payload is not None:
                        yield payload
                    break
                yield await reader.readexactly(size)
        finally:
            self._expected.pop(token, None)
            if writer is not None:
                writer.close()  # a worker still sending gets a broken pipe and stops
            await asyncio.shield(asyncio.wait({task}))


def _produce(path: str, token: bytes, fn: Callable[..., Iterator[Any]], args: tuple) -> None:
    """In the worker process: run the generator, send its items as frames; stop when the reader is gone."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(token)
        iterator = fn(*args)
        final: Any = None
        try:
            for item in iterator:
                if isinstance(item, (bytes, bytearray, memoryview)):
                    sock.sendall(_FRAME.pack(len(item)))
                    sock.sendall(item)
                else:
                    final = item  # a task's closing summary (such as export statistics)
        except (BrokenPipeError, ConnectionResetError):
            return  # the consumer went away: stop here
        except BaseException as exc:
            payload = pickle.dumps(exc)
            try:
                sock.sendall(_FRAME.pack(_FAILED) + _FRAME.pack(len(payload)) + payload)
            except OSError:
                pass
            return
        finally:
            iterator.close()
        payload = pickle.dumps(final)
        try:
            sock.sendall(_FRAME.pack(_END) + _FRAME.pack(len(payload)) + payload)
        except OSError:
            pass
