"""The application factory: builds the shared parts (store, queue, lag monitor, metrics, life cycle) and mounts
the routes."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles

from ..config import Settings
from ..pipeline.jobs import JobBoard
from ..pipeline.named import check_queries
from ..runtime import ProcessingQueue, make_strategy
from ..store import Store, open_store
from . import errors
from .auth import CSRF_HEADER, Gate
from .headers import SecurityHeaders
from .kept import KeptUploads
from .lag import LagMonitor
from .lifecycle import Lifecycle, new_instance_id
from .logs import RequestLog
from .metrics import Metrics
from .routes import books, exports, imports, jobs, meta, named, session
from .shares import Shares
from .spill import SpillBudget
from .spill import remove_dead as remove_dead_spills
from .streams import Downloads
from .uploads import Senders, SpoolBudget


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    options = settings.queue
    strategy = make_strategy(options.strategy, options.worker_count, options.start_method, options.max_pending_chunks,
                             options.worker_memory_bytes, options.split_imports)
    queue = ProcessingQueue(strategy, options.worker_count, options.max_waiting)
    lag = LagMonitor()
    metrics = Metrics(queue, lag)
    lag.observe = metrics.lag_seconds.observe
    store = store or open_store(settings.database)
    board = JobBoard(store.jobs, instance=new_instance_id())
    lifecycle = Lifecycle(settings, board, queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        remove_dead_spills(settings.spool_dir)  # a killed server's
        # Named queries are checked before anything starts: a server with a broken one does not start.
        app.state.query_columns = await run_in_threadpool(check_queries, store, settings.queries)
        await queue.start()
        lag.start()
        await lifecycle.start()
        sweeper = asyncio.create_task(app.state.kept.sweep_forever())
        try:
            yield
        finally:
            sweeper.cancel()
            await lag.stop()
            await lifecycle.stop()  # the drain: running jobs until the deadline, then no process left

    # The API description is served by routes of our own (meta), for admins unless made public.
    app = FastAPI(title="sheetstream", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    app.state.store = store
    app.state.gate = Gate(settings.access, store.tokens)
    app.state.shares = Shares(options.per_identity)
    app.state.board = board
    app.state.queue = queue
    app.state.lag = lag
    app.state.metrics = metrics
    app.state.lifecycle = lifecycle
    limits = settings.imports
    app.state.kept = KeptUploads(settings.spool_dir / "kept", limits.keep_upload_seconds, limits.max_spool_files,
                                 limits.max_spool_bytes)
    app.state.spool = SpoolBudget(settings.spool_dir, limits.max_spool_files, limits.max_spool_bytes, app.state.kept)
    app.state.senders = Senders(limits.uploads_per_address)
    spill = SpillBudget(app.state.spool, settings.export.export_spill_bytes, limits.max_spool_bytes // 4)
    metrics.watch_spill(spill)
    app.state.downloads = Downloads(queue, app.state.shares, metrics, settings.export, spill)
    errors.install(app)
    for routes in (meta, session, books, named, exports, imports, jobs):  # books first: /exports/book.xlsx
        app.include_router(routes.router)
    app.mount("/assets", StaticFiles(directory=meta.PAGE / "assets"), name="assets")
    app.mount("/docs/assets", StaticFiles(directory=meta.SWAGGER_UI), name="docs-assets")  # Swagger UI's own files
    if settings.access.cors_origins:  # scripts of those origins, with bearer tokens (never the cookie)
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.access.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "PUT", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", CSRF_HEADER],
                           expose_headers=["Location", "Retry-After"])
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestLog)  # outermost of ours: it sees every answer, the request id reaches every route
    return app
