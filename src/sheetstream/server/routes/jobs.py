"""``GET /jobs``, ``GET /jobs/{id}`` and ``DELETE /jobs/{id}``: import jobs' progress and outcome, and cancelling
one. A job belongs to the identity that started it: to anyone else (but an admin) it does not exist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...access import Identity
from ...errors import Conflict, NotFound
from ...pipeline.jobs import Job
from ..deps import BoardDep, Caller, QueueDep
from ..errors import job_json

router = APIRouter()


async def _load(board: BoardDep, job_id: str, caller: Identity) -> Job:
    job = await run_in_threadpool(board.load, job_id)
    if job is None or not caller.can_see(job.owner):  # the same answer: others cannot probe for job ids
        raise NotFound(f"there is no job {job_id!r}")
    return job


@router.get("/jobs")
async def list_jobs(caller: Caller, board: BoardDep, queue: QueueDep,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    all: Annotated[bool, Query(description="admins: everyone's jobs")] = False) -> list[dict]:
    """The caller's recent jobs, newest first (an admin's ``?all=true``: everyone's)."""
    owner = None if all and caller.admin else caller.key
    jobs = await run_in_threadpool(board.recent, owner, limit)
    return [job_json(job, queue_position=queue.position(job.id)) for job in jobs]


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
