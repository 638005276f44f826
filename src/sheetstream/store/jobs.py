"""Job records (``sheetstream_jobs``), kept apart from table I/O: an id, the job's JSON, and a cancel flag.

The cancel flag is a column of its own, so the worker's progress saves (which replace ``data``) can never
overwrite a request to cancel made by another instance.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


class SqliteJobs:
    def __init__(self, path: Path):
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_jobs "
                     "(id TEXT PRIMARY KEY, data TEXT NOT NULL, cancel INTEGER NOT NULL DEFAULT 0)")
        if "cancel" not in {row[1] for row in conn.execute("PRAGMA table_info(sheetstream_jobs)")}:
            conn.execute("ALTER TABLE sheetstream_jobs ADD COLUMN cancel INTEGER NOT NULL DEFAULT 0")  # older file
        return conn

    def _run(self, statement: str, args: tuple) -> list[tuple]:
        conn = self._connect()
        try:
            return conn.execute(statement, args).fetchall()
        finally:
            conn.close()

    def save(self, job_id: str, data: dict[str, Any]) -> None:
        self._run("INSERT INTO sheetstream_jobs (id, data) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                  (job_id, json.dumps(data)))

    def load(self, job_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT data FROM sheetstream_jobs WHERE id = ?", (job_id,))
        return json.loads(rows[0][0]) if rows else None

    def request_cancel(self, job_id: str) -> None:
        self._run("UPDATE sheetstream_jobs SET cancel = 1 WHERE id = ?", (job_id,))

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._run("SELECT 1 FROM sheetstream_jobs WHERE id = ? AND cancel = 1", (job_id,)))

    def recent(self, owner: str | None, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._run("SELECT data FROM sheetstream_jobs WHERE ? IS NULL OR json_extract(data, '$.owner') = ? "
                         "ORDER BY json_extract(data, '$.created_at') DESC LIMIT ?", (owner, owner, limit))
        return [json.loads(r[0]) for r in rows]


class PostgresJobs:
    def __init__(self, connect: Callable[..., psycopg.Connection]):
        self.connect = connect

    def _run(self, statement: str, args: tuple) -> list[tuple]:
        with self.connect(autocommit=True) as conn:
            try:
                cursor = conn.execute(statement, args)
            except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
                _create_table(conn)  # the first job in this database (or a table from before the cancel flag)
                cursor = conn.execute(statement, args)
            return cursor.fetchall() if cursor.description else []

    def save(self, job_id: str, data: dict[str, Any]) -> None:
        self._run("INSERT INTO sheetstream_jobs (id, data) VALUES (%s, %s) "
                  "ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = now()", (job_id, Jsonb(data)))

    def load(self, job_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT data FROM sheetstream_jobs WHERE id = %s", (job_id,))
        return rows[0][0] if rows else None

    def request_cancel(self, job_id: str) -> None:
        self._run("UPDATE sheetstream_jobs SET cancel = true WHERE id = %s", (job_id,))

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._run("SELECT 1 FROM sheetstream_jobs WHERE id = %s AND cancel", (job_id,)))

    def recent(self, owner: str | None, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._run("SELECT data FROM sheetstream_jobs WHERE %s::text IS NULL OR data->>'owner' = %s "
                         "ORDER BY (data->>'created_at')::float8 DESC LIMIT %s", (owner, owner, limit))
        return [r[0] for r in rows]


def _create_table(conn: psycopg.Connection) -> None:
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_jobs (id text PRIMARY KEY, data jsonb NOT NULL, "
                     "cancel boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now())")
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
        pass  # another instance created it at the same moment
    conn.execute("ALTER TABLE sheetstream_jobs ADD COLUMN IF NOT EXISTS cancel boolean NOT NULL DEFAULT false")
