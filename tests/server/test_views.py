"""Views on the allow-list beside tables, on SQLite and PostgreSQL: listed with their kind, exported like tables
(filters included), granted like tables, and refused for import before the body is read."""

from __future__ import annotations

import sqlite3
import time
import uuid

import httpx
import psycopg
import pytest
from psycopg import sql

from sheetstream.server import create_app
from sheetstream.store import open_store
from sheetstream.store.demo import demo_rows, seed

from ..helpers import add_token, assert_same_as_openpyxl, bearer, make_settings, raw_request, read_workbook

ROWS = 200


def run_sql(pg_url: str, statement: sql.Composable) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def with_view(store_url: str, request: pytest.FixtureRequest):
    """The demo table and a view of its paid orders (id, customer, amount), under unique names."""
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("db_table")
    seed(store, ROWS, table)
    view = f"paid_{uuid.uuid4().hex[:8]}"
    statement = "CREATE VIEW {} AS SELECT id, customer, amount FROM {} WHERE paid"
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
            conn.execute(statement.format(f'"{view}"', f'"{table}"'))
    elif store_url.startswith("mysql"):
        with store.connect(autocommit=True) as conn:  # ANSI_QUOTES: double-quoted names, as elsewhere
            conn.execute(statement.format(f'"{view}"', f'"{table}"'))
    else:
        run_sql(store_url, sql.SQL(statement).format(sql.Identifier(view), sql.Identifier(table)))
    yield store, table, view
    if store_url.startswith("mysql"):
        with store.connect(autocommit=True) as conn:
            conn.execute(f'DROP VIEW IF EXISTS "{view}"')
    elif not store_url.startswith("sqlite"):
        run_sql(store_url, sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(view)))


def paid() -> list[tuple]:
    return [(r[0], r[1], r[3]) for r in demo_rows(ROWS) if r[7]]


def test_a_view_is_listed_with_its_kind_and_exported(with_view, live_server) -> None:
    store, table, view = with_view
    with live_server(create_app(make_settings(tables=(table, view)), store)) as server:
        listed = {t["name"]: t for t in httpx.get(f"{server.url}/tables").json()}
        whole = httpx.get(f"{server.url}/exports/{view}.xlsx")
        filtered = httpx.get(f"{server.url}/exports/{view}.xlsx",
                             params={"amount": "gte.50000", "order": "amount.desc", "select": "amount,id"})
    assert (listed[table]["kind"], listed[view]["kind"]) == ("table", "view")
    assert listed[view]["permissions"] == ["read"] and listed[view]["rows"] == len(paid())
    assert [c["name"] for c in listed[view]["columns"]] == ["id", "customer", "amount"]
    assert whole.status_code == 200 and filtered.status_code == 200, filtered.text
    sheet = read_workbook(whole.content)[view]
    assert sheet[0] == ("id", "customer", "amount")
    assert_same_as_openpyxl(paid(), sorted(sheet[1:]))  # a view has no key: its own order
    expected = sorted([(r[2], r[0]) for r in paid() if r[2] >= 50000], key=lambda r: (-r[0], r[1]))
    assert_same_as_openpyxl(expected, read_workbook(filtered.content)[view][1:])


def test_an_import_into_a_view_is_refused_before_the_body(with_view, live_server) -> None:
    store, table, view = with_view
    with live_server(create_app(make_settings(tables=(table, view)), store)) as server:
        started = time.monotonic()
        # A head promising 50 MB and no body: only an answer given before reading the body comes back at once.
        answer = raw_request(server.url, f"PUT /imports/{view} HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n"
                                         "Content-Type: application/octet-stream\r\n\r\n")
        elapsed = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), head
    assert b"is a view: it can be exported, not imported into" in body
    assert elapsed < 8  # raw_request's socket would wait 10 s for a server still reading the body
    assert store.count(table) == ROWS


def test_a_view_needs_its_own_read_grant(with_view, live_server, tmp_path) -> None:
    store, table, view = with_view
    tokens = {name: add_token(store, f"{name}-{view}", grants) for name, grants in
              (("table_only", f"{table}:read"), ("view_reader", f"{view}:read"), ("writer", f"{view}:read,append"))}
    settings = make_settings(auth=True, tables=(table, view), data_dir=tmp_path / "data")
    with live_server(create_app(settings, store)) as server:
        denied = httpx.get(f"{server.url}/exports/{view}.xlsx", headers=bearer(tokens["table_only"]))
        allowed = httpx.get(f"{server.url}/exports/{view}.xlsx", headers=bearer(tokens["view_reader"]))
        listed = httpx.get(f"{server.url}/tables", headers=bearer(tokens["table_only"])).json()
        writer = httpx.put(f"{server.url}/imports/{view}", content=b"x", headers=bearer(tokens["writer"]))
        reader = httpx.put(f"{server.url}/imports/{view}", content=b"x", headers=bearer(tokens["view_reader"]))
    assert denied.status_code == 403 and allowed.status_code == 200
    assert [t["name"] for t in listed] == [table]
    assert writer.status_code == 400 and "is a view" in writer.json()["message"]
    assert reader.status_code == 403  # no write grant: refused as for a table, before the view is even looked at
