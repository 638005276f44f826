"""The PostgreSQL store, through psycopg 3.

Rows stream out through a server-side (named) cursor fetched in batches, and go in with ``COPY ... FROM STDIN``;
identifiers are always composed with :mod:`psycopg.sql`. ``read="copy"`` streams with ``COPY (SELECT ...) TO
STDOUT (FORMAT BINARY)`` instead; ``bench export`` measures both, and the cursor was faster here (README).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from ..config import PARAMETER
from ..errors import BadRequest, ConfigError, NotFound, StoreUnavailable
from .audit import PostgresAudit
from .base import Column, OnCommit, column_type, refused, unavailable
from .jobs import PostgresJobs
from .staging import ROW, Dialect, Staged
from .tokens import PostgresTokens
from .where import Condition, Sort, ordering, predicate, tie_break

_KINDS = {
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "numeric": "numeric",
    "real": "float",
    "double precision": "float",
    "text": "text",
    "character varying": "text",
    "character": "text",
    "date": "date",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamp",
    "time without time zone": "time",
    "boolean": "boolean",
}

# Types whose binary COPY takes exactly what validation produces (int, Decimal, str, date, naive datetime,
# bool, float); anything else (timestamptz, time, ...) goes through the text format. Not smallint and integer:
# psycopg's binary dumpers wrap a Python int past their 16 or 32 bits without a word (3,000,000,000 arrives as
# -1,294,967,296: seen), while the text format makes PostgreSQL refuse it ("out of range").
_BINARY_SAFE = frozenset(["bigint", "numeric", "real", "double precision", "text",
                          "character varying", "date", "timestamp without time zone", "boolean"])

_DDL = {
    "integer": "bigint",
    "float": "double precision",
    "text": "text",
    "date": "date",
    "timestamp": "timestamp",
    "time": "time",
    "boolean": "boolean",
}

_CATALOG = """
SELECT a.attname,
       format_type(a.atttypid, a.atttypmod),
       t.typname,
       a.attnotnull,
       coalesce(a.attnum = ANY (i.indkey), false),
       information_schema._pg_numeric_precision(a.atttypid, a.atttypmod),
       information_schema._pg_numeric_scale(a.atttypid, a.atttypmod),
       information_schema._pg_char_max_length(a.atttypid, a.atttypmod),
       format_type(a.atttypid, NULL)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE c.relname = %s AND c.relkind IN ('r', 'p', 'v', 'm') AND pg_table_is_visible(c.oid)
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


class PostgresStore:
    #: Imports may write straight into the table (``staging(direct=True)``, :func:`.staging.direct_allowed`).
    direct = True

    def __init__(self, url: str, read: str = "cursor", batch: int = 2_000):
        self.url = url
        self.read = read
        self.batch = batch

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        try:
            return psycopg.connect(self.url, connect_timeout=5, **kwargs)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {str(exc).strip()}") from exc

    def tables(self) -> list[str]:
        return list(self.relations())

    def relations(self) -> dict[str, str]:
        with self.connect() as conn:
            return self._relations(conn)

    def _relations(self, conn: psycopg.Connection, name: str | None = None) -> dict[str, str]:
        rows = conn.execute(
            "SELECT c.relname, CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END FROM pg_class c"
            " WHERE c.relkind IN ('r', 'p', 'v', 'm') AND pg_table_is_visible(c.oid)"
            " AND c.relnamespace <> 'pg_catalog'::regnamespace"
            " AND c.relnamespace <> 'information_schema'::regnamespace AND (%s::text IS NULL OR c.relname = %s)"
            " ORDER BY 1", (name, name),
        ).fetchall()
        return dict(rows)

    def columns(self, table: str) -> list[Column]:
        with self.connect() as conn:
            return self._columns(conn, table)

    def _columns(self, conn: psycopg.Connection, table: str) -> list[Column]:
        rows = conn.execute(_CATALOG, (table,)).fetchall()
        if not rows:
            raise NotFound(f"there is no table {table!r}")
        columns = []
        for name, _full, _typname, notnull, pk, precision, scale, length, base in rows:
            kind = _KINDS.get(base, "text")
            columns.append(Column(
                name=name,
                kind=kind,
                nullable=not notnull,
                primary_key=bool(pk),
                precision=precision if kind == "numeric" else None,
                scale=scale if kind == "numeric" else None,
                length=length if kind == "text" else None,
            ))
        return columns

    def count(self, table: str) -> int:
        with self.connect() as conn:
            self._columns(conn, table)
            return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]

    def estimate(self, table: str, where: Sequence[Condition] = ()) -> int | None:
        """The planner's estimate of the rows ``where`` keeps: cheap (no row is read), about right after ANALYZE."""
        with self.connect() as conn:
            query = sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {}").format(_bound_identifier(table))
            test, params = _where(where, _bound_identifier)
            plan = conn.execute(query + test, params).fetchone()[0]
        return int(plan[0]["Plan"]["Plan Rows"])

    def read_rows(self, table: str, columns: Sequence[Column], limit: int | None = None,
                  where: Sequence[Condition] = (), order: Sequence[Sort] = ()) -> Iterator[tuple[Any, ...]]:
        with self.connect() as conn:
            catalog = self._columns(conn, table)
            keys = [c for c in catalog if c.primary_key]
            is_view = not keys and self._relations(conn, table).get(table) == "view"
            # With parameters, psycopg reads every "%" of the query as a placeholder's: names are escaped then.
            # The cursor always binds (an empty list too); COPY merges them client-side, and only when there are.
            bound = self.read == "cursor" or any(predicate(c, "postgres")[1] for c in where)
            name = _bound_identifier if bound else sql.Identifier
            query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(name(c.name) for c in columns), name(table))
            test, params = _where(where, name)
            query += test
            if order:
                query += sql.SQL(" ORDER BY ") + sql.SQL(", ").join(
                    sql.SQL(ordering(s)).format(name(s.column.name)) for s in tie_break(order, keys))
            elif not is_view:  # a view has no key and no ctid: its rows come in the order it makes them
                query += sql.SQL(" ORDER BY {}").format(
                    sql.SQL(", ").join([name(c.name) for c in keys] or [sql.SQL("ctid")]))
            if limit is not None:
                query += sql.SQL(" LIMIT {}").format(sql.Literal(int(limit)))
            if self.read == "cursor":
                with conn.transaction(), conn.cursor(name="sheetstream_export") as cursor:
                    cursor.itersize = self.batch
                    cursor.execute(query, params)
                    yield from cursor
                return
            type_names = _type_names(conn, table, columns)
            statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)
            with conn.cursor().copy(statement, params or None) as copy:
                copy.set_types(type_names)
                yield from copy.rows()

    def describe(self, sql: str, params: Sequence[tuple[str, str]]) -> list[Column]:
        """The columns ``sql`` returns, typed by PostgreSQL (which plans it with its parameters' types);
        :class:`~sheetstream.errors.ConfigError` with PostgreSQL's message when it cannot."""
        with self.connect() as conn:
            try:
                cursor = conn.execute(f"SELECT * FROM ({_with_placeholders(sql, params)}) AS sheetstream_q LIMIT 0",
                                      dict.fromkeys(p for p, _ in params))
            except psycopg.Error as exc:
                raise ConfigError(f"PostgreSQL cannot run it: {_describe(exc)}") from exc
            columns = []
            for d in cursor.description or []:
                info = conn.adapters.types.get(d.type_code)
                kind = _RESULT_KINDS.get(info.name if info else "", "text")
                columns.append(Column(d.name, kind, precision=d.precision if kind == "numeric" else None,
                                      scale=d.scale if kind == "numeric" else None))
            return columns

    def read_query(self, sql: str, params: Sequence[tuple[str, str]], values: dict[str, Any],
                   columns: Sequence[Column]) -> Iterator[tuple[Any, ...]]:
        """The rows of ``sql`` with ``values`` bound to its ``:parameters``, through a server-side cursor."""
        with self.connect() as conn, conn.transaction(), conn.cursor(name="sheetstream_query") as cursor:
            cursor.itersize = self.batch
            cursor.execute(_with_placeholders(sql, params), {p: values.get(p) for p, _ in params})
            yield from cursor

    def create_table(self, table: str, columns: Sequence[Column], replace: bool = False) -> None:
        body = [sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(_ddl(c))) for c in columns]
        keys = [sql.Identifier(c.name) for c in columns if c.primary_key]
        if keys:
            body.append(sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(keys)))
        with self.connect() as conn:
            if replace:
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                sql.Identifier(table), sql.SQL(", ").join(body)))

    def drop_table(self, table: str) -> None:
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))

    def write_rows(self, table: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]],
                   mode: str = "append", dry_run: bool = False, on_commit: OnCommit | None = None) -> int:
        count = 0
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        try:
            with self.connect() as conn:
                with conn.transaction() as tx:
                    target = sql.Identifier(table)
                    if mode == "replace":
                        conn.execute(sql.SQL("DELETE FROM {}").format(target))
                    if mode == "upsert":
                        keys = [c.name for c in self._columns(conn, table) if c.primary_key]
                        if not keys:
                            raise BadRequest(f"upsert needs a primary key, and table {table!r} has none")
                        conn.execute(sql.SQL("CREATE TEMP TABLE sheetstream_upsert ON COMMIT DROP AS "
                                             "SELECT {} FROM {} LIMIT 0").format(names, target))
                        target = sql.Identifier("sheetstream_upsert")
                    types = _type_names(conn, table, columns)
                    binary = all(t in _BINARY_SAFE for t in types)  # measured: 0.27 s vs 0.43 s for 200k rows
                    statement = sql.SQL("COPY {} ({}) FROM STDIN" + (" (FORMAT BINARY)" if binary else ""))
                    with conn.cursor().copy(statement.format(target, names)) as copy:
                        if binary:
                            copy.set_types(types)
                        for row in rows:
                            copy.write_row(row)
                            count += 1
                    if mode == "upsert":
                        updates = [sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c.name))
                                   for c in columns if c.name not in keys]
                        action = (sql.SQL("UPDATE SET {}").format(sql.SQL(", ").join(updates)) if updates
                                  else sql.SQL("NOTHING"))
                        conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM sheetstream_upsert "
                                             "ON CONFLICT ({}) DO {}").format(
                            sql.Identifier(table), names, names,
                            sql.SQL(", ").join(sql.Identifier(k) for k in keys), action))
                    if dry_run:
                        raise psycopg.Rollback(tx)
                    if on_commit:
                        on_commit(conn, count)
        except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as exc:
            raise refused(_describe(exc)) from exc
        except psycopg.OperationalError as exc:
            raise unavailable(f"the connection to PostgreSQL was lost during the write ({str(exc).strip()})") from exc
        return count

    @contextmanager
    def staging(self, table: str, columns: Sequence[Column], mode: str = "append",
                direct: bool = False) -> Iterator[Staged]:
        """An import's transaction with its staging table (:mod:`.staging`; none with ``direct``): committed on
        leaving when ``commit()`` was called on the yielded value, rolled back otherwise."""
        try:
            with self.connect() as conn:
                catalog = self._columns(conn, table)
                with conn.transaction() as tx:
                    staged = Staged(conn, _DIALECT, table, catalog, columns, mode, direct)
                    yield staged
                    if not staged.committed:
                        raise psycopg.Rollback(tx)
        except psycopg.OperationalError as exc:
            raise unavailable(f"the connection to PostgreSQL was lost during the write ({str(exc).strip()})") from exc

    @property
    def jobs(self) -> PostgresJobs:
        return PostgresJobs(self.connect)

    @property
    def tokens(self) -> PostgresTokens:
        return PostgresTokens(self.connect)

    @property
    def audit(self) -> PostgresAudit:
        return PostgresAudit(self.connect)


#: Result column types (psycopg's names) -> kinds; any other is text.
_RESULT_KINDS = {"int2": "integer", "int4": "integer", "int8": "integer", "numeric": "numeric", "float4": "float",
                 "float8": "float", "text": "text", "varchar": "text", "bpchar": "text", "name": "text",
                 "date": "date", "timestamp": "timestamp", "timestamptz": "timestamp", "time": "time",
                 "bool": "boolean"}
_PARAMETER_TYPES = {"integer": "bigint", "numeric": "numeric", "float": "double precision", "text": "text",
                    "date": "date", "timestamp": "timestamp", "time": "time", "boolean": "boolean"}


def _with_placeholders(text: str, params: Sequence[tuple[str, str]]) -> str:
    """A named query's ``:name`` parameters as psycopg's ``%(name)s``, each cast to its declared type (so that
    PostgreSQL knows it wherever it stands); its own ``%`` doubled."""
    kinds = dict(params)
    return PARAMETER.sub(lambda m: f"CAST(%({m[1]})s AS {_PARAMETER_TYPES[kinds[m[1]]]})", text.replace("%", "%%"))


def _bound_identifier(name: str) -> sql.Composable:
    """``name`` quoted for a query that has parameters: a ``%`` in it doubled, so that it is not one's mark."""
    return sql.SQL('"' + name.replace('"', '""').replace("%", "%%") + '"')


def _describe(exc: psycopg.Error) -> str:
    diag = exc.diag
    parts = [diag.message_primary or str(exc).strip()]
    if diag.message_detail:
        parts.append(diag.message_detail)
    if diag.context:
        parts.append(diag.context.strip().splitlines()[0])  # "COPY orders, line 5": the 5th data row
    return "; ".join(parts)


def _type_names(conn: psycopg.Connection, table: str, columns: Sequence[Column]) -> list[str]:
    """The columns' type names as COPY's binary loaders want them (``numeric``, ``int8``, ...)."""
    rows = conn.execute(
        "SELECT a.attname, a.atttypid::regtype::text FROM pg_attribute a"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
        (sql.Identifier(table).as_string(conn),),
    ).fetchall()
    by_name = dict(rows)
    return [by_name[c.name] for c in columns]


def _ddl(c: Column) -> str:
    return column_type(c, _DDL)


def _create_staging(conn: psycopg.Connection, staging: str, table: str, names: str) -> None:
    conn.execute(f"CREATE TEMP TABLE {staging} ON COMMIT DROP AS SELECT {names} FROM {table} LIMIT 0")
    conn.execute(f"ALTER TABLE {staging} ADD COLUMN {ROW} bigint")


def _staged_names(columns: Sequence[Column]) -> sql.Composed:
    """The staging table's columns as COPY lists them: the table's, then the sheet row."""
    return sql.SQL(", ").join([*(sql.Identifier(c.name) for c in columns), sql.Identifier(ROW)])


def _load_staging(conn: psycopg.Connection, staging: str, columns: Sequence[Column],
                  rows: Iterable[tuple[int, Sequence[Any]]]) -> int:
    types = [*_type_names(conn, staging, columns), "bigint"]
    binary = all(t in _BINARY_SAFE for t in types)  # measured: 0.27 s vs 0.43 s for 200k rows
    statement = sql.SQL("COPY {} ({}) FROM STDIN" + (" (FORMAT BINARY)" if binary else ""))
    count = 0
    with conn.cursor().copy(statement.format(sql.Identifier(staging), _staged_names(columns))) as copy:
        if binary:
            copy.set_types(types)
        for number, row in rows:
            copy.write_row((*row, number))
            count += 1
    return count


def _load_encoded(conn: psycopg.Connection, staging: str, columns: Sequence[Column], chunks: Iterable[bytes]) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(staging), _staged_names(columns))
    with conn.cursor().copy(statement) as copy:
        for data in chunks:
            copy.write(data)


def _load_direct(conn: psycopg.Connection, table: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> int:
    """The direct path (:mod:`.staging`): rows straight into the table, in the text format where some column's
    binary dumper would not check its range (as :func:`_load_staging`)."""
    types = _type_names(conn, table, columns)
    binary = all(t in _BINARY_SAFE for t in types)
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN" + (" (FORMAT BINARY)" if binary else ""))
    count = 0
    with conn.cursor().copy(statement.format(sql.Identifier(table), names)) as copy:
        if binary:
            copy.set_types(types)
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _direct_encoded(conn: psycopg.Connection, table: str, columns: Sequence[Column], chunks: Iterable[bytes]) -> None:
    """The direct path for rows already in COPY's text format (:func:`_text_encoder` with ``numbered=False``)."""
    names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), names)) as copy:
        for data in chunks:
            copy.write(data)


_ESCAPES = re.compile(r"[\\\t\n\r]")
_ESCAPED = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escaped(v: str | None) -> str | None:
    return _ESCAPES.sub(lambda m: _ESCAPED[m.group()], v) if v is not None and _ESCAPES.search(v) else v


def _text_encoder(columns: Sequence[Column], numbered: bool = True) -> Callable[[list[tuple[int, Sequence[Any]]]], bytes]:
    """Rows as validation makes them (int, Decimal, str, date, datetime, time, bool, float per the column's kind)
    -> COPY's text format, with the sheet row last (``numbered``; the direct path has none). ``str()`` is each
    value's text form for PostgreSQL (ISO dates, ``2024-01-02 10:00:00``, ``True``, ``1.5``, ``inf``), and only a
    text can hold what COPY escapes: a text column is escaped, in place, where some value of the block needs it
    (one search over the column). Plain Python, so it runs in any process; the text format also has PostgreSQL
    check the ranges of smallint and integer. The reference of the compiled encoder (``pipeline/_encode.c``)."""
    texts = [j for j, c in enumerate(columns) if c.kind == "text"]

    def encode(rows: list[tuple[int, Sequence[Any]]]) -> bytes:
        if not rows:
            return b""
        for j in texts:
            if _ESCAPES.search("".join([v for _, values in rows if (v := values[j]) is not None])):
                for _, values in rows:
                    values[j] = _escaped(values[j])  # type: ignore[index]
        lines = ["\t".join(["\\N" if v is None else str(v) for v in values]) + (f"\t{number}" if numbered else "")
                 for number, values in rows]
        lines.append("")
        return "\n".join(lines).encode()

    return encode


_DIALECT = Dialect(create=_create_staging, load=_load_staging,
                   refusal=(psycopg.errors.IntegrityError, psycopg.errors.DataError),
                   savepoint=lambda conn: conn.transaction(), describe=_describe,
                   encoder=_text_encoder, load_encoded=_load_encoded, copy_text=True,
                   direct=_load_direct, direct_encoded=_direct_encoded)


def _where(where: Sequence[Condition], name: Callable[[str], sql.Composable]) -> tuple[sql.Composable, list[Any]]:
    """`` WHERE`` and every condition of ``where`` (:mod:`.where`), with its values to bind; nothing without any."""
    tests, params = [], []
    for condition in where:
        template, values = predicate(condition, "postgres")
        tests.append(sql.SQL(template).format(name(condition.column.name), *(sql.Placeholder() for _ in values)))
        params += values
    return (sql.SQL(" WHERE ") + sql.SQL(" AND ").join(tests) if tests else sql.SQL("")), params
