"""What the control tables (jobs, tokens, audit) share: one statement at a time, the table made when missing.

Each table's module says its schema; these two functions are the plumbing around it, once per database kind.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from .mysql_connect import NO_SUCH_TABLE


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
