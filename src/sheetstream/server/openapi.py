"""The API description (``/openapi.json``) as the server really answers: FastAPI's document, completed.

- Security: a bearer token, or the page's session cookie (with ``X-CSRF-Token`` on writes); the few open
  operations say so.
- Errors: each operation lists the statuses it can answer with an error, each an RFC 9457 problem
  (``application/problem+json``, :mod:`.errors`); FastAPI's 422 for request validation is gone (the server
  answers 400).
- Bodies: the uploads (the workbook itself for ``PUT``, a form for ``POST``), the workbooks the exports stream,
  the ``Location`` and ``Link`` headers, and the 200 a request with ``wait=true`` gets.
"""

from __future__ import annotations

import copy
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from .. import formats
from ..formats.xlsx import MEDIA_TYPE
from ..pipeline.validate import EXTRA_COLUMNS
from ..store import MODES
from .auth import CSRF_HEADER, SESSION_COOKIE
from .errors import PROBLEM

#: Operations served without credentials (the others take a token or the session cookie).
OPEN = {("get", "/healthz"), ("get", "/readyz"), ("post", "/session")}
#: The error statuses each operation may answer, besides 401 and 403 for those that need credentials.
QUEUED = (429, 503)
UPLOAD = (400, 404, 408, 409, 413, 415, 422, *QUEUED, 507)
ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("get", "/healthz"): (),
    ("get", "/readyz"): (503,),
    ("get", "/status"): (400,),
    ("get", "/tables"): (503,),
    ("get", "/tables/{table}/estimate"): (400, 404, 503),
    ("get", "/audit"): (400, 503),
    ("get", "/session"): (),
    ("post", "/session"): (400, 401, 403, 415),
    ("delete", "/session"): (),
    **{("get", f"/exports/{{table}}.{f.extension}"): (400, 404, *QUEUED) for f in formats.FORMATS.values()},
    ("get", "/exports/book.xlsx"): (400, 404, *QUEUED),
    ("get", "/exports/q/{name}.xlsx"): (400, 404, *QUEUED),
    ("put", "/imports/{table}"): UPLOAD,
    ("post", "/imports/{table}"): UPLOAD,
    ("get", "/jobs"): (400, 503),
    ("get", "/jobs/{job_id}"): (404, 503),
    ("delete", "/jobs/{job_id}"): (404, 409, 503),
    ("post", "/jobs/{job_id}/commit"): (400, 404, 409, 410, 422, *QUEUED, 507),
    ("get", "/jobs/{job_id}/problems.xlsx"): (404, 409, 410, *QUEUED),
}
#: Operations that answer with a file, and its media type.
FILES: dict[tuple[str, str], str] = {
    **{("get", f"/exports/{{table}}.{f.extension}"): f.media_type for f in formats.FORMATS.values()},
    ("get", "/exports/book.xlsx"): MEDIA_TYPE, ("get", "/exports/q/{name}.xlsx"): MEDIA_TYPE,
    ("get", "/jobs/{job_id}/problems.xlsx"): MEDIA_TYPE,
}
#: Operations whose ``wait=true`` answers 200 with the ended job instead of 202.
WAITING = {("put", "/imports/{table}"), ("post", "/imports/{table}"), ("post", "/jobs/{job_id}/commit")}

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem; ``error`` and ``message`` repeat ``type``'s code and ``detail`` for "
                   "clients written before; other fields (``errors``, ``error_total``, ``retry_after``, "
                   "``checks``...) depend on the error.",
    "required": ["type", "title", "status", "detail", "error", "message"],
    "properties": {
        "type": {"type": "string", "description": "urn:sheetstream:problem:<error>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "the request's path (or the job's location)"},
        "error": {"type": "string", "description": "the error's code, for a program"},
        "message": {"type": "string", "description": "the same as detail, for a person"},
        "request_id": {"type": "string", "description": "as in the X-Request-ID header and the server's log"},
        "errors": {"type": "array", "items": {"type": "object"}, "description": "cell problems of an import"},
        "error_total": {"type": "integer"},
        "retry_after": {"type": "integer"},
    },
    "additionalProperties": True,
}
_LOCATION = {"Location": {"description": "the job's URL", "schema": {"type": "string"}}}
_UPLOAD_FORM = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "the .xlsx workbook or the CSV file"},
        "mode": {"type": "string", "enum": list(MODES), "description": "overrides the query's"},
        "dry_run": {"type": "string", "description": "true/1/on/yes: validate only (overrides the query's)"},
        "sheet": {"type": "string"},
        "extra_columns": {"type": "string", "enum": list(EXTRA_COLUMNS)},
    },
}


def document(app: FastAPI) -> dict[str, Any]:
    """The completed description, made once per app (the routes do not change while it runs)."""
    if not getattr(app.state, "openapi", None):
        app.state.openapi = complete(copy.deepcopy(app.openapi()))
    return app.state.openapi


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "an API token (sheetstream token create), or the server's admin token"},
        "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                    "description": f"the page's session (POST /session); writes also send the {CSRF_HEADER} "
                                   "header GET /session gives"},
    }
    doc["security"] = [{"bearer": []}, {"session": []}]
    for path, operations in doc.get("paths", {}).items():
        for method, operation in operations.items():
            _complete_operation(method, path, operation)
    return doc


def _complete_operation(method: str, path: str, operation: dict[str, Any]) -> None:
    key = (method, path)
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    statuses = set(ERRORS.get(key, (400,)))
    if key in OPEN:
        operation["security"] = []
    else:
        statuses |= {401, 403}
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    if key in FILES:
        responses["200"]["content"] = {FILES[key]: {"schema": {"type": "string", "format": "binary"}}}
    if key in WAITING:
        accepted = responses.setdefault("202", {"description": "Accepted"})
        accepted["description"] = "the job, queued: follow Location (GET /jobs/{id})"
        accepted["headers"] = _LOCATION
        responses["200"] = {"description": "with wait=true: the job, ended well",
                            "content": copy.deepcopy(accepted.get("content") or {"application/json": {}})}
    if key == ("get", "/jobs"):
        responses["200"]["headers"] = {"Link": {"description": 'rel="next" and rel="prev" pages (RFC 8288)',
                                                "schema": {"type": "string"}}}
    if key == ("put", "/imports/{table}"):
        operation["requestBody"] = {"required": True, "description": "the .xlsx workbook or the CSV file itself, "
                                    "streamed; its format is told by its bytes, and its type must agree",
                                    "content": {**{t: {"schema": {"type": "string", "format": "binary"}}
                                                   for f in formats.FORMATS.values() for t in (f.media_type,)},
                                                "application/octet-stream": {"schema": {"type": "string",
                                                                                        "format": "binary"}}}}
    if key == ("post", "/imports/{table}"):
        operation["requestBody"] = {"required": True, "description": "a form, as a browser sends it",
                                    "content": {"multipart/form-data": {"schema": _UPLOAD_FORM}}}
