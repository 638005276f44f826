"""``GET /exports/{table}.xlsx``: the table streamed as a workbook while it is being generated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...pipeline.exports import export_workbook
from ...store import select_columns
from ..deps import Caller, DownloadsDep, ReadableTable, SettingsDep, StoreDep

router = APIRouter()

#: The largest LIMIT both stores take: a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's bigint).
MAX_LIMIT = 2**63 - 1


@router.get("/exports/{table}.xlsx", response_class=StreamingResponse)
async def export_table(
    table: ReadableTable,
    caller: Caller,
    settings: SettingsDep,
    store: StoreDep,
    downloads: DownloadsDep,
    columns: Annotated[str | None, Query(description="Comma-separated column names, in the order wanted")] = None,
    limit: Annotated[int | None, Query(ge=0, le=MAX_LIMIT, description="At most this many rows")] = None,
) -> StreamingResponse:
    catalog = await run_in_threadpool(store.columns, table)
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    chosen = select_columns(catalog, wanted)
    return downloads.open(caller, f"{table}.xlsx", export_workbook, store, table, chosen, limit, settings.export)
