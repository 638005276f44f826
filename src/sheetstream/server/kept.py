"""Kept uploads: the spooled file of a dry run, or of an import with problems, kept for a short while so that
the dry run can be committed without sending the file again, and the file handed back marked up.

Each kept file is named by its job's id (a random 128-bit value, known only to whoever started the job) and a
tag of its owner, and lives ``keep_upload_seconds``; a sweeper removes expired files, and a request that comes
too late finds them gone (410), so nothing is left behind. Kept files are on this instance's disk: behind
several instances, the commit and the marked-up copy must reach the instance that received the upload.

Kept files count in the spool's budget (:class:`~.uploads.SpoolBudget`), in files and bytes, so that dry runs
cannot fill the disk that uploads need: an identity keeps at most a quarter of the budget (past it its own
oldest kept file goes), and an upload that needs room takes it from the oldest kept files, anyone's, before it
is refused. A kept file is a convenience (its commit answers 410, upload it again); an upload is the work.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..errors import Gone
from ..pipeline.jobs import Job, Keep
from ..pipeline.review import marks_path

log = logging.getLogger("sheetstream.kept")

#: One identity's kept uploads hold at most this share of the spool's files and bytes: past it, its own oldest go
#: first, so one user's dry runs never take the room other users' kept files need.
SHARE = 0.25


@dataclass(frozen=True)
class Held:
    path: Path
    owner: str  # the owner's tag (see :func:`owner_tag`)
    size: int
    at: float  # when it was kept (its mtime)


def owner_tag(owner: str | None) -> str:
    """The owner in a kept file's name: a short hash (names may hold any character; the tag needs none)."""
    return hashlib.sha256((owner or "").encode()).hexdigest()[:16]


class KeptUploads:
    def __init__(self, folder: Path, seconds: float, max_files: int = 1 << 30, max_bytes: int = 1 << 62):
        self.folder = folder
        self.seconds = seconds
        self.share_files = max(1, int(max_files * SHARE))
        self.share_bytes = int(max_bytes * SHARE)
        self._held: dict[Path, Held] | None = None  # read from the folder at first use (files of an earlier run)
        self._lock = threading.Lock()  # the event loop, request threads and the sweeper all change it

    def path(self, job: Job) -> Path:
        return self.folder / f"{job.id}-{owner_tag(job.owner)}.xlsx"

    def keep(self, job: Job) -> Keep:
        """Where the worker keeps ``job``'s upload when its outcome is worth it (:func:`~..pipeline.jobs.keep_upload`)."""
        return Keep(self.path(job), self.seconds)

    # -- what the budget sees -------------------------------------------------------------------------------

    @property
    def files(self) -> int:
        with self._lock:
            return len(self._index())

    @property
    def bytes(self) -> int:
        with self._lock:
            return sum(h.size for h in self._index().values())

    def holding(self, path: Path | None) -> tuple[int, int]:
        """(1, its size) when ``path`` is a kept file counted here, else (0, 0)."""
        with self._lock:
            held = self._index().get(path) if path is not None else None
            return (1, held.size) if held else (0, 0)

    def noted(self, job: Job) -> None:
        """The worker kept ``job``'s upload: count it, then hold its owner to their share (oldest first)."""
        path = self.path(job)
        try:
            stat = path.stat()
        except FileNotFoundError:
            return
        with self._lock:
            held = self._index()
            marks = marks_path(path)
            size = stat.st_size + (marks.stat().st_size if marks.exists() else 0)  # its problems count too
            held[path] = Held(path, owner_tag(job.owner), size, stat.st_mtime)
            own = sorted((h for h in held.values() if h.owner == held[path].owner), key=lambda h: h.at)
            while len(own) > 1 and (len(own) > self.share_files or sum(h.size for h in own) > self.share_bytes):
                self._evict(own.pop(0), "its owner's kept uploads passed their share of the spool")

    def evict(self, files: int, size: int, spare: Path | None = None) -> None:
        """Remove the oldest kept files, anyone's, until ``files`` files and ``size`` bytes have been freed (as many
        as there are); never ``spare`` (the file a commit is about to take)."""
        with self._lock:
            for held in sorted(self._index().values(), key=lambda h: h.at):
                if files <= 0 and size <= 0:
                    return
                if held.path != spare:
                    self._evict(held, "an upload needed its room in the spool")
                    files, size = files - 1, size - held.size

    def _evict(self, held: Held, why: str) -> None:
        held.path.unlink(missing_ok=True)
        marks_path(held.path).unlink(missing_ok=True)
        self._index().pop(held.path, None)
        log.info("kept upload %s removed before its time: %s", held.path.name, why)

    def _index(self) -> dict[Path, Held]:
        if self._held is None:
            self._held = {}
            for path in self.folder.glob("*.xlsx") if self.folder.exists() else ():
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                owner = path.stem.rpartition("-")[2]
                self._held[path] = Held(path, owner, stat.st_size, stat.st_mtime)
        return self._held

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._index().pop(path, None)

    # -- using them ---------------------------------------------------------------------------------------

    def get(self, job: Job) -> Path:
        """The kept file of ``job``, or :class:`Gone` when it expired or made room for uploads (it is removed
        then, if still there)."""
        kept = self.path(job)
        if job.kept_until is None or job.kept_until < time.time() or not kept.exists():
            kept.unlink(missing_ok=True)
            marks_path(kept).unlink(missing_ok=True)
            self._forget(kept)
            raise Gone(f"the file of job {job.id} is no longer kept (uploads are kept {self.seconds / 60:g} minutes "
                       "after a dry run or a failed import, less when the server needs the room for new uploads); "
                       "upload it again", job=job.id)
        return kept

    def claim(self, job: Job, into: Path) -> Path:
        """Move the kept file of ``job`` to ``into`` (once: a second claim finds it gone)."""
        kept = self.get(job)
        marks_path(kept).unlink(missing_ok=True)  # committing needs the file, not its problems
        try:
            os.replace(kept, into)
        except FileNotFoundError:
            raise Gone(f"the file of job {job.id} was just taken by another request or expired", job=job.id) from None
        finally:
            self._forget(kept)
        return into

    def sweep(self) -> int:
        """Remove the kept files that have expired; returns how many."""
        with self._lock:
            self._held = None  # read the folder again: what is on disk is the truth
            limit = time.time() - self.seconds
            removed = 0
            for held in list(self._index().values()):
                if held.at < limit:
                    held.path.unlink(missing_ok=True)
                    marks_path(held.path).unlink(missing_ok=True)
                    self._index().pop(held.path, None)
                    removed += 1
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
