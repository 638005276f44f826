"""Import jobs: their record (kept in the database, so any instance can answer for it, and it survives restarts)."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from .db import Store

ENDED = ("done", "failed")


@dataclass
class Job:
    table: str
    mode: str = "append"
    dry_run: bool = False
    sheet: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    kind: str = "import"
    state: str = "receiving"  # then queued, parsing, inserting, and done or failed
    bytes_received: int = 0
    rows_read: int = 0
    rows_inserted: int = 0
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    status: int | None = None  # the HTTP status its outcome maps to: 200, or the error's
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
    """Saves jobs to the store, at most every ``interval`` seconds for progress, always for state changes."""

    def __init__(self, store: Store, interval: float = 0.5):
        self.store = store
        self.interval = interval
        self._saved: dict[str, tuple[str, float]] = {}

    def save(self, job: Job, force: bool = False) -> bool:
        """Save unless saved less than ``interval`` ago in the same state; True when it saved."""
        now = time.time()
        last_state, last_time = self._saved.get(job.id, (None, 0.0))
        if not force and last_state == job.state and now - last_time < self.interval:
            return False
        job.updated_at = now
        self.store.save_job(job.id, job.to_json())
        if job.ended:
            self._saved.pop(job.id, None)
        else:
            self._saved[job.id] = (job.state, now)
        return True

    def forget(self, job_id: str) -> None:
        self._saved.pop(job_id, None)

    def request_cancel(self, job_id: str) -> None:
        """A separate record, so that the worker's progress saves cannot overwrite the request."""
        self.store.save_job(f"cancel:{job_id}", {"cancel": True, "at": time.time()})

    def cancel_requested(self, job_id: str) -> bool:
        return self.store.load_job(f"cancel:{job_id}") is not None

    def load(self, job_id: str) -> Job | None:
        data = self.store.load_job(job_id)
        return Job.from_json(data) if data else None
