"""The embedded default store: a SQLite file through the standard library.

SQLite keeps dates and timestamps as ISO text, booleans as 0/1 and numerics as numbers; the declared column
type says which, and :meth:`SqliteStore.read_rows` turns them back into ``date``, ``datetime``, ``bool`` and
``Decimal`` so that both stores hand out the same Python types.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..config import PARAMETER
from ..errors import BadRequest, ConfigError, NotFound, StoreUnavailable
from .audit import SqliteAudit
from .base import Column, OnCommit, column_type, refused, unavailable
from .jobs import SqliteJobs
from .staging import ROW, Dialect, Staged
from .tokens import SqliteTokens
from .where import COMPARISONS, Condition, Sort, ordering, predicate, tie_break

BATCH = 2_000

_TYPE = re.compile(r"^\s*([A-Za-z ]+?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")


#: A rowid table's hidden key: the last sort key of a table without a primary key.
_ROWID = Column("rowid", "integer", nullable=False)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteStore:
    #: Imports may write straight into the table (``staging(direct=True)``, :func:`.staging.direct_allowed`).
    direct = True

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"

    def connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"cannot open the SQLite database {self.path}: {exc}") from exc
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def tables(self) -> list[str]:
        return list(self.relations())

    def relations(self) -> dict[str, str]:
        with _closing(self.connect()) as conn:
            rows = conn.execute(
                "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'"
                " ORDER BY name"
            ).fetchall()
        return dict(rows)

    def columns(self, table: str) -> list[Column]:
        with _closing(self.connect()) as conn:
            info = conn.execute("SELECT * FROM pragma_table_info(?)", (table,)).fetchall()
        if not info:
            raise NotFound(f"there is no table {table!r}")
        return [_column(name, decl, notnull, pk) for _, name, decl, notnull, _, pk in info]

    def count(self, table: str) -> int:
        self.columns(table)  # NotFound before any SQL is built
        with _closing(self.connect()) as conn:
            return conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]

    def estimate(self, table: str, where: Sequence[Condition] = ()) -> int | None:
        """None: SQLite keeps no row estimates to ask (only a count would say, and a count reads every row)."""
        return None

    def read_rows(self, table: str, columns: Sequence[Column], limit: int | None = None,
                  where: Sequence[Condition] = (), order: Sequence[Sort] = ()) -> Iterator[tuple[Any, ...]]:
        catalog = self.columns(table)
        params: list[Any] = []
        sql = f"SELECT {', '.join(quote(c.name) for c in columns)} FROM {quote(table)}"
        if where:
            tests = []
            for condition in where:
                template, values = predicate(condition, "sqlite")
                tests.append(template.format(quote(condition.column.name), *("?" * len(values))))
                write = _writer(condition.column) if condition.op in ("in", *COMPARISONS) else None
                params += [write(v) if write and v is not None else v for v in values]
            sql += " WHERE " + " AND ".join(tests)
        keys = [c for c in catalog if c.primary_key]
        is_view = not keys and self.relations().get(table) == "view"
        if order:
            sql += " ORDER BY " + ", ".join(ordering(s).format(quote(s.column.name))
                                            for s in tie_break(order, keys or ([] if is_view else [_ROWID])))
        elif not is_view:  # a view has no key and no rowid: its rows come in the order it makes them
            sql += " ORDER BY " + (", ".join(quote(c.name) for c in keys) or "rowid")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with _closing(self.connect()) as conn:
            yield from _typed(conn.execute(sql, params), columns)

    def describe(self, sql: str, params: Sequence[tuple[str, str]]) -> list[Column]:
        """The columns ``sql`` returns: a column read as it is from a table keeps its type, any other is text (SQLite
        gives results no type). :class:`~sheetstream.errors.ConfigError` with SQLite's message when it fails."""
        with _closing(self.connect()) as conn:
            try:
                conn.execute(f"SELECT * FROM ({sql}) LIMIT 0", dict.fromkeys(p for p, _ in params))
                # Only a view's columns have declared types, and a view takes no parameters: NULL stands for them.
                conn.execute("DROP VIEW IF EXISTS temp.sheetstream_describe")
                conn.execute(f"CREATE TEMP VIEW sheetstream_describe AS {PARAMETER.sub('NULL', sql)}")
                info = conn.execute("PRAGMA temp.table_info(sheetstream_describe)").fetchall()
            except sqlite3.Error as exc:
                raise ConfigError(f"SQLite cannot run it: {exc}") from exc
        return [_column(name, decl, 0, 0) for _, name, decl, _, _, _ in info]

    def read_query(self, sql: str, params: Sequence[tuple[str, str]], values: dict[str, Any],
                   columns: Sequence[Column]) -> Iterator[tuple[Any, ...]]:
        """The rows of ``sql`` with ``values`` bound to its ``:parameters`` (typed by ``params``), streamed."""
        bound = {}
        for name, kind in params:
            write, v = _writer(Column(name, kind)), values.get(name)
            bound[name] = write(v) if write and v is not None else v
        with _closing(self.connect()) as conn:
            yield from _typed(conn.execute(sql, bound), columns)

    def create_table(self, table: str, columns: Sequence[Column], replace: bool = False) -> None:
        body = ", ".join(_ddl(c) for c in columns)
        keys = [quote(c.name) for c in columns if c.primary_key]
        if keys:
            body += f", PRIMARY KEY ({', '.join(keys)})"
        with _closing(self.connect()) as conn:
            if replace:
                conn.execute(f"DROP TABLE IF EXISTS {quote(table)}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {quote(table)} ({body})")

    def drop_table(self, table: str) -> None:
        with _closing(self.connect()) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {quote(table)}")

    def write_rows(self, table: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]],
                   mode: str = "append", dry_run: bool = False, on_commit: OnCommit | None = None) -> int:
        names = ", ".join(quote(c.name) for c in columns)
        sql = f"INSERT INTO {quote(table)} ({names}) VALUES ({', '.join('?' for _ in columns)})"
        if mode == "upsert":
            keys = [quote(c.name) for c in self.columns(table) if c.primary_key]
            if not keys:
                raise BadRequest(f"upsert needs a primary key, and table {table!r} has none")
            updates = [f"{quote(c.name)} = excluded.{quote(c.name)}" for c in columns if not c.primary_key]
            sql += f" ON CONFLICT ({', '.join(keys)}) DO " + (f"UPDATE SET {', '.join(updates)}" if updates else "NOTHING")
        tally = [0]
        with _closing(self.connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if mode == "replace":
                    conn.execute(f"DELETE FROM {quote(table)}")
                conn.executemany(sql, _stored(columns, rows, tally))
                if on_commit and not dry_run:
                    on_commit(conn, tally[0])
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK")
                raise refused(str(exc)) from exc
            except sqlite3.OperationalError as exc:  # "database is locked" and friends: not the file's fault
                conn.execute("ROLLBACK")
                raise unavailable(f"SQLite could not write ({exc})") from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("ROLLBACK" if dry_run else "COMMIT")
        return tally[0]

    @contextmanager
    def staging(self, table: str, columns: Sequence[Column], mode: str = "append",
                direct: bool = False) -> Iterator[Staged]:
        """An import's transaction with its staging table (:mod:`.staging`; none with ``direct``): committed on
        leaving when ``commit()`` was called on the yielded value, rolled back otherwise."""
        catalog = self.columns(table)
        with _closing(self.connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                staged = Staged(conn, _DIALECT, table, catalog, columns, mode, direct)
                yield staged
                conn.execute("COMMIT" if staged.committed else "ROLLBACK")
            except sqlite3.OperationalError as exc:  # "database is locked" and friends: not the file's fault
                raise unavailable(f"SQLite could not write ({exc})") from exc
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    @property
    def jobs(self) -> SqliteJobs:
        # A file of their own: SQLite allows one writer, and an import holds it for its whole duration.
        return SqliteJobs(self.control_path, self.path)

    @property
    def tokens(self) -> SqliteTokens:
        return SqliteTokens(self.control_path)

    @property
    def audit(self) -> SqliteAudit:
        return SqliteAudit(self.control_path)

    @property
    def control_path(self) -> Path:
        """Jobs, tokens and the audit trail live in a sibling file: an import holds this file's one writer."""
        return self.path.with_name(self.path.stem + "-jobs.db")


def _typed(cursor: sqlite3.Cursor, columns: Sequence[Column]) -> Iterator[tuple[Any, ...]]:
    """The cursor's rows in batches, with dates, times, booleans and numerics made Python values again."""
    converters = [(i, f) for i, c in enumerate(columns) if (f := _reader(c))]
    while batch := cursor.fetchmany(BATCH):
        if not converters:
            yield from batch
            continue
        for row in batch:
            values = list(row)
            for i, convert in converters:
                if values[i] is not None:
                    values[i] = convert(values[i])
            yield tuple(values)


class _closing:
    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _column(name: str, declared: str, notnull: int, pk: int) -> Column:
    match = _TYPE.match(declared or "")
    base, a, b = (match.group(1).lower(), match.group(2), match.group(3)) if match else ((declared or "").lower(), None, None)
    if "int" in base:
        kind = "integer"
    elif base in ("numeric", "decimal"):
        kind = "numeric"
    elif any(t in base for t in ("real", "floa", "doub")):
        kind = "float"
    elif base in ("date",):
        kind = "date"
    elif base.startswith(("timestamp", "datetime")):
        kind = "timestamp"
    elif base == "time":
        kind = "time"
    elif base.startswith("bool"):
        kind = "boolean"
    else:
        kind = "text"
    return Column(
        name=name,
        kind=kind,
        nullable=not notnull and not pk,
        primary_key=bool(pk),
        precision=int(a) if kind == "numeric" and a else None,
        scale=int(b or 0) if kind == "numeric" and a else None,
        length=int(a) if kind == "text" and a else None,
    )


_DDL = {
    "integer": "INTEGER",
    "float": "DOUBLE PRECISION",
    "text": "TEXT",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "time": "TIME",
    "boolean": "BOOLEAN",
}


def _ddl(c: Column) -> str:
    return f"{quote(c.name)} {column_type(c, _DDL)}"



def _reader(c: Column) -> Callable[[Any], Any] | None:
    if c.kind == "numeric":
        exponent = Decimal(1).scaleb(-(c.scale or 0)) if c.scale is not None else None

        def numeric(v: Any) -> Decimal:
            d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
            return d.quantize(exponent) if exponent is not None else d

        return numeric
    return {
        "date": lambda v: date.fromisoformat(v) if isinstance(v, str) else v,
        "timestamp": lambda v: datetime.fromisoformat(v) if isinstance(v, str) else v,
        "time": lambda v: time.fromisoformat(v) if isinstance(v, str) else v,
        "boolean": bool,
    }.get(c.kind)


def _writer(c: Column) -> Callable[[Any], Any] | None:
    return {
        "numeric": lambda v: str(v) if isinstance(v, Decimal) else v,
        "date": lambda v: v.isoformat(),
        "timestamp": lambda v: v.isoformat(sep=" "),
        "time": lambda v: v.isoformat(),
        "boolean": int,
    }.get(c.kind)


def _create_staging(conn: sqlite3.Connection, staging: str, table: str, names: str) -> None:
    # CREATE TABLE AS keeps each column's type affinity, so staged values compare with stored ones as equals.
    conn.execute(f"CREATE TEMP TABLE {staging} AS SELECT {names} FROM main.{table} LIMIT 0")
    conn.execute(f"ALTER TABLE {staging} ADD COLUMN {ROW} INTEGER")


def _load_staging(conn: sqlite3.Connection, staging: str, columns: Sequence[Column],
                  rows: Iterable[tuple[int, Sequence[Any]]]) -> int:
    writers = [_writer(c) for c in columns]
    names = ", ".join(quote(c.name) for c in columns)
    count = 0

    def adapted() -> Iterator[list[Any]]:
        nonlocal count
        for number, row in rows:
            count += 1
            yield [*(w(v) if w and v is not None else v for w, v in zip(writers, row)), number]

    conn.executemany(f"INSERT INTO {quote(staging)} ({names}, {ROW}) VALUES ({', '.join('?' * (len(columns) + 1))})",
                     adapted())
    return count


def _load_direct(conn: sqlite3.Connection, table: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> int:
    """The direct path (:mod:`.staging`): rows straight into the table."""
    names = ", ".join(quote(c.name) for c in columns)
    tally = [0]
    conn.executemany(f"INSERT INTO main.{quote(table)} ({names}) VALUES ({', '.join('?' * len(columns))})",
                     _stored(columns, rows, tally))
    return tally[0]


def _stored(columns: Sequence[Column], rows: Iterable[Sequence[Any]], tally: list[int]) -> Iterator[list[Any]]:
    """Rows as SQLite keeps them (each column's writer: ISO text, 0/1, numbers), counted in ``tally[0]``."""
    writers = [_writer(c) for c in columns]
    for row in rows:
        tally[0] += 1
        yield [w(v) if w and v is not None else v for w, v in zip(writers, row)]


@contextmanager
def _savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("SAVEPOINT sheetstream_try")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK TO sheetstream_try")
        conn.execute("RELEASE sheetstream_try")
        raise
    conn.execute("RELEASE sheetstream_try")


def _decode(columns: Sequence[Column], values: Sequence[Any]) -> list[Any]:
    readers = [_reader(c) for c in columns]
    return [r(v) if r and v is not None else v for r, v in zip(readers, values)]


_DIALECT = Dialect(create=_create_staging, load=_load_staging, refusal=(sqlite3.IntegrityError,),
                   savepoint=_savepoint, decode=_decode, direct=_load_direct)
