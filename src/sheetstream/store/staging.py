"""An import's rows, staged in a temporary table inside the import's transaction before anything is written.

The rows stream into the staging table with their sheet row number; the database then answers what a person
fixing the file needs, without the rows ever being held in Python: keys repeated in the file, keys that already
exist (append), and what the import would change (inserted, updated, unchanged, deleted, with a sample of the
changed values). Only then is the table written, from the staging table, in the same transaction.

An import that needs none of this review (:func:`direct_allowed`: a replace, or an append into a table without
a key) skips the staging table: its rows go straight into the table in the same transaction (``direct``), which
saves the staging table's index and its ``INSERT ... SELECT`` (13-30% of an import's wall time, measured).

Why a temporary table and not a set of keys in Python: a million integer keys take 62.5 MB as a Python set
(measured with tracemalloc), and more for text or composite keys; the temporary table costs the worker nothing,
a unique index on it tells at once whether any key repeats, and the database's own join and grouping find
existing and repeated keys at any size.

The SQL is the same for SQLite, PostgreSQL and MySQL/MariaDB; each store supplies a :class:`Dialect` (how to
load rows, how to tell a refusal from a lost connection, and the few phrases MySQL spells differently).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadRequest, RowRefused
from .base import Column

STAGING = "sheetstream_staging_"  # + the table's name: a temporary table, seen in the activity views by its import
ROW = "__sheet_row"  # the sheet row number of each staged row
SAMPLE_ROWS = 20  # changed rows whose values a preview shows


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def on_conflict(keys: list[str], others: list[str]) -> str:
    """SQLite's and PostgreSQL's upsert clause."""
    action = "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in others) if others else "NOTHING"
    return f" ON CONFLICT ({', '.join(keys)}) DO {action}"


@dataclass
class Dialect:
    """What differs between the databases: ``create`` makes the staging table like the table's columns, ``load``
    streams ``(row number, values)`` into it and returns the count; ``refusal`` are the driver's exceptions for
    rows the database will not take, ``describe`` says why (PostgreSQL's COPY names the failing line);
    ``savepoint`` rolls back what its block did when the block raises; ``decode`` turns stored values back
    into Python ones. MySQL spells three things its own way: ``same`` (null-safe equality, ``<=>``),
    ``upsert`` (``ON DUPLICATE KEY UPDATE``), and ``repeats``, which says whether any key repeats with a query
    where the others build a unique index (MySQL's CREATE INDEX commits the transaction)."""

    create: Callable[[Any, str, str, str], None]
    load: Callable[[Any, str, Sequence[Column], Iterable[tuple[int, Sequence[Any]]]], int]
    refusal: tuple[type[BaseException], ...]
    savepoint: Callable[[Any], Any]
    decode: Callable[[Sequence[Column], Sequence[Any]], list[Any]] = lambda columns, values: list(values)
    describe: Callable[[BaseException], str] = lambda exc: str(exc).strip()
    #: Where rows can be encoded away from the connection (in another process): ``encoder(columns)`` gives the
    #: function from ``[(row number, values)]`` to the data ``load_encoded`` streams into the staging table.
    encoder: Callable[[Sequence[Column]], Callable[[list[tuple[int, Sequence[Any]]]], Any]] | None = None
    load_encoded: Callable[[Any, str, Sequence[Column], Iterable[Any]], None] | None = None
    #: Null-safe equality of two expressions, as a template with ``{a}`` and ``{b}``.
    same: str = "{a} IS NOT DISTINCT FROM {b}"
    #: The clause that makes an INSERT update rows whose key exists: ``upsert(keys, other columns)``, quoted.
    upsert: Callable[[list[str], list[str]], str] = on_conflict
    #: ``repeats(conn, staging, keys)``: False when no key repeats, so no search is made; None: try a unique index.
    repeats: Callable[[Any, str, str], bool] | None = None
    #: ``load_encoded`` takes PostgreSQL's COPY text lines, the sheet row last: what the compiled encoder writes;
    #: ``flags``: with booleans as 1 or 0 (MySQL's LOAD DATA reads the same format otherwise).
    copy_text: bool = False
    flags: bool = False
    #: The direct path's encoded rows keep the sheet row last too (MySQL's load reads it into a variable).
    direct_numbered: bool = False
    #: The direct path (no staging table): ``direct(conn, table, columns, rows)`` streams plain rows straight into
    #: the table and returns the count; ``direct_encoded(conn, table, columns, chunks)`` takes the chunks of
    #: ``encoder(columns, numbered=False)``. None: this database always stages.
    direct: Callable[[Any, str, Sequence[Column], Iterable[Sequence[Any]]], int] | None = None
    direct_encoded: Callable[[Any, str, Sequence[Column], Iterable[Any]], None] | None = None


def direct_allowed(catalog: Sequence[Column], mode: str, dry_run: bool,
                   empty: Callable[[], bool] = lambda: False) -> bool:
    """Whether an import may write straight into the table, without a staging table: when no review needs one.

    Staged: a dry run (its preview joins the staged rows to the table), an upsert (so does its update), and an
    append into a table with a primary key (a key already in the table is that import's usual problem, and the
    review lists every such row at its cell: with direct writes the first would stop the COPY, and the import
    would start again to list them). Direct: a replace (the table's own unique index refuses a key repeated in
    the sheet), an append into a table without a key (nothing to review), and an append into a table that is
    ``empty()`` (asked only then: no key can exist yet; one repeated in the sheet is refused by the table's
    index). When a direct import meets any problem, a cell or a refused row, its transaction is rolled back and
    it runs again with a staging table, which lists every problem as before: the same answer, at twice the parse
    on that path only."""
    if dry_run or mode == "upsert":
        return False
    return mode == "replace" or not any(c.primary_key for c in catalog) or (mode == "append" and empty())


@dataclass
class RowMap:
    """Staged line (1-based) -> sheet row, in memory that grows only where rows were skipped (run lengths)."""

    jumps: list[tuple[int, int]] = field(default_factory=list)  # (line, sheet row) where the run restarts
    lines: int = 0
    _last: int = -2

    def numbered(self, rows: Iterable[tuple[int, Sequence[Any]]]) -> Iterator[tuple[int, Sequence[Any]]]:
        for number, values in rows:
            self.lines += 1
            if number != self._last + 1:
                self.jumps.append((self.lines, number))
            self._last = number
            yield number, values

    def extend(self, numbers: list[int]) -> None:
        for number in numbers:
            self.lines += 1
            if number != self._last + 1:
                self.jumps.append((self.lines, number))
            self._last = number

    def row(self, line: int) -> int | None:
        found = None
        for start, number in self.jumps:
            if start > line:
                break
            found = number + (line - start)
        return found


class Staged:
    """The staging table of one import, on the import's open transaction (made by the store's ``staging``).

    ``direct``: no staging table; the rows go straight into the table (after its rows are deleted, ``replace``)
    inside the same transaction, and the table's own constraints are the only key check: for an import that
    needs no review (see :func:`direct_allowed`), whose caller starts again with a staging table for the review
    when anything goes wrong."""

    def __init__(self, conn: Any, dialect: Dialect, table: str, catalog: Sequence[Column], columns: Sequence[Column],
                 mode: str, direct: bool = False):
        self.conn, self.dialect, self.table, self.mode = conn, dialect, table, mode
        self.direct = direct
        self.columns = list(columns)
        names = {c.name for c in columns}
        self.keys = [c.name for c in catalog if c.primary_key]
        self.keyed = bool(self.keys) and all(k in names for k in self.keys)
        if mode == "upsert" and not self.keys:
            raise BadRequest(f"upsert needs a primary key, and table {table!r} has none")
        self.rows = RowMap()
        self.count = 0
        self.committed = False
        self.unique = False  # True once a unique index on the key was built: no key repeats
        self._names = ", ".join(quote(c.name) for c in self.columns)
        self.name = STAGING + table[:63 - len(STAGING)]
        self.staging = quote(self.name)
        if not direct:
            dialect.create(conn, self.staging, quote(table), self._names)
        elif dialect.direct is None:
            raise ValueError("this database has no direct path")
        elif mode == "replace":
            conn.execute(f"DELETE FROM {quote(table)}")

    def commit(self) -> None:
        """Commit the transaction when its block ends (without this, it is rolled back)."""
        self.committed = True

    def _all(self, statement: str) -> list[tuple]:
        return self.conn.execute(statement).fetchall()

    def load(self, rows: Iterable[tuple[int, Sequence[Any]]]) -> int:
        """Stream ``(sheet row, values)`` into the staging table; a value the database refuses names its row."""
        if self.direct:
            assert self.dialect.direct is not None
            direct = self.dialect.direct
            return self._loaded(lambda: direct(self.conn, self.table, self.columns, (values for _, values in rows)))
        return self._loaded(lambda: self.dialect.load(self.conn, self.name, self.columns, self.rows.numbered(rows)))

    def encoder(self) -> Callable[[list[tuple[int, Sequence[Any]]]], Any] | None:
        """The function that encodes rows for :meth:`load_encoded` (it may run in another process), or None when
        this database takes rows only through :meth:`load`."""
        if self.direct:
            if self.dialect.direct_encoded is None or self.dialect.encoder is None:
                return None
            return self.dialect.encoder(self.columns, numbered=False)  # type: ignore[call-arg]
        return self.dialect.encoder(self.columns) if self.dialect.encoder else None

    @property
    def numbered(self) -> bool:
        """Whether the encoded rows :meth:`load_encoded` takes end with the sheet row."""
        return not self.direct or self.dialect.direct_numbered

    @property
    def copy_text(self) -> bool:
        """Whether :meth:`load_encoded` takes COPY text lines (with the sheet row last where :attr:`numbered`)."""
        return self.dialect.copy_text and (not self.direct or self.dialect.direct_encoded is not None)

    def load_encoded(self, chunks: Iterable[tuple[list[int], Any]]) -> int:
        """Like :meth:`load`, for rows already encoded: ``(sheet row numbers, data)`` per chunk."""
        assert self.dialect.load_encoded is not None

        def data() -> Iterator[Any]:
            for numbers, encoded in chunks:
                if self.direct:  # no staged row to find again: counted only
                    self.rows.lines += len(numbers)
                else:
                    self.rows.extend(numbers)
                yield encoded

        def load() -> int:
            if self.direct:
                assert self.dialect.direct_encoded is not None
                self.dialect.direct_encoded(self.conn, self.table, self.columns, data())
            else:
                self.dialect.load_encoded(self.conn, self.name, self.columns, data())
            return self.rows.lines

        return self._loaded(load)

    def _loaded(self, load: Callable[[], int]) -> int:
        try:
            self.count = load()
        except self.dialect.refusal as exc:
            detail = self.dialect.describe(exc)
            found = re.search(r"line (\d+)(?:, column ([^:]+))?", detail)
            row = self.rows.row(int(found.group(1))) if found else None
            raise RowRefused(detail, row=row, column=found.group(2) if found else None) from exc
        if self.direct:  # the table's own unique index took every key, or refused the rows
            self.unique = True
        elif self.keyed and self.dialect.repeats is not None:
            self.unique = not self.dialect.repeats(self.conn, self.staging, self._keys())
        elif self.keyed:  # a unique index: when it builds, the sheet repeats no key, and no search is needed
            try:
                with self.dialect.savepoint(self.conn):
                    self.conn.execute(f"CREATE UNIQUE INDEX {quote(self.name[:58] + '_keys')} "
                                      f"ON {self.staging} ({self._keys()})")
                self.unique = True
            except self.dialect.refusal:
                self.unique = False
        return self.count

    def _keys(self, alias: str = "") -> str:
        return ", ".join(f"{alias}{quote(k)}" for k in self.keys)

    def _join(self) -> str:
        return " AND ".join(f"s.{quote(k)} = t.{quote(k)}" for k in self.keys)

    def duplicates(self, limit: int) -> tuple[int, list[tuple[int, tuple, int]]]:
        """Rows whose key an earlier row of the sheet already has: (total, [(row, key, first row)])."""
        if not self.keyed or self.unique:
            return 0, []
        known = " AND ".join(f"{quote(k)} IS NOT NULL" for k in self.keys)  # a key cell with a problem is NULL
        ranked = (f"SELECT {ROW}, {self._keys()}, min({ROW}) OVER (PARTITION BY {self._keys()}) AS first_row "
                  f"FROM {self.staging} WHERE {known}")
        where = f"FROM ({ranked}) AS ranked WHERE {ROW} <> first_row"
        total = self._all(f"SELECT count(*) {where}")[0][0]
        found = self._all(f"SELECT {ROW}, {self._keys()}, first_row {where} ORDER BY {ROW} LIMIT {int(limit)}")
        return total, [(r[0], tuple(r[1:-1]), r[-1]) for r in found]

    def existing(self, limit: int) -> tuple[int, list[tuple[int, tuple]]]:
        """Rows whose key the table already has: (total, [(row, key)])."""
        if not self.keyed or self.direct:
            return 0, []
        join = f"FROM {self.staging} s JOIN {quote(self.table)} t ON {self._join()}"
        total = self._all(f"SELECT count(*) {join}")[0][0]
        found = self._all(f"SELECT s.{ROW}, {self._keys('s.')} {join} ORDER BY s.{ROW} LIMIT {int(limit)}")
        return total, [(r[0], tuple(r[1:])) for r in found]

    def preview(self, sample_rows: int = SAMPLE_ROWS) -> dict[str, Any]:
        """What writing would do: counts of rows inserted, updated, unchanged and deleted (``replace``), and the
        changed values of the first ``sample_rows`` updated rows."""
        before = self._all(f"SELECT count(*) FROM {quote(self.table)}")[0][0]
        counts = {"inserted": self.count, "updated": 0, "unchanged": 0, "deleted": before if self.mode == "replace" else 0}
        changes: list[dict[str, Any]] = []
        if not self.keyed or self.mode == "append":
            return {**counts, "changes": changes}
        others = [c for c in self.columns if c.name not in self.keys]
        join = f"FROM {self.staging} s JOIN {quote(self.table)} t ON {self._join()}"
        same = " AND ".join(self.dialect.same.format(a=f"s.{quote(c.name)}", b=f"t.{quote(c.name)}")
                            for c in others) or "true"
        matched, unchanged = self._all(f"SELECT count(*), coalesce(sum(CASE WHEN {same} THEN 1 ELSE 0 END), 0) {join}")[0]
        matched, unchanged = int(matched), int(unchanged)  # MySQL's sum() is a DECIMAL
        counts.update(inserted=self.count - matched, updated=matched - unchanged, unchanged=unchanged)
        if self.mode == "replace":
            counts["deleted"] = before - matched
        if others and matched > unchanged:
            pairs = ", ".join(f"s.{quote(c.name)}, t.{quote(c.name)}" for c in others)
            found = self._all(f"SELECT s.{ROW}, {pairs} {join} WHERE NOT ({same}) ORDER BY s.{ROW} LIMIT {int(sample_rows)}")
            for row, *values in found:
                new = self.dialect.decode(others, values[0::2])
                old = self.dialect.decode(others, values[1::2])
                changes += [{"row": row, "column": c.name, "old": o, "new": n}
                            for c, o, n in zip(others, old, new) if o != n]
        return {**counts, "changes": changes}

    def apply(self) -> int:
        """Write the staged rows to the table as the mode says; returns the count written. A row the database
        refuses (a foreign key, a check) raises :class:`~sheetstream.errors.RowRefused` naming its sheet row."""
        if self.direct:  # written as they were loaded
            return self.count
        if self.mode == "replace":
            self.conn.execute(f"DELETE FROM {quote(self.table)}")
        try:
            with self.dialect.savepoint(self.conn):
                self.conn.execute(self._insert(None))
        except self.dialect.refusal as exc:
            raise RowRefused(self.dialect.describe(exc), row=self._first_refused()) from exc
        return self.count

    def _insert(self, up_to: int | None) -> str:
        where = f"WHERE {ROW} <= {int(up_to)}" if up_to is not None else "WHERE true"
        statement = f"INSERT INTO {quote(self.table)} ({self._names}) SELECT {self._names} FROM {self.staging} {where}"
        if self.mode == "upsert":
            others = [quote(c.name) for c in self.columns if c.name not in self.keys]
            statement += self.dialect.upsert([quote(k) for k in self.keys], others)
        return statement

    def _first_refused(self) -> int | None:
        """The first sheet row whose insertion fails, by bisecting on row numbers (each try rolled back): the
        error path only, about 20 tries for a million rows."""
        low, high = self._all(f"SELECT min({ROW}), max({ROW}) FROM {self.staging}")[0]
        if low is None:
            return None
        while low < high:
            middle = (low + high) // 2
            try:
                with self.dialect.savepoint(self.conn):
                    self.conn.execute(self._insert(middle))
                    raise _Undo
            except _Undo:
                low = middle + 1
            except self.dialect.refusal:
                high = middle
        return low


class _Undo(Exception):
    """Rolls a trial insertion back (its savepoint), when it succeeded."""
