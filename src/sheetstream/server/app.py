"""The ASGI application: routes, the one mapping of errors to HTTP, and the shared parts (store, queue, lag)."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from ..config import Settings
from ..db import Store, open_store
from ..errors import BadRequest, Busy, SheetstreamError
from ..jobs import JobBoard
from ..processing import ProcessingQueue
from . import exports, imports
from .lag import LagMonitor
from .metrics import Metrics

PAGE = Path(__file__).resolve().parent.parent / "web"


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    queue = ProcessingQueue(settings.executor, settings.workers, settings.max_waiting, settings.start_method,
                            settings.max_pending_chunks)
    lag = LagMonitor()
    metrics = Metrics(queue, lag)
    lag.observe = metrics.lag_seconds.observe

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await queue.start()
        lag.start()
        try:
            yield
        finally:
            await lag.stop()
            if app.state.tasks:
                await asyncio.wait(app.state.tasks, timeout=10)
            await queue.stop()

    app = FastAPI(title="sheetstream", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store or open_store(settings.database)
    app.state.board = JobBoard(app.state.store)
    app.state.queue = queue
    app.state.lag = lag
    app.state.metrics = metrics
    app.state.tasks = set()  # running import jobs

    @app.exception_handler(SheetstreamError)
    async def sheetstream_error(request: Request, exc: SheetstreamError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Busy) else None
        return JSONResponse(exc.to_json(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(map(str, e['loc'][1:])) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        error = BadRequest("invalid request: " + "; ".join(problems), problems=problems)
        return JSONResponse(error.to_json(), status_code=error.status)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/status")
    async def status(since_seconds: float | None = None) -> dict:
        """The queue and the event loop at a glance (the load test reads it); lag over the last
        ``since_seconds`` (default: the monitor's 60-second window)."""
        since = time.perf_counter() - since_seconds if since_seconds else None
        return {
            "strategy": queue.strategy,
            "workers": queue.workers,
            "active": dict(queue.active),
            "queued": dict(queue.queued),
            "max_waiting": queue.max_waiting,
            "lag": lag.summary(since),
        }

    @app.get("/tables")
    async def tables(request: Request) -> list[dict]:
        """The exportable tables with their columns and row counts."""
        store: Store = request.app.state.store

        def describe() -> list[dict]:
            found = set(store.tables())
            return [
                {
                    "name": name,
                    "rows": store.count(name),
                    "columns": [{"name": c.name, "kind": c.kind, "nullable": c.nullable} for c in store.columns(name)],
                    "export": f"/exports/{name}.xlsx",
                }
                for name in settings.tables
                if name in found
            ]

        return await run_in_threadpool(describe)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        """The page (React, built into the package: no Node needed to serve it)."""
        return HTMLResponse(PAGE.joinpath("index.html").read_text(), headers={"Cache-Control": "no-cache"})

    app.mount("/assets", StaticFiles(directory=PAGE / "assets"), name="assets")
    app.include_router(exports.router)
    app.include_router(imports.router)
    return app

