"""``/jobs``: import jobs' progress and outcome, cancelling one, committing a dry run without sending the file
again, and the uploaded workbook handed back with its problems marked. A job belongs to the identity that
started it: to anyone else (but an admin) it does not exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...access import Identity
from ...errors import Conflict, NotFound
from ...pipeline.jobs import Job
from ...pipeline.review import marked_workbook
from ..deps import (
    BoardDep,
    Caller,
    DownloadsDep,
    MetricsDep,
    QueueDep,
    SettingsDep,
    SharesDep,
    SpoolDep,
    StoreDep,
    permitted_table,
    require,
)
from ..errors import job_json
from ..kept import KeptDep
from ..logs import REQUEST_ID
from .imports import Upload, Wait

router = APIRouter()


async def _load(board: BoardDep, job_id: str, caller: Identity) -> Job:
    job = await run_in_threadpool(board.load, job_id)
    if job is None or not caller.can_see(job.owner):  # the same answer: others cannot probe for job ids
        raise NotFound(f"there is no job {job_id!r}")
    return job


@router.get("/jobs")
async def list_jobs(request: Request, response: Response, caller: Caller, board: BoardDep, queue: QueueDep,
                    limit: Annotated[int, Query(ge=1, le=500, description="jobs in this page")] = 50,
                    offset: Annotated[int, Query(ge=0, description="jobs skipped, newest first")] = 0,
                    all: Annotated[bool, Query(description="admins: everyone's jobs")] = False) -> list[dict]:
    """The caller's recent jobs, newest first (an admin's ``?all=true``: everyone's), a page at a time: the
    ``Link`` header has the ``next`` page while there is one, and the ``prev`` page past the first."""
    owner = None if all and caller.admin else caller.key
    jobs = await run_in_threadpool(board.recent, owner, limit + 1, offset)  # one more: is there a next page?
    links = []
    if len(jobs) > limit:
        links.append(f'<{_page(request, limit, offset + limit)}>; rel="next"')
    if offset:
        links.append(f'<{_page(request, limit, max(0, offset - limit))}>; rel="prev"')
    if links:
        response.headers["Link"] = ", ".join(links)
    return [job_json(job, queue_position=queue.position(job.id)) for job in jobs[:limit]]


def _page(request: Request, limit: int, offset: int) -> str:
    """This listing's URL (path and query, relative to the server) with another ``limit`` and ``offset``."""
    return str(request.url.include_query_params(limit=limit, offset=offset)).removeprefix(str(request.base_url)[:-1])


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, caller: Caller, board: BoardDep, queue: QueueDep) -> dict:
    job = await _load(board, job_id, caller)
    return job_json(job, queue_position=queue.position(job_id))


@router.delete("/jobs/{job_id}", status_code=202)
async def cancel_job(job_id: str, caller: Caller, board: BoardDep) -> JSONResponse:
    """Cancel an import: its transaction rolls back, nothing is written. Works from any instance."""
    job = await _load(board, job_id, caller)
    if job.ended:
        raise Conflict(f"job {job_id} has already ended ({job.state}); there is nothing to cancel", state=job.state)
    await run_in_threadpool(board.request_cancel, job_id)
    return JSONResponse(job_json(job, cancel_requested=True), status_code=202)


@router.post("/jobs/{job_id}/commit", status_code=202)
async def commit_job(job_id: str, request: Request, caller: Caller, settings: SettingsDep, store: StoreDep,
                     queue: QueueDep, board: BoardDep, metrics: MetricsDep, shares: SharesDep, kept: KeptDep,
                     budget: SpoolDep, wait: Wait = False) -> JSONResponse:
    """Import for real the file a dry run checked, without sending it again: a new job (``preview_of`` names the
    dry run), 202 with its ``Location``, or with ``wait=true`` its outcome. Once per dry run, while it is kept."""
    preview = await _load(board, job_id, caller)
    permitted_table(preview.table, settings)
    require(caller, preview.table, preview.mode)
    if not (preview.dry_run and preview.state == "done"):
        raise Conflict(f"job {job_id} is not a finished dry run ({preview.state}); only a dry run that found no "
                       "problem can be committed", state=preview.state)
    if preview.committed_as:
        raise Conflict(f"job {job_id} was already committed as job {preview.committed_as}",
                       committed_as=preview.committed_as)
    job = Job(table=preview.table, mode=preview.mode, sheet=preview.sheet, extra_columns=preview.extra_columns,
              preview_of=preview.id, bytes_received=preview.bytes_received, owner=caller.key,
              request_id=REQUEST_ID.get())
    upload = Upload(request, job, caller, store, queue, board, metrics, shares, kept, budget, settings.imports)
    return await upload.run_kept(preview, wait)


@router.get("/jobs/{job_id}/problems.xlsx", response_class=StreamingResponse)
async def problems_workbook(job_id: str, caller: Caller, settings: SettingsDep, board: BoardDep, kept: KeptDep,
                            downloads: DownloadsDep) -> StreamingResponse:
    """The uploaded workbook with each problem cell filled and commented, and a Problems sheet linking to each
    (also the warnings, in yellow): streamed while it is made, from the kept upload."""
    job = await _load(board, job_id, caller)
    if not job.ended:
        raise Conflict(f"job {job_id} has not ended yet ({job.state})", state=job.state)
    if not (job.errors or job.warnings):
        raise NotFound(f"job {job_id} found no problem and no warning to mark")
    path = kept.get(job)
    return downloads.open(caller, f"{job.table}-problems.xlsx", marked_workbook, str(path), job.to_json(),
                          settings.export)
