"""One small store interface over SQLite (the embedded default) and PostgreSQL.

A store is synchronous and meant to be used from a worker thread; every call opens what it needs and
closes it again, and row streams are generators that read in batches, never the whole table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MODES = ("append", "replace", "upsert")

#: Column kinds the exporter and importer know; each store maps its catalog types onto these.
KINDS = ("integer", "numeric", "float", "text", "date", "timestamp", "time", "boolean")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # one of KINDS
    nullable: bool = True
    primary_key: bool = False
    precision: int | None = None  # numeric: total digits
    scale: int | None = None  # numeric: digits after the point
    length: int | None = None  # text: maximum characters


class Store(Protocol):
    url: str

    def tables(self) -> list[str]: ...

    def columns(self, table: str) -> list[Column]:
        """The table's columns from the catalog, in order; :class:`~sheetstream.errors.NotFound` if absent."""

    def count(self, table: str) -> int: ...

    def read_rows(self, table: str, columns: Sequence[Column], limit: int | None = None) -> Iterator[tuple[Any, ...]]:
        """Rows of ``columns`` as typed Python values, ordered by primary key, streamed in batches."""

    def create_table(self, table: str, columns: Sequence[Column], replace: bool = False) -> None: ...

    def drop_table(self, table: str) -> None: ...

    def write_rows(self, table: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]],
                   mode: str = "append", dry_run: bool = False) -> int:
        """Write ``rows`` in one transaction, all or nothing; returns the count written.

        ``mode``: ``append`` inserts, ``replace`` deletes the table's rows first (same transaction), ``upsert``
        updates rows whose primary key exists. ``dry_run`` does everything, then rolls back. An exception
        raised by ``rows`` rolls everything back; the database refusing rows raises
        :class:`~sheetstream.errors.Invalid`, losing the connection :class:`~sheetstream.errors.StoreUnavailable`.
        """

    def save_job(self, job_id: str, data: dict[str, Any]) -> None:
        """Create or replace a job's record (in a ``sheetstream_jobs`` table)."""

    def load_job(self, job_id: str) -> dict[str, Any] | None: ...


def open_store(url: str) -> Store:
    """``postgresql://...`` opens PostgreSQL; ``sqlite:///relative.db``, ``sqlite:////abs.db`` or a path, SQLite."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url)
    from .sqlite import SqliteStore

    return SqliteStore(url.removeprefix("sqlite:///"))


def select_columns(available: Sequence[Column], wanted: Sequence[str] | None) -> list[Column]:
    """Pick ``wanted`` (case-insensitive) from the catalog's ``available``, in the order asked."""
    from ..errors import BadRequest

    if not wanted:
        return list(available)
    by_name = {c.name.lower(): c for c in available}
    unknown = [w for w in wanted if w.lower() not in by_name]
    if unknown:
        raise BadRequest(
            f"unknown column(s) {', '.join(map(repr, unknown))}; this table has: {', '.join(c.name for c in available)}",
            unknown=unknown,
            available=[c.name for c in available],
        )
    return [by_name[w.lower()] for w in wanted]
