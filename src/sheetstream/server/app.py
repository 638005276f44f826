"""The application factory: builds the shared parts (store, queue, lag monitor, metrics) and mounts the routes."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from ..config import Settings
from ..pipeline.jobs import JobBoard
from ..runtime import ProcessingQueue, make_strategy
from ..store import Store, open_store
from . import errors
from .lag import LagMonitor
from .metrics import Metrics
from .routes import exports, imports, jobs, meta
from .uploads import SpoolBudget


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    options = settings.queue
    strategy = make_strategy(options.strategy, options.worker_count, options.start_method, options.max_pending_chunks,
                             options.worker_memory_bytes)
    queue = ProcessingQueue(strategy, options.worker_count, options.max_waiting)
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
    app.state.board = JobBoard(app.state.store.jobs)
    app.state.queue = queue
    app.state.lag = lag
    app.state.metrics = metrics
    app.state.tasks = set()  # running import jobs
    limits = settings.imports
    app.state.spool = SpoolBudget(settings.spool_dir, limits.max_spool_files, limits.max_spool_bytes)
    errors.install(app)
    for routes in (meta, exports, imports, jobs):
        app.include_router(routes.router)
    app.mount("/assets", StaticFiles(directory=meta.PAGE / "assets"), name="assets")
    return app
