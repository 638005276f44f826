"""The application factory: builds the shared parts (store, queue, lag monitor, metrics, life cycle) and mounts
the routes."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from ..config import Settings
from ..pipeline.jobs import JobBoard
from ..runtime import ProcessingQueue, make_strategy
from ..store import Store, open_store
from . import errors
from .lag import LagMonitor
from .lifecycle import Lifecycle, new_instance_id
from .metrics import Metrics
from .routes import exports, imports, jobs, meta


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    options = settings.queue
    strategy = make_strategy(options.strategy, options.worker_count, options.start_method, options.max_pending_chunks)
    queue = ProcessingQueue(strategy, options.worker_count, options.max_waiting)
    lag = LagMonitor()
    metrics = Metrics(queue, lag)
    lag.observe = metrics.lag_seconds.observe
    store = store or open_store(settings.database)
    board = JobBoard(store.jobs, instance=new_instance_id())
    lifecycle = Lifecycle(settings, board, queue)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await queue.start()
        lag.start()
        await lifecycle.start()
        try:
            yield
        finally:
            await lag.stop()
            await lifecycle.stop()  # the drain: running jobs until the deadline, then no process left

    app = FastAPI(title="sheetstream", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.store = store
    app.state.board = board
    app.state.queue = queue
    app.state.lag = lag
    app.state.metrics = metrics
    app.state.lifecycle = lifecycle
    errors.install(app)
    for routes in (meta, exports, imports, jobs):
        app.include_router(routes.router)
    app.mount("/assets", StaticFiles(directory=meta.PAGE / "assets"), name="assets")
    return app
