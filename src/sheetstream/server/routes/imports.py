"""``PUT|POST /imports/{table}``: uploads received as streams to a spool file, then imported as jobs (each upload's
way in is :class:`..upload.Upload`)."""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ... import formats
from ...errors import BadRequest
from ...pipeline.jobs import Job
from ..deps import (
    BoardDep,
    Caller,
    MetricsDep,
    QueueDep,
    SettingsDep,
    SharesDep,
    SpoolDep,
    StoreDep,
    WritableTable,
    default_mode,
    require,
)
from ..kept import KeptDep
from ..logs import REQUEST_ID
from ..upload import Upload

router = APIRouter()
log = logging.getLogger("sheetstream.imports")

Mode = Literal["append", "replace", "upsert"]
ModeQuery = Annotated[Mode | None, Query(description="append: add rows; upsert: update the rows whose primary key "
                                        "exists and add the others; replace: replace the whole table. Default: upsert "
                                        "when the table has a primary key and the caller may upsert, else append")]
DryRun = Annotated[bool, Query(description="validate and roll back: nothing is written")]
SheetQuery = Annotated[str | None, Query(description="the sheet to import (default: the first)")]
Wait = Annotated[bool, Query(description="answer when the job has ended: 200, or its error status")]
ExtraColumns = Literal["ignore", "error"]
ExtraQuery = Annotated[ExtraColumns, Query(description="header columns the table does not have: ignore them (a "
                                                        "warning), or refuse the file")]
EncodingQuery = Annotated[str | None, Query(max_length=40, description="CSV: the file's encoding when it is not "
                                            "UTF-8 or UTF-16 with a BOM (cp1252 for legacy single-byte files)")]
DelimiterQuery = Annotated[str | None, Query(max_length=5, description="CSV: the delimiter, when it should not "
                                             "be told from the first lines (one of , ; | tab)")]


def upload_of(request: Request, table: WritableTable, caller: Caller, settings: SettingsDep, store: StoreDep,
              queue: QueueDep, board: BoardDep, metrics: MetricsDep, shares: SharesDep, kept: KeptDep,
              budget: SpoolDep, mode: ModeQuery = None, dry_run: DryRun = False, sheet: SheetQuery = None,
              extra_columns: ExtraQuery = "ignore", encoding: EncodingQuery = None,
              delimiter: DelimiterQuery = None) -> Upload:
    mode = mode or default_mode(caller, table, store.columns(table))  # a sync dependency: in the thread pool
    if request.method == "PUT":  # a form's fields may still change the mode: checked once they are read
        require(caller, table, mode)
    try:  # the reading options of any format that has them (CSV); checked before the body is read
        options = {k: v for f in formats.FORMATS.values()
                   for k, v in f.import_options({"encoding": encoding or "", "delimiter": delimiter or ""}).items()}
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    job = Job(table=table, mode=mode, dry_run=dry_run, sheet=sheet, extra_columns=extra_columns, owner=caller.key,
              options=options, request_id=REQUEST_ID.get())
    return Upload(request, job, caller, store, queue, board, metrics, shares, kept, budget, settings.imports)


UploadDep = Annotated[Upload, Depends(upload_of)]


@router.put("/imports/{table}", status_code=202)
async def put_import(upload: UploadDep, wait: Wait = False) -> JSONResponse:
    """Import the request body, the .xlsx file itself."""
    return await upload.run(multipart=False, wait=wait)


@router.post("/imports/{table}", status_code=202)
async def post_import(upload: UploadDep, wait: Wait = False) -> JSONResponse:
    """Import the ``file`` field of a ``multipart/form-data`` form (what a browser form sends)."""
    return await upload.run(multipart=True, wait=wait)


