"""``GET /exports/q/{name}.xlsx?param=...``: a named query from the configuration, streamed as a workbook."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ...errors import NotFound
from ...pipeline.exports import export_named
from ...pipeline.named import parse_arguments
from ..deps import Caller, DownloadsDep, SettingsDep, StoreDep, require

router = APIRouter()


@router.get("/exports/q/{name}.xlsx", response_class=StreamingResponse)
async def export_query(request: Request, name: str, caller: Caller, settings: SettingsDep, store: StoreDep,
                       downloads: DownloadsDep) -> StreamingResponse:
    """The query's parameters come from the query string, typed by its definition; a read grant on its name is
    needed, as for a table."""
    query = next((q for q in settings.queries if q.name == name), None)
    if query is None:
        raise NotFound(f"there is no named query {name!r}; named queries: "
                       f"{', '.join(q.name for q in settings.queries) or 'none'}")
    require(caller, name, "read")
    values = parse_arguments(query, request.query_params.multi_items())
    columns = request.app.state.query_columns[name]  # read from the database at start (app lifespan)
    return downloads.open(caller, f"{name}.xlsx", export_named, store, query, values, columns, settings.export)
