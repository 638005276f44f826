"""The one table from errors to HTTP: status, body and headers. Nothing else in sheetstream knows a status."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..errors import (
    BadRequest,
    Busy,
    Cancelled,
    ClientGone,
    ConfigError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    NotReady,
    OutOfMemory,
    PayloadTooLarge,
    ServerStopped,
    SheetstreamError,
    ShuttingDown,
    StorageFull,
    StoreUnavailable,
    TimedOut,
    TooMuchCpu,
    Unauthenticated,
    UnsupportedMediaType,
    WorkerLost,
)
from ..formats import UnknownFormat
from ..formats.xlsx import XlsxError
from ..pipeline.jobs import Job

#: Error class -> HTTP status; a subclass takes its nearest listed ancestor's.
STATUS: dict[type[Exception], int] = {
    BadRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    TimedOut: 408,
    Conflict: 409,
    Cancelled: 409,
    Gone: 410,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    UnknownFormat: 415,
    Invalid: 422,
    XlsxError: 422,
    OutOfMemory: 422,  # the same file fails again: retrying will not help
    TooMuchCpu: 422,  # likewise
    Busy: 429,
    ClientGone: 499,  # as nginx logs it: the client closed the request, nobody reads the answer
    ConfigError: 500,
    StoreUnavailable: 503,
    ShuttingDown: 503,  # with Retry-After: another instance (or this one, restarted) takes it
    ServerStopped: 503,  # a job's server stopped under it; nothing was written, so sending it again is safe
    WorkerLost: 503,
    NotReady: 503,
    StorageFull: 507,
}


def status_of(error: BaseException | type[BaseException]) -> int:
    cls = error if isinstance(error, type) else type(error)
    return next((STATUS[c] for c in cls.__mro__ if c in STATUS), 500)


def headers_of(error: BaseException) -> dict[str, str] | None:
    if isinstance(error, (Busy, ShuttingDown)):
        return {"Retry-After": str(error.detail["retry_after"])}
    if isinstance(error, Unauthenticated):
        return {"WWW-Authenticate": 'Bearer realm="sheetstream"'}
    if isinstance(error, TimedOut):  # the client stopped sending: drop the connection, do not wait for the rest
        return {"Connection": "close"}
    return None


def job_status(job: Job) -> int | None:
    """The HTTP status a job's outcome maps to: 200 when done, its error's status when failed, None before."""
    if job.state != "failed":
        return 200 if job.state == "done" else None
    pending: list[type] = list(STATUS)
    while pending:  # the error classes and their subclasses, to find the one with the job's code
        cls = pending.pop()
        if getattr(cls, "code", None) == job.error:
            return status_of(cls)
        pending.extend(cls.__subclasses__())
    return 500


def job_json(job: Job, **extra: Any) -> dict[str, Any]:
    """A job as the API shows it: its record, plus the HTTP status its outcome maps to."""
    return {**job.to_json(), "status": job_status(job), **extra}


def error_response(error: SheetstreamError | XlsxError) -> JSONResponse:
    body = {"error": error.code, "message": error.message, **error.detail}
    return JSONResponse(body, status_code=status_of(error), headers=headers_of(error))


def install(app: FastAPI) -> None:
    """Every error sheetstream raises on purpose, and FastAPI's request validation, answered as JSON."""

    @app.exception_handler(SheetstreamError)
    @app.exception_handler(XlsxError)
    async def known(request: Request, error: SheetstreamError | XlsxError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(map(str, e['loc'][1:])) or e['loc'][0]}: {e['msg']}" for e in error.errors()]
        return error_response(BadRequest("invalid request: " + "; ".join(problems), problems=problems))
