"""The MySQL and MariaDB store, through MariaDB Connector/Python (chosen by measurement: docs/mysql.md).

Rows stream out through an unbuffered cursor inside a read-only transaction ``WITH CONSISTENT SNAPSHOT``: InnoDB
reads the rows as of the export's start without locking them, so writers are never blocked. Rows go in through
the import's staging table (:mod:`.staging`), loaded with ``LOAD DATA LOCAL INFILE`` from a named pipe that the
parsed rows are written into as they come (nothing is held in memory or on disk), or, when the server does not
allow ``LOCAL`` (``local_infile=OFF``), with multi-row INSERTs of 1,000 rows. ``LOAD DATA LOCAL`` turns every
refused value into a warning, even in strict mode (the server cannot stop the client's file half-way), so any
warning is a refusal here, reported at its row and column.

Imports are refused for tables that cannot roll back (MyISAM, MEMORY, Aria, ...): a failed import would leave
half of its rows. Binary columns (``binary``, ``varbinary``, ``blob``) are exported as hex text (``0x...``) and
never imported into; ``bit`` columns are exported as integers and never imported into.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import re
import shutil
import tempfile
import threading
import time as clock
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..errors import BadRequest, ConfigError, NotFound, RowRefused
from .audit import MysqlAudit
from .base import Column, OnCommit, column_type, refused
from .jobs import MysqlJobs
from .mysql_connect import Connection, Refused, connect, message, sorted_error
from .staging import ROW, Dialect, Staged, quote
from .tokens import MysqlTokens
from .where import Condition, Sort, ordering, predicate, tie_break

try:  # the compiled LOAD DATA encoder (_loaddata.c); optional: without it, rows are encoded in Python
    from ._loaddata import encode as _c_encode
except ImportError:  # pragma: no cover - where no C compiler was found
    _c_encode = None

log = logging.getLogger("sheetstream.store")

BATCH = 2_000  # rows per fetch and per encoded chunk
INSERT_ROWS = 1_000  # rows per INSERT when LOAD DATA LOCAL is not allowed
PIPE_BYTES = 1 << 20  # the named pipe's buffer: Linux's largest by default, about 5 blocks of the demo table

_INTEGERS = frozenset(["tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"])
_TEXTS = frozenset(["char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"])
_BINARY = frozenset(["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"])
_KINDS = {"decimal": "numeric", "float": "float", "double": "float", "date": "date", "datetime": "timestamp",
          "timestamp": "timestamp", "time": "time"}

_DDL = {"integer": "bigint", "float": "double", "text": "mediumtext", "date": "date", "timestamp": "datetime(6)",
        "time": "time(6)", "boolean": "boolean"}

# Two queries: a correlated subquery on STATISTICS took 110 ms here, these two together under 2 ms.
_CATALOG = """
SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_MAXIMUM_LENGTH,
       CHARACTER_SET_NAME, COLLATION_NAME
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?
ORDER BY ORDINAL_POSITION
"""
_PRIMARY = ("SELECT COLUMN_NAME, SEQ_IN_INDEX FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
            "AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY'")


@dataclasses.dataclass(frozen=True)
class Raw:
    """A column as the catalog declares it: what a staging table copies, and how its values are read."""

    column: Column
    data_type: str  # information_schema DATA_TYPE: int, decimal, varchar, ...
    column_type: str  # COLUMN_TYPE: int(10) unsigned, enum('a','b'), ...
    charset: str | None
    collation: str | None
    key: int | None = None  # its place in the primary key (InnoDB stores the rows in that order)

    @property
    def writable(self) -> bool:
        """Not binary data (``bit``, ``binary``, ``varbinary``, blobs, spatial types): those are exported only."""
        return self.data_type in _INTEGERS | _TEXTS | _KINDS.keys()

    def definition(self) -> str:
        """The column in a staging table: the same type, NULL allowed (a cell with a problem is staged as NULL)."""
        text = f" CHARACTER SET {self.charset} COLLATE {self.collation}" if self.charset and self.collation else ""
        return f"{quote(self.column.name)} {self.column_type}{text} NULL"


class MysqlStore:
    #: Imports may write straight into the table (``staging(direct=True)``, :func:`.staging.direct_allowed`):
    #: ``LOAD DATA`` into the table itself, its first warning (a refused value, a repeated key) rolling it back
    #: for the staged run that names every problem.
    direct = True

    def __init__(self, url: str, load: str = "auto", batch: int = BATCH):
        self.url = url
        self.load = load  # auto (LOAD DATA LOCAL when the server allows it), infile, or insert
        self.batch = batch

    def connect(self, autocommit: bool = False) -> Connection:
        return connect(self.url, autocommit=autocommit, local_infile=self.load != "insert")

    def tables(self) -> list[str]:
        return list(self.relations())

    def describe(self, sql: str, params: Any) -> list[Column]:
        """Named queries are not served from MySQL/MariaDB yet: said at start, before anything is served."""
        raise ConfigError("named queries (SHEETSTREAM_QUERIES_FILE) are served from SQLite and PostgreSQL; this "
                          "server's database is MySQL/MariaDB: remove the queries file, or serve them from another "
                          "database")

    def relations(self) -> dict[str, str]:
        """Tables and views, by name: ``table`` or ``view``."""
        with self.connect(autocommit=True) as conn:
            rows = conn.execute("SELECT TABLE_NAME, IF(TABLE_TYPE = 'VIEW', 'view', 'table') FROM "
                                "information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                                "AND TABLE_TYPE IN ('BASE TABLE', 'VIEW') ORDER BY 1").fetchall()
        return dict(rows)

    def columns(self, table: str) -> list[Column]:
        with self.connect(autocommit=True) as conn:
            return [r.column for r in _catalog(conn, table)]

    def count(self, table: str) -> int:
        with self.connect(autocommit=True) as conn:
            _catalog(conn, table)
            return conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]

    def estimate(self, table: str, where: Sequence[Condition] = ()) -> int | None:
        """The optimizer's estimate (EXPLAIN: rows examined times the share it expects to keep); cheap."""
        test, params = _where(where)
        query = f"EXPLAIN SELECT 1 FROM {quote(table)}{test}"
        with self.connect(autocommit=True) as conn:
            cursor = conn.execute(query, params)
            names = [d[0].lower() for d in cursor.description]
            row = dict(zip(names, cursor.fetchone()))
        rows, kept = row.get("rows"), row.get("filtered")
        return None if rows is None else int(int(rows) * float(kept or 100) / 100)

    def read_rows(self, table: str, columns: Sequence[Column], limit: int | None = None,
                  where: Sequence[Condition] = (), order: Sequence[Sort] = ()) -> Iterator[tuple[Any, ...]]:
        with self.connect() as conn:
            # A snapshot, read-only: InnoDB serves the rows as of now from its undo log, taking no row locks.
            conn.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            catalog = {r.column.name: r for r in _catalog(conn, table)}
            key_columns = [r.column for r in sorted(catalog.values(), key=lambda r: r.key or 0) if r.key]
            query = f"SELECT {', '.join(quote(c.name) for c in columns)} FROM {quote(table)}"
            test, params = _where(where)
            query += test
            if order:
                query += " ORDER BY " + ", ".join(ordering(s, "mysql").format(quote(s.column.name))
                                                  for s in tie_break(order, key_columns))
            elif key_columns:  # in the primary key's order: InnoDB keeps the rows in it, so they stream without a sort
                query += f" ORDER BY {', '.join(quote(c.name) for c in key_columns)}"
            if limit is not None:
                query += f" LIMIT {int(limit)}"
            readers = [(i, f) for i, c in enumerate(columns) if (f := _reader(catalog[c.name]))]
            cursor = conn.stream(query, params)
            done = False
            try:
                while batch := cursor.fetchmany(self.batch):
                    if not readers:
                        yield from batch
                        continue
                    for row in batch:
                        values = list(row)
                        for i, read in readers:
                            if values[i] is not None:
                                values[i] = read(values[i])
                        yield tuple(values)
                done = True
            finally:
                if done:
                    cursor.close()
                    conn.rollback()
                # else: an export abandoned half-way; closing the connection (on leaving) drops its unread rows at
                # once, where closing the cursor would first read them all (0.94 s for 200,000 rows, measured).

    def create_table(self, table: str, columns: Sequence[Column], replace: bool = False) -> None:
        body = [f"{quote(c.name)} {_ddl(c)}" for c in columns]
        keys = [quote(c.name) for c in columns if c.primary_key]
        if keys:
            body.append(f"PRIMARY KEY ({', '.join(keys)})")
        with self.connect(autocommit=True) as conn:
            if replace:
                conn.execute(f"DROP TABLE IF EXISTS {quote(table)}")
            # Binary and NO PAD: text is equal only when identical ("a", "A" and "a " are three keys), as on SQLite
            # and PostgreSQL; MariaDB and MySQL 8 name that collation differently.
            mariadb = "mariadb" in conn.execute("SELECT version()").fetchone()[0].lower()
            collation = "utf8mb4_nopad_bin" if mariadb else "utf8mb4_0900_bin"
            conn.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} ({', '.join(body)}) "
                         f"ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE={collation}")

    def drop_table(self, table: str) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {quote(table)}")

    def write_rows(self, table: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]],
                   mode: str = "append", dry_run: bool = False, on_commit: OnCommit | None = None) -> int:
        """Through a staging table, as an import does: rows reach MySQL fastest with ``LOAD DATA LOCAL``, which
        does not stop at a refused value (it warns and goes on), so they land in the staging table first."""
        try:
            with self.staging(table, columns, mode) as staged:
                count = staged.load((number, row) for number, row in enumerate(rows, 1))
                staged.apply()
                if not dry_run:
                    if on_commit:
                        on_commit(staged.conn, count)
                    staged.commit()
        except RowRefused as exc:
            raise refused(exc.message) from exc
        return count

    @contextmanager
    def staging(self, table: str, columns: Sequence[Column], mode: str = "append",
                direct: bool = False) -> Iterator[Staged]:
        """An import's transaction with its staging table (:mod:`.staging`; none with ``direct``): committed on
        leaving when ``commit()`` was called on the yielded value, rolled back otherwise."""
        with self.connect() as conn:
            catalog = {r.column.name: r for r in _catalog(conn, table)}
            _check_writable(conn, table, [catalog[c.name] for c in columns])
            infile = self.load == "infile" or (
                self.load == "auto" and bool(conn.execute("SELECT @@local_infile").fetchone()[0]))
            if not infile and self.load == "auto":
                log.info("MySQL at %s does not allow LOAD DATA LOCAL INFILE (local_infile=OFF): "
                         "importing with multi-row INSERTs", conn.raw.server_name)
            dialect = dataclasses.replace(
                _DIALECT, create=_creator([catalog[c.name] for c in columns], _key(catalog, columns)),
                load=_load_infile if infile else _load_inserts,
                encoder=_encoder if infile else None, load_encoded=_load_encoded if infile else None,
                copy_text=infile, flags=True, direct_numbered=True,
                direct=_direct_infile if infile else _direct_inserts,
                direct_encoded=_direct_encoded if infile else None)
            conn.execute("START TRANSACTION")
            try:
                staged = Staged(conn, dialect, table, [r.column for r in catalog.values()], columns, mode, direct)
                yield staged
                if staged.committed:
                    conn.commit()
            finally:
                conn.rollback()  # after a COMMIT: nothing to roll back

    @property
    def jobs(self) -> MysqlJobs:
        return MysqlJobs(self.connect)

    @property
    def tokens(self) -> MysqlTokens:
        return MysqlTokens(self.connect)

    @property
    def audit(self) -> MysqlAudit:
        return MysqlAudit(self.connect)


def _catalog(conn: Connection, table: str) -> list[Raw]:
    rows = conn.execute(_CATALOG, (table,)).fetchall()
    if not rows:
        raise NotFound(f"there is no table {table!r}")
    keys = dict(conn.execute(_PRIMARY, (table,)).fetchall())
    return [_raw(*row, keys.get(row[0])) for row in rows]


def _raw(name: str, data_type: str, column_type: str, nullable: str, precision: int | None, scale: int | None,
         length: int | None, charset: str | None, collation: str | None, key: int | None) -> Raw:
    data_type, column_type = data_type.lower(), column_type.lower()
    if data_type == "tinyint" and column_type.startswith("tinyint(1)"):
        kind = "boolean"  # what MySQL calls BOOLEAN
    elif data_type in _INTEGERS or data_type == "bit":
        kind = "integer"
    else:
        kind = _KINDS.get(data_type, "text")
    column = Column(
        name=name,
        kind=kind,
        nullable=nullable == "YES",
        primary_key=key is not None,
        precision=int(precision) if kind == "numeric" and precision is not None else None,
        scale=int(scale) if kind == "numeric" and scale is not None else None,
        length=int(length) if data_type in ("char", "varchar") and length is not None else None,
    )
    return Raw(column, data_type, column_type, charset, collation, key)


def _key(catalog: dict[str, Raw], columns: Sequence[Column]) -> list[Raw]:
    """The table's primary key, in its order, when ``columns`` hold all of it; else none."""
    key = sorted((r for r in catalog.values() if r.key), key=lambda r: r.key or 0)
    names = {c.name for c in columns}
    return key if key and all(r.column.name in names for r in key) else []


def _check_writable(conn: Connection, table: str, raws: Sequence[Raw]) -> None:
    engine = conn.execute("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                          "AND TABLE_NAME = ?", (table,)).fetchone()[0]
    if (engine or "").lower() != "innodb":
        raise BadRequest(f"table {table!r} uses the {engine} engine, which cannot roll back a transaction: an "
                         "import that fails half-way would leave half of its rows, so sheetstream imports only "
                         f"into InnoDB tables (ALTER TABLE {table} ENGINE=InnoDB converts it)", engine=engine)
    unwritable = [r for r in raws if not r.writable]
    if unwritable:
        described = ", ".join(f"{r.column.name!r} ({r.column_type})" for r in unwritable)
        raise BadRequest(f"column(s) {described} of table {table!r} hold binary data, which sheetstream exports "
                         "(as hex text, or bit as integers) but does not import: leave them out of the sheet",
                         columns=[r.column.name for r in unwritable])


def _reader(raw: Raw) -> Callable[[Any], Any] | None:
    """How a value of this column comes out of the driver into what the other stores hand out."""
    if raw.column.kind == "boolean":
        return bool
    if raw.data_type == "time":
        return _time
    if raw.data_type == "bit":
        return lambda v: int.from_bytes(v, "big") if isinstance(v, bytes) else v
    if raw.data_type in _BINARY:
        return lambda v: "0x" + v.hex() if isinstance(v, bytes) else v
    if raw.data_type == "json":  # MySQL's JSON type comes as bytes, MariaDB's (a LONGTEXT) as text
        return lambda v: v.decode() if isinstance(v, bytes) else v
    return None


def _time(v: Any) -> Any:
    """A TIME (which MySQL allows from -838:59:59 to 838:59:59) as a time of day when it is one, else as text
    (``-1:30:00``, ``25:00:00``)."""
    if not isinstance(v, timedelta):
        return v
    if timedelta(0) <= v < timedelta(days=1):
        return (datetime.min + v).time()
    sign, v = ("-", -v) if v < timedelta(0) else ("", v)
    hours, rest = divmod(v, timedelta(hours=1))
    minutes, rest = divmod(rest, timedelta(minutes=1))
    return f"{sign}{hours}:{minutes:02}:{rest.seconds:02}" + (f".{rest.microseconds:06}" if rest.microseconds else "")


def _ddl(c: Column) -> str:
    if c.kind == "numeric" and not c.precision:
        return "decimal(65,30)" + ("" if c.nullable or c.primary_key else " NOT NULL")
    if c.kind == "text" and c.primary_key and not c.length:
        return "varchar(255)"  # a key must have a length in MySQL; 255 characters of utf8mb4 fit InnoDB's 3,072 bytes
    return column_type(c, {**_DDL, "numeric": "decimal"}).replace("numeric(", "decimal(")


def _creator(raws: Sequence[Raw], key: Sequence[Raw] = ()) -> Callable[[Any, str, str, str], None]:
    """The staging table, declared from the catalog (CREATE ... SELECT would keep NOT NULL, and a cell with a
    problem is staged as NULL). TEMPORARY: CREATE TEMPORARY TABLE does not commit the transaction. With ``key``
    (the table's primary key, when the sheet has all of its columns), a plain index on it, declared with the table
    (CREATE INDEX would commit): the check for keys repeated in the sheet then reads the index in order, 0.12-0.17 s
    for 200,000 rows, where grouping the unindexed rows took 0.7-1.1 s; loading the rows took no longer with it
    (3.1-4.4 s against 3.6-4.4 s, measured with other work running). Not on text and blob keys (an index on them
    needs a prefix length)."""
    body = [*(r.definition() for r in raws), f"{ROW} bigint"]
    if key and all(r.data_type not in _UNINDEXED for r in key):
        body.append(f"KEY ({', '.join(quote(r.column.name) for r in key)})")

    def create(conn: Connection, staging: str, table: str, names: str) -> None:
        conn.execute(f"CREATE TEMPORARY TABLE {staging} ({', '.join(body)}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")

    return create


_UNINDEXED = frozenset(["tinytext", "text", "mediumtext", "longtext", "tinyblob", "blob", "mediumblob", "longblob",
                        "json"])


_ESCAPES = re.compile(r"[\\\t\n\r]")
_ESCAPED = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"
_FLAGS = {True: "1", False: "0", None: NULL}


def _encoder(columns: Sequence[Column], numbered: bool = True) -> Callable[[list[tuple[int, Sequence[Any]]]], bytes]:
    """Rows as validation makes them -> LOAD DATA's default format (tab-separated, ``\\N`` for NULL, backslash
    escapes), with the sheet row last (always, ``numbered`` or not: the direct path's load reads it into a user
    variable, unused): in C (``_loaddata.c``) where it was built, else in Python (:func:`_py_encoder`, the
    reference), the same bytes (tests/store/test_loaddata.py). The C encoder writes 200,000 rows of the demo table
    in 0.2-0.3 CPU s here, the Python one in 1.5-2.0 s (measured with other work running): most of Python's time
    is ``str()`` of each value (a datetime's alone 0.3 s)."""
    if _c_encode is None:
        return _py_encoder(columns)
    kinds = "".join("b" if c.kind == "boolean" else "t" if c.kind == "text" else "o" for c in columns).encode()
    encode = _c_encode

    def encoded(rows: list[tuple[int, Sequence[Any]]]) -> bytes:
        return encode(rows, kinds)

    return encoded


def _py_encoder(columns: Sequence[Column]) -> Callable[[list[tuple[int, Sequence[Any]]]], bytes]:
    """LOAD DATA's format in Python. ``str()`` is each value's text for MySQL (ISO dates, ``2024-01-02
    10:00:00``, ``1.5``, a Decimal's ``1E+3`` too) but for booleans (``1``/``0``).

    Column by column: each column of the block becomes its texts with one ``map``, NULLs put in only where the
    column has any, a text column escaped only where some value of the block needs it (one search over the
    column); then one join per line. Plain Python, so it runs in any process."""
    kinds = [c.kind for c in columns]

    def encode(rows: list[tuple[int, Sequence[Any]]]) -> bytes:
        if not rows:
            return b""
        numbers, values = zip(*rows)
        texts: list[Iterable[str]] = []
        for kind, column in zip(kinds, zip(*values)):
            if kind == "boolean":
                texts.append([NULL if v is None else "1" if v else "0" for v in column])
            elif kind == "text":
                texts.append(_texts(column))
            else:  # numbers, dates, times: str() is never "None" but for None
                text = map(str, column)
                texts.append([NULL if v is None else t for v, t in zip(column, text)] if None in column else text)
        texts.append(map(str, numbers))
        return ("\n".join(map("\t".join, zip(*texts))) + "\n").encode()

    return encode


def _texts(column: Sequence[Any]) -> Sequence[str]:
    """A text column's values for LOAD DATA: escaped only when one of them needs it, NULL where None."""
    nulls = None in column
    present = [v for v in column if v is not None] if nulls else column
    try:
        joined = "".join(present)
    except TypeError:  # not all text (rows written by a caller of write_rows, not by an import's checks)
        return _texts([None if v is None else str(v) for v in column])
    if _ESCAPES.search(joined):
        return [NULL if v is None else v.translate(_ESCAPED) for v in column]
    return [NULL if v is None else v for v in column] if nulls else column


def _chunks(rows: Iterable[tuple[int, Sequence[Any]]], size: int) -> Iterator[list[tuple[int, Sequence[Any]]]]:
    chunk: list[tuple[int, Sequence[Any]]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _load_infile(conn: Connection, staging: str, columns: Sequence[Column],
                 rows: Iterable[tuple[int, Sequence[Any]]], numbered: bool = True) -> int:
    encode = _encoder(columns)
    count = 0

    def data() -> Iterator[bytes]:
        nonlocal count
        for chunk in _chunks(rows, BATCH):
            count += len(chunk)
            yield encode(chunk)

    _load_encoded(conn, staging, columns, data(), numbered)
    return count


def _direct_infile(conn: Connection, table: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> int:
    """The direct path (:mod:`.staging`): rows straight into the table with ``LOAD DATA``."""
    return _load_infile(conn, table, columns, enumerate(rows, 1), numbered=False)


def _direct_encoded(conn: Connection, table: str, columns: Sequence[Column], chunks: Iterable[bytes]) -> None:
    """The direct path for rows already encoded (:func:`_encoder`, the sheet row read into a user variable)."""
    _load_encoded(conn, table, columns, chunks, numbered=False)


def _load_encoded(conn: Connection, staging: str, columns: Sequence[Column], chunks: Iterable[bytes],
                  numbered: bool = True) -> None:
    """``LOAD DATA LOCAL INFILE`` from a named pipe: the driver reads the pipe in a thread of its own while this
    one writes ``chunks`` into it; the end of ``chunks`` (or an error from them) closes the pipe. ``numbered``:
    the last field (the sheet row) goes into the staging table's column; else into a user variable, unused."""
    names = ", ".join([*(quote(c.name) for c in columns), ROW if numbered else "@sheet_row"])
    _remove_dead_pipes()
    folder = tempfile.mkdtemp(prefix=f"{PIPES}{os.getpid()}-")
    pipe = os.path.join(folder, "rows")
    os.mkfifo(pipe, 0o600)
    failed: list[BaseException] = []

    def load() -> None:
        try:
            conn.execute(f"LOAD DATA LOCAL INFILE '{pipe}' INTO TABLE {quote(staging)} CHARACTER SET utf8mb4 ({names})")
        except BaseException as exc:
            failed.append(exc)

    loader = threading.Thread(target=load, name="sheetstream-load-data", daemon=True)
    loader.start()
    try:
        fd = _writer(pipe, loader)
        if fd is not None:
            _WRITING.add(fd)
            try:
                with os.fdopen(fd, "wb") as out:
                    try:
                        for data in chunks:
                            out.write(data)
                    except BrokenPipeError:
                        pass  # the server stopped reading: its error says why
            finally:
                _WRITING.discard(fd)
    finally:
        loader.join()
        shutil.rmtree(folder, ignore_errors=True)
    if failed:
        raise failed[0]
    if conn.raw.warnings:
        _refuse_on_warning(conn)


#: The folders of the named pipes ``LOAD DATA`` reads (in the system's temporary folder), named by the process
#: that made them: one killed mid-load (a worker's SIGKILL) leaves its folder, which the next load removes.
PIPES = "sheetstream-loaddata-"


def _remove_dead_pipes() -> None:
    for folder in Path(tempfile.gettempdir()).glob(f"{PIPES}*"):
        pid = folder.name.removeprefix(PIPES).partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


#: Write ends of the pipes being loaded. A process forked meanwhile (``chunks`` may come from a forked helper:
#: :func:`sheetstream.runtime.forked.forked_map`) closes its copies at once: while any process holds a write end,
#: the pipe never ends, and LOAD DATA waits for ever (seen: an import read in two processes hung).
_WRITING: set[int] = set()


def _close_inherited() -> None:
    for fd in _WRITING:
        try:
            os.close(fd)
        except OSError:
            pass
    _WRITING.clear()


os.register_at_fork(after_in_child=_close_inherited)


def _writer(pipe: str, loader: threading.Thread) -> int | None:
    """The pipe opened for writing once the driver has opened it for reading; None if the statement ended first
    (refused before it asked for the file)."""
    while True:
        try:
            fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            if not loader.is_alive():
                return None
            clock.sleep(0.001)
            continue
        os.set_blocking(fd, True)
        try:  # room for several encoded blocks: encoding goes on while the server is busy (64 KiB by default)
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except (AttributeError, OSError):  # not Linux, or past /proc/sys/fs/pipe-max-size
            pass
        return fd


_AT_ROW = re.compile(r"at row (\d+)")
_COLUMN = re.compile(r"column (?:`[^`]*`\.`[^`]*`\.)?[`']([^`']+)[`']")


def _refuse_on_warning(conn: Connection) -> None:
    """Strict mode, for LOAD DATA LOCAL: its first warning (a value truncated, out of range, not in the enum...)
    refuses the load, naming the staged line and the column."""
    found = [w for w in conn.execute("SHOW WARNINGS").fetchall() if w[0] in ("Warning", "Error")]
    if not found:
        return
    text = found[0][2]
    row, column = _AT_ROW.search(text), _COLUMN.search(text)
    where = f"line {row.group(1)}" + (f", column {column.group(1)}" if column else "") + ": " if row else ""
    raise Refused(where + text)


def _load_inserts(conn: Connection, staging: str, columns: Sequence[Column],
                  rows: Iterable[tuple[int, Sequence[Any]]], numbered: bool = True) -> int:
    """Multi-row INSERTs, when LOAD DATA LOCAL is not allowed; strict mode refuses a bad value in the statement,
    and its row is then found by inserting the batch's rows one at a time (the error path only). ``numbered``:
    with the sheet row, into the staging table's column (the direct path has none)."""
    names = ", ".join([*(quote(c.name) for c in columns), *([ROW] if numbered else [])])
    statement = f"INSERT INTO {quote(staging)} ({names}) VALUES ({', '.join('?' * (len(columns) + numbered))})"
    integers = [j for j, c in enumerate(columns) if c.kind == "integer"]
    count = 0
    for chunk in _chunks(rows, INSERT_ROWS):
        values = _wide_as_text([[*row, number] if numbered else list(row) for number, row in chunk], integers)
        try:
            conn.raw.cursor().executemany(statement, values)
        except Exception as exc:
            if not isinstance(sorted_error(exc), Refused):
                raise sorted_error(exc) from exc
            for offset, one in enumerate(values):
                try:
                    conn.execute(statement, one)
                except Refused as refusal:
                    column = _COLUMN.search(str(refusal))
                    where = f"line {count + offset + 1}" + (f", column {column.group(1)}" if column else "")
                    raise Refused(f"{where}: {refusal}") from exc
            raise
        count += len(chunk)
    return count


def _direct_inserts(conn: Connection, table: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> int:
    """The direct path without LOAD DATA LOCAL: multi-row INSERTs straight into the table."""
    return _load_inserts(conn, table, columns, enumerate(rows, 1), numbered=False)


def _wide_as_text(values: list[list[Any]], integers: list[int]) -> list[list[Any]]:
    """A batch with its integers past 64 signed bits as text, which the server checks against the column (unsigned
    bigint takes up to 2**64 - 1): the driver's binary protocol fails on them (and was seen to store 2**64 - 1 for
    2**64). The whole column of the batch then, as a bulk INSERT takes one type per column."""
    for j in integers:
        if any(not -2**63 <= v < 2**63 for row in values if (v := row[j]) is not None):
            for row in values:
                if row[j] is not None:
                    row[j] = str(row[j])
    return values


@contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    conn.execute("SAVEPOINT sheetstream_try")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO SAVEPOINT sheetstream_try")
        conn.execute("RELEASE SAVEPOINT sheetstream_try")
        raise
    conn.execute("RELEASE SAVEPOINT sheetstream_try")


def _repeats(conn: Connection, staging: str, keys: str) -> bool:
    return bool(conn.execute(f"SELECT 1 FROM {staging} GROUP BY {keys} HAVING count(*) > 1 LIMIT 1").fetchall())


def _decode(columns: Sequence[Column], values: Sequence[Any]) -> list[Any]:
    return [None if v is None else bool(v) if c.kind == "boolean" else _time(v) if c.kind == "time" else v
            for c, v in zip(columns, values)]


def _upsert(keys: list[str], others: list[str]) -> str:
    # VALUES(c): the row the INSERT tried to write (MariaDB and MySQL; MySQL 8.0.20+ warns it is deprecated).
    # With no other column, setting a key to itself leaves the row as it is (INSERT IGNORE would hide errors).
    return " ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in (others or keys[:1]))


_DIALECT = Dialect(create=lambda *args: None, load=_load_infile, refusal=(Refused,), savepoint=_savepoint,
                   decode=_decode, describe=message,
                   # CAST ... AS BINARY: "unchanged" means identical, whatever the column's collation says
                   same="CAST({a} AS BINARY) <=> CAST({b} AS BINARY)", upsert=_upsert, repeats=_repeats)


def _where(where: Sequence[Condition]) -> tuple[str, list[Any]]:
    """`` WHERE`` and every condition of ``where`` (:mod:`.where`), values bound, never pasted; nothing without
    any."""
    tests, params = [], []
    for condition in where:
        template, values = predicate(condition, "mysql")
        tests.append(template.format(quote(condition.column.name), *("?" * len(values))))
        params += [_comparable(v) for v in values]
    return (f" WHERE {' AND '.join(tests)}" if tests else ""), params


def _comparable(value: Any) -> Any:
    """A value MySQL can parse as the bound side of a comparison with the same outcome: a decimal past DECIMAL's 65
    digits is beyond every stored value (MySQL refuses 1E+999 outright), one nearer zero than 1E-40 is nearer than
    any stored value (scale at most 30)."""
    if isinstance(value, Decimal) and value.is_finite() and value:
        if value.adjusted() > 64:
            return Decimal(1).scaleb(65).copy_sign(value)
        if value.adjusted() < -40:
            return Decimal(1).scaleb(-40).copy_sign(value)
    return value
