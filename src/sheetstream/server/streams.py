"""One admission for every streamed download (an export, the marked-up workbook, any later one).

:meth:`Downloads.open` takes the caller's share and a queue place, starts the task, and returns the response that
bounds it; whatever happens, the share goes back exactly once and the task's stream is closed (its worker and
queue slot freed) the moment the response ends. A route cannot forget one of these: it has nothing else to call.

The response is cut off when the client takes no byte for ``stall_seconds`` or the transfer passes
``max_seconds``. Progress is the bytes the client has taken, measured over that window (what was written minus
what still waits in the transport's buffer and the kernel's send queue: :class:`~.connections.Connection`), not
the time one ``send`` waits: a client reading steadily drains the kernel's buffers in large steps, and a send
can wait minutes while it does. A cut-off aborts the connection, so the socket is freed too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from ..access import Identity
from ..config import ExportOptions
from ..formats.xlsx import MEDIA_TYPE
from ..runtime import ProcessingQueue, TaskStream
from ..runtime.strategies import Task
from .connections import EXTENSION, Connection
from .metrics import Metrics
from .shares import Shares
from .spill import SpillBudget, spilled

log = logging.getLogger("sheetstream.exports")


class Downloads:
    def __init__(self, queue: ProcessingQueue, shares: Shares, metrics: Metrics, options: ExportOptions,
                 spill: SpillBudget):
        self.queue, self.shares, self.metrics, self.options, self.spill = queue, shares, metrics, options, spill

    def open(self, caller: Identity, filename: str, fn: Task, *args: Any, media_type: str = MEDIA_TYPE
             ) -> StreamingResponse:
        """The workbook ``fn(*args)`` makes on a worker, streamed as ``filename``: 429 at once when the caller's
        share or the queue is full."""
        release = self.shares.hold(caller, self.queue.retry_after())
        try:
            self.queue.admit("export")
            stream = self.queue.stream("export", fn, *args)
        except BaseException:
            release()
            raise
        # The worker writes into the spill at its own pace: it is freed when the workbook is complete.
        return BoundedStream(spilled(counted(stream, self.metrics), self.spill), release=release,
                             stall_seconds=self.options.export_stall_seconds,
                             max_seconds=self.options.export_max_seconds, media_type=media_type,
                             headers={"Content-Disposition": content_disposition(filename), "Cache-Control": "no-store"})


class Progress:
    """The bytes the client has taken, as far as this server can tell."""

    def __init__(self, connection: Connection | None):
        self.connection = connection
        self.sent = 0  # body bytes handed to the server
        self.sending = False

    def taken(self) -> int:
        return self.sent - (self.connection.untaken() if self.connection else 0)

    def waiting_on_client(self) -> bool:
        """Something written is not taken yet (without a :class:`Connection`: a send is waiting)."""
        return self.connection.untaken() > 0 if self.connection else self.sending


class BoundedStream(StreamingResponse):
    """A streamed body bounded in time (the module's docstring says how); ``release()`` is called once it ends,
    however it ends."""

    def __init__(self, content: AsyncIterator[bytes], *, release: Callable[[], None], stall_seconds: float,
                 max_seconds: float, **options: Any):
        super().__init__(content, **options)
        self.release = release
        self.stall_seconds, self.max_seconds = stall_seconds, max_seconds
        self.connection: Connection | None = None
        self.stalled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.connection = scope.get("extensions", {}).get(EXTENSION)
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
            finally:
                self.release()

    async def stream_response(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        progress = Progress(self.connection)

        async def counted_send(message: Message) -> None:
            progress.sending = True
            try:
                await send(message)
            finally:
                progress.sending = False
            progress.sent += len(message.get("body", b""))

        try:
            async with asyncio.timeout_at(loop.time() + self.max_seconds) as deadline:  # also while a chunk is made
                watchdog = asyncio.create_task(self._watch(progress, deadline))
                try:
                    await super().stream_response(counted_send)
                finally:
                    watchdog.cancel()
        except TimeoutError:
            log.warning("download cut off: %s", f"the client took no data for {self.stall_seconds:g} s"
                        if self.stalled else f"longer than {self.max_seconds:g} s")
            if self.connection is not None:
                self.connection.abort()  # the socket goes now, with whatever the client has not taken
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]  # frees the worker at once

    async def _watch(self, progress: Progress, deadline: asyncio.Timeout) -> None:
        """Cut off (through ``deadline``) a client that has taken no byte for ``stall_seconds`` while something
        waited for it."""
        loop = asyncio.get_running_loop()
        step = min(1.0, self.stall_seconds / 4)
        last, since = progress.taken(), loop.time()
        while True:
            await asyncio.sleep(step)
            taken = progress.taken()
            if taken > last or not progress.waiting_on_client():
                last, since = max(last, taken), loop.time()
            elif loop.time() - since >= self.stall_seconds:
                self.stalled = True
                deadline.reschedule(loop.time())
                return


async def counted(stream: TaskStream, metrics: Metrics) -> AsyncIterator[bytes]:
    """The chunks, counted into the metrics as they go; the rows once the workbook is complete (when the task
    reports any). Closing this closes the task's stream at once (its worker and queue slot are freed then)."""
    async with aclosing(aiter(stream)) as chunks:
        async for chunk in chunks:
            metrics.bytes_out.inc(len(chunk))
            yield chunk
    rows = getattr(stream.result, "rows", None)
    if rows is not None:
        metrics.rows_exported.inc(rows)


def content_disposition(filename: str) -> str:
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
