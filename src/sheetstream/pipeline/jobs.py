"""The import job's whole life cycle in one place: its record, its states, and how it ends.

receiving -> queued -> parsing -> inserting [-> committing] -> done | failed. The record lives in the database
(any instance can answer for it, and it survives restarts). :func:`run_import_job` is what a worker runs: it
imports, records the ending, saves it, and returns the finished job, so the caller never needs to know where it
ran.

Crash safety: "done" is written inside the import's transaction (:meth:`~sheetstream.store.JobTable.commit_with`;
``committing`` is SQLite's step between), a worker never commits once its server is gone (:mod:`.lifeline`), and
an ended record is final. So a job that a draining server, or any instance finding its server dead
(:meth:`JobBoard.reap`), marks failed with :data:`STOPPED` really has written nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
import uuid
from collections.abc import Collection, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import ImportLimits
from ..errors import Cancelled, ClientGone, Conflict, OutOfMemory, ServerStopped, SheetstreamError, StoreUnavailable
from ..formats import FormatError
from ..formats.xlsx import ReadLimits
from ..store import JobTable, Store
from ..store.base import unavailable
from ..store.control import RETRY_SECONDS, lost_connection, retried
from ..store.jobs import superseded
from .imports import Split, run_import
from .lifeline import Lifeline
from .review import MarkFile, marks_path
from .states import ENDED, IllegalMove, State, move

log = logging.getLogger("sheetstream.jobs")



@contextlib.contextmanager
def managed(job: Job) -> Iterator[Job]:
    """Run a job's work in this block (dlt's ``run_managed``): it ends ``done`` when the block does, ``failed`` with
    the error's code and message when it raises, and ended it is, whatever happened."""
    try:
        yield job
    except Exception as exc:
        fail(job, exc)
    else:
        succeed(job)
    if not job.ended:
        raise IllegalMove(f"job {job.id} left its run in state {job.state}")

#: Why a job failed when its server stopped under it; true because of the rules in the module's docstring.
STOPPED = "the server stopped while this job was running; nothing was written"
#: Why a job failed when its own server lost track of it: its task ended while the database was away, and even the
#: retried last save could not get through. True for the same reasons ("done" commits with the rows).
UNRECORDED = ("the connection to the database was lost while this job ran, and its end could not be recorded; "
              "nothing was written, try again")


@dataclass
class Job:
    table: str
    mode: str = "append"
    dry_run: bool = False
    sheet: str | None = None
    owner: str | None = None  # the identity's key (token:NAME, user:NAME); others do not see the job
    extra_columns: str = "ignore"  # header columns the table does not have: ignore (a warning) or error
    format: str = "xlsx"  # the upload's format (:mod:`..formats.registry`), told from its bytes
    options: dict[str, Any] = field(default_factory=dict)  # the format's reading options (CSV: encoding, delimiter)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: str = "receiving"
    bytes_received: int = 0
    progress: float | None = None  # the share of the file read, while it is read (a workbook's XML; None: unknown)
    rows_read: int = 0
    rows_inserted: int = 0
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    message: str | None = None
    error: str | None = None  # the failure's code, as in error responses (not_xlsx, invalid, ...)
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_total: int = 0
    problem_groups: list[dict[str, Any]] = field(default_factory=list)  # every problem, by kind and column
    warnings: list[dict[str, Any]] = field(default_factory=list)  # such as header columns left out
    preview: dict[str, Any] | None = None  # a dry run's counts and sample of changes
    kept_until: float | None = None  # the upload is kept until then (for commit and problems.xlsx)
    preview_of: str | None = None  # the dry run this job commits
    committed_as: str | None = None  # the job that committed this dry run
    instance: str | None = None  # the server instance that runs it (its heartbeat says whether it is alive)
    request_id: str | None = None  # of the request that started it (X-Request-ID): in its log lines, wherever they run

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def elapsed(self) -> float:
        return (self.finished_at or time.time()) - self.created_at

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "elapsed_seconds": round(self.elapsed, 3), "location": f"/jobs/{self.id}",
                "phase": phase(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class JobBoard:
    """Saves jobs, at most every ``interval`` seconds for progress, always for state changes; stamps them with
    this server's ``instance``, whose heartbeat it keeps."""

    def __init__(self, table: JobTable, interval: float = 0.5, instance: str | None = None):
        self.table = table
        self.interval = interval
        self.instance = instance
        self._saved: dict[str, tuple[str, float]] = {}

    def save(self, job: Job, force: bool = False) -> bool:
        """Save unless saved less than ``interval`` ago in the same state; True when it saved.
        :class:`~sheetstream.errors.Conflict` when the record has already ended elsewhere."""
        now = time.time()
        last_state, last_time = self._saved.get(job.id, (None, 0.0))
        if not force and last_state == job.state and now - last_time < self.interval:
            return False
        job.updated_at = now
        job.instance = job.instance or self.instance
        if not self.table.save(job.id, job.to_json()):
            self._saved.pop(job.id, None)
            raise superseded(job.id)
        if job.ended:
            self._saved.pop(job.id, None)
        else:
            self._saved[job.id] = (job.state, now)
        return True

    def forget(self, job_id: str) -> None:
        self._saved.pop(job_id, None)

    def request_cancel(self, job_id: str) -> None:
        self.table.request_cancel(job_id)

    def mark_committed(self, job_id: str, committed_as: str) -> bool:
        """Record on an ended dry run the job that committed it (the only change an ended record takes)."""
        return self.table.mark_committed(job_id, committed_as)

    def cancel_requested(self, job_id: str) -> bool:
        return self.table.cancel_requested(job_id)

    def load(self, job_id: str) -> Job | None:
        data = self.table.load(job_id)
        return Job.from_json(data) if data else None

    def recent(self, owner: str | None, limit: int = 50, offset: int = 0) -> list[Job]:
        return [Job.from_json(data) for data in self.table.recent(owner, limit, offset)]

    def end(self, job: Job) -> Job:
        """Save ``job``, ended; when its record had already ended elsewhere, that record (it is the truth). Tries
        again through a lost connection (:func:`~sheetstream.store.control.retried`): a job must not stay running
        because the database restarted under it."""
        def save() -> Job:
            try:
                self.save(job, force=True)
            except Conflict:
                return self.load(job.id) or job
            return job

        return retried(save, f"the end of job {job.id}")

    def settle(self, job_id: str, exc: BaseException, patience: float = RETRY_SECONDS) -> Job | None:
        """End a job whose worker stopped, or must stop, as failed by ``exc``, unless it has ended or
        committed (then its record stands). Returns the job as recorded then. Tries again through a lost
        connection for up to ``patience`` seconds, as :meth:`end` does."""
        self.forget(job_id)

        def settle() -> Job | None:
            job = self.load(job_id)
            if job is None or job.ended:
                return job
            fail(job, exc)
            data = self.table.settle(job_id, job.to_json())
            return Job.from_json(data) if data else None

        return retried(settle, f"settling job {job_id}", patience)

    def heartbeat(self, live: Collection[str]) -> None:
        """Mark as seen the jobs ``live`` (those with a task still running here); the others age into orphans."""
        if self.instance and live:
            self.table.heartbeat(self.instance, live)

    def reap(self, timeout: float) -> list[Job]:
        """Settle the jobs not seen for ``timeout`` seconds: those of dead instances (their workers never commit
        after their server has gone), and this instance's own whose task has ended without recording it."""
        settled = []
        for job_id in self.table.orphans(timeout):
            try:
                job = self.load(job_id)
                if job is None:
                    continue
                mine = self.instance is not None and job.instance == self.instance
                job = self.settle(job_id, StoreUnavailable(UNRECORDED) if mine else ServerStopped(STOPPED))
            except Exception:  # one unreadable record must not keep the others unsettled
                log.exception("job %s could not be settled", job_id)
                continue
            if job is not None:
                settled.append(job)
        return settled


#: Each mode in a person's words.
MODE_WORDS = {"append": "add new rows", "upsert": "update existing rows and add new ones",
              "replace": "replace the whole table"}


def phase(job: Job) -> str:
    """Where a job is, in a person's words: a check is "checking", then "ready to import" or "N problems found"
    (never "inserting" or "failed": nothing was meant to be written)."""
    if job.state in ("parsing", "inserting", "committing"):
        return "checking" if job.dry_run else "importing"
    if job.state == "queued":
        return "waiting for a worker"
    if job.state == "done":
        return "ready to import" if job.dry_run else ("nothing written" if job.rows_inserted == 0 else "imported")
    if job.state == "failed":
        if job.error == "invalid" and job.error_total:
            return f"{job.error_total:,} problem{'' if job.error_total == 1 else 's'} found"
        return "cancelled" if job.error == "cancelled" else "failed"
    return job.state


def succeed(job: Job) -> None:
    move(job, State.DONE)
    job.finished_at = time.time()
    job.message = (f"checked {job.rows_read:,} rows: ready to import; nothing was written yet" if job.dry_run
                   else f"{job.rows_inserted:,} rows written to {job.table!r} ({MODE_WORDS.get(job.mode, job.mode)})")
    if job.dry_run and job.preview:
        p = job.preview
        job.message += (f"; it would add {p['inserted']:,}, update {p['updated']:,}, leave {p['unchanged']:,} "
                        f"unchanged" + (f" and delete {p['deleted']:,}" if job.mode == "replace" else ""))
    if job.warnings:
        job.message += f" ({len(job.warnings)} warning(s))"


def fail(job: Job, exc: BaseException) -> None:
    """Record why ``job`` failed: the error's code, its message for a person, and its cell problems. An ended job
    stays as it ended (its record is final)."""
    if job.ended:
        return
    move(job, State.FAILED)
    job.finished_at = time.time()
    if isinstance(exc, MemoryError):  # under the worker's address-space cap (runtime.workers.limit_memory)
        cap = resource.getrlimit(resource.RLIMIT_AS)[0]
        exc = OutOfMemory.worker_limit(0 if cap == resource.RLIM_INFINITY else cap)
    if isinstance(exc, (SheetstreamError, FormatError)):
        job.message, job.error = exc.message, exc.code
        job.errors = exc.detail.get("errors", [])
        job.error_total = exc.detail.get("error_total", len(job.errors))
        job.problem_groups = exc.detail.get("problem_groups", [])
    elif isinstance(exc, asyncio.CancelledError):
        job.error = ClientGone.code
        job.message = "the upload was cancelled before it ended; nothing was written"
    else:
        log.exception("import %s failed", job.id, exc_info=exc, extra=_log_fields(job, "job.error"))
        job.error = "internal_error"
        job.message = f"internal error ({type(exc).__name__}); nothing was written"


def _log_fields(job: Job, event: str) -> dict[str, Any]:
    """A job's fields for a log line written where it runs (a worker process has no request of its own)."""
    return {"event": event, "job_id": job.id, "table": job.table, "mode": job.mode, "dry_run": job.dry_run,
            "request_id": job.request_id}


def worth_keeping(job: Job) -> bool:
    """A dry run that ended well (to commit it), or an import that read the file and found problems in it (to
    hand it back marked up)."""
    if job.state == "done":
        return job.dry_run
    return job.state == "failed" and job.error == "invalid" and bool(job.errors or job.warnings)


@dataclass(frozen=True)
class Keep:
    """Where an upload worth keeping goes, and for how long (seconds)."""

    path: Path
    seconds: float


def keep_upload(job: Job, path: Path, keep: Keep) -> None:
    """Move the upload to ``keep.path`` when the job's outcome makes it worth keeping; ``job.kept_until`` says
    until when. Done before the job's last save, so that whoever sees the job ended finds the file there."""
    if keep.seconds <= 0 or not worth_keeping(job):
        return
    try:
        keep.path.parent.mkdir(parents=True, exist_ok=True)
        found = marks_path(path)
        if found.exists() and found.stat().st_size:  # every problem, for the marked-up workbook; before its file
            os.replace(marks_path(path), marks_path(keep.path))
        os.replace(path, keep.path)
        os.utime(keep.path)  # expiry counts from now
    except OSError as exc:
        log.warning("could not keep the upload of job %s: %s", job.id, exc, extra=_log_fields(job, "job.keep"))
        return
    job.kept_until = time.time() + keep.seconds


def run_import_job(store: Store, job: Job, path: Path, limits: ReadLimits = ReadLimits(),
                   keep: Keep | None = None, lifeline: Lifeline | None = None, split: Split | None = None,
                   cpu_seconds: float = ImportLimits.import_cpu_seconds) -> Job:
    """Import ``path`` as ``job`` says, on a worker; progress is saved as it goes, a cancel request stops it, and
    so does the end of the server (``lifeline``), up to the moment before COMMIT. Returns the finished job (done
    or failed) as recorded, with its upload kept as ``keep`` says when worth it. ``split``: see
    :func:`~sheetstream.pipeline.imports.run_import`."""
    path = Path(path)  # callers may pass a str (the tools do)
    board = JobBoard(store.jobs)

    def check_server() -> None:
        if lifeline is not None and not lifeline.alive():
            raise ServerStopped(STOPPED)

    def report(current: Job) -> None:
        check_server()
        try:
            cancelled = board.save(current) and board.cancel_requested(current.id)
        except Exception as exc:
            if not lost_connection(exc):
                raise
            # The import's own connection goes the same way: say what it means for the import.
            raise unavailable(f"the database went away during the import ({str(exc).strip()})") from exc
        if cancelled:
            raise Cancelled("the import was cancelled; its transaction was rolled back and nothing was written")

    def commit(conn: Any, count: int) -> None:
        check_server()
        done = Job.from_json(job.to_json())
        done.rows_inserted = count
        succeed(done)
        store.jobs.commit_with(conn, job.id, done.to_json())

    log.info("job %s started on worker %s", job.id, os.getpid(), extra=_log_fields(job, "job.started"))
    marks = MarkFile(marks_path(path)) if keep and keep.seconds > 0 else None
    try:
        try:
            with managed(job):
                run_import(store, job, path, report, limits, commit, split, sink=marks, cpu_seconds=cpu_seconds)
        finally:
            if marks:
                marks.close()
        if keep:
            keep_upload(job, path, keep)
    finally:
        marks_path(path).unlink(missing_ok=True)  # unless kept (moved with the upload)
    return board.end(job)
