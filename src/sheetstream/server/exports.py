"""``GET /exports/{table}.xlsx``: the table streamed as a workbook while it is being generated."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ..config import Settings
from ..db import Store, select_columns
from ..errors import NotFound
from ..offload import iterate_in_thread
from ..xlsx import deflater, write_xlsx

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

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
    compress = deflater(settings.deflate, settings.deflate_level)

    def generate():
        rows = store.read_rows(table, chosen, limit)
        return write_xlsx(
            rows,
            [c.name for c in chosen],
            sheet_name=table,
            max_sheet_rows=settings.max_sheet_rows,
            long_text=settings.long_text,  # type: ignore[arg-type]
            compress=compress,
        )

    return StreamingResponse(
        iterate_in_thread(generate, max_pending=settings.max_pending_chunks),
        media_type=XLSX,
        headers={"Content-Disposition": content_disposition(f"{table}.xlsx"), "Cache-Control": "no-store"},
    )


def content_disposition(filename: str) -> str:
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
