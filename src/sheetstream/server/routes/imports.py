"""``PUT|POST /imports/{table}``: uploads received as streams to a spool file, then imported as jobs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...errors import BadRequest
from ...formats.xlsx import ReadLimits
from ...pipeline.jobs import Job, JobBoard, fail, run_import_job
from ...pipeline.lifeline import Lifeline
from ...runtime import ProcessingQueue
from ...store import MODES, Store
from ..deps import BoardDep, MetricsDep, PermittedTable, QueueDep, SettingsDep, StoreDep
from ..errors import job_json, job_status
from ..metrics import Metrics
from ..uploads import Spool, check_declared_size, receive_multipart, receive_raw

router = APIRouter()
log = logging.getLogger("sheetstream.imports")

Mode = Literal["append", "replace", "upsert"]
ModeQuery = Annotated[Mode, Query(description="append: insert; replace: delete all rows first; upsert: by primary key")]
DryRun = Annotated[bool, Query(description="validate and roll back: nothing is written")]
SheetQuery = Annotated[str | None, Query(description="the sheet to import (default: the first)")]
Wait = Annotated[bool, Query(description="answer when the job has ended: 200, or its error status")]


class Upload:
    """One upload: admitted to the queue, received into a spool file, then handed to a worker as a job."""

    def __init__(self, request: Request, job: Job, store: Store, queue: ProcessingQueue, board: JobBoard,
                 metrics: Metrics, spool_dir: Path, limit: int):
        self.request, self.job, self.store, self.queue = request, job, store, queue
        self.board, self.metrics, self.spool_dir, self.limit = board, metrics, spool_dir, limit
        self.saving: set[asyncio.Future] = set()

    async def run(self, multipart: bool, wait: bool) -> JSONResponse:
        job = self.job
        check_declared_size(self.request, self.limit)
        await run_in_threadpool(self.store.columns, job.table)  # 404 now, before the body is read, if it is missing
        self.queue.admit("import", ticket=job.id)  # its place in the waiting list is held while the body arrives
        try:
            await run_in_threadpool(self.board.save, job, True)
        except BaseException:
            self.queue.withdraw("import", job.id)
            raise
        spool = await self.receive(multipart)
        job.state = "queued"
        await run_in_threadpool(self.board.save, job, True)
        lifecycle = self.request.app.state.lifecycle
        task = asyncio.create_task(process(self.queue, self.store, self.board, job, spool, self.metrics,
                                           lifecycle.lifeline))
        lifecycle.track(job.id, task)
        if wait:
            done = await asyncio.shield(task)
            return JSONResponse(job_json(done), status_code=job_status(done) or 500)
        return JSONResponse(job_json(job), status_code=202, headers={"Location": f"/jobs/{job.id}"})

    async def receive(self, multipart: bool) -> Path:
        """The body, into a spool file; on any failure the file is gone and the job records why."""
        job = self.job
        spool = Spool(self.spool_dir, prefix=f"upload-{job.id}-")  # the job's id: a dead run's file is found
        try:
            if multipart:
                apply_form_fields(job, await receive_multipart(self.request, spool, self.limit, self.progress))
            else:
                await receive_raw(self.request, spool, self.limit, self.progress)
            if spool.size == 0:
                raise BadRequest("the upload is empty: send the .xlsx file as the request body")
            self.check_open()
        except BaseException as exc:
            self.queue.withdraw("import", job.id)
            spool.remove()
            await self.saved()
            fail(job, exc)
            await run_in_threadpool(self.board.save, job, True)
            raise
        await self.saved()
        return spool.path

    def check_open(self) -> None:
        """Once the server drains, an upload still arriving is refused (503): it could not finish in time."""
        self.queue.check_open()

    def progress(self, received: int) -> None:
        self.check_open()
        self.metrics.bytes_in.inc(received - self.job.bytes_received)
        self.job.bytes_received = received
        if not self.saving:  # one progress save at a time; the board throttles them further
            future = asyncio.get_running_loop().run_in_executor(None, self.board.save, self.job)
            self.saving.add(future)
            future.add_done_callback(self.saving.discard)

    async def saved(self) -> None:
        if self.saving:
            await asyncio.gather(*self.saving, return_exceptions=True)


def upload_of(request: Request, table: PermittedTable, settings: SettingsDep, store: StoreDep, queue: QueueDep,
              board: BoardDep, metrics: MetricsDep, mode: ModeQuery = "append", dry_run: DryRun = False,
              sheet: SheetQuery = None) -> Upload:
    job = Job(table=table, mode=mode, dry_run=dry_run, sheet=sheet)
    return Upload(request, job, store, queue, board, metrics, settings.spool_dir, settings.imports.max_upload_bytes)


UploadDep = Annotated[Upload, Depends(upload_of)]


@router.put("/imports/{table}", status_code=202)
async def put_import(upload: UploadDep, wait: Wait = False) -> JSONResponse:
    """Import the request body, the .xlsx file itself."""
    return await upload.run(multipart=False, wait=wait)


@router.post("/imports/{table}", status_code=202)
async def post_import(upload: UploadDep, wait: Wait = False) -> JSONResponse:
    """Import the ``file`` field of a ``multipart/form-data`` form (what a browser form sends)."""
    return await upload.run(multipart=True, wait=wait)


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


async def process(queue: ProcessingQueue, store: Store, board: JobBoard, job: Job, path: Path,
                  metrics: Metrics, lifeline: Lifeline | None = None) -> Job:
    """The job on a worker of the queue; returns it finished. The spool file goes in every outcome."""
    try:
        job = await queue.call("import", run_import_job, store, job, path, ReadLimits(), lifeline, ticket=job.id)
    except BaseException as exc:  # the worker did not end it (killed, cancelled): settle it, let cancellation through
        # Settle, not save: the worker may have committed (its record then says so, and stands).
        try:
            settled = await run_in_threadpool(board.settle, job.id, exc)
        except Exception:  # the database is away: the record stays running, and a sweep settles it later
            log.exception("job %s could not be settled", job.id)
            settled = None
        if settled is None:
            fail(job, exc)
        job = settled or job
        if not isinstance(exc, Exception):
            raise
    finally:
        board.forget(job.id)
        path.unlink(missing_ok=True)
    if job.state == "done":
        metrics.rows_imported.inc(job.rows_inserted)
    return job
