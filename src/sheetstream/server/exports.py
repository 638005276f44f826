"""``GET /exports/{table}.xlsx``: the table streamed as a workbook while it is being generated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..config import Settings
from ..db import Store, select_columns
from ..errors import NotFound
from ..processing import ProcessingQueue
from ..tasks import ExportOptions, export_chunks
from ..xlsx import MEDIA_TYPE
from .metrics import Metrics

router = APIRouter()


@router.get("/exports/{table}.xlsx", response_class=StreamingResponse)
async def export_table(
    request: Request,
    table: str,
    columns: Annotated[str | None, Query(description="Comma-separated column names, in the order wanted")] = None,
    limit: Annotated[int | None, Query(ge=0, description="At most this many rows")] = None,
) -> StreamingResponse:
    settings: Settings = request.app.state.settings
    store: Store = request.app.state.store
    if table not in settings.tables:
        raise NotFound(
            f"table {table!r} is not exported by this server; exported tables: {', '.join(settings.tables)}",
            tables=list(settings.tables),
        )
    catalog = await run_in_threadpool(store.columns, table)
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    chosen = select_columns(catalog, wanted)
    queue: ProcessingQueue = request.app.state.queue
    queue.admit("export")
    options = ExportOptions(settings.deflate, settings.deflate_level, settings.max_sheet_rows, settings.long_text)
    chunks = queue.stream("export", export_chunks, store, table, chosen, limit, options)
    return StreamingResponse(
        counted(chunks, request.app.state.metrics),
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": content_disposition(f"{table}.xlsx"), "Cache-Control": "no-store"},
    )


async def counted(chunks: AsyncIterator[bytes | dict], metrics: Metrics) -> AsyncIterator[bytes]:
    """The chunks, counted into the metrics; the task's closing summary (a dict) is not sent."""
    async for chunk in chunks:
        if isinstance(chunk, dict):
            metrics.rows_exported.inc(chunk["rows"])
            continue
        metrics.bytes_out.inc(len(chunk))
        yield chunk


def content_disposition(filename: str) -> str:
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
