"""What the server tells its operator: one line per request and per job transition, as JSON or as text.

- :class:`RequestLog`, a pure ASGI middleware (it passes each chunk on as it comes: a streamed export is never
  held back), gives every request an id (the client's ``X-Request-ID`` when it is a sane one, else a new one),
  echoes it in the response, and logs one line when the response has ended: method, path, status, bytes,
  duration, identity, request id. Query values whose names look secret (``token=``...) are logged as ``***``;
  headers (Authorization, cookies) never are.
- :func:`job_event` logs a job's transition (queued, done, failed) with the id of the request that caused it:
  the id lives in a context variable, which the job's task inherits from the request's.
- :func:`configure` (:mod:`sheetstream.runtime.logformat`) sends sheetstream's and uvicorn's loggers to stderr
  in one format, in the server and its workers: ``json`` (one object a line, for a collector) or ``text`` (for a
  person at a terminal; the default when stderr is one).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..pipeline.jobs import Job
from ..runtime.logformat import REQUEST_ID, JsonFormatter, TextFormatter, configure, default_format

__all__ = ["REQUEST_ID", "JsonFormatter", "RequestLog", "TextFormatter", "configure", "default_format", "job_event",
           "loggable_query", "request_id_of"]

HEADER = "X-Request-ID"
#: A client's request id is kept when it is at most this long and made of these characters (no spaces, quotes
#: or control characters that could forge a log line); otherwise a new one is made.
MAX_ID = 128
_SANE_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]+$")
#: Query parameters whose values are never logged.
_SECRET = re.compile(r"token|pass|secret|session|csrf|key|auth|code|sig", re.IGNORECASE)

requests_log = logging.getLogger("sheetstream.requests")
jobs_log = logging.getLogger("sheetstream.jobs")


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-ID`` when it is sane (:data:`MAX_ID`, :data:`_SANE_ID`), else a new random one."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1").strip()
            if 0 < len(text) <= MAX_ID and _SANE_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


def loggable_query(query: str) -> str:
    """The query string with the values of secret-looking parameters replaced by ``***``."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if _SECRET.search(k) else v) for k, v in pairs], safe="*/:,")


class RequestLog:
    """One log line per HTTP request, after its response has ended (or failed)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope.get("headers", []))
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        seen = {"status": 0, "bytes": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException:
            # The id stays set (each request runs in a task of its own): the 500 that Starlette's outermost
            # error middleware sends after this carries it too (server/errors.py).
            seen["status"] = seen["status"] or 500
            self._log(scope, seen, time.perf_counter() - started, request_id)
            raise
        self._log(scope, seen, time.perf_counter() - started, request_id)
        REQUEST_ID.reset(token)

    @staticmethod
    def _log(scope: Scope, seen: dict[str, int], seconds: float, request_id: str) -> None:
        identity = scope.get("state", {}).get("identity")
        query = loggable_query(scope.get("query_string", b"").decode("latin-1"))
        path = scope.get("path", "")
        status = seen["status"]
        fields = {
            "event": "request",
            "request_id": request_id,
            "method": scope.get("method"),
            "path": path,
            "query": query or None,
            "status": status,
            "bytes": seen["bytes"],
            "duration_ms": round(seconds * 1000, 1),
            "identity": identity.key if identity is not None else None,
            "client": (scope.get("client") or [None])[0],
        }
        level = logging.ERROR if status >= 500 else logging.INFO
        requests_log.log(level, "%s %s %s", scope.get("method"), path, status, extra=fields)


def job_event(job: Job, event: str) -> None:
    """A job's transition (``queued``, ``done``, ``failed``...), with the request id of the request that caused it."""
    fields = {"event": f"job.{event}", "job_id": job.id, "table": job.table, "mode": job.mode,
              "dry_run": job.dry_run, "state": job.state, "bytes": job.bytes_received, "rows_read": job.rows_read,
              "rows_written": job.rows_inserted if job.state == "done" and not job.dry_run else 0,
              "outcome": (job.error or job.state) if job.ended else None, "preview_of": job.preview_of}
    level = logging.WARNING if job.state == "failed" and job.error not in ("invalid", "cancelled") else logging.INFO
    ending = f": {job.message}" if job.ended and job.message else ""
    jobs_log.log(level, "job %s %s%s", job.id, event, ending, extra=fields)
