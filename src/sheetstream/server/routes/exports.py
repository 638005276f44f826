"""``GET /exports/{table}.xlsx`` (and ``.csv``, one route per registered format): the table streamed while the
file is being generated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ... import formats
from ...errors import BadRequest
from ...pipeline.exports import check_options, export_workbook
from ...pipeline.query import parse_export_query
from ...store import select_columns
from ..deps import Caller, DownloadsDep, ReadableTable, SettingsDep, StoreDep
from ..streams import content_disposition

router = APIRouter()

#: The query parameters that are a format's options, not the rows' filters.
FORMAT_OPTIONS = frozenset({"delimiter", "bom", "formulas"})

#: The largest LIMIT both stores take: a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's bigint).
MAX_LIMIT = 2**63 - 1


def export_route(fmt: formats.Format) -> Callable[..., Awaitable[StreamingResponse]]:
    async def export_table(
        request: Request,
        table: ReadableTable,
        caller: Caller,
        settings: SettingsDep,
        store: StoreDep,
        downloads: DownloadsDep,
        columns: Annotated[str | None, Query(description="Comma-separated column names, in the order wanted (also "
                                             "select=); other parameters filter and order the rows "
                                             "(docs/exports.md)")] = None,
        limit: Annotated[int | None, Query(ge=0, le=MAX_LIMIT, description="At most this many rows")] = None,
        delimiter: Annotated[str | None, Query(max_length=5, description="CSV: , ; | or tab (default ,)")] = None,
        bom: Annotated[bool | None, Query(description="CSV: start with a UTF-8 byte order mark (Excel on Windows "
                                          "needs one to read UTF-8)")] = None,
        formulas: Annotated[str | None, Query(description="CSV: neutralise (default: texts that start with = + - @ "
                                              "get a leading ', against formula injection) or keep")] = None,
    ) -> StreamingResponse:
        catalog = await run_in_threadpool(store.columns, table)
        own = {k: v for k, v in (("delimiter", delimiter), ("bom", None if bom is None else str(bom).lower()),
                                 ("formulas", formulas)) if v is not None}
        try:
            check_options(fmt.name, settings.export, own)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        rows = [(k, v) for k, v in request.query_params.multi_items() if k not in FORMAT_OPTIONS]
        query = parse_export_query(rows, catalog, limit)  # filters, order, select: docs/exports.md
        return downloads.open(caller, f"{table}.{fmt.extension}", export_workbook, store, table, query,
                              settings.export, fmt.name, own, media_type=fmt.media_type)

    export_table.__name__ = f"export_{fmt.name}"
    export_table.__doc__ = f"The table streamed as {fmt.extension.upper()} while it is generated."
    return export_table


def head_route(fmt: formats.Format) -> Callable[..., Awaitable[Response]]:
    async def head_export(table: ReadableTable, caller: Caller, settings: SettingsDep, store: StoreDep,
                          columns: str | None = None) -> Response:
        """The export's headers, no body and no work: the table, the grant and the columns are checked as for GET."""
        catalog = await run_in_threadpool(store.columns, table)
        select_columns(catalog, [c.strip() for c in columns.split(",") if c.strip()] if columns else None)
        return Response(media_type=fmt.media_type, headers={
            "Content-Disposition": content_disposition(f"{table}.{fmt.extension}"), "Cache-Control": "no-store"})

    head_export.__name__ = f"head_{fmt.name}"
    return head_export


for _format in formats.FORMATS.values():
    router.add_api_route(f"/exports/{{table}}.{_format.extension}", export_route(_format), methods=["GET"],
                         response_class=StreamingResponse, name=f"export_{_format.name}")
    router.add_api_route(f"/exports/{{table}}.{_format.extension}", head_route(_format), methods=["HEAD"],
                         include_in_schema=False, name=f"head_{_format.name}")
