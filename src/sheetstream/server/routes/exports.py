"""``GET /exports/{table}.xlsx``: the table streamed as a workbook while it is being generated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...formats.xlsx import MEDIA_TYPE
from ...pipeline.exports import export_workbook
from ...runtime import TaskStream
from ...store import select_columns
from ..deps import MetricsDep, PermittedTable, QueueDep, SettingsDep, StoreDep
from ..metrics import Metrics

router = APIRouter()

#: The largest LIMIT both stores take: a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's bigint).
MAX_LIMIT = 2**63 - 1


@router.get("/exports/{table}.xlsx", response_class=StreamingResponse)
async def export_table(
    table: PermittedTable,
    settings: SettingsDep,
    store: StoreDep,
    queue: QueueDep,
    metrics: MetricsDep,
    columns: Annotated[str | None, Query(description="Comma-separated column names, in the order wanted")] = None,
    limit: Annotated[int | None, Query(ge=0, le=MAX_LIMIT, description="At most this many rows")] = None,
) -> StreamingResponse:
    catalog = await run_in_threadpool(store.columns, table)
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    chosen = select_columns(catalog, wanted)
    queue.admit("export")
    stream = queue.stream("export", export_workbook, store, table, chosen, limit, settings.export)
    return StreamingResponse(
        counted(stream, metrics),
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": content_disposition(f"{table}.xlsx"), "Cache-Control": "no-store"},
    )


async def counted(stream: TaskStream, metrics: Metrics) -> AsyncIterator[bytes]:
    """The chunks, counted into the metrics as they go; the rows once the workbook is complete."""
    async for chunk in stream:
        metrics.bytes_out.inc(len(chunk))
        yield chunk
    metrics.rows_exported.inc(stream.result.rows)


def content_disposition(filename: str) -> str:
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
