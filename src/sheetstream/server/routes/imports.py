"""``PUT|POST /imports/{table}``: uploads received as streams to a spool file, then imported as jobs."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...config import ImportLimits
from ...errors import BadRequest
from ...pipeline.jobs import Job, JobBoard, fail, run_import_job
from ...runtime import ProcessingQueue
from ...store import MODES, Store
from ..deps import BoardDep, MetricsDep, PermittedTable, QueueDep, SettingsDep, SpoolDep, StoreDep
from ..errors import job_json, job_status
from ..metrics import Metrics
from ..uploads import Spool, SpoolBudget, check_declared_size, declared_size, receive_multipart, receive_raw

router = APIRouter()

Mode = Literal["append", "replace", "upsert"]
ModeQuery = Annotated[Mode, Query(description="append: insert; replace: delete all rows first; upsert: by primary key")]
DryRun = Annotated[bool, Query(description="validate and roll back: nothing is written")]
SheetQuery = Annotated[str | None, Query(description="the sheet to import (default: the first)")]
Wait = Annotated[bool, Query(description="answer when the job has ended: 200, or its error status")]


class Upload:
    """One upload: admitted, received into a spool file, then queued for a worker as a job."""

    def __init__(self, request: Request, job: Job, store: Store, queue: ProcessingQueue, board: JobBoard,
                 metrics: Metrics, budget: SpoolBudget, limits: ImportLimits):
        self.request, self.job, self.store, self.queue = request, job, store, queue
        self.board, self.metrics, self.budget, self.limits = board, metrics, budget, limits
        self.saving: set[asyncio.Future] = set()

    async def run(self, multipart: bool, wait: bool) -> JSONResponse:
        job = self.job
        check_declared_size(self.request, self.limits.max_upload_bytes)
        await run_in_threadpool(self.store.columns, job.table)  # 404 now, before the body is read, if it is missing
        # 429 at once when the queue is full. The place in its waiting list is taken once the body is in: while it
        # arrives, the upload holds only a spool place (bounded apart), so slow senders cannot fill the queue.
        self.queue.admit("import")
        spool = self.budget.open(declared_size(self.request))
        await self.receive(spool, multipart)
        job.state = "queued"
        try:
            await run_in_threadpool(self.board.save, job, True)
        except BaseException:
            spool.remove()
            raise
        self.queue.reserve("import", job.id)
        task = asyncio.create_task(process(self.queue, self.store, self.board, job, spool, self.metrics))
        tasks: set[asyncio.Task] = self.request.app.state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        if wait:
            done = await asyncio.shield(task)
            return JSONResponse(job_json(done), status_code=job_status(done) or 500)
        return JSONResponse(job_json(job), status_code=202, headers={"Location": f"/jobs/{job.id}"})

    async def receive(self, spool: Spool, multipart: bool) -> None:
        """The body, into ``spool``; on any failure the file is gone and the job records why."""
        job, limit, idle = self.job, self.limits.max_upload_bytes, self.limits.upload_idle_seconds
        try:
            await run_in_threadpool(self.board.save, job, True)
            if multipart:
                fields = await receive_multipart(self.request, spool, limit, self.progress, idle)
                apply_form_fields(job, fields)
            else:
                await receive_raw(self.request, spool, limit, self.progress, idle)
            if spool.size == 0:
                raise BadRequest("the upload is empty: send the .xlsx file as the request body")
        except BaseException as exc:
            spool.remove()
            await self.saved()
            fail(job, exc)
            await run_in_threadpool(self.board.save, job, True)
            raise
        await self.saved()

    def progress(self, received: int) -> None:
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
              board: BoardDep, metrics: MetricsDep, budget: SpoolDep, mode: ModeQuery = "append",
              dry_run: DryRun = False, sheet: SheetQuery = None) -> Upload:
    job = Job(table=table, mode=mode, dry_run=dry_run, sheet=sheet)
    return Upload(request, job, store, queue, board, metrics, budget, settings.imports)


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


async def process(queue: ProcessingQueue, store: Store, board: JobBoard, job: Job, spool: Spool,
                  metrics: Metrics) -> Job:
    """The job on a worker of the queue; returns it finished. The spool file goes in every outcome."""
    try:
        job = await queue.call("import", run_import_job, store, job, spool.path, ticket=job.id)
    except BaseException as exc:  # the worker could not run it at all: record that, then let cancellation through
        fail(job, exc)
        await run_in_threadpool(board.save, job, True)
        if not isinstance(exc, Exception):
            raise
    finally:
        board.forget(job.id)
        spool.remove()
    if job.state == "done":
        metrics.rows_imported.inc(job.rows_inserted)
    return job
