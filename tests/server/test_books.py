"""``GET /exports/book.xlsx?sheets=a,b``: several tables in one streamed workbook, each with its own (prefixed)
filters, each needing a read grant; on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import httpx
import pytest

from sheetstream.server import create_app
from sheetstream.store import Column, open_store
from sheetstream.store.demo import demo_rows, seed

from ..helpers import add_token, assert_same_as_openpyxl, bearer, make_settings, read_workbook

CUSTOMERS = [Column("id", "integer", nullable=False, primary_key=True), Column("name", "text"),
             Column("credit", "numeric", precision=10, scale=2)]


@pytest.fixture
def two_tables(store_url: str, request: pytest.FixtureRequest):
    store = open_store(store_url)
    sqlite = store_url.startswith("sqlite")
    orders = "orders" if sqlite else request.getfixturevalue("pg_table")
    customers = "customers" if sqlite else f"c_{uuid.uuid4().hex[:10]}"
    seed(store, 100, orders)
    store.create_table(customers, CUSTOMERS, replace=True)
    store.write_rows(customers, CUSTOMERS, [(i, f"customer {i}", None if i % 3 == 0 else i * 10) for i in range(1, 8)])
    yield store, orders, customers
    store.drop_table(customers)


def test_two_tables_in_one_workbook_with_their_own_filters(two_tables, live_server) -> None:
    store, orders, customers = two_tables
    params = [("sheets", f"{customers},{orders}"), (f"{orders}.paid", "is.true"), (f"{orders}.amount", "lt.50000"),
              (f"{orders}.select", "id,amount"), (f"{orders}.order", "amount.desc"), (f"{orders}.limit", "5"),
              (f"{customers}.credit", "not.is.null")]
    with live_server(create_app(make_settings(tables=(orders, customers)), store)) as server:
        response = httpx.get(f"{server.url}/exports/book.xlsx", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-disposition"].startswith('attachment; filename="book.xlsx"')
    sheets = read_workbook(response.content)
    assert list(sheets) == [customers, orders]
    assert sheets[customers][1:] == [(i, f"customer {i}", i * 10) for i in range(1, 8) if i % 3]
    expected = sorted([(r[0], r[3]) for r in demo_rows(100) if r[7] and r[3] < 50000], key=lambda r: -r[1])[:5]
    assert sheets[orders][0] == ("id", "amount")
    assert_same_as_openpyxl(expected, sheets[orders][1:])


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"sheets": "orders,orders"}, 400, "different tables"),
    ({"sheets": ""}, 400, "different tables"),
    ({"sheets": "orders", "paid": "is.true"}, 400, "parameter 'paid' names no sheet"),
    ({"sheets": "orders", "nope.paid": "is.true"}, 400, "names no sheet"),
    ({"sheets": "orders", "orders.paid": "eq.maybe"}, 400, "is not TRUE or FALSE"),
    ({"sheets": "orders", "orders.limit": "-1"}, 400, "a limit is a whole number"),
    ({"sheets": "orders", "orders.limit": "²"}, 400, "a limit is a whole number"),
    ({"sheets": "orders", "orders.limit": "9223372036854775808"}, 400, "a limit is a whole number"),
    ({"sheets": "orders,secret"}, 404, "is not served by this server"),
])
def test_what_a_book_refuses(tmp_path, live_server, params, status, message) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed(store, 5)
    seed(store, 5, "secret")
    with live_server(create_app(make_settings(tables=("orders",)), store)) as server:
        response = httpx.get(f"{server.url}/exports/book.xlsx", params=params)
    assert response.status_code == status and message in response.json()["message"], response.text


def test_every_sheet_needs_a_read_grant(tmp_path, live_server) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed(store, 5)
    seed(store, 5, "customers")
    token = add_token(store, "orders-only", "orders:read")
    settings = make_settings(auth=True, tables=("orders", "customers"), data_dir=tmp_path / "data")
    with live_server(create_app(settings, store)) as server:
        both = httpx.get(f"{server.url}/exports/book.xlsx", params={"sheets": "orders,customers"},
                         headers=bearer(token))
        one = httpx.get(f"{server.url}/exports/book.xlsx", params={"sheets": "orders"}, headers=bearer(token))
    assert both.status_code == 403 and "customers" in both.json()["message"]
    assert one.status_code == 200 and list(read_workbook(one.content)) == ["orders"]
