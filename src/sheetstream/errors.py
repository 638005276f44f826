"""The few domain errors sheetstream raises on purpose. No HTTP here: the server maps each class to a status once
(:mod:`sheetstream.server.errors`)."""

from __future__ import annotations

from typing import Any


class SheetstreamError(Exception):
    """Base: ``message`` is for a person, ``code`` for a program (set by ``class X(SheetstreamError, code=...)``),
    ``detail`` carries structured extras."""

    code = "internal_error"

    def __init_subclass__(cls, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code:
            cls.code = code

    def __init__(self, message: str, **detail: Any):
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.detail}

    def __reduce__(self) -> tuple:
        # Keep the detail when the error crosses a process boundary (the process strategy pickles it).
        return _rebuild, (type(self), self.message, self.detail)


def _rebuild(cls: type[SheetstreamError], message: str, detail: dict[str, Any]) -> SheetstreamError:
    error = cls.__new__(cls)
    SheetstreamError.__init__(error, message, **detail)
    return error


class Unauthenticated(SheetstreamError, code="unauthenticated"):
    """No credential, or one that is not (or no longer) valid: a token, a session, a proxy's user."""


class Forbidden(SheetstreamError, code="forbidden"):
    """The caller is known but may not do this (a grant it lacks, or a request that did not come from the page)."""


class NotFound(SheetstreamError, code="not_found"):
    """A table, column or job that is not there."""


class BadRequest(SheetstreamError, code="bad_request"):
    """The request itself is wrong (a parameter, a form field, an empty body)."""


class PayloadTooLarge(SheetstreamError, code="payload_too_large"):
    """The upload is over the configured limit."""


class UnsupportedMediaType(SheetstreamError, code="unsupported_media_type"):
    """The body is not sent as a workbook."""


class ClientGone(SheetstreamError, code="client_closed_request"):
    """The client went away before the body ended (nobody reads the answer)."""


class TimedOut(SheetstreamError, code="request_timeout"):
    """The client sent nothing for longer than the server waits; its place was given back."""


class StorageFull(SheetstreamError, code="insufficient_storage"):
    """The disk that receives uploads is full; the partial upload was removed."""


class Invalid(SheetstreamError, code="invalid"):
    """The input was read but does not fit the table."""


class Busy(SheetstreamError, code="busy"):
    """The processing queue is full; ``retry_after`` seconds is a fair wait."""

    def __init__(self, message: str, retry_after: int = 1, **detail: Any):
        super().__init__(message, retry_after=retry_after, **detail)

    @property
    def retry_after(self) -> int:
        return self.detail["retry_after"]


class ShuttingDown(SheetstreamError, code="shutting_down"):
    """The server is draining before it stops: it takes no new work; another instance (or this one, restarted)
    will, after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 5, **detail: Any):
        super().__init__(message, retry_after=retry_after, **detail)


class ServerStopped(SheetstreamError, code="server_stopped"):
    """The server running a job stopped (killed, or past its drain deadline) before the job ended; its
    transaction was rolled back, so nothing was written."""


class Conflict(SheetstreamError, code="conflict"):
    """The request conflicts with the state of the thing (a job that has already ended)."""


class Cancelled(SheetstreamError, code="cancelled"):
    """The job was cancelled (``DELETE /jobs/{id}``); its transaction was rolled back."""


class StoreUnavailable(SheetstreamError, code="database_unavailable"):
    """The database cannot be reached or went away."""


class WorkerLost(SheetstreamError, code="worker_lost"):
    """The worker process running the task died (killed, or by the system's out-of-memory killer); nothing the task
    did was kept, and the next task gets a new worker."""


class OutOfMemory(SheetstreamError, code="out_of_memory"):
    """The task needed more memory than a worker process may use."""

    @classmethod
    def worker_limit(cls, limit: int) -> OutOfMemory:
        shown = f"{limit / 2**20:,.0f} MB" if limit else "the memory it has"
        return cls(f"the file needs more memory than a worker process may use ({shown}); split it into smaller "
                   "workbooks, or ask for a higher SHEETSTREAM_WORKER_MEMORY_MB", limit_bytes=limit)


class TooMuchCpu(SheetstreamError, code="cpu_limit"):
    """The import needed more CPU time than one import may use (``SHEETSTREAM_IMPORT_CPU_SECONDS``); nothing was
    written. The same file would fail again."""


class NotReady(SheetstreamError, code="not_ready"):
    """This instance cannot take work now (its database or its workers fail their check); ``checks`` says which."""


class ConfigError(SheetstreamError, code="bad_configuration"):
    """A setting (flag or ``SHEETSTREAM_*`` variable) has a value sheetstream cannot use; the message names it."""


class RowRefused(Invalid):
    """The database refused a row of the sheet at write time (a foreign key, a check, a value out of range):
    ``row`` is its sheet row when known, ``column`` its column when the database said."""

    def __init__(self, message: str, row: int | None = None, column: str | None = None, **detail: Any):
        super().__init__(message, row=row, column=column, **detail)


class Gone(SheetstreamError, code="gone"):
    """Something kept for a while (an uploaded file, for a preview's commit or its marked-up copy) has expired."""
