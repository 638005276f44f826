"""``PUT|POST /imports/{table}`` and ``GET /jobs/{id}``: uploads received as streams, imported as jobs."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..config import Settings
from ..db import MODES, Store
from ..errors import BadRequest, Conflict, NotFound, SheetstreamError
from ..jobs import Job, JobBoard
from ..processing import ProcessingQueue
from ..tasks import import_file
from .metrics import Metrics
from .uploads import Spool, check_declared_size, receive_multipart, receive_raw

log = logging.getLogger("sheetstream.imports")
router = APIRouter()

Mode = Literal["append", "replace", "upsert"]
ModeQuery = Annotated[Mode, Query(description="append: insert; replace: delete all rows first; upsert: by primary key")]
DryRun = Annotated[bool, Query(description="validate and roll back: nothing is written")]
SheetQuery = Annotated[str | None, Query(description="the sheet to import (default: the first)")]
Wait = Annotated[bool, Query(description="answer when the job has ended: 200, or its error status")]


@router.put("/imports/{table}", status_code=202)
async def put_import(request: Request, table: str, mode: ModeQuery = "append", dry_run: DryRun = False,
                     sheet: SheetQuery = None, wait: Wait = False) -> JSONResponse:
    """Import the request body, the .xlsx file itself."""
    return await start_import(request, table, Job(table=table, mode=mode, dry_run=dry_run, sheet=sheet), wait,
                              multipart=False)


@router.post("/imports/{table}", status_code=202)
async def post_import(request: Request, table: str, mode: ModeQuery = "append", dry_run: DryRun = False,
                      sheet: SheetQuery = None, wait: Wait = False) -> JSONResponse:
    """Import the ``file`` field of a ``multipart/form-data`` form (what a browser form sends)."""
    return await start_import(request, table, Job(table=table, mode=mode, dry_run=dry_run, sheet=sheet), wait,
                              multipart=True)


@router.get("/jobs/{job_id}")
async def get_job(request: Request, job_id: str) -> dict:
    board: JobBoard = request.app.state.board
    job = await run_in_threadpool(board.load, job_id)
    if job is None:
        raise NotFound(f"there is no job {job_id!r}")
    position = request.app.state.queue.position(job_id)
    return {**job.to_json(), "queue_position": position}


@router.delete("/jobs/{job_id}", status_code=202)
async def cancel_job(request: Request, job_id: str) -> JSONResponse:
    """Cancel an import: its transaction rolls back, nothing is written. Works from any instance."""
    board: JobBoard = request.app.state.board
    job = await run_in_threadpool(board.load, job_id)
    if job is None:
        raise NotFound(f"there is no job {job_id!r}")
    if job.ended:
        raise Conflict(f"job {job_id} has already ended ({job.state}); there is nothing to cancel", state=job.state)
    await run_in_threadpool(board.request_cancel, job_id)
    return JSONResponse({**job.to_json(), "cancel_requested": True}, status_code=202)


async def start_import(request: Request, table: str, job: Job, wait: bool, multipart: bool) -> JSONResponse:
    settings: Settings = request.app.state.settings
    store: Store = request.app.state.store
    board: JobBoard = request.app.state.board
    if table not in settings.tables:
        raise NotFound(f"table {table!r} does not take imports on this server; tables: {', '.join(settings.tables)}",
                       tables=list(settings.tables))
    check_declared_size(request, settings.max_upload_bytes)
    queue: ProcessingQueue = request.app.state.queue
    await run_in_threadpool(store.columns, table)  # 404 now, before the body is read, if the table is missing
    queue.admit("import", ticket=job.id)  # its place in the waiting list is held while the body arrives
    try:
        await run_in_threadpool(board.save, job, True)
    except BaseException:
        queue.withdraw("import", job.id)
        raise
    spool = Spool(settings.spool_dir)
    saving: set[asyncio.Future] = set()

    metrics: Metrics = request.app.state.metrics

    def progress(received: int) -> None:
        metrics.bytes_in.inc(received - job.bytes_received)
        job.bytes_received = received
        if not saving:  # one progress save at a time; the board throttles them further
            future = asyncio.get_running_loop().run_in_executor(None, board.save, job)
            saving.add(future)
            future.add_done_callback(saving.discard)

    try:
        if multipart:
            fields = await receive_multipart(request, spool, settings.max_upload_bytes, progress)
            apply_form_fields(job, fields)
        else:
            await receive_raw(request, spool, settings.max_upload_bytes, progress)
        if spool.size == 0:
            raise BadRequest("the upload is empty: send the .xlsx file as the request body")
    except BaseException as exc:
        queue.withdraw("import", job.id)
        spool.remove()
        if saving:
            await asyncio.gather(*saving, return_exceptions=True)
        fail(job, exc)
        await run_in_threadpool(board.save, job, True)
        raise
    if saving:
        await asyncio.gather(*saving, return_exceptions=True)
    job.state = "queued"
    await run_in_threadpool(board.save, job, True)
    task = asyncio.create_task(process(queue, store, board, job, spool.path, metrics))
    request.app.state.tasks.add(task)
    task.add_done_callback(request.app.state.tasks.discard)
    if wait:
        await asyncio.shield(task)
        return JSONResponse(job.to_json(), status_code=job.status or 500)
    return JSONResponse(job.to_json(), status_code=202, headers={"Location": f"/jobs/{job.id}"})


def apply_form_fields(job: Job, fields: dict[str, str]) -> None:
    """Form fields ``mode``, ``dry_run`` and ``sheet`` override the query (a browser form sends them so)."""
    if "mode" in fields:
        if fields["mode"] not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)} (got {fields['mode']!r})")
        job.mode = fields["mode"]
    if "dry_run" in fields:
        job.dry_run = fields["dry_run"].strip().lower() in ("1", "true", "on", "yes")
    if fields.get("sheet"):
        job.sheet = fields["sheet"]


def fail(job: Job, exc: BaseException) -> None:
    job.state = "failed"
    job.finished_at = time.time()
    if isinstance(exc, SheetstreamError):
        job.status, job.message, job.error = exc.status, exc.message, exc.code
        job.errors = exc.detail.get("errors", [])
        job.error_total = exc.detail.get("error_total", len(job.errors))
    elif isinstance(exc, asyncio.CancelledError):
        job.status, job.error = 499, "client_closed_request"
        job.message = "the upload was cancelled before it ended; nothing was written"
    else:
        log.exception("import %s failed", job.id, exc_info=exc)
        job.status, job.error = 500, "internal_error"
        job.message = f"internal error ({type(exc).__name__}); nothing was written"


async def process(queue: ProcessingQueue, store: Store, board: JobBoard, job: Job, path: Path,
                  metrics: Metrics) -> None:
    """Parse, validate and write on a worker of the queue; the job records how it ended. The spool file goes."""
    try:
        done = await queue.call("import", import_file, store, job, path, ticket=job.id)
        job.__dict__.update(done.__dict__)  # a process worker returns a copy
        job.state, job.status = "done", 200
        metrics.rows_imported.inc(job.rows_inserted)
        job.finished_at = time.time()
        job.message = (f"dry run: {job.rows_read:,} rows are valid; nothing was written" if job.dry_run
                       else f"{job.rows_inserted:,} rows written to {job.table!r} ({job.mode})")
    except BaseException as exc:
        if queue.strategy == "process":  # the worker saved its progress; this copy of the job did not see it
            saved = await run_in_threadpool(board.load, job.id)
            if saved:
                job.rows_read, job.rows_inserted = saved.rows_read, saved.rows_inserted
        fail(job, exc)
        if not isinstance(exc, Exception):
            raise
    finally:
        board.forget(job.id)
        path.unlink(missing_ok=True)
        await run_in_threadpool(board.save, job, True)
