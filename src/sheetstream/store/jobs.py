"""Job records (``sheetstream_jobs``), kept apart from table I/O: an id, the job's JSON, a cancel flag, and the
heartbeat of the instance that runs it (``instance``, ``seen_at``).

Rules that make a job's record agree with the database after any crash:

- An ended record (``done``, ``failed``) is final: no save overwrites it. A worker whose job was ended by
  someone else (a draining server, an instance that found its server dead) sees its save refused and rolls
  back.
- ``done`` is written inside the import's own transaction, right before COMMIT (:meth:`commit_with`):
  on PostgreSQL it is the same transaction, so "done" is true exactly when the rows are there. SQLite keeps
  jobs in a file of their own (one writer per file), so there the import's transaction writes a marker row
  (``sheetstream_commits``) into the data file instead, and the job record says ``committing`` until the
  worker writes ``done`` after COMMIT. The window between that COMMIT and that save is the one place where
  the record lags the rows; :meth:`SqliteJobs.settle` closes it by reading the marker, after taking the data
  file's write lock (so no COMMIT of it can still be under way).
- MySQL keeps them in the data's database, like PostgreSQL: ``done`` is written in the import's transaction.
- The cancel flag is a column of its own, so progress saves (which replace ``data``) never clear it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ..errors import Conflict
from .control import run_mysql, run_postgres
from .mysql_connect import Refused

ENDED_SQL = "('done', 'failed')"
COMMITTING = "committing"
#: Markers of committed imports are kept this long (seconds): any instance settles its jobs well before.
MARKER_DAYS = 1


def superseded(job_id: str) -> Conflict:
    return Conflict(f"job {job_id} was ended elsewhere (the server stopped, or the job was settled); "
                    "its transaction was rolled back and nothing was written")


class SqliteJobs:
    def __init__(self, path: Path, data_path: Path | None = None):
        self.path = path
        self.data_path = data_path  # the data file, where committed imports leave their marker

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_jobs (id TEXT PRIMARY KEY, data TEXT NOT NULL, "
                     "cancel INTEGER NOT NULL DEFAULT 0, instance TEXT, seen_at REAL NOT NULL DEFAULT 0)")
        have = {row[1] for row in conn.execute("PRAGMA table_info(sheetstream_jobs)")}
        for name, ddl in (("cancel", "INTEGER NOT NULL DEFAULT 0"), ("instance", "TEXT"),
                          ("seen_at", "REAL NOT NULL DEFAULT 0")):
            if name not in have:  # a file from an older version
                conn.execute(f"ALTER TABLE sheetstream_jobs ADD COLUMN {name} {ddl}")
        return conn

    def _run(self, statement: str, args: tuple) -> list[tuple]:
        conn = self._connect()
        try:
            return conn.execute(statement, args).fetchall()
        finally:
            conn.close()

    def save(self, job_id: str, data: dict[str, Any]) -> bool:
        return bool(self._run(
            "INSERT INTO sheetstream_jobs AS j (id, data, instance, seen_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data, instance = coalesce(excluded.instance, j.instance), "
            f"seen_at = excluded.seen_at WHERE json_extract(j.data, '$.state') NOT IN {ENDED_SQL} RETURNING id",
            (job_id, json.dumps(data), data.get("instance"), time.time())))

    def mark_committed(self, job_id: str, committed_as: str) -> bool:
        """Record on an ended dry run the job that committed it (its record is otherwise final); once."""
        return bool(self._run("UPDATE sheetstream_jobs SET data = json_set(data, '$.committed_as', ?) WHERE id = ? "
                              "AND json_extract(data, '$.committed_as') IS NULL RETURNING id", (committed_as, job_id)))

    def load(self, job_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT data FROM sheetstream_jobs WHERE id = ?", (job_id,))
        return json.loads(rows[0][0]) if rows else None

    def request_cancel(self, job_id: str) -> None:
        self._run("UPDATE sheetstream_jobs SET cancel = 1 WHERE id = ?", (job_id,))

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._run("SELECT 1 FROM sheetstream_jobs WHERE id = ? AND cancel = 1", (job_id,)))

    def recent(self, owner: str | None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        rows = self._run("SELECT data FROM sheetstream_jobs WHERE ? IS NULL OR json_extract(data, '$.owner') = ? "
                         "ORDER BY json_extract(data, '$.created_at') DESC, id DESC LIMIT ? OFFSET ?",
                         (owner, owner, limit, offset))
        return [json.loads(r[0]) for r in rows]

    def heartbeat(self, instance: str, job_ids: Collection[str]) -> None:
        self._run(f"UPDATE sheetstream_jobs SET seen_at = ? WHERE instance = ? AND id IN (SELECT value FROM "
                  f"json_each(?)) AND json_extract(data, '$.state') NOT IN {ENDED_SQL}",
                  (time.time(), instance, json.dumps(list(job_ids))))

    def orphans(self, timeout: float) -> list[str]:
        rows = self._run(f"SELECT id FROM sheetstream_jobs WHERE json_extract(data, '$.state') NOT IN {ENDED_SQL} "
                         "AND seen_at < ?", (time.time() - timeout,))
        return [r[0] for r in rows]

    def commit_with(self, conn: sqlite3.Connection, job_id: str, data: dict[str, Any]) -> None:
        """Inside the import's transaction on the data file, before COMMIT: leave the marker, then say
        ``committing`` (refused, and so rolled back, when the job was ended elsewhere)."""
        now = time.time()
        conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_commits "
                     "(job_id TEXT PRIMARY KEY, data TEXT NOT NULL, at REAL NOT NULL)")
        conn.execute("DELETE FROM sheetstream_commits WHERE at < ?", (now - MARKER_DAYS * 86400,))
        conn.execute("INSERT OR REPLACE INTO sheetstream_commits VALUES (?, ?, ?)", (job_id, json.dumps(data), now))
        if not self.save(job_id, {**data, "state": COMMITTING}):
            raise superseded(job_id)

    def settle(self, job_id: str, failed: dict[str, Any]) -> dict[str, Any] | None:
        """End a job whose worker stopped or must stop: ``failed`` unless it has ended; a ``committing`` job
        ends as its marker says (done when the COMMIT happened). Returns the record as it is then."""
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")  # no worker can move the job to committing meanwhile
            rows = conn.execute("SELECT data FROM sheetstream_jobs WHERE id = ?", (job_id,)).fetchall()
            stored = json.loads(rows[0][0]) if rows else None
            if stored is None or stored.get("state") in ("done", "failed", COMMITTING):
                conn.execute("ROLLBACK")
            else:
                conn.execute("UPDATE sheetstream_jobs SET data = ? WHERE id = ?", (json.dumps(failed), job_id))
                conn.execute("COMMIT")
                return failed
        finally:
            conn.close()
        if stored is None or stored.get("state") != COMMITTING:
            return stored
        try:
            committed = self._marker(job_id)
        except sqlite3.OperationalError:
            return stored  # the data file is held by another import: settled at the next sweep
        self.save(job_id, committed or failed)
        return self.load(job_id)

    def _marker(self, job_id: str) -> dict[str, Any] | None:
        """The done record a committed import left in the data file, read under its write lock: whatever
        transaction wrote ``committing`` has committed or rolled back by then."""
        if self.data_path is None:
            return None
        conn = sqlite3.connect(self.data_path, timeout=5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute("SELECT data FROM sheetstream_commits WHERE job_id = ?", (job_id,)).fetchall()
            except sqlite3.OperationalError:  # no import has committed in this file yet
                rows = []
            conn.execute("ROLLBACK")
        finally:
            conn.close()
        return json.loads(rows[0][0]) if rows else None


class PostgresJobs:
    def __init__(self, connect: Callable[..., psycopg.Connection]):
        self.connect = connect

    def _run(self, statement: str, args: tuple) -> list[tuple]:
        return run_postgres(self.connect, _create_table, statement, args,
                            (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn))

    def save(self, job_id: str, data: dict[str, Any]) -> bool:
        return bool(self._run(
            "INSERT INTO sheetstream_jobs AS j (id, data, instance) VALUES (%s, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET data = excluded.data, instance = coalesce(excluded.instance, j.instance), "
            f"updated_at = now(), seen_at = now() WHERE j.data->>'state' NOT IN {ENDED_SQL} RETURNING id",
            (job_id, Jsonb(data), data.get("instance"))))

    def mark_committed(self, job_id: str, committed_as: str) -> bool:
        return bool(self._run("UPDATE sheetstream_jobs SET data = jsonb_set(data, '{committed_as}', to_jsonb(%s::text)) "
                              "WHERE id = %s AND data->>'committed_as' IS NULL RETURNING id", (committed_as, job_id)))

    def load(self, job_id: str) -> dict[str, Any] | None:
        rows = self._run("SELECT data FROM sheetstream_jobs WHERE id = %s", (job_id,))
        return rows[0][0] if rows else None

    def request_cancel(self, job_id: str) -> None:
        self._run("UPDATE sheetstream_jobs SET cancel = true WHERE id = %s", (job_id,))

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._run("SELECT 1 FROM sheetstream_jobs WHERE id = %s AND cancel", (job_id,)))

    def recent(self, owner: str | None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        rows = self._run("SELECT data FROM sheetstream_jobs WHERE %s::text IS NULL OR data->>'owner' = %s "
                         "ORDER BY (data->>'created_at')::float8 DESC, id DESC LIMIT %s OFFSET %s",
                         (owner, owner, limit, offset))
        return [r[0] for r in rows]

    def heartbeat(self, instance: str, job_ids: Collection[str]) -> None:
        self._run(f"UPDATE sheetstream_jobs SET seen_at = now() WHERE instance = %s AND id = ANY(%s) "
                  f"AND data->>'state' NOT IN {ENDED_SQL}", (instance, list(job_ids)))

    def orphans(self, timeout: float) -> list[str]:
        # The database's clock on both sides of the comparison: instances on other hosts may disagree on time.
        rows = self._run(f"SELECT id FROM sheetstream_jobs WHERE data->>'state' NOT IN {ENDED_SQL} "
                         "AND seen_at < now() - make_interval(secs => %s)", (timeout,))
        return [r[0] for r in rows]

    def commit_with(self, conn: psycopg.Connection, job_id: str, data: dict[str, Any]) -> None:
        """Inside the import's transaction, before COMMIT: the job becomes ``done`` with the rows, or the
        transaction rolls back when the job was ended elsewhere (the row lock orders this against
        :meth:`settle`)."""
        updated = conn.execute(f"UPDATE sheetstream_jobs SET data = %s, updated_at = now(), seen_at = now() "
                               f"WHERE id = %s AND data->>'state' NOT IN {ENDED_SQL} RETURNING id",
                               (Jsonb(data), job_id)).fetchall()
        if not updated:
            raise superseded(job_id)

    def settle(self, job_id: str, failed: dict[str, Any]) -> dict[str, Any] | None:
        """``failed`` unless the job has ended. An import that is committing holds the job's row lock, so this
        waits for its COMMIT and then leaves its ``done`` alone; not for long (``lock_timeout``): a lock held by a
        connection nobody has closed yet must not stall the caller's heartbeat, and the next sweep tries again."""
        with self.connect(autocommit=True) as conn:
            conn.execute("SET lock_timeout = '5s'")
            conn.execute(f"UPDATE sheetstream_jobs SET data = %s, updated_at = now() WHERE id = %s "
                         f"AND data->>'state' NOT IN {ENDED_SQL}", (Jsonb(failed), job_id))
        return self.load(job_id)


def _create_table(conn: psycopg.Connection) -> None:
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_jobs (id text PRIMARY KEY, data jsonb NOT NULL, "
                     "cancel boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now(), "
                     "instance text, seen_at timestamptz NOT NULL DEFAULT now())")
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject):
        pass  # another instance created it at the same moment
    conn.execute("ALTER TABLE sheetstream_jobs ADD COLUMN IF NOT EXISTS cancel boolean NOT NULL DEFAULT false, "
                 "ADD COLUMN IF NOT EXISTS instance text, "
                 "ADD COLUMN IF NOT EXISTS seen_at timestamptz NOT NULL DEFAULT now()")


_STATE = "JSON_VALUE(data, '$.state')"


class MysqlJobs:
    """Job records on MySQL/MariaDB, by PostgreSQL's rules: ``done`` in the import's transaction, and the job's
    row lock orders :meth:`commit_with` against :meth:`settle`."""

    def __init__(self, connect: Callable[..., Any]):
        self.connect = connect

    def _run(self, statement: str, args: tuple) -> tuple[list[tuple], int]:
        return run_mysql(self.connect, _create_mysql_table, statement, args)

    def save(self, job_id: str, data: dict[str, Any]) -> bool:
        _, matched = self._run(f"UPDATE sheetstream_jobs SET data = ?, instance = coalesce(?, instance), "
                               f"updated_at = now(6), seen_at = now(6) WHERE id = ? AND {_STATE} NOT IN {ENDED_SQL}",
                               (json.dumps(data), data.get("instance"), job_id))
        if matched:
            return True
        try:
            self._run("INSERT INTO sheetstream_jobs (id, data, instance) VALUES (?, ?, ?)",
                      (job_id, json.dumps(data), data.get("instance")))
        except Refused:  # the id is there: its record has ended
            return False
        return True

    def mark_committed(self, job_id: str, committed_as: str) -> bool:
        return bool(self._run("UPDATE sheetstream_jobs SET data = JSON_SET(data, '$.committed_as', ?) "
                              "WHERE id = ? AND JSON_VALUE(data, '$.committed_as') IS NULL",
                              (committed_as, job_id))[1])

    def load(self, job_id: str) -> dict[str, Any] | None:
        rows, _ = self._run("SELECT data FROM sheetstream_jobs WHERE id = ?", (job_id,))
        return json.loads(rows[0][0]) if rows else None

    def request_cancel(self, job_id: str) -> None:
        self._run("UPDATE sheetstream_jobs SET cancel = 1 WHERE id = ?", (job_id,))

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self._run("SELECT 1 FROM sheetstream_jobs WHERE id = ? AND cancel = 1", (job_id,))[0])

    def recent(self, owner: str | None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        rows, _ = self._run("SELECT data FROM sheetstream_jobs WHERE ? IS NULL OR JSON_VALUE(data, '$.owner') = ? "
                            "ORDER BY JSON_VALUE(data, '$.created_at') + 0 DESC, id DESC LIMIT ? OFFSET ?",
                            (owner, owner, limit, offset))
        return [json.loads(r[0]) for r in rows]

    def heartbeat(self, instance: str, job_ids: Collection[str]) -> None:
        ids = list(job_ids)
        if not ids:
            return
        self._run(f"UPDATE sheetstream_jobs SET seen_at = now(6) WHERE instance = ? AND id IN "
                  f"({', '.join('?' * len(ids))}) AND {_STATE} NOT IN {ENDED_SQL}", (instance, *ids))

    def orphans(self, timeout: float) -> list[str]:
        # The database's clock on both sides of the comparison, as on PostgreSQL.
        rows, _ = self._run(f"SELECT id FROM sheetstream_jobs WHERE {_STATE} NOT IN {ENDED_SQL} "
                            "AND seen_at < now(6) - INTERVAL ? MICROSECOND", (int(timeout * 1_000_000),))
        return [r[0] for r in rows]

    def commit_with(self, conn: Any, job_id: str, data: dict[str, Any]) -> None:
        """Inside the import's transaction, before COMMIT: ``done`` with the rows, or :func:`superseded`."""
        cursor = conn.execute(f"UPDATE sheetstream_jobs SET data = ?, updated_at = now(6), seen_at = now(6) "
                              f"WHERE id = ? AND {_STATE} NOT IN {ENDED_SQL}", (json.dumps(data), job_id))
        if not cursor.rowcount:
            raise superseded(job_id)

    def settle(self, job_id: str, failed: dict[str, Any]) -> dict[str, Any] | None:
        """``failed`` unless the job has ended; waits for an import that is committing (it holds the row's lock),
        not for long: the lock wait gives up after 5 s and the next sweep tries again."""
        with self.connect(autocommit=True) as conn:
            conn.execute("SET SESSION innodb_lock_wait_timeout = 5")
            conn.execute(f"UPDATE sheetstream_jobs SET data = ?, updated_at = now(6) WHERE id = ? "
                         f"AND {_STATE} NOT IN {ENDED_SQL}", (json.dumps(failed), job_id))
        return self.load(job_id)


def _create_mysql_table(conn: Any) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_jobs (id varchar(64) PRIMARY KEY, data longtext NOT NULL, "
                 "cancel boolean NOT NULL DEFAULT false, updated_at datetime(6) NOT NULL DEFAULT now(6), "
                 "instance varchar(255), seen_at datetime(6) NOT NULL DEFAULT now(6)) "
                 "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
