"""The server's own life, as its jobs see it: a heartbeat, the sweep after dead instances, and the drain.

- **Heartbeat**: every ``heartbeat_seconds`` this instance marks as seen the jobs that still have a live task
  here (an upload arriving, or a job handed to the queue), and only those. Any instance, at start and at each
  beat, settles the jobs not seen for ``heartbeat_timeout`` seconds as failed: those of dead instances with
  :data:`~sheetstream.pipeline.jobs.STOPPED`, and its own whose task ended without its end being recorded (the
  database was away longer than the retries) with :data:`~sheetstream.pipeline.jobs.UNRECORDED`; and it removes
  spool files that no running job owns.
- **Drain** (SIGTERM, or any stop): admit nothing new (503 with ``Retry-After``), let running jobs go on until
  ``drain_seconds`` after the signal, then settle the rest as failed (their workers see it at their next
  report or at COMMIT, and roll back), and stop the workers, which kills any that are left.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import Settings
from ..errors import ServerStopped
from ..pipeline.jobs import STOPPED, JobBoard
from ..pipeline.lifeline import Lifeline
from ..runtime import ProcessingQueue

log = logging.getLogger("sheetstream.lifecycle")

#: After the deadline, how long workers get to see that their jobs were settled and roll back by themselves.
UNWIND_SECONDS = 2.0


def new_instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Lifecycle:
    def __init__(self, settings: Settings, board: JobBoard, queue: ProcessingQueue):
        self.options = settings.lifecycle
        self.spool_dir = settings.spool_dir
        self.board, self.queue = board, queue
        self.lifeline = Lifeline.of_this_process()
        self.started = time.time()
        self.jobs: dict[str, asyncio.Task] = {}  # import jobs handed to the queue, by id
        self.arriving: set[str] = set()  # import jobs whose upload is still being received
        self.deadline: float | None = None  # time.monotonic() after which running work is stopped
        self._beat: asyncio.Task | None = None

    def track(self, job_id: str, task: asyncio.Task) -> None:
        self.jobs[job_id] = task
        task.add_done_callback(lambda _: self.jobs.pop(job_id, None))

    @contextmanager
    def receiving(self, job_id: str) -> Iterator[None]:
        """While an upload's body arrives, its job is live (the heartbeat keeps it)."""
        self.arriving.add(job_id)
        try:
            yield
        finally:
            self.arriving.discard(job_id)

    def live(self) -> set[str]:
        """The jobs with a task running here: the only ones the heartbeat marks as seen."""
        return self.arriving | set(self.jobs)

    async def start(self) -> None:
        await self.sweep()
        self._beat = asyncio.create_task(self._beating(), name="sheetstream-heartbeat")

    def drain(self) -> None:
        """Stop admitting work; running work has until ``drain_seconds`` from now. Safe in a signal handler."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.options.drain_seconds
            self.queue.close(retry_after=max(1, round(self.options.drain_seconds)))

    async def stop(self) -> None:
        self.drain()
        assert self.deadline is not None
        running = list(self.jobs.items())
        left = max(0.0, self.deadline - time.monotonic())
        log.info("stopping: taking no new work; %d running job(s) have %.1f s to end", len(running), left,
                 extra={"event": "stop", "running_jobs": len(running), "drain_seconds_left": round(left, 1)})
        if running:
            await asyncio.wait([task for _, task in running], timeout=max(0.0, self.deadline - time.monotonic()))
        late = [(job_id, task) for job_id, task in running if not task.done()]
        for job_id, _ in late:
            try:
                # Briefly through a lost connection: the stop must not wait long (the next sweep settles it).
                job = await asyncio.to_thread(self.board.settle, job_id, ServerStopped(STOPPED), UNWIND_SECONDS)
            except Exception:  # its worker is killed below all the same; the next instance settles the record
                log.exception("job %s could not be settled at the drain deadline", job_id)
                continue
            log.warning("job %s stopped at the drain deadline: %s", job_id, job.state if job else "gone")
        if late:
            await asyncio.wait([task for _, task in late], timeout=UNWIND_SECONDS)
        if self._beat:
            self._beat.cancel()
        await self.queue.stop()
        for _, task in late:
            task.cancel()
        await asyncio.gather(*(task for _, task in late), return_exceptions=True)
        log.info("stopped: %d job(s) ended in time, %d stopped at the drain deadline", len(running) - len(late),
                 len(late), extra={"event": "stopped", "ended_jobs": len(running) - len(late),
                                   "stopped_jobs": len(late)})

    async def sweep(self) -> None:
        """Heartbeat, then settle dead instances' jobs and remove leftover spool files; never fails the server."""
        try:
            await asyncio.to_thread(self.board.heartbeat, self.live())
            for job in await asyncio.to_thread(self.board.reap, self.options.heartbeat_timeout):
                log.warning("job %s, unseen for %s s (instance %s), settled: %s", job.id,
                            self.options.heartbeat_timeout, job.instance, job.state)
            await asyncio.to_thread(remove_leftovers, self.spool_dir, self.board, self.started)
        except Exception:
            log.exception("the heartbeat could not be recorded; trying again in %s s", self.options.heartbeat_seconds)

    async def _beating(self) -> None:
        while True:
            await asyncio.sleep(self.options.heartbeat_seconds)
            await self.sweep()


def remove_leftovers(spool_dir: Path, board: JobBoard, before: float) -> list[Path]:
    """Remove spool files older than ``before`` whose job is unknown or has ended (a dead run's); a running
    job's file (another instance may share the folder) stays."""
    removed = []
    for path in spool_dir.glob("upload-*"):
        try:
            if path.stat().st_mtime >= before:
                continue
        except FileNotFoundError:
            continue
        job_id = path.name.split("-")[1] if path.name.count("-") >= 2 else ""
        job = board.load(job_id) if job_id else None
        if job is None or job.ended:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
