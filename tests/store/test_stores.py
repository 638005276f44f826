"""Every store: catalog, typed rows in batches, identifiers that are never pasted into SQL."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from sheetstream.errors import BadRequest, Invalid, NotFound
from sheetstream.store import Column, open_store, select_columns
from sheetstream.store.demo import ORDERS, demo_rows, seed


@pytest.fixture
def table(store_url: str, request: pytest.FixtureRequest) -> str:
    return "orders" if store_url.startswith("sqlite") else request.getfixturevalue("db_table")


def test_catalog_describes_the_demo_table(store_url: str, table: str) -> None:
    store = open_store(store_url)
    seed(store, 10, table)
    columns = store.columns(table)
    assert [c.name for c in columns] == [c.name for c in ORDERS]
    assert [c.kind for c in columns] == [c.kind for c in ORDERS]
    by_name = {c.name: c for c in columns}
    assert by_name["id"].primary_key and not by_name["id"].nullable
    assert (by_name["amount"].precision, by_name["amount"].scale) == (12, 2)
    assert by_name["email"].nullable and not by_name["customer"].nullable
    assert store.count(table) == 10 and table in store.tables()


def test_rows_come_back_typed_and_in_key_order(store_url: str, table: str) -> None:
    store = open_store(store_url)
    seed(store, 5_000, table)  # more than one fetch batch
    rows = list(store.read_rows(table, store.columns(table)))
    assert rows == [tuple(r) for r in demo_rows(5_000)]
    first = rows[0]
    assert type(first[3]) is Decimal and type(first[4]) is date and type(first[5]) is datetime
    assert type(first[7]) is bool


def test_column_subset_and_limit(store_url: str, table: str) -> None:
    store = open_store(store_url)
    seed(store, 20, table)
    chosen = select_columns(store.columns(table), ["NOTE", "id"])
    rows = list(store.read_rows(table, chosen, limit=3))
    assert rows == [(r[10], r[0]) for r in demo_rows(3)]


def test_unknown_table_and_column(store_url: str, table: str) -> None:
    store = open_store(store_url)
    with pytest.raises(NotFound):
        store.columns('no"such; DROP TABLE x')
    seed(store, 1, table)
    with pytest.raises(BadRequest, match="'bogus'"):
        select_columns(store.columns(table), ["id", "bogus"])


def test_odd_identifiers_are_quoted(store_url: str, request: pytest.FixtureRequest) -> None:
    store = open_store(store_url)
    name = 'we"ird ta;ble' if store_url.startswith("sqlite") else request.getfixturevalue("db_table") + ' "x"'
    columns = [Column('i"d', "integer", nullable=False, primary_key=True), Column("sel ect", "text")]
    try:
        store.create_table(name, columns)
        store.write_rows(name, columns, [(2, "b"), (1, "a")])
        assert list(store.read_rows(name, store.columns(name))) == [(1, "a"), (2, "b")]
    finally:
        store.drop_table(name)


def test_insert_is_all_or_nothing(store_url: str, table: str) -> None:
    store = open_store(store_url)
    seed(store, 3, table)

    fresh = [(r[0] + 3, *r[1:]) for r in demo_rows(5)]  # ids 4..8 are new
    colliding = list(demo_rows(2))[1:]  # id 2 is already there
    with pytest.raises(Invalid, match="the database refused the rows"):
        store.write_rows(table, ORDERS, fresh + colliding)
    assert store.count(table) == 3


@pytest.mark.postgres
def test_postgres_cursor_and_copy_read_the_same(pg_url: str, pg_table: str) -> None:
    from sheetstream.store.postgres import PostgresStore

    seed(PostgresStore(pg_url), 2_500, pg_table)
    copy, cursor = PostgresStore(pg_url, read="copy"), PostgresStore(pg_url, read="cursor")
    columns = copy.columns(pg_table)
    assert list(copy.read_rows(pg_table, columns)) == list(cursor.read_rows(pg_table, columns))


def test_staged_lines_map_back_to_sheet_rows() -> None:
    from sheetstream.store.staging import RowMap

    rows = RowMap()
    numbers = [2, 3, 4, 7, 8, 20, 21, 22]  # rows 5, 6 and 9-19 were empty: never staged
    assert [n for n, _ in rows.numbered((n, ()) for n in numbers)] == numbers
    assert [rows.row(line) for line in range(1, 9)] == numbers
    assert rows.jumps == [(1, 2), (4, 7), (6, 20)]  # memory grows with the gaps, not the rows
