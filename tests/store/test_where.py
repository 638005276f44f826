"""Filters and order on both stores: every operator on every column kind, typed values bound (never SQL), odd names."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from decimal import Decimal

import psycopg
import pytest
from psycopg import sql

from sheetstream.errors import BadRequest
from sheetstream.pipeline.query import parse_export_query
from sheetstream.store import Column, open_store

KINDS = [
    Column("id", "integer", nullable=False, primary_key=True),
    Column("name", "text"),
    Column("amount", "numeric", precision=12, scale=2),
    Column("ratio", "float"),
    Column("day", "date"),
    Column("at", "timestamp"),
    Column("t", "time"),
    Column("flag", "boolean"),
]
ROWS = [
    (1, "Ana", Decimal("10.50"), 0.5, date(2025, 9, 30), datetime(2025, 9, 30, 23, 59, 59), time(8, 0), True),
    (2, "bruno", Decimal("99.99"), 1.5, date(2025, 10, 1), datetime(2025, 10, 1, 0, 0), time(12, 30), False),
    (3, "Ana María", Decimal("100.00"), -2.0, date(2025, 10, 15), datetime(2025, 10, 15, 12, 0, 0, 500000),
     time(23, 59, 59), None),
    (4, "50% off_x", Decimal("-5.25"), None, None, None, None, True),
    (5, None, None, 3.25, date(2024, 2, 29), datetime(2024, 2, 29, 6, 0), time(0, 0), False),
    (6, "a*b?[c]", Decimal("100.01"), 0.0, date(2025, 12, 31), datetime(2026, 1, 1), time(6, 0), None),
]


@pytest.fixture
def store(store_url: str, request: pytest.FixtureRequest):
    store = open_store(store_url)
    table = "kinds" if store_url.startswith("sqlite") else request.getfixturevalue("pg_table")
    store.create_table(table, KINDS, replace=True)
    store.write_rows(table, KINDS, ROWS)
    return store, table


def ids(store, table: str, query: str) -> list[int]:
    """The ids of the rows ``query`` (a query string) selects, in the order it gives them."""
    pairs = [tuple(p.split("=", 1)) for p in query.split("&")] if query else []
    limit = next((int(v) for k, v in pairs if k == "limit"), None)  # the route checks it, then hands it over
    q = parse_export_query(pairs, store.columns(table), limit)
    chosen = [c for c in store.columns(table) if c.name == "id"]
    return [r[0] for r in store.read_rows(table, chosen, q.limit, where=q.where, order=q.order)]


CASES = [
    # every comparison on every kind
    ("id=eq.3", [3]), ("id=neq.3", [1, 2, 4, 5, 6]), ("id=lt.3", [1, 2]), ("id=lte.3", [1, 2, 3]),
    ("id=gt.4", [5, 6]), ("id=gte.4", [4, 5, 6]),
    ("name=eq.Ana", [1]), ("name=neq.Ana", [2, 3, 4, 6]), ("name=gte.b", [2]),  # collations differ on the rest
    ("amount=eq.100", [3]), ("amount=lt.100", [1, 2, 4]), ("amount=lte.100.00", [1, 2, 3, 4]),
    ("amount=gt.100.005", [6]), ("amount=gte.-5.25", [1, 2, 3, 4, 6]), ("amount=neq.99.99", [1, 3, 4, 6]),
    ("ratio=eq.0.5", [1]), ("ratio=gt.0", [1, 2, 5]), ("ratio=lte.0", [3, 6]), ("ratio=lt.1e1", [1, 2, 3, 5, 6]),
    ("day=eq.2025-10-01", [2]), ("day=gte.2025-10-01", [2, 3, 6]), ("day=lt.2025-01-01", [5]),
    ("at=gte.2025-10-01", [2, 3, 6]), ("at=lt.2025-10-01", [1, 5]), ("at=eq.2025-10-15T12:00:00.5", [3]),
    ("at=gt.2025-10-15 12:00:00", [3, 6]),
    ("t=eq.12:30", [2]), ("t=gte.12:00:00", [2, 3]), ("t=lt.06:00", [5]),
    ("flag=eq.true", [1, 4]), ("flag=eq.false", [2, 5]), ("flag=neq.true", [2, 5]),
    # in, is, like, ilike and not.
    ("id=in.(2,4,99)", [2, 4]), ("name=in.(Ana,\"Ana María\")", [1, 3]), ("day=in.(2025-10-01,2024-02-29)", [2, 5]),
    ("amount=in.(10.5,100)", [1, 3]), ("flag=in.(false)", [2, 5]), ("id=in.()", []), ("id=not.in.()", [1, 2, 3, 4, 5, 6]),
    ("name=is.null", [5]), ("name=not.is.null", [1, 2, 3, 4, 6]), ("flag=is.true", [1, 4]),
    ("flag=is.false", [2, 5]), ("flag=is.null", [3, 6]), ("flag=not.is.true", [2, 3, 5, 6]),
    ("name=like.Ana*", [1, 3]), ("name=like.ana*", []), ("name=ilike.ana*", [1, 3]), ("name=ilike.*O*", [2, 4]),
    ("name=like.50%*", [4]), ("name=like.50_*", []), ("name=like.*off_x", [4]), ("name=like.a*b?[c]", [6]),
    ("name=like.a?b*", []), ("name=not.like.Ana*", [2, 4, 6]), ("id=not.eq.1", [2, 3, 4, 5, 6]),
    # several filters: all must hold, also on one column
    ("amount=gte.10&amount=lt.100", [1, 2]), ("day=gte.2025-01-01&flag=eq.true", [1]),
    # order, nulls, tie-break on the key, limit
    ("order=amount.desc", [5, 6, 3, 2, 1, 4]), ("order=amount", [4, 1, 2, 3, 6, 5]),
    ("order=amount.asc.nullsfirst", [5, 4, 1, 2, 3, 6]), ("order=flag.desc,id.desc", [6, 3, 4, 1, 5, 2]),
    ("order=flag", [2, 5, 1, 4, 3, 6]), ("order=day.desc.nullslast&name=not.is.null", [6, 3, 2, 1, 4]),
    ("order=at.desc&limit=2", [4, 6]),
    # the edges that still bind on both stores
    ("id=lt.9223372036854775807", [1, 2, 3, 4, 5, 6]), ("amount=lt.1e999", [1, 2, 3, 4, 6]),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[c[0] for c in CASES])
def test_every_operator_on_every_kind(store, query: str, expected: list[int]) -> None:
    store, table = store
    got = ids(store, table, query)
    assert got == expected if "order=" in query else sorted(got) == expected


def test_rows_keep_their_types_through_a_filter(store) -> None:
    store, table = store
    q = parse_export_query([("day", "gte.2025-10-01"), ("order", "id")], store.columns(table))
    assert list(store.read_rows(table, q.columns, where=q.where, order=q.order)) == [ROWS[1], ROWS[2], ROWS[5]]


INJECTIONS = ["'; DROP TABLE {t}; --", "1 OR 1=1", "1) OR (1=1", "Ana' OR '1'='1", "x\"; DROP TABLE \"{t}",
              "*' OR name LIKE '*", "\\' OR 1=1 --"]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_values_are_bound_never_run(store, attack: str) -> None:
    store, table = store
    attack = attack.format(t=table)
    for op in ("eq", "neq", "like", "ilike", "lt"):
        got = ids(store, table, f"name={op}.{attack}")
        expected = {"eq": [], "neq": [1, 2, 3, 4, 6], "like": [], "ilike": []}.get(op)
        if expected is not None:
            assert sorted(got) == expected, op
    assert ids(store, table, f"name=in.({attack},Ana)") == [1]
    with pytest.raises(BadRequest, match="not a whole number"):
        ids(store, table, f"id=eq.{attack}")
    assert len(ids(store, table, "")) == 6  # the table is still there, whole


@pytest.mark.parametrize("name", ["id;DROP TABLE x", 'id"--', "id or 1=1", "1", "*", "id)", "i d"])
def test_names_outside_the_catalog_are_refused(store, name: str) -> None:
    store, table = store
    with pytest.raises(BadRequest, match="unknown column"):
        ids(store, table, f"{name}=eq.1")
    with pytest.raises(BadRequest, match="unknown column"):
        ids(store, table, f"order={name}")
    with pytest.raises(BadRequest, match="unknown column"):
        ids(store, table, f"select={name}")


def test_odd_column_names_filter_and_order_when_they_are_real(store_url: str, request: pytest.FixtureRequest) -> None:
    """Names with quotes, %, braces and semicolons are in the catalog: they are quoted, never pasted."""
    store = open_store(store_url)
    table = f'we"ird {{t}} %s;{uuid.uuid4().hex[:6]}'
    columns = [Column('i"d', "integer", nullable=False, primary_key=True), Column("a%s {0}; b", "text")]
    try:
        store.create_table(table, columns)
        store.write_rows(table, columns, [(1, "x"), (2, "y"), (3, "x")])
        q = parse_export_query([("A%S {0}; B", "eq.x"), ("order", 'I"D.desc')], store.columns(table))
        assert list(store.read_rows(table, q.columns, where=q.where, order=q.order)) == [(3, "x"), (1, "x")]
    finally:
        store.drop_table(table)


@pytest.mark.parametrize(("query", "message"), [
    ("id=eq.x", "'x' is not a whole number"),
    ("id=eq.9223372036854775808", "out of range for a 64-bit integer"),
    ("id=in.(1,-9223372036854775809)", "out of range for a 64-bit integer"),
    ("amount=lt.1e100000", "is out of range"),
    ("ratio=lt.inf", "not a finite number"),
    ("ratio=eq.nan", "not a finite number"),
    ("name=eq.a\x00b", "NUL character"),
    ("amount=lt.ten", "'ten' is not a number"),
    ("amount=lt.NaN", "not a finite number"),
    ("ratio=gt.abc", "'abc' is not a number"),
    ("day=eq.2025-13-01", "'2025-13-01' is not a date"),
    ("at=gte.yesterday", "is not a date and time"),
    ("at=gte.2025-10-01T00:00+02:00", "without a time zone offset"),
    ("t=eq.25:00", "is not a time of day"),
    ("flag=eq.maybe", "is not TRUE or FALSE"),
    ("id=in.(1,x)", "'x' is not a whole number"),
    ("id=in.1,2", "write in.(a,b,c)"),
    ("id=between.1", "'between' is not an operator"),
    ("id=5", "'5' is not an operator"),
    ("id=not.5", "not an operator"),
    ("id=like.1*", "like compares text"),
    ("name=is.true", "needs a boolean column"),
    ("name=is.nothing", "is takes null, true or false"),
    ("order=id.sideways", "'sideways' is not asc, desc"),
    ("or=(id.eq.1,id.eq.2)", "or=... is not supported"),
    ("select=id&columns=id", "not both"),
])
def test_what_does_not_parse_is_a_400_naming_it(store, query: str, message: str) -> None:
    store, table = store
    with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        ids(store, table, query)


def test_a_view_reads_like_a_table(store_url: str, request: pytest.FixtureRequest, store) -> None:
    store, table = store
    view = f"v_{uuid.uuid4().hex[:8]}"
    ddl = sql.SQL("CREATE VIEW {} AS SELECT id, name, amount FROM {} WHERE amount > 0").format(
        sql.Identifier(view), sql.Identifier(table))
    if store_url.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            conn.execute(f'CREATE VIEW "{view}" AS SELECT id, name, amount FROM "{table}" WHERE amount > 0')
    elif store_url.startswith("mysql"):
        with store.connect(autocommit=True) as conn:  # ANSI_QUOTES: the same double-quoted names
            conn.execute(f'CREATE VIEW "{view}" AS SELECT id, name, amount FROM "{table}" WHERE amount > 0')
    else:
        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute(ddl)
    try:
        assert store.relations()[view] == "view" and store.relations()[table] == "table"
        assert view in store.tables()
        assert [c.name for c in store.columns(view)] == ["id", "name", "amount"]
        assert sorted(r[0] for r in store.read_rows(view, store.columns(view))) == [1, 2, 3, 6]
        q = parse_export_query([("amount", "lt.100"), ("order", "amount.desc")], store.columns(view))
        assert list(store.read_rows(view, q.columns, where=q.where, order=q.order)) == [
            (2, "bruno", Decimal("99.99")), (1, "Ana", Decimal("10.50"))]
    finally:
        if store_url.startswith("sqlite"):
            import sqlite3

            with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
                conn.execute(f'DROP VIEW "{view}"')
        elif store_url.startswith("mysql"):
            with store.connect(autocommit=True) as conn:
                conn.execute(f'DROP VIEW "{view}"')
        else:
            with psycopg.connect(store_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP VIEW {}").format(sql.Identifier(view)))


def test_postgres_copy_reading_filters_and_orders_the_same(pg_url: str, pg_table: str) -> None:
    """``read="copy"`` merges the values client-side (COPY takes no parameters): same rows as the cursor's."""
    from sheetstream.store.postgres import PostgresStore

    cursor, copy = PostgresStore(pg_url), PostgresStore(pg_url, read="copy")
    cursor.create_table(pg_table, KINDS)
    cursor.write_rows(pg_table, KINDS, ROWS)
    for query, _ in CASES:
        pairs = [tuple(p.split("=", 1)) for p in query.split("&")]
        limit = next((int(v) for k, v in pairs if k == "limit"), None)
        q = parse_export_query(pairs, cursor.columns(pg_table), limit)
        read = [list(s.read_rows(pg_table, q.columns, q.limit, where=q.where, order=q.order)) for s in (cursor, copy)]
        assert read[0] == read[1], query
    attack = parse_export_query([("name", "eq.'; DROP TABLE x; --"), ("name", "like.%s*")], copy.columns(pg_table))
    assert list(copy.read_rows(pg_table, attack.columns, where=attack.where)) == []
