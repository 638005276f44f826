"""The import job's whole life cycle in one place: its record, its states, and how it ends.

receiving -> queued -> parsing -> inserting -> done | failed. The record lives in the database (any instance
can answer for it, and it survives restarts). :func:`run_import_job` is what a worker runs: it imports, records
the ending, saves it, and returns the finished job, so the caller never needs to know where it ran.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Cancelled, ClientGone, OutOfMemory, SheetstreamError
from ..formats.xlsx import ReadLimits, XlsxError
from ..store import JobTable, Store
from .imports import run_import

log = logging.getLogger("sheetstream.jobs")

STATES = ("receiving", "queued", "parsing", "inserting", "done", "failed")
ENDED = ("done", "failed")


@dataclass
class Job:
    table: str
    mode: str = "append"
    dry_run: bool = False
    sheet: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "receiving"
    bytes_received: int = 0
    rows_read: int = 0
    rows_inserted: int = 0
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    message: str | None = None
    error: str | None = None  # the failure's code, as in error responses (not_xlsx, invalid, ...)
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_total: int = 0

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def elapsed(self) -> float:
        return (self.finished_at or time.time()) - self.created_at

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "elapsed_seconds": round(self.elapsed, 3), "location": f"/jobs/{self.id}"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class JobBoard:
    """Saves jobs, at most every ``interval`` seconds for progress, always for state changes."""

    def __init__(self, table: JobTable, interval: float = 0.5):
        self.table = table
        self.interval = interval
        self._saved: dict[str, tuple[str, float]] = {}

    def save(self, job: Job, force: bool = False) -> bool:
        """Save unless saved less than ``interval`` ago in the same state; True when it saved."""
        now = time.time()
        last_state, last_time = self._saved.get(job.id, (None, 0.0))
        if not force and last_state == job.state and now - last_time < self.interval:
            return False
        job.updated_at = now
        self.table.save(job.id, job.to_json())
        if job.ended:
            self._saved.pop(job.id, None)
        else:
            self._saved[job.id] = (job.state, now)
        return True

    def forget(self, job_id: str) -> None:
        self._saved.pop(job_id, None)

    def request_cancel(self, job_id: str) -> None:
        self.table.request_cancel(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        return self.table.cancel_requested(job_id)

    def load(self, job_id: str) -> Job | None:
        data = self.table.load(job_id)
        return Job.from_json(data) if data else None


def succeed(job: Job) -> None:
    job.state = "done"
    job.finished_at = time.time()
    job.message = (f"dry run: {job.rows_read:,} rows are valid; nothing was written" if job.dry_run
                   else f"{job.rows_inserted:,} rows written to {job.table!r} ({job.mode})")


def fail(job: Job, exc: BaseException) -> None:
    """Record why ``job`` failed: the error's code, its message for a person, and its cell problems."""
    job.state = "failed"
    job.finished_at = time.time()
    if isinstance(exc, MemoryError):  # under the worker's address-space cap (runtime.strategies.limit_memory)
        cap = resource.getrlimit(resource.RLIMIT_AS)[0]
        exc = OutOfMemory.worker_limit(0 if cap == resource.RLIM_INFINITY else cap)
    if isinstance(exc, (SheetstreamError, XlsxError)):
        job.message, job.error = exc.message, exc.code
        job.errors = exc.detail.get("errors", [])
        job.error_total = exc.detail.get("error_total", len(job.errors))
    elif isinstance(exc, asyncio.CancelledError):
        job.error = ClientGone.code
        job.message = "the upload was cancelled before it ended; nothing was written"
    else:
        log.exception("import %s failed", job.id, exc_info=exc)
        job.error = "internal_error"
        job.message = f"internal error ({type(exc).__name__}); nothing was written"


def run_import_job(store: Store, job: Job, path: Path, limits: ReadLimits = ReadLimits()) -> Job:
    """Import ``path`` as ``job`` says, on a worker; progress is saved as it goes, a cancel request stops it.
    Returns the finished job (done or failed), saved."""
    board = JobBoard(store.jobs)

    def report(current: Job) -> None:
        if board.save(current) and board.cancel_requested(current.id):
            raise Cancelled("the import was cancelled; its transaction was rolled back and nothing was written")

    try:
        run_import(store, job, path, report, limits)
        succeed(job)
    except Exception as exc:
        fail(job, exc)
    board.save(job, force=True)
    return job
