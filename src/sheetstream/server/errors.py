"""The one table from errors to HTTP: status, body and headers. Nothing else in sheetstream knows a status."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

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
from ..formats import FormatError, UnknownFormat
from ..formats.csv import CsvTooLarge
from ..pipeline.jobs import Job
from .logs import REQUEST_ID

log = logging.getLogger("sheetstream.errors")

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
    FormatError: 422,
    CsvTooLarge: 413,
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


#: RFC 9457's media type: every error answer has it.
PROBLEM = "application/problem+json"
#: Titles of the statuses Python's table lacks.
_TITLES = {499: "Client Closed Request"}


def problem_type(code: str) -> str:
    """The problem's ``type``: a URN naming the error's code (docs/api.md lists them)."""
    return f"urn:sheetstream:problem:{code}"


def problem(status: int, code: str, message: str, instance: str | None = None, **fields: Any) -> dict[str, Any]:
    """An RFC 9457 problem: ``type``, ``title``, ``status``, ``detail``, ``instance``, and sheetstream's own
    ``error`` (the code) and ``message`` (the same text as ``detail``), which clients already read, plus the
    error's extras (``errors``, ``error_total``, ``retry_after``...)."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = _TITLES.get(status, "Error")
    body = {"type": problem_type(code), "title": title, "status": status, "detail": message, "instance": instance,
            "error": code, "message": message, **fields}
    if request_id := REQUEST_ID.get():
        body.setdefault("request_id", request_id)
    return {k: v for k, v in body.items() if v is not None or k not in ("instance", "request_id")}


def problem_response(status: int, code: str, message: str, instance: str | None = None,
                     headers: dict[str, str] | None = None, **fields: Any) -> JSONResponse:
    return JSONResponse(problem(status, code, message, instance, **fields), status_code=status, headers=headers,
                        media_type=PROBLEM)


def error_response(error: SheetstreamError | FormatError, instance: str | None = None) -> JSONResponse:
    return problem_response(status_of(error), error.code, error.message, instance, headers_of(error), **error.detail)


def job_response(job: Job, status: int) -> JSONResponse:
    """A job as the answer to a request that waited for it: the job itself, and when it failed, also a problem
    (its ``status``, ``error``, ``message``, ``errors`` are the job's own fields)."""
    if status < 400:
        return JSONResponse(job_json(job), status_code=status)
    location = f"/jobs/{job.id}"
    # The problem's instance is the job's URL; the job's own ``instance`` (the server that ran it) is left out here.
    body = {**problem(status, job.error or "internal_error", job.message or "the job failed"), **job_json(job),
            "instance": location}
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


#: Router answers (no such route, method not allowed...) by status: their code.
_HTTP_CODES = {404: NotFound.code, 405: "method_not_allowed", 400: BadRequest.code}


def install(app: FastAPI) -> None:
    """Every error answered as a problem (RFC 9457): sheetstream's own, FastAPI's request validation, the router's
    404 and 405, and anything unexpected (500, logged)."""

    @app.exception_handler(SheetstreamError)
    @app.exception_handler(FormatError)
    async def known(request: Request, error: SheetstreamError | FormatError) -> JSONResponse:
        return error_response(error, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(map(str, e['loc'][1:])) or e['loc'][0]}: {e['msg']}" for e in error.errors()]
        return error_response(BadRequest("invalid request: " + "; ".join(problems), problems=problems),
                              request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404 and error.detail == "Not Found":
            message = f"there is no {request.method} {request.url.path} here; the API is described at /openapi.json"
        elif error.status_code == 405:
            allowed = (error.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path} (allowed: {allowed})"
        else:
            message = str(error.detail)
        code = _HTTP_CODES.get(error.status_code, "http_error")
        return problem_response(error.status_code, code, message, request.url.path, error.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=error)
        request_id = REQUEST_ID.get()
        return problem_response(500, SheetstreamError.code, f"internal error ({type(error).__name__}); it is logged",
                                request.url.path, {"X-Request-ID": request_id} if request_id else None)
