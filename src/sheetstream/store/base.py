"""One small store interface over SQLite (the embedded default), PostgreSQL and MySQL/MariaDB.

A store is synchronous and meant to be used from a worker thread; every call opens what it needs and
closes it again, and row streams are generators that read in batches, never the whole table. A store is a
small picklable value (its URL and options): the process strategy sends it to worker processes, which open
their own connections.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ContextManager, Protocol

from ..errors import BadRequest, Invalid, StoreUnavailable
from .tokens import TokenRecord

if TYPE_CHECKING:
    from .staging import Staged
    from .where import Condition, Sort

#: How an import writes: ``append`` inserts, ``replace`` deletes the table's rows first, ``upsert`` updates by key.
MODES = ("append", "replace", "upsert")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # integer, numeric, float, text, date, timestamp, time or boolean
    nullable: bool = True
    primary_key: bool = False
    precision: int | None = None  # numeric: total digits
    scale: int | None = None  # numeric: digits after the point
    length: int | None = None  # text: maximum characters


class Store(Protocol):
    """Tables (read, write, describe) in one database. Implementations: :class:`~.sqlite.SqliteStore`,
    :class:`~.postgres.PostgresStore`, :class:`~.mysql.MysqlStore`. Picklable: it holds a URL and options, never an open connection."""

    url: str

    def tables(self) -> list[str]:
        """The names of the tables and views, in order."""

    def relations(self) -> dict[str, str]:
        """Each table's and view's name -> ``table`` or ``view``."""

    def columns(self, table: str) -> list[Column]:
        """The table's columns from the catalog, in order; :class:`~sheetstream.errors.NotFound` if absent."""

    def count(self, table: str) -> int: ...

    def estimate(self, table: str, where: Sequence[Condition] = ()) -> int | None:
        """The database's own estimate of the rows ``where`` keeps, without reading them; None where it has none."""
        ...

    def read_rows(self, table: str, columns: Sequence[Column], limit: int | None = None,
                  where: Sequence[Condition] = (), order: Sequence[Sort] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows of ``columns`` as typed Python values, streamed in batches: those meeting every condition of
        ``where``, sorted by ``order`` then the primary key (:mod:`.where`); without ``order``, by primary key
        (a view: in the order it gives them)."""

    def describe(self, sql: str, params: Sequence[tuple[str, str]]) -> list[Column]:
        """The columns a named query returns (its ``:parameters`` typed by ``params``); ConfigError if it fails."""

    def read_query(self, sql: str, params: Sequence[tuple[str, str]], values: dict[str, Any],
                   columns: Sequence[Column]) -> Iterator[tuple[Any, ...]]:
        """A named query's rows, ``values`` bound to its parameters, streamed in batches."""

    def create_table(self, table: str, columns: Sequence[Column], replace: bool = False) -> None: ...

    def drop_table(self, table: str) -> None: ...

    def write_rows(self, table: str, columns: Sequence[Column], rows: Iterable[Sequence[Any]],
                   mode: str = "append", dry_run: bool = False, on_commit: OnCommit | None = None) -> int:
        """Write ``rows`` in one transaction, all or nothing; returns the count written.

        ``mode``: ``append`` inserts, ``replace`` deletes the table's rows first (same transaction), ``upsert``
        updates rows whose primary key exists. ``dry_run`` does everything, then rolls back. An exception
        raised by ``rows`` rolls everything back; the database refusing rows raises
        :class:`~sheetstream.errors.Invalid`, losing the connection :class:`~sheetstream.errors.StoreUnavailable`.
        ``on_commit(conn, count)`` runs inside the transaction right before COMMIT (not for a dry run), on its
        connection: what it writes commits with the rows, and an exception from it rolls everything back.
        """

    def staging(self, table: str, columns: Sequence[Column], mode: str = "append") -> ContextManager[Staged]:
        """An import's transaction around a staging table for ``columns`` (:mod:`.staging`): rows are loaded and
        checked there, then written with ``apply()``; it commits on leaving only after ``commit()``. A store whose
        class sets ``direct = True`` also takes ``direct=True``: no staging table, the rows straight into the
        table (:func:`.staging.direct_allowed`)."""

    @property
    def jobs(self) -> JobTable:
        """Where this database keeps job records (:mod:`.jobs`)."""

    @property
    def tokens(self) -> TokenTable:
        """Where this database keeps API tokens, as hashes (:mod:`.tokens`)."""

    @property
    def audit(self) -> AuditTable:
        """Where this database keeps the audit trail of imports (:mod:`.audit`)."""


#: ``on_commit(conn, count)``: called inside an import's transaction, right before COMMIT.
OnCommit = Callable[[Any, int], None]


class JobTable(Protocol):
    """Job records, kept apart from table I/O (``sheetstream_jobs``; the rules are in :mod:`.jobs`).
    ``save`` never clears a cancel request, and never overwrites an ended record (it returns False then)."""

    def save(self, job_id: str, data: dict[str, Any]) -> bool: ...

    def load(self, job_id: str) -> dict[str, Any] | None: ...

    def request_cancel(self, job_id: str) -> None: ...

    def cancel_requested(self, job_id: str) -> bool: ...

    def mark_committed(self, job_id: str, committed_as: str) -> bool:
        """Record on an ended dry run the job that committed it (its record is otherwise final); once."""

    def recent(self, owner: str | None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """The newest jobs first (past the ``offset`` newest): ``owner``'s, or everyone's when ``owner`` is None."""

    def heartbeat(self, instance: str, job_ids: Collection[str]) -> None:
        """Mark the running jobs ``job_ids`` of ``instance`` as seen now: those that still have a live task there."""

    def orphans(self, timeout: float) -> list[str]:
        """Running jobs not seen for ``timeout`` seconds, of any instance: their instance is gone, or no longer
        runs them (their task ended and its last save was lost)."""

    def commit_with(self, conn: Any, job_id: str, data: dict[str, Any]) -> None:
        """In an import's transaction (``conn``, before COMMIT): record ``data`` (the job, done) so that it
        commits with the rows; :class:`~sheetstream.errors.Conflict` if the job was ended elsewhere."""

    def settle(self, job_id: str, failed: dict[str, Any]) -> dict[str, Any] | None:
        """End the job with ``failed`` unless it has ended (or committed); returns the record as it is then."""


class TokenTable(Protocol):
    """API tokens by the hash of their value (``sheetstream_tokens``); one live token per name."""

    def add(self, record: TokenRecord) -> None: ...

    def find(self, hash: str) -> TokenRecord | None: ...

    def get(self, token_id: str) -> TokenRecord | None: ...

    def all(self) -> list[TokenRecord]: ...

    def revoke(self, name: str) -> bool: ...

    def end_session(self, session_id: str, until: float) -> None:
        """Sign a session out: refused from now on, by every instance (kept until ``until``, its own expiry)."""

    def session_ended(self, session_id: str) -> bool: ...


class AuditTable(Protocol):
    """One record per import, outliving the job (``sheetstream_audit``)."""

    def record(self, entry: dict[str, Any]) -> None: ...

    def recent(self, limit: int = 100, who: str | None = None) -> list[dict[str, Any]]: ...


def open_store(url: str, **options: Any) -> Store:
    """``postgresql://...`` opens PostgreSQL; ``mysql://...`` or ``mariadb://...``, MySQL or MariaDB;
    ``sqlite:///relative.db``, ``sqlite:////abs.db`` or a path, SQLite.
    ``options`` go to the store's constructor (such as PostgreSQL's ``read="copy"``)."""
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore

        return PostgresStore(url, **options)
    if url.startswith(("mysql://", "mariadb://")):
        from .mysql import MysqlStore

        return MysqlStore(url, **options)
    from .sqlite import SqliteStore

    return SqliteStore(url.removeprefix("sqlite:///"), **options)


def wait_for(store: Store, seconds: float, say: Callable[[str], None] = print) -> list[str]:
    """The store's tables once the database answers, retried for up to ``seconds`` (a stack's database may still be
    starting): every 1, 2, 4 s ... (at most 5), saying once why it waits. The last
    :class:`~sheetstream.errors.StoreUnavailable` when it never answers."""
    deadline = time.monotonic() + seconds
    pause, said = 1.0, False
    while True:
        try:
            return store.tables()
        except StoreUnavailable as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StoreUnavailable(f"{exc.message} (waited {seconds:g} s for the database)") from exc
            if not said:
                say(f"waiting up to {seconds:g} s for the database at {safe_url(store.url)}: {exc.message}")
                said = True
            time.sleep(min(pause, left))
            pause = min(pause * 2, 5.0)


def column_type(c: Column, names: dict[str, str]) -> str:
    """A column's SQL type with ``NOT NULL`` where it applies; ``names`` maps the plain kinds to type names."""
    if c.kind == "numeric":
        sql_type = f"numeric({c.precision},{c.scale or 0})" if c.precision else "numeric"
    elif c.kind == "text" and c.length:
        sql_type = f"varchar({c.length})"
    else:
        sql_type = names[c.kind]
    return sql_type + ("" if c.nullable or c.primary_key else " NOT NULL")


# Up to the last "@": a password may hold "/" or "@" (if the query holds one too, more is hidden, never less).
_USER_PASSWORD = re.compile(r"(://[^:/@?#]*:).*@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)  # libpq also takes ?password=...


def safe_url(url: str) -> str:
    """``url`` fit to print: a password in it (``user:password@`` or ``?password=``) is replaced by ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _USER_PASSWORD.sub(r"\1***@", url, count=1))


def refused(detail: str) -> Invalid:
    """The database refused the rows (a constraint, a value it cannot take): the client's input is at fault."""
    return Invalid(f"the database refused the rows ({detail}); nothing was written")


def unavailable(cause: str) -> StoreUnavailable:
    """The database went away or could not serve the write (lost connection, locked): try again later."""
    return StoreUnavailable(f"{cause}; nothing was written, try again shortly")


def select_columns(available: Sequence[Column], wanted: Sequence[str] | None) -> list[Column]:
    """Pick ``wanted`` (case-insensitive) from the catalog's ``available``, in the order asked."""
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
