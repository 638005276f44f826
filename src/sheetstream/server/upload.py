"""One upload's way into a job: admitted (the caller's share, the queue, the spool, the sender's address),
received into a spool file, its format told, queued for a worker, and audited however it ends. The routes in
:mod:`.routes.imports` make one and run it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from .. import formats
from ..access import Identity
from ..config import ImportLimits
from ..errors import BadRequest
from ..formats.xlsx import ReadLimits
from ..pipeline.jobs import Job, JobBoard, fail, run_import_job
from ..pipeline.lifeline import Lifeline
from ..pipeline.states import State, move
from ..pipeline.validate import EXTRA_COLUMNS
from ..runtime import ProcessingQueue
from ..store import MODES, Store
from ..store.control import retried
from .deps import (
    require,
)
from .errors import job_json, job_response, job_status
from .kept import KeptUploads
from .logs import job_event
from .metrics import Metrics
from .shares import Shares
from .uploads import (
    Pace,
    Spool,
    SpoolBudget,
    check_declared_size,
    declared_size,
    receive_multipart,
    receive_raw,
)

log = logging.getLogger("sheetstream.imports")


class Upload:
    """One upload: admitted, received into a spool file, then queued for a worker as a job. It holds one of its
    caller's share of the queue until the job ends, and leaves an audit record however it ends."""

    def __init__(self, request: Request, job: Job, caller: Identity, store: Store, queue: ProcessingQueue,
                 board: JobBoard, metrics: Metrics, shares: Shares, kept: KeptUploads, budget: SpoolBudget,
                 limits: ImportLimits):
        self.request, self.job, self.caller, self.store, self.queue = request, job, caller, store, queue
        self.board, self.metrics, self.shares, self.kept = board, metrics, shares, kept
        self.budget, self.limits = budget, limits
        self.saving: set[asyncio.Future] = set()
        self.received: tuple[int, str | None] = (0, None)  # the body's size and SHA-256

    async def run(self, multipart: bool, wait: bool) -> JSONResponse:
        job = self.job
        check_declared_size(self.request, self.limits.max_upload_bytes)
        await run_in_threadpool(self.store.columns, job.table)  # 404 now, before the body is read, if it is missing
        state = self.request.app.state
        sending = state.senders.hold(state.gate.client_address(self.request))  # 429 past the address's uploads
        try:
            spool = self.admit(declared_size(self.request), prefix=f"upload-{job.id}-")  # named by its job: lifecycle
            try:
                with state.lifecycle.receiving(job.id):
                    await self.receive(spool, multipart)
            except BaseException:
                self.shares.give(self.caller)
                raise
        finally:
            sending()
        return await self.start(spool, wait)

    async def run_kept(self, preview: Job, wait: bool) -> JSONResponse:
        """Import for real the file ``preview`` (a dry run) checked and kept, without a second upload."""
        kept = self.kept.get(preview)  # 410 before anything else when it is gone
        spool = self.admit(preview.bytes_received, spare=kept)  # room, but never from that file
        try:
            await run_in_threadpool(self.kept.claim, preview, spool.path)
            self.received = (preview.bytes_received, None)
            # The kept file moved once (a second claim finds it gone); the dry run's record says by which job.
            await run_in_threadpool(self.board.mark_committed, preview.id, self.job.id)
        except BaseException:
            spool.remove()
            self.shares.give(self.caller)
            raise
        return await self.start(spool, wait)

    def admit(self, declared: int, prefix: str = "upload-", spare: Path | None = None) -> Spool:
        """One of the caller's share, 429 at once when the queue is full, and a spool place. The place in the queue's
        waiting list is taken once the body is in (:meth:`start`): while it arrives, the upload holds only a spool
        place (bounded apart), so slow senders cannot fill the queue."""
        self.shares.take(self.caller, self.queue.retry_after())
        try:
            self.queue.admit("import")
            return self.budget.open(declared, prefix=prefix, spare=spare)
        except BaseException:
            self.shares.give(self.caller)
            raise

    async def start(self, spool: Spool, wait: bool) -> JSONResponse:
        """Queue the job on ``spool``; answer 202 at once, or with ``wait`` when it has ended."""
        job = self.job
        move(job, State.QUEUED)
        try:
            await run_in_threadpool(self.board.save, job, True)
        except BaseException:
            spool.remove()
            self.shares.give(self.caller)
            raise
        self.queue.reserve("import", job.id)
        job_event(job, "queued")
        task = asyncio.create_task(self.process(spool))  # it inherits the request's id, for its log lines
        self.request.app.state.lifecycle.track(job.id, task)
        if wait:
            done = await asyncio.shield(task)
            return job_response(done, job_status(done) or 500)
        return JSONResponse(job_json(job), status_code=202, headers={"Location": f"/jobs/{job.id}"})

    async def receive(self, spool: Spool, multipart: bool) -> None:
        """The body, into ``spool``; on any failure the file is gone and the job records why."""
        job, limit, idle = self.job, self.limits.max_upload_bytes, self.limits.upload_idle_seconds
        pace = Pace(self.limits.upload_min_rate, self.limits.upload_grace_seconds)
        try:
            await run_in_threadpool(self.board.save, job, True)
            if multipart:
                fields = await receive_multipart(self.request, spool, limit, self.progress, idle, pace=pace)
                apply_form_fields(job, fields)
                require(self.caller, job.table, job.mode)  # the form may have asked for another mode
            else:
                await receive_raw(self.request, spool, limit, self.progress, idle, pace)
            if spool.size == 0:
                raise BadRequest("the upload is empty: send the .xlsx or .csv file as the request body")
            await run_in_threadpool(self.tell_format, spool)
            self.check_open()
        except BaseException as exc:
            self.received = (spool.size, None)
            spool.remove()
            await self.saved()
            fail(job, exc)
            await run_in_threadpool(self.board.save, job, True)
            job_event(job, "failed")
            await self.audit(job)
            raise
        await self.saved()
        self.received = (spool.size, spool.sha256)

    def tell_format(self, spool: Spool) -> None:
        """The upload's format, from its first bytes and what the client declared (415 when they disagree)."""
        with open(spool.path, "rb") as f:
            head = f.read(4096)
        filename, file_type = spool.declared
        media = file_type or self.request.headers.get("content-type", "")
        self.job.format = formats.detect(head, filename or None, media).name

    def check_open(self) -> None:
        """Once the server drains, an upload still arriving is refused (503): it could not finish in time."""
        self.queue.check_open()

    async def process(self, spool: Spool) -> Job:
        """The job on a worker of the queue; returns it finished. The spool file goes in every outcome."""
        lifeline = self.request.app.state.lifecycle.lifeline
        job = await process(self.queue, self.store, self.board, self.job, spool, self.metrics, self.kept, lifeline,
                            self.limits.import_cpu_seconds)
        job_event(job, job.state)
        self.shares.give(self.caller)
        await self.audit(job)
        return job

    async def audit(self, job: Job) -> None:
        """The import's audit record (it outlives the job): a failure to write it is logged, never hidden."""
        size, sha256 = self.received
        entry = {"at": time.time(), "who": self.caller.key, "name": self.caller.name, "via": self.caller.kind,
                 "table": job.table, "mode": job.mode, "dry_run": job.dry_run, "bytes": size, "sha256": sha256,
                 "rows_written": job.rows_inserted if job.state == "done" and not job.dry_run else 0,
                 "outcome": "done" if job.state == "done" else job.error, "message": job.message, "job_id": job.id,
                 "client": self.request.app.state.gate.client_address(self.request)}
        try:  # through a lost connection too (a restart of the database): repeated at worst, never lost
            await run_in_threadpool(retried, lambda: self.store.audit.record(entry), f"the audit record of {job.id}")
        except Exception:
            log.exception("could not write the audit record of import %s: %s", job.id, entry)

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


def apply_form_fields(job: Job, fields: dict[str, str]) -> None:
    """Form fields ``mode``, ``dry_run``, ``sheet`` and ``extra_columns`` override the query (a browser form sends
    them so)."""
    if fields.get("extra_columns"):
        if fields["extra_columns"] not in EXTRA_COLUMNS:
            raise BadRequest(f"extra_columns must be one of {', '.join(EXTRA_COLUMNS)} (got {fields['extra_columns']!r})")
        job.extra_columns = fields["extra_columns"]
    if "mode" in fields:
        if fields["mode"] not in MODES:
            raise BadRequest(f"mode must be one of {', '.join(MODES)} (got {fields['mode']!r})")
        job.mode = fields["mode"]
    if "dry_run" in fields:
        job.dry_run = fields["dry_run"].strip().lower() in ("1", "true", "on", "yes")
    if fields.get("sheet"):
        job.sheet = fields["sheet"]


async def process(queue: ProcessingQueue, store: Store, board: JobBoard, job: Job, spool: Spool,
                  metrics: Metrics, kept: KeptUploads, lifeline: Lifeline | None = None,
                  cpu_seconds: float = ImportLimits.import_cpu_seconds) -> Job:
    """The job on a worker of the queue; returns it finished. The spool file goes in every outcome, unless the
    worker kept it for a while (a dry run, or problems found: :mod:`..kept`)."""
    try:
        job = await queue.call("import", run_import_job, store, job, spool.path, ReadLimits(), kept.keep(job),
                               lifeline, queue.strategy.split, cpu_seconds, ticket=job.id)
        if job.kept_until is not None:
            kept.noted(job)  # counted in the spool's budget from now on, before its spool place is given back
    except BaseException as exc:  # the worker did not end it (killed, cancelled): settle it, let cancellation through
        # Settle, not save: the worker may have committed (its record then says so, and stands).
        try:
            settled = await run_in_threadpool(board.settle, job.id, exc)  # tries again through a lost connection
        except Exception:  # the database is away for longer: the record stays running; once no task of this
            # instance runs it, its heartbeat stops and a sweep settles it (lifecycle)
            log.exception("job %s could not be settled", job.id)
            settled = None
        if settled is None:
            fail(job, exc)
        job = settled or job
        if not isinstance(exc, Exception):
            raise
    finally:
        board.forget(job.id)
        spool.remove()  # unless the worker kept it (moved it away): its room goes back either way
    if job.state == "done":
        metrics.rows_imported.inc(job.rows_inserted)
    return job
