"""``GET /jobs/{id}`` and ``DELETE /jobs/{id}``: an import job's progress and outcome, and cancelling it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ...errors import Conflict, NotFound
from ...pipeline.jobs import Job
from ..deps import BoardDep, QueueDep
from ..errors import job_json

router = APIRouter()


async def _load(board: BoardDep, job_id: str) -> Job:
    job = await run_in_threadpool(board.load, job_id)
    if job is None:
        raise NotFound(f"there is no job {job_id!r}")
    return job


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, board: BoardDep, queue: QueueDep) -> dict:
    job = await _load(board, job_id)
    return job_json(job, queue_position=queue.position(job_id))


@router.delete("/jobs/{job_id}", status_code=202)
async def cancel_job(job_id: str, board: BoardDep) -> JSONResponse:
    """Cancel an import: its transaction rolls back, nothing is written. Works from any instance."""
    job = await _load(board, job_id)
    if job.ended:
        raise Conflict(f"job {job_id} has already ended ({job.state}); there is nothing to cancel", state=job.state)
    await run_in_threadpool(board.request_cancel, job_id)
    return JSONResponse(job_json(job, cancel_requested=True), status_code=202)
