"""Kept uploads: the spooled file of a dry run, or of an import with problems, kept for a short while so that
the dry run can be committed without sending the file again, and the file handed back marked up.

Each kept file is named by its job's id (a random 128-bit value, known only to whoever started the job) and
lives ``keep_upload_seconds``; a sweeper removes expired files, and a request that comes too late finds them
gone (410), so nothing is left behind. Kept files are on this instance's disk: behind several instances, the
commit and the marked-up copy must reach the instance that received the upload.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..errors import Gone
from ..pipeline.jobs import Job, Keep
from ..pipeline.review import marks_path

log = logging.getLogger("sheetstream.kept")


class KeptUploads:
    def __init__(self, folder: Path, seconds: float):
        self.folder = folder
        self.seconds = seconds

    def path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.xlsx"

    def keep(self, job: Job) -> Keep:
        """Where the worker keeps ``job``'s upload when its outcome is worth it (:func:`~..pipeline.jobs.keep_upload`)."""
        return Keep(self.path(job.id), self.seconds)

    def get(self, job: Job) -> Path:
        """The kept file of ``job``, or :class:`Gone` when it expired (it is removed then, if still there)."""
        kept = self.path(job.id)
        if job.kept_until is None or job.kept_until < time.time() or not kept.exists():
            kept.unlink(missing_ok=True)
            marks_path(kept).unlink(missing_ok=True)
            raise Gone(f"the file of job {job.id} is no longer kept (uploads are kept {self.seconds / 60:g} minutes "
                       "after a dry run or a failed import); upload it again", job=job.id)
        return kept

    def claim(self, job: Job, into: Path) -> Path:
        """Move the kept file of ``job`` to ``into`` (once: a second claim finds it gone)."""
        kept = self.get(job)
        marks_path(kept).unlink(missing_ok=True)  # committing needs the file, not its problems
        try:
            os.replace(kept, into)
        except FileNotFoundError:
            raise Gone(f"the file of job {job.id} was just taken by another request or expired", job=job.id) from None
        return into

    def sweep(self) -> int:
        """Remove the kept files that have expired; returns how many."""
        if not self.folder.exists():
            return 0
        limit = time.time() - self.seconds
        removed = 0
        for path in [*self.folder.glob("*.xlsx"), *self.folder.glob("*.marks")]:
            try:
                if path.stat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # claimed or removed meanwhile
        return removed

    async def sweep_forever(self) -> None:
        interval = min(60.0, max(0.2, self.seconds / 4))
        while True:
            try:
                await run_in_threadpool(self.sweep)
            except OSError as exc:
                log.warning("could not sweep kept uploads: %s", exc)
            await asyncio.sleep(interval)


def get_kept(request: Request) -> KeptUploads:
    return request.app.state.kept


KeptDep = Annotated[KeptUploads, Depends(get_kept)]
