"""``GET /exports/{table}.xlsx`` (and ``.csv``, one route per registered format): the table streamed while the
file is being generated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ... import formats
from ...config import Settings
from ...errors import BadRequest
from ...pipeline.exports import check_options, export_workbook
from ...pipeline.query import ExportQuery, parse_export_query
from ...store import Store
from ..deps import Caller, DownloadsDep, ReadableTable, SettingsDep, StoreDep
from ..streams import content_disposition

router = APIRouter()

#: The query parameters that are a format's options, not the rows' filters.
FORMAT_OPTIONS = frozenset({"delimiter", "bom", "formulas"})

#: The largest LIMIT both stores take: a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's bigint).
MAX_LIMIT = 2**63 - 1


Limit = Annotated[int | None, Query(ge=0, le=MAX_LIMIT, description="At most this many rows")]


async def checked(request: Request, fmt: formats.Format, table: str, store: Store, settings: Settings,
                  limit: int | None) -> tuple[ExportQuery, dict[str, str]]:
    """What an export of ``table`` as ``fmt`` would hold (its query) and the format's own options, each checked
    (400 naming what is wrong), before anything is queued: GET and HEAD answer alike."""
    catalog = await run_in_threadpool(store.columns, table)
    own = {k: request.query_params[k] for k in FORMAT_OPTIONS if k in request.query_params}
    try:
        check_options(fmt.name, settings.export, own)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    rows = [(k, v) for k, v in request.query_params.multi_items() if k not in FORMAT_OPTIONS]
    return parse_export_query(rows, catalog, limit), own  # filters, order, select: docs/exports.md


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
        limit: Limit = None,
        delimiter: Annotated[str | None, Query(max_length=5, description="CSV: , ; | or tab (default ,)")] = None,
        bom: Annotated[bool | None, Query(description="CSV: start with a UTF-8 byte order mark (Excel on Windows "
                                          "needs one to read UTF-8)")] = None,
        formulas: Annotated[str | None, Query(description="CSV: neutralise (default: texts that start with = + - @ "
                                              "get a leading ', against formula injection) or keep")] = None,
    ) -> StreamingResponse:
        # columns, delimiter, bom and formulas are declared for the API's description; checked() reads them all.
        query, own = await checked(request, fmt, table, store, settings, limit)
        return downloads.open(caller, f"{table}.{fmt.extension}", export_workbook, store, table, query,
                              settings.export, fmt.name, own, media_type=fmt.media_type)

    export_table.__name__ = f"export_{fmt.name}"
    export_table.__doc__ = f"The table streamed as {fmt.extension.upper()} while it is generated."
    return export_table


def head_route(fmt: formats.Format) -> Callable[..., Awaitable[Response]]:
    async def head_export(request: Request, table: ReadableTable, caller: Caller, settings: SettingsDep,
                          store: StoreDep, limit: Limit = None) -> Response:
        """The export's headers, no body and no work: the table, the grant, the query and the options are checked
        as for GET."""
        await checked(request, fmt, table, store, settings, limit)
        return Response(media_type=fmt.media_type, headers={
            "Content-Disposition": content_disposition(f"{table}.{fmt.extension}"), "Cache-Control": "no-store"})

    head_export.__name__ = f"head_{fmt.name}"
    return head_export


for _format in formats.FORMATS.values():
    router.add_api_route(f"/exports/{{table}}.{_format.extension}", export_route(_format), methods=["GET"],
                         response_class=StreamingResponse, name=f"export_{_format.name}")
    router.add_api_route(f"/exports/{{table}}.{_format.extension}", head_route(_format), methods=["HEAD"],
                         include_in_schema=False, name=f"head_{_format.name}")
