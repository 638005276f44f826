"""API tokens (``sheetstream_tokens``): a name, the token's SHA-256 (never the token), grants, an optional expiry,
and when it was revoked. Kept beside the job records (for SQLite in the same sibling file, so that looking a
token up never waits behind an import holding the database's one writer).

Beside them, the sessions that were signed out (``sheetstream_ended_sessions``): a session's id (a hash of its
cookie's random part) until the cookie would have expired anyway, so that every instance refuses the cookie.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ..access import Grants
from ..errors import Conflict
from .control import run_mysql, run_postgres, run_sqlite
from .mysql_connect import Refused

_COLUMNS = "id, name, hash, grants, created_at, expires_at, revoked_at"


@dataclass(frozen=True)
class TokenRecord:
    name: str
    hash: str
    grants: str  # as text (:meth:`sheetstream.access.Grants.to_text`)
    expires_at: float | None = None
    created_at: float = 0.0
    revoked_at: float | None = None
    id: str = ""

    @classmethod
    def new(cls, name: str, hash: str, grants: Grants, expires_in: float | None = None) -> TokenRecord:
        now = time.time()
        return cls(name, hash, grants.to_text(), now + expires_in if expires_in else None, now, None, uuid.uuid4().hex)

    @property
    def live(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > time.time())

    @property
    def parsed_grants(self) -> Grants:
        return Grants.parse(self.grants)

    def _values(self) -> tuple:
        return self.id, self.name, self.hash, self.grants, self.created_at, self.expires_at, self.revoked_at


def _record(row: tuple) -> TokenRecord:
    id_, name, hash_, grants, created, expires, revoked = row
    return TokenRecord(name, hash_, grants, expires, created, revoked, id_)


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a token named {name!r} already exists; revoke it first (sheetstream token revoke {name})")


_SQLITE_SCHEMA = ("CREATE TABLE IF NOT EXISTS sheetstream_tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                  "hash TEXT NOT NULL UNIQUE, grants TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL, "
                  "revoked_at REAL)")


_SQLITE_ENDED = ("CREATE TABLE IF NOT EXISTS sheetstream_ended_sessions (id TEXT PRIMARY KEY, "
                 "until REAL NOT NULL)")


class SqliteTokens:
    def __init__(self, path: Path):
        self.path = path

    def _run(self, statement: str, args: tuple) -> list[tuple]:
        return run_sqlite(self.path, _SQLITE_SCHEMA, statement, args)

    def add(self, record: TokenRecord) -> None:
        # One live token per name; a revoked one keeps its row (the audit trail names it) but frees the name.
        rows = self._run("INSERT INTO sheetstream_tokens SELECT ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS "
                         "(SELECT 1 FROM sheetstream_tokens WHERE name = ? AND revoked_at IS NULL) RETURNING id",
                         (*record._values(), record.name))
        if not rows:
            raise _name_taken(record.name)

    def find(self, hash: str) -> TokenRecord | None:
        rows = self._run(f"SELECT {_COLUMNS} FROM sheetstream_tokens WHERE hash = ?", (hash,))
        return _record(rows[0]) if rows else None

    def get(self, token_id: str) -> TokenRecord | None:
        rows = self._run(f"SELECT {_COLUMNS} FROM sheetstream_tokens WHERE id = ?", (token_id,))
        return _record(rows[0]) if rows else None

    def all(self) -> list[TokenRecord]:
        return [_record(r) for r in self._run(f"SELECT {_COLUMNS} FROM sheetstream_tokens ORDER BY created_at", ())]

    def revoke(self, name: str) -> bool:
        return bool(self._run("UPDATE sheetstream_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL "
                              "RETURNING id", (time.time(), name)))

    def end_session(self, session_id: str, until: float) -> None:
        run_sqlite(self.path, _SQLITE_ENDED, "DELETE FROM sheetstream_ended_sessions WHERE until < ?", (time.time(),))
        run_sqlite(self.path, _SQLITE_ENDED, "INSERT OR REPLACE INTO sheetstream_ended_sessions VALUES (?, ?)",
                   (session_id, until))

    def session_ended(self, session_id: str) -> bool:
        return bool(run_sqlite(self.path, _SQLITE_ENDED, "SELECT 1 FROM sheetstream_ended_sessions WHERE id = ?",
                               (session_id,)))


class PostgresTokens:
    def __init__(self, connect: Callable[..., psycopg.Connection]):
        self.connect = connect

    def _run(self, statement: str, args: tuple) -> list[tuple]:
        return run_postgres(self.connect, _create_table, statement, args)

    def add(self, record: TokenRecord) -> None:
        try:
            self._run(f"INSERT INTO sheetstream_tokens ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                      record._values())
        except psycopg.errors.UniqueViolation:
            raise _name_taken(record.name) from None

    def find(self, hash: str) -> TokenRecord | None:
        rows = self._run(f"SELECT {_COLUMNS} FROM sheetstream_tokens WHERE hash = %s", (hash,))
        return _record(rows[0]) if rows else None

    def get(self, token_id: str) -> TokenRecord | None:
        rows = self._run(f"SELECT {_COLUMNS} FROM sheetstream_tokens WHERE id = %s", (token_id,))
        return _record(rows[0]) if rows else None

    def all(self) -> list[TokenRecord]:
        return [_record(r) for r in self._run(f"SELECT {_COLUMNS} FROM sheetstream_tokens ORDER BY created_at", ())]

    def revoke(self, name: str) -> bool:
        return bool(self._run("UPDATE sheetstream_tokens SET revoked_at = %s WHERE name = %s AND revoked_at IS NULL "
                              "RETURNING id", (time.time(), name)))

    def end_session(self, session_id: str, until: float) -> None:
        self._ended("DELETE FROM sheetstream_ended_sessions WHERE until < %s", (time.time(),))
        self._ended("INSERT INTO sheetstream_ended_sessions VALUES (%s, %s) ON CONFLICT (id) DO NOTHING",
                    (session_id, until))

    def session_ended(self, session_id: str) -> bool:
        return bool(self._ended("SELECT 1 FROM sheetstream_ended_sessions WHERE id = %s", (session_id,)))

    def _ended(self, statement: str, args: tuple) -> list[tuple]:
        return run_postgres(self.connect, _create_ended_table, statement, args)


def _create_table(conn: psycopg.Connection) -> None:
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_tokens (id text PRIMARY KEY, name text NOT NULL, "
                     "hash text NOT NULL UNIQUE, grants text NOT NULL, created_at double precision NOT NULL, "
                     "expires_at double precision, revoked_at double precision)")
        # One live token per name, enforced by the database (two instances creating the same name at once).
        conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS sheetstream_tokens_live_name ON sheetstream_tokens (name) "
                     "WHERE revoked_at IS NULL")
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject):
        pass  # another instance created it at the same moment


def _create_ended_table(conn: psycopg.Connection) -> None:
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_ended_sessions (id text PRIMARY KEY, "
                     "until double precision NOT NULL)")
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable, psycopg.errors.DuplicateObject):
        pass  # another instance created it at the same moment


class MysqlTokens:
    def __init__(self, connect: Callable[..., Any]):
        self.connect = connect

    def _run(self, statement: str, args: tuple) -> list[tuple]:
        return run_mysql(self.connect, _create_mysql_table, statement, args)[0]

    def add(self, record: TokenRecord) -> None:
        try:
            self._run(f"INSERT INTO sheetstream_tokens ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", record._values())
        except Refused:
            raise _name_taken(record.name) from None

    def find(self, hash: str) -> TokenRecord | None:
        rows = self._run(f"SELECT {_COLUMNS} FROM sheetstream_tokens WHERE hash = ?", (hash,))
        return _record(rows[0]) if rows else None

    def get(self, token_id: str) -> TokenRecord | None:
        rows = self._run(f"SELECT {_COLUMNS} FROM sheetstream_tokens WHERE id = ?", (token_id,))
        return _record(rows[0]) if rows else None

    def all(self) -> list[TokenRecord]:
        return [_record(r) for r in self._run(f"SELECT {_COLUMNS} FROM sheetstream_tokens ORDER BY created_at", ())]

    def revoke(self, name: str) -> bool:
        return bool(run_mysql(self.connect, _create_mysql_table, "UPDATE sheetstream_tokens SET revoked_at = ? "
                              "WHERE name = ? AND revoked_at IS NULL", (time.time(), name))[1])

    def end_session(self, session_id: str, until: float) -> None:
        self._ended("DELETE FROM sheetstream_ended_sessions WHERE until < ?", (time.time(),))
        self._ended("INSERT IGNORE INTO sheetstream_ended_sessions VALUES (?, ?)", (session_id, until))

    def session_ended(self, session_id: str) -> bool:
        return bool(self._ended("SELECT 1 FROM sheetstream_ended_sessions WHERE id = ?", (session_id,)))

    def _ended(self, statement: str, args: tuple) -> list[tuple]:
        return run_mysql(self.connect, _create_mysql_ended_table, statement, args)[0]


def _create_mysql_ended_table(conn: Any) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_ended_sessions (id varchar(128) PRIMARY KEY, "
                 "until double NOT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")


def _create_mysql_table(conn: Any) -> None:
    # One live token per name: MySQL has no partial index, so a generated column that is the name while the token
    # is live (NULL once revoked; a unique index allows many NULLs) carries the unique index.
    conn.execute("CREATE TABLE IF NOT EXISTS sheetstream_tokens (id varchar(64) PRIMARY KEY, "
                 "name varchar(255) NOT NULL, hash varchar(128) NOT NULL UNIQUE, grants text NOT NULL, "
                 "created_at double NOT NULL, expires_at double, revoked_at double, "
                 "live_name varchar(255) AS (IF(revoked_at IS NULL, name, NULL)) STORED UNIQUE) "
                 "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
