"""``GET /exports/{table}.xlsx``: the table streamed as a workbook while it is being generated."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from ...formats.xlsx import MEDIA_TYPE
from ...pipeline.exports import export_workbook
from ...runtime import TaskStream
from ...store import select_columns
from ..deps import Caller, MetricsDep, QueueDep, ReadableTable, SettingsDep, SharesDep, StoreDep
from ..metrics import Metrics

router = APIRouter()


@router.get("/exports/{table}.xlsx", response_class=StreamingResponse)
async def export_table(
    table: ReadableTable,
    caller: Caller,
    shares: SharesDep,
    settings: SettingsDep,
    store: StoreDep,
    queue: QueueDep,
    metrics: MetricsDep,
    columns: Annotated[str | None, Query(description="Comma-separated column names, in the order wanted")] = None,
    # le: the largest LIMIT both databases take; past it the database refuses the query after the 200 has gone out.
    limit: Annotated[int | None, Query(ge=0, le=2**63 - 1, description="At most this many rows")] = None,
) -> StreamingResponse:
    catalog = await run_in_threadpool(store.columns, table)
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    chosen = select_columns(catalog, wanted)
    shares.take(caller, queue.retry_after())
    try:
        queue.admit("export")
    except BaseException:
        shares.give(caller)
        raise
    stream = queue.stream("export", export_workbook, store, table, chosen, limit, settings.export)
    return Released(
        counted(stream, metrics),
        lambda: shares.give(caller),
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": content_disposition(f"{table}.xlsx"), "Cache-Control": "no-store"},
    )


class Released(StreamingResponse):
    """A streaming response that gives back the caller's share when it has ended, however it ended."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None], **kwargs: Any):
        super().__init__(content, **kwargs)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


async def counted(stream: TaskStream, metrics: Metrics) -> AsyncIterator[bytes]:
    """The chunks, counted into the metrics as they go; the rows once the workbook is complete."""
    async for chunk in stream:
        metrics.bytes_out.inc(len(chunk))
        yield chunk
    metrics.rows_exported.inc(stream.result.rows)


def content_disposition(filename: str) -> str:
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
