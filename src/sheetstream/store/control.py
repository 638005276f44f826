"""What the control tables (jobs, tokens, audit) share: one statement at a time, the table made when missing, and
:func:`retried` for the writes that must outlive a lost connection.

Each table's module says its schema; these functions are the plumbing around it, once per database kind.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from ..errors import StoreUnavailable
from .mysql_connect import NO_SUCH_TABLE

log = logging.getLogger("sheetstream.store")

T = TypeVar("T")

#: How long a write that must not be lost (a job's ending, an audit record) tries again through a lost connection:
#: a restart of PostgreSQL takes about a second here; past this the caller's own fallback takes over (the sweep).
RETRY_SECONDS = 20.0


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached or cut the connection (worth trying again on a new
    one), rather than that it refused the statement: SQLSTATE classes 08 (connection) and 57P (shutdown,
    starting up), or none at all (a socket closed under psycopg). A lock timeout (55P03) is not one."""
    if isinstance(exc, StoreUnavailable):
        return True
    if isinstance(exc, psycopg.OperationalError):
        state = exc.sqlstate or ""
        return not state or state.startswith(("08", "57P"))
    return False


def retried(call: Callable[[], T], what: str, seconds: float = RETRY_SECONDS) -> T:
    """``call()``, on a new connection each time, again after a lost connection, pausing 0.1 s, 0.2 s ... up to 2 s
    between tries, for at most ``seconds``; then the last error. ``call`` must be safe to repeat."""
    deadline = time.monotonic() + seconds
    pause = 0.1
    while True:
        try:
            return call()
        except Exception as exc:
            if not lost_connection(exc) or time.monotonic() + pause > deadline:
                raise
            log.warning("%s: the database connection was lost (%s); trying again in %.1f s", what,
                        str(exc).strip() or type(exc).__name__, pause)
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


def run_sqlite(path: Path, schema: str, statement: str, args: tuple) -> list[tuple]:
    """``statement`` on the control file at ``path`` (WAL), after ``schema`` (a CREATE TABLE IF NOT EXISTS)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(schema)
        return conn.execute(statement, args).fetchall()
    finally:
        conn.close()


def run_postgres(connect: Callable[..., psycopg.Connection], create: Callable[[psycopg.Connection], None],
                 statement: str, args: tuple,
                 missing: tuple[type[Exception], ...] = (psycopg.errors.UndefinedTable,)) -> list[tuple]:
    """``statement`` in autocommit; when the table is ``missing`` (the first use in this database, or a table from
    an older version), ``create(conn)`` makes it and the statement runs again."""
    with connect(autocommit=True) as conn:
        try:
            cursor = conn.execute(statement, args)
        except missing:
            create(conn)
            cursor = conn.execute(statement, args)
        return cursor.fetchall() if cursor.description else []


def run_mysql(connect: Callable[..., Any], create: Callable[[Any], None], statement: str,
              args: tuple) -> tuple[list[tuple], int]:
    """``statement`` in autocommit on MySQL: its rows and its row count (MySQL has no UPDATE ... RETURNING; the
    count is of rows matched, changed or not). When the table is missing, ``create(conn)`` makes it first."""
    with connect(autocommit=True) as conn:
        try:
            cursor = conn.execute(statement, args)
        except Exception as exc:
            if getattr(exc, "errno", None) != NO_SUCH_TABLE:
                raise
            create(conn)
            cursor = conn.execute(statement, args)
        return (cursor.fetchall() if cursor.description else []), cursor.rowcount
