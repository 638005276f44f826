"""``GET /exports/{table}.xlsx``: the table streamed as a workbook while it is being generated."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from ...formats.xlsx import MEDIA_TYPE
from ...pipeline.exports import export_workbook
from ...pipeline.query import parse_export_query
from ...runtime import TaskStream
from ..deps import Caller, MetricsDep, QueueDep, ReadableTable, SettingsDep, SharesDep, StoreDep
from ..metrics import Metrics

router = APIRouter()
log = logging.getLogger("sheetstream.exports")

#: The largest LIMIT both stores take: a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's bigint).
MAX_LIMIT = 2**63 - 1


@router.get("/exports/{table}.xlsx", response_class=StreamingResponse)
async def export_table(
    request: Request,
    table: ReadableTable,
    caller: Caller,
    shares: SharesDep,
    settings: SettingsDep,
    store: StoreDep,
    queue: QueueDep,
    metrics: MetricsDep,
    columns: Annotated[str | None, Query(description="Comma-separated column names, in the order wanted (also "
                                         "select=); other parameters filter and order the rows (docs/exports.md)")] = None,
    limit: Annotated[int | None, Query(ge=0, le=MAX_LIMIT, description="At most this many rows")] = None,
) -> StreamingResponse:
    catalog = await run_in_threadpool(store.columns, table)
    query = parse_export_query(request.query_params.multi_items(), catalog, limit)  # filters, order: docs/exports.md
    shares.take(caller, queue.retry_after())
    try:
        queue.admit("export")
    except BaseException:
        shares.give(caller)
        raise
    stream = queue.stream("export", export_workbook, store, table, query, settings.export)
    return BoundedStreamingResponse(
        counted(stream, metrics),
        release=lambda: shares.give(caller),
        stall_seconds=settings.export.export_stall_seconds,
        max_seconds=settings.export.export_max_seconds,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": content_disposition(f"{table}.xlsx"), "Cache-Control": "no-store"},
    )


class BoundedStreamingResponse(StreamingResponse):
    """A streamed body bounded in time: a client that takes no chunk for ``stall_seconds`` (its socket full, so
    the send waits), or a transfer past ``max_seconds``, is cut off. The chunk source is closed at once, freeing its
    worker and queue slot, and the body ends without its last chunk, so the client sees it incomplete. However it
    ends, ``release()`` gives back the caller's share of the queue."""

    def __init__(self, content: AsyncIterator[bytes], *, release: Callable[[], None], stall_seconds: float,
                 max_seconds: float, **options: Any):
        super().__init__(content, **options)
        self.release = release
        self.stall_seconds, self.max_seconds = stall_seconds, max_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()

    async def stream_response(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.max_seconds

        async def bounded(message: Message) -> None:
            async with asyncio.timeout_at(min(loop.time() + self.stall_seconds, ends)):
                await send(message)

        try:
            async with asyncio.timeout_at(ends):  # also while a chunk is being produced
                await super().stream_response(bounded)
        except TimeoutError:
            overdue = loop.time() >= ends
            log.warning("export cut off: %s", f"longer than {self.max_seconds:g} s" if overdue
                        else f"the client took no data for {self.stall_seconds:g} s")
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


async def counted(stream: TaskStream, metrics: Metrics) -> AsyncIterator[bytes]:
    """The chunks, counted into the metrics as they go; the rows once the workbook is complete. Closing this
    closes the task's stream at once (its worker and queue slot are freed then, not when it is collected)."""
    async with aclosing(aiter(stream)) as chunks:
        async for chunk in chunks:
            metrics.bytes_out.inc(len(chunk))
            yield chunk
    metrics.rows_exported.inc(stream.result.rows)


def content_disposition(filename: str) -> str:
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
