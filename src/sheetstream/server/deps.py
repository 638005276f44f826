"""Typed dependencies for the routes: the app's shared parts, and the checks a route needs before it works.

A route declares what it needs (``store: StoreDep``, ``table: PermittedTable``); how those are made, and who
may have them, is decided here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..access import ANONYMOUS, WRITES, Identity
from ..config import Settings
from ..errors import BadRequest, Forbidden, NotFound
from ..pipeline.jobs import JobBoard
from ..runtime import ProcessingQueue
from ..store import Column, Store
from .auth import Gate
from .metrics import Metrics
from .shares import Shares
from .streams import Downloads
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


def get_gate(request: Request) -> Gate:
    return request.app.state.gate


def get_shares(request: Request) -> Shares:
    return request.app.state.shares


def get_downloads(request: Request) -> Downloads:
    return request.app.state.downloads


def get_spool(request: Request) -> SpoolBudget:
    return request.app.state.spool


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[ProcessingQueue, Depends(get_queue)]
BoardDep = Annotated[JobBoard, Depends(get_board)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
GateDep = Annotated[Gate, Depends(get_gate)]
SharesDep = Annotated[Shares, Depends(get_shares)]
DownloadsDep = Annotated[Downloads, Depends(get_downloads)]


async def get_caller(request: Request) -> Identity:
    """Who is calling (401 without a valid credential), once per request; a request carrying a credential the
    browser sends on its own must also come from the page (403 otherwise: :meth:`Gate.check_request`)."""
    if "identity" in request.scope.get("state", {}):
        return request.state.identity
    gate: Gate = request.app.state.gate
    identity = ANONYMOUS if not gate.access.auth else await run_in_threadpool(gate.identify, request)
    gate.check_request(request, identity)
    request.state.identity = identity
    return identity


Caller = Annotated[Identity, Depends(get_caller)]


def require(caller: Identity, table: str, permission: str) -> None:
    """403 unless ``caller``'s grants allow ``permission`` on ``table`` (the message says what they do allow)."""
    if not caller.allows(table, permission):
        allowed = ", ".join(caller.grants.on(table)) or "nothing"
        raise Forbidden(f"{caller.name} may not {permission} table {table!r} (its grants allow: {allowed})",
                        permission=permission, table=table)


def default_mode(caller: Identity, table: str, columns: Sequence[Column]) -> str:
    """The import mode when none is asked for: update existing rows and add new ones where that is safe (the table
    has a primary key and the caller may upsert), else add rows. An edited export then updates what changed,
    instead of failing on every key it already has (the default of django-import-export's import by id)."""
    if any(c.primary_key for c in columns) and caller.allows(table, "upsert"):
        return "upsert"
    return "append"


def get_admin(caller: Caller) -> Identity:
    if not caller.admin:
        raise Forbidden(f"{caller.name} is not an admin: this is for admins only")
    return caller


Admin = Annotated[Identity, Depends(get_admin)]


def admin_unless_public(name: str):
    """A dependency: served to anyone when ``name`` is in SHEETSTREAM_PUBLIC, otherwise to admins only."""

    async def check(request: Request, settings: SettingsDep) -> None:
        if name not in settings.access.public:
            get_admin(await get_caller(request))

    return Depends(check)


SpoolDep = Annotated[SpoolBudget, Depends(get_spool)]


def permitted_table(table: str, settings: SettingsDep) -> str:
    """The ``{table}`` of the path, when this server's allow-list has it (404 otherwise, naming the list)."""
    if table not in settings.tables:
        raise NotFound(f"table {table!r} is not served by this server; exported tables: {', '.join(settings.tables)}",
                       tables=list(settings.tables))
    return table


PermittedTable = Annotated[str, Depends(permitted_table)]


def readable_table(caller: Caller, table: PermittedTable) -> str:
    """A served table the caller may export (401, 404, 403 in that order)."""
    require(caller, table, "read")
    return table


def writable_table(caller: Caller, table: PermittedTable, store: StoreDep) -> str:
    """A served table the caller may write in some mode (the mode itself is checked once it is known); a view is
    refused here, before any of the body is read. A sync dependency: FastAPI runs it in the thread pool."""
    if not any(caller.allows(table, mode) for mode in WRITES):
        require(caller, table, "append")
    if store.relations().get(table) == "view":
        raise BadRequest(f"{table!r} is a view: it can be exported, not imported into; import into the table(s) it "
                         "shows instead", table=table, kind="view")
    return table


ReadableTable = Annotated[str, Depends(readable_table)]
WritableTable = Annotated[str, Depends(writable_table)]
