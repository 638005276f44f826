"""``GET /exports/q/{name}.xlsx?param=...``: a named query from the configuration, streamed as a workbook."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ...errors import NotFound
from ...formats.xlsx import MEDIA_TYPE
from ...pipeline.exports import export_named
from ...pipeline.named import parse_arguments
from ..deps import Caller, MetricsDep, QueueDep, SettingsDep, SharesDep, StoreDep, require
from .exports import BoundedStreamingResponse, content_disposition, counted

router = APIRouter()


@router.get("/exports/q/{name}.xlsx", response_class=StreamingResponse)
async def export_query(request: Request, name: str, caller: Caller, shares: SharesDep, settings: SettingsDep,
                       store: StoreDep, queue: QueueDep, metrics: MetricsDep) -> StreamingResponse:
    """The query's parameters come from the query string, typed by its definition; a read grant on its name is
    needed, as for a table."""
    query = next((q for q in settings.queries if q.name == name), None)
    if query is None:
        raise NotFound(f"there is no named query {name!r}; named queries: "
                       f"{', '.join(q.name for q in settings.queries) or 'none'}")
    require(caller, name, "read")
    values = parse_arguments(query, request.query_params.multi_items())
    columns = request.app.state.query_columns[name]  # read from the database at start (app lifespan)
    shares.take(caller, queue.retry_after())
    try:
        queue.admit("export")
    except BaseException:
        shares.give(caller)
        raise
    stream = queue.stream("export", export_named, store, query, values, columns, settings.export)
    return BoundedStreamingResponse(
        counted(stream, metrics),
        release=lambda: shares.give(caller),
        stall_seconds=settings.export.export_stall_seconds,
        max_seconds=settings.export.export_max_seconds,
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": content_disposition(f"{name}.xlsx"), "Cache-Control": "no-store"},
    )
