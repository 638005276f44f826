"""Typed dependencies for the routes: the app's shared parts, and the checks a route needs before it works.

A route declares what it needs (``store: StoreDep``, ``table: PermittedTable``); how those are made, and who
may have them, is decided here once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..errors import NotFound
from ..pipeline.jobs import JobBoard
from ..runtime import ProcessingQueue
from ..store import Store
from .metrics import Metrics
from .uploads import SpoolBudget


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_queue(request: Request) -> ProcessingQueue:
    return request.app.state.queue


def get_board(request: Request) -> JobBoard:
    return request.app.state.board


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_spool(request: Request) -> SpoolBudget:
    return request.app.state.spool


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[ProcessingQueue, Depends(get_queue)]
BoardDep = Annotated[JobBoard, Depends(get_board)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
SpoolDep = Annotated[SpoolBudget, Depends(get_spool)]


def permitted_table(table: str, settings: SettingsDep) -> str:
    """The ``{table}`` of the path, when this server's allow-list has it (404 otherwise, naming the list)."""
    if table not in settings.tables:
        raise NotFound(f"table {table!r} is not served by this server; exported tables: {', '.join(settings.tables)}",
                       tables=list(settings.tables))
    return table


PermittedTable = Annotated[str, Depends(permitted_table)]
