"""Run a blocking generator off the event loop and consume it as an async iterator, with back-pressure.

The worker thread may run at most ``max_pending`` items ahead of the consumer: when the consumer (the socket)
is slow, the worker waits, so memory stays bounded by ``max_pending`` chunks whatever the export's size.
When the consumer stops early (client gone, cancellation) the worker is told to stop, the generator is closed
(its ``finally`` blocks release database cursors) and the consumer waits for the thread to finish.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


async def iterate_in_thread(
    make: Callable[[], Iterator[T]],
    *,
    max_pending: int = 8,
    executor: Executor | None = None,
) -> AsyncIterator[T]:
    """Yield the items of ``make()``, which runs entirely in a worker thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    slots = threading.Semaphore(max_pending)
    stop = threading.Event()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            stop.set()

    def work() -> None:
        try:
            iterator = make()
            try:
                for item in iterator:
                    while not slots.acquire(timeout=0.05):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    put(item)
            finally:
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the consumer, re-raised there
            put(_Failed(exc))
        else:
            put(_DONE)

    worker = loop.run_in_executor(executor, work)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, _Failed):
                raise item.exc
            slots.release()
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.shield(worker)
