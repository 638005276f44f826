"""``GET /exports/book.xlsx?sheets=orders,customers``: several tables in one workbook, a sheet each, streamed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...errors import BadRequest
from ...formats.xlsx import MEDIA_TYPE
from ...pipeline.exports import export_book
from ...pipeline.query import parse_book_query
from ..deps import Caller, MetricsDep, QueueDep, SettingsDep, SharesDep, StoreDep, permitted_table, require
from .exports import BoundedStreamingResponse, content_disposition, counted

router = APIRouter()

#: Sheets in one workbook.
MAX_SHEETS = 20


@router.get("/exports/book.xlsx", response_class=StreamingResponse)
async def export_tables(
    request: Request,
    caller: Caller,
    shares: SharesDep,
    settings: SettingsDep,
    store: StoreDep,
    queue: QueueDep,
    metrics: MetricsDep,
    sheets: Annotated[str, Query(description="Comma-separated tables or views, a sheet each, in this order; "
                                             "their parameters prefixed by their name: orders.status=eq.paid")],
) -> StreamingResponse:
    names = [n.strip() for n in sheets.split(",") if n.strip()]
    if not names or len(names) > MAX_SHEETS or len(set(names)) < len(names):
        raise BadRequest(f"sheets names 1 to {MAX_SHEETS} different tables (got {sheets!r})", parameter="sheets")
    for name in names:  # every sheet: served (404) and readable by the caller (403), before anything is read
        require(caller, permitted_table(name, settings), "read")
    catalogs = await run_in_threadpool(lambda: {name: store.columns(name) for name in names})
    book = parse_book_query(request.query_params.multi_items(), catalogs)
    shares.take(caller, queue.retry_after())
    try:
        queue.admit("export")
    except BaseException:
        shares.give(caller)
        raise
    stream = queue.stream("export", export_book, store, book, settings.export)
    return BoundedStreamingResponse(
        counted(stream, metrics),
        release=lambda: shares.give(caller),
        stall_seconds=settings.export.export_stall_seconds,
        max_seconds=settings.export.export_max_seconds,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": content_disposition("book.xlsx"), "Cache-Control": "no-store"},
    )
