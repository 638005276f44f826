"""The server's own routes: health, metrics, status, the table list, the audit trail, the API description, and the
page. Only ``/healthz`` and the page's shell are open to all; metrics, status and the API description are for
admins unless SHEETSTREAM_PUBLIC names them."""

from __future__ import annotations

import asyncio
import importlib
import time
from pathlib import Path
from typing import Annotated

import fastapi_offline
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ...errors import NotReady
from ...pipeline.query import parse_export_query
from ...store import Store
from ..deps import (
    Admin,
    Caller,
    MetricsDep,
    QueueDep,
    ReadableTable,
    SettingsDep,
    StoreDep,
    admin_unless_public,
    default_mode,
)
from ..openapi import document

PAGE = Path(__file__).resolve().parents[2] / "web"
#: Swagger UI's own files (swagger-ui-bundle.js, swagger-ui.css), from a kept package: fastapi-offline ships
#: Swagger UI 5 (5.32 in 1.7.7), which renders the OpenAPI 3.1 that FastAPI writes, and needs nothing but
#: FastAPI. The other candidate, swagger-ui-bundle (1.1.0, its newest), ships Swagger UI 4.15, which refuses
#: OpenAPI 3.1 ("does not specify a valid version field"), and brings Jinja2 along. Only the files are used:
#: fastapi-offline's own /docs page starts Swagger UI with an inline script, which the policy does not run.
SWAGGER_UI = Path(fastapi_offline.__file__).resolve().parent / "static"
DOCS_INIT = Path(__file__).resolve().parents[1] / "swagger-init.js"
DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sheetstream API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""
#: How long each readiness check may take.
READY_SECONDS = 3.0

router = APIRouter()


def compiled_scanner() -> bool:
    """Whether imports read with the compiled scanner (``_cells.c``, built with the package where a C compiler
    was found), or with the Python loop, about 4x slower."""
    try:
        importlib.import_module("sheetstream.formats.xlsx._cells")
    except ImportError:
        return False
    return True


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(store: StoreDep, queue: QueueDep) -> dict:
    """Whether this instance can take work: the database answers a catalog query and a worker runs a trivial task,
    each within a few seconds. A load balancer takes an instance out of rotation on 503 here; ``/healthz`` only
    says the process is alive (for restarting it)."""
    checks = {"database": await database_problem(store), "workers": await queue.check(READY_SECONDS)}
    if any(checks.values()):
        wrong = "; ".join(f"{name}: {problem}" for name, problem in checks.items() if problem)
        raise NotReady(f"not ready: {wrong}", checks={name: problem or "ok" for name, problem in checks.items()})
    return {"status": "ready", "checks": {name: "ok" for name in checks}, "strategy": queue.strategy.name}


async def database_problem(store: Store) -> str | None:
    try:
        async with asyncio.timeout(READY_SECONDS):
            await run_in_threadpool(store.tables)
    except TimeoutError:
        return f"the database did not answer within {READY_SECONDS:g} s"
    except Exception as exc:
        return getattr(exc, "message", None) or repr(exc)
    return None


@router.get("/metrics", include_in_schema=False, dependencies=[admin_unless_public("metrics")])
async def prometheus(metrics: MetricsDep) -> Response:
    body = await run_in_threadpool(metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/status", dependencies=[admin_unless_public("status")])
async def status(request: Request, queue: QueueDep, since_seconds: float | None = None) -> dict:
    """The queue and the event loop at a glance (the load test reads it); lag over the last ``since_seconds``
    (default: the monitor's 60-second window)."""
    since = time.perf_counter() - since_seconds if since_seconds else None
    return {
        "strategy": queue.strategy.name,
        "workers": queue.workers,
        "active": dict(queue.active),
        "queued": dict(queue.queued),
        "max_waiting": queue.max_waiting,
        "spool": {"files": request.app.state.spool.files, "bytes": request.app.state.spool.bytes},
        "spill": {"held": request.app.state.downloads.spill.held, "spilled": request.app.state.downloads.spill.spilled},
        "compiled_scanner": compiled_scanner(),
        "lag": request.app.state.lag.summary(since),
    }


@router.get("/tables")
async def tables(caller: Caller, settings: SettingsDep, store: StoreDep) -> list[dict]:
    """The served tables and views the caller has a grant on, with their kind (``table`` or ``view``), columns,
    row counts, and what the caller may do (``permissions``: read, append, upsert, replace; a view is read only)."""

    def describe() -> list[dict]:
        found = store.relations()
        return [
            {
                "name": name,
                "kind": found[name],
                "rows": store.count(name),
                "columns": [{"name": c.name, "kind": c.kind, "nullable": c.nullable, "primary_key": c.primary_key}
                            for c in store.columns(name)],
                "default_mode": default_mode(caller, name, store.columns(name)),
                "export": f"/exports/{name}.xlsx",
                "permissions": [p for p in caller.grants.on(name) if found[name] == "table" or p == "read"],
            }
            for name in settings.tables
            if name in found and caller.grants.on(name)
        ]

    return await run_in_threadpool(describe)


@router.get("/tables/{table}/estimate")
async def estimate(request: Request, table: ReadableTable, store: StoreDep) -> dict:
    """About how many rows an export with these filters would hold (``rows``), as the database estimates it
    without reading them (PostgreSQL's planner, MySQL's optimizer); ``null`` where it keeps no estimate (SQLite).
    The query string is an export's: filters as in ``/exports/{table}.xlsx``."""
    catalog = await run_in_threadpool(store.columns, table)
    query = parse_export_query(request.query_params.multi_items(), catalog)  # select, order: checked, not needed
    return {"table": table, "rows": await run_in_threadpool(store.estimate, table, query.where)}


@router.get("/audit")
async def audit(caller: Admin, store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                who: Annotated[str | None, Query(description="one identity: token:NAME or user:NAME")] = None) -> list[dict]:
    """Admins: the newest import records first (who, when, table, mode, dry run, size, SHA-256, rows, outcome)."""
    return await run_in_threadpool(store.audit.recent, limit, who)


@router.get("/openapi.json", include_in_schema=False, dependencies=[admin_unless_public("docs")])
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document(request.app))


@router.get("/docs", include_in_schema=False, dependencies=[admin_unless_public("docs")])
async def docs() -> HTMLResponse:
    """Swagger UI, every file of it served by this server (``/docs/assets/``, ``/docs/init.js``): it works with no
    network beyond the server, under the server's own Content-Security-Policy (no inline script, no CDN)."""
    return HTMLResponse(DOCS_PAGE, headers={"Cache-Control": "no-cache"})


@router.get("/docs/init.js", include_in_schema=False, dependencies=[admin_unless_public("docs")])
async def docs_init() -> FileResponse:
    """What starts Swagger UI: a served file, as the policy wants (it runs no inline script)."""
    return FileResponse(DOCS_INIT, media_type="text/javascript; charset=utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    """The page (React, built into the package: no Node needed to serve it)."""
    return HTMLResponse(PAGE.joinpath("index.html").read_text(), headers={"Cache-Control": "no-cache"})
