"""``GET /exports/book.xlsx?sheets=orders,customers``: several tables in one workbook, a sheet each, streamed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...errors import BadRequest
from ...pipeline.exports import export_book
from ...pipeline.query import parse_book_query
from ..deps import Caller, DownloadsDep, SettingsDep, StoreDep, permitted_table, require

router = APIRouter()

#: Sheets in one workbook.
MAX_SHEETS = 20


@router.get("/exports/book.xlsx", response_class=StreamingResponse)
async def export_tables(
    request: Request,
    caller: Caller,
    settings: SettingsDep,
    store: StoreDep,
    downloads: DownloadsDep,
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
    return downloads.open(caller, "book.xlsx", export_book, store, book, settings.export)
