"""Connecting to MySQL or MariaDB through MariaDB Connector/Python (``pip install 'sheetstream[mysql]'``).

Every session is made strict and plain: ``STRICT_ALL_TABLES`` (MySQL's non-strict mode truncates and converts
silently; strict, it refuses the value, which then becomes a problem at its cell), no zero dates, ``ANSI_QUOTES``
(so identifiers are double-quoted, as the SQL shared with SQLite and PostgreSQL writes them), and the UTC time
zone (so ``timestamp`` columns read and write the same values whatever the server's zone). The driver's errors
are sorted once here: values the database refuses (:class:`Refused`), a database that went away
(:class:`~sheetstream.errors.StoreUnavailable`), and the rest as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import BadRequest, StoreUnavailable

SCHEMES = ("mysql://", "mariadb://")

SQL_MODE = ("STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,"
            "ANSI_QUOTES")
SESSION = f"SET SESSION sql_mode = '{SQL_MODE}', time_zone = '+00:00'"

# Error numbers of values the database will not take (server errors, MySQL and MariaDB): null, duplicate key,
# foreign key, out of range, truncated, incorrect value, too long, no default, CHECK constraint, invalid JSON.
REFUSED = frozenset([1048, 1062, 1586, 1216, 1217, 1451, 1452, 1263, 1264, 1265, 1292, 1364, 1366, 1367, 1406,
                     1411, 1690, 3140, 3819, 4025, 4078])
# The connection or the server went away, or the write could not get its locks: try again later.
LOST = frozenset([1053, 1205, 1213, 1927, 2002, 2003, 2006, 2013, 2026, 2055])
NO_SUCH_TABLE = 1146
# A server that takes none of a write's bytes for this long is taken as gone. Seen: MariaDB stopped in the middle
# of a LOAD DATA left the connection half closed with 3.9 MB unsent, and the driver's send waiting for good (the
# job stayed "inserting"); a live server reads a load's stream as it writes rows.
WRITE_SECONDS = 15


class Refused(Exception):
    """The database refused a value or a row; the message is the server's, with ``line N, column c:`` in front
    when the row of a bulk load is known."""


@dataclass(frozen=True)
class Target:
    """Where a ``mysql://user:password@host:port/database?unix_socket=...&local_infile=0`` URL points."""

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = ""
    database: str = ""
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise BadRequest(f"a MySQL URL names its database: mysql://user:password@host:3306/database, not {url!r}")
        return cls(host=parts.hostname or "127.0.0.1", port=parts.port or 3306, user=unquote(parts.username or "root"),
                   password=unquote(parts.password or ""), database=database, options=dict(parse_qsl(parts.query)))


class Connection:
    """A driver connection with ``execute(statement, args)`` returning its (buffered) cursor, as the SQL shared
    with the other stores expects; the driver's errors come out sorted (module docstring)."""

    def __init__(self, raw: Any):
        self.raw = raw
        self._cursor: Any = None

    def execute(self, statement: str, args: tuple | list = ()) -> Any:
        if self._cursor is not None:
            self._cursor.close()
        self._cursor = cursor = self.raw.cursor(buffered=True)  # closed by the next statement, even if this fails
        return _run(cursor, statement, args)

    def stream(self, statement: str, args: tuple | list = ()) -> Any:
        """An unbuffered cursor on ``statement``: rows come from the server as they are fetched."""
        return _run(self.raw.cursor(buffered=False), statement, args)

    def commit(self) -> None:
        try:
            self.raw.commit()
        except Exception as exc:
            raise sorted_error(exc) from exc

    def rollback(self) -> None:
        try:
            self.raw.rollback()
        except Exception:  # a connection that is gone has rolled back already
            pass

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:
            pass

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run(cursor: Any, statement: str, args: tuple | list) -> Any:
    """``statement`` on ``cursor`` (with ``args`` bound when there are any), the driver's errors sorted."""
    try:
        if args:
            cursor.execute(statement, tuple(args))
        else:
            cursor.execute(statement)
    except Exception as exc:
        raise sorted_error(exc) from exc
    return cursor


def sorted_error(exc: Exception) -> Exception:
    """The driver's ``exc`` as :class:`Refused`, :class:`~sheetstream.errors.StoreUnavailable`, or itself."""
    number = getattr(exc, "errno", None)
    if number in REFUSED:
        return Refused(message(exc))
    if number in LOST or type(exc).__name__ == "InterfaceError":
        return StoreUnavailable(f"the connection to MySQL was lost or its locks timed out ({message(exc)}); "
                                "nothing was written, try again shortly")
    return exc


def message(exc: BaseException) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip()


def connect(url: str, autocommit: bool = False, local_infile: bool = False) -> Connection:
    """A strict session (module docstring) on the database of ``url``."""
    try:
        import mariadb
        from mariadb.constants import CLIENT
    except ImportError as exc:
        raise StoreUnavailable("MySQL/MariaDB needs its driver: pip install 'sheetstream[mysql]' "
                               "(MariaDB Connector/Python; Debian: apt-get install libmariadb-dev first)") from exc
    target = Target.parse(url)
    options: dict[str, Any] = {"unix_socket": target.options["unix_socket"]} if "unix_socket" in target.options else {}
    try:
        raw = mariadb.connect(host=target.host, port=target.port, user=target.user, password=target.password,
                              database=target.database, connect_timeout=5, write_timeout=WRITE_SECONDS,
                              autocommit=autocommit,
                              local_infile=local_infile, init_command=SESSION,
                              # UPDATE's row count is the rows matched, changed or not (the job table relies on it)
                              client_flag=CLIENT.FOUND_ROWS, **options)
    except mariadb.Error as exc:
        raise StoreUnavailable(f"cannot connect to MySQL at {target.host}:{target.port}/{target.database}: "
                               f"{message(exc)}") from exc
    return Connection(raw)
