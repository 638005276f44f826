"""The audit trail (``sheetstream_audit``): one record per import, kept after its job record is gone: who, when,
the table, mode and dry run, the file's size and SHA-256, the rows written, and the outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from .control import run_mysql, run_postgres, run_sqlite

#: The fields every record has (others may be added: they are kept with it).
FIELDS = ("at", "who", "via", "table", "mode", "dry_run", "bytes", "sha256", "rows_written", "outcome", "job_id")


class SqliteAudit:
    def __init__(self, path: Path):
        self.path = path

    def _run(self, statement: str, args: tuple) -> list[tuple]:
        return run_sqlite(self.path, "CREATE TABLE IF NOT EXISTS sheetstream_audit (seq INTEGER PRIMARY KEY "
                                     "AUTOINCREMENT, at REAL NOT NULL, who TEXT NOT NULL, data TEXT NOT NULL)",
                          statement, args)

    def record(self, entry: dict[str, Any]) -> None:
        self._run("INSERT INTO sheetstream_audit (at, who, data) VALUES (?, ?, ?)",
                  (entry["at"], entry["who"], json.dumps(entry)))

    def recent(self, limit: int = 100, who: str | None = None) -> list[dict[str, Any]]:
        rows = self._run("SELECT data FROM sheetstream_audit WHERE ? IS NULL OR who = ? ORDER BY seq DESC LIMIT ?",
                         (who, who, limit))
        return [json.loads(r[0]) for r in rows]


class PostgresAudit:
    def __init__(self, connect: Callable[..., psycopg.Connection]):
        self.connect = connect

    def _run(self, statement: str, args: tuple) -> list[tuple]:
        return run_postgres(self.connect, _create_table, statement, args)

    def record(self, entry: dict[str, Any]) -> None:
        self._run("INSERT INTO sheetstream_audit (at, who, data) VALUES (to_timestamp(%s), %s, %s)",
                  (entry["at"], entry["who"], Jsonb(entry)))

    def recent(self, limit: int = 100, who: str | None = None) -> list[dict[str, Any]]:
        rows = self._run("SELECT data FROM sheetstream_audit WHERE %s::text IS NULL OR who = %s "
                         "ORDER BY seq DESC LIMIT %s", (who, who, limit))
        return [r[0] for r in rows]


def _create_table(conn: psycopg.Connection) -> None:
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_audit (seq bigserial PRIMARY KEY, "
                     "at timestamptz NOT NULL, who text NOT NULL, data jsonb NOT NULL)")
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject):
        pass  # another instance created it at the same moment


class MysqlAudit:
    def __init__(self, connect: Callable[..., Any]):
        self.connect = connect

    def _run(self, statement: str, args: tuple) -> list[tuple]:
        return run_mysql(self.connect, _create_mysql_table, statement, args)[0]

    def record(self, entry: dict[str, Any]) -> None:
        self._run("INSERT INTO sheetstream_audit (at, who, data) VALUES (FROM_UNIXTIME(?), ?, ?)",
                  (entry["at"], entry["who"], json.dumps(entry)))

    def recent(self, limit: int = 100, who: str | None = None) -> list[dict[str, Any]]:
        rows = self._run("SELECT data FROM sheetstream_audit WHERE ? IS NULL OR who = ? ORDER BY seq DESC LIMIT ?",
                         (who, who, limit))
        return [json.loads(r[0]) for r in rows]


def _create_mysql_table(conn: Any) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_audit (seq bigint AUTO_INCREMENT PRIMARY KEY, "
                 "at datetime(6) NOT NULL, who varchar(255) NOT NULL, data longtext NOT NULL) "
                 "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
