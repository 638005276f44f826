"""``GET /exports/{table}.xlsx`` over a real socket: streaming proven, back-pressure, disconnects, errors."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sheetstream.server import create_app
from sheetstream.store import Column, open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore

from ..helpers import (
    XLSX,
    InstrumentedStore,
    assert_same_as_openpyxl,
    download_through_the_gate,
    make_settings,
    read_workbook,
)


@pytest.fixture
def demo_store(store_url: str, request: pytest.FixtureRequest):
    """The demo table (300 rows) in SQLite and in PostgreSQL, under a unique name."""
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("db_table")
    seed(store, 300, table)
    return store, table


def test_export_streams_the_table(demo_store, live_server) -> None:
    store, table = demo_store
    with live_server(create_app(make_settings(tables=(table,)), store)) as server:
        response = httpx.get(f"{server.url}/exports/{table}.xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"] == XLSX
    assert response.headers["content-disposition"].startswith(f'attachment; filename="{table}.xlsx"')
    assert response.headers.get("transfer-encoding") == "chunked" and "content-length" not in response.headers
    sheets = read_workbook(response.content)
    assert list(sheets) == [table]
    assert sheets[table][0] == tuple(c.name for c in ORDERS)
    assert_same_as_openpyxl(list(demo_rows(300)), sheets[table][1:])


def test_columns_and_limit(demo_store, live_server) -> None:
    store, table = demo_store
    with live_server(create_app(make_settings(tables=(table,)), store)) as server:
        response = httpx.get(f"{server.url}/exports/{table}.xlsx", params={"columns": "note,ID, amount", "limit": 5})
    assert response.status_code == 200
    rows = read_workbook(response.content)[table]
    expected = [(r[10], r[0], r[3]) for r in demo_rows(5)]
    assert rows[0] == ("note", "id", "amount")
    assert_same_as_openpyxl(expected, rows[1:])


def test_unknown_table_is_404_with_a_message(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 3)
    seed(store, 3, "secret")
    with live_server(create_app(make_settings(), store)) as server:
        missing = httpx.get(f"{server.url}/exports/nope.xlsx")
        hidden = httpx.get(f"{server.url}/exports/secret.xlsx")  # exists, but not on the allow-list
    for response in (missing, hidden):
        assert response.status_code == 404
        body = response.json()
        assert body["error"] == "not_found" and "exported tables: orders" in body["message"]


def test_allowed_table_missing_from_the_database_is_404(tmp_path: Path, live_server) -> None:
    with live_server(create_app(make_settings(tables=("ghost",)), SqliteStore(tmp_path / "db.sqlite"))) as server:
        response = httpx.get(f"{server.url}/exports/ghost.xlsx")
    assert response.status_code == 404 and response.json()["message"] == "there is no table 'ghost'"


def test_unknown_column_and_bad_limit_are_400(demo_store, live_server) -> None:
    store, table = demo_store
    with live_server(create_app(make_settings(tables=(table,)), store)) as server:
        column = httpx.get(f"{server.url}/exports/{table}.xlsx", params={"columns": "id,bogus"})
        limit = httpx.get(f"{server.url}/exports/{table}.xlsx", params={"limit": "-1"})
    assert column.status_code == 400
    assert column.json()["unknown"] == ["bogus"] and "this table has: id, customer" in column.json()["message"]
    assert limit.status_code == 400 and "limit" in limit.json()["message"]


def test_a_limit_beyond_the_databases_integers_is_400_not_a_broken_stream(demo_store, live_server) -> None:
    # Found by the API fuzzing (tests/server/test_fuzz.py): the export's 200 went out, then the database refused
    # the LIMIT and the stream was cut.
    store, table = demo_store
    with live_server(create_app(make_settings(tables=(table,)), store)) as server:
        huge = httpx.get(f"{server.url}/exports/{table}.xlsx", params={"limit": str(2**63)})
        largest = httpx.get(f"{server.url}/exports/{table}.xlsx", params={"limit": str(2**63 - 1)})
    assert huge.status_code == 400 and "limit" in huge.json()["message"]
    assert largest.status_code == 200 and len(read_workbook(largest.content)[table]) == 301


def test_tables_lists_exported_tables(demo_store, live_server) -> None:
    store, table = demo_store
    with live_server(create_app(make_settings(tables=(table, "absent")), store)) as server:
        listed = httpx.get(f"{server.url}/tables").json()
    assert [(t["name"], t["rows"], t["export"]) for t in listed] == [(table, 300, f"/exports/{table}.xlsx")]
    assert listed[0]["columns"][3] == {"name": "amount", "kind": "numeric", "nullable": False, "primary_key": False}






def test_first_bytes_arrive_while_rows_are_still_produced(tmp_path: Path, live_server) -> None:
    """The producer is held after 20,000 of 40,000 rows until the client has bytes: only a streaming server passes."""
    store = InstrumentedStore(tmp_path / "x.db", demo_rows(40_000), ORDERS, gate_at=20_000)
    with live_server(create_app(make_settings(tables=("orders",)), store)) as server:
        produced_at_first_byte, body, _ = download_through_the_gate(f"{server.url}/exports/orders.xlsx", store)
    assert produced_at_first_byte < 40_000
    assert store.produced == 40_000
    rows = read_workbook(body)["orders"]
    assert len(rows) == 40_001 and rows[-1][0] == 40_000


def noisy_rows(count: int) -> Iterator[tuple]:
    for i in range(count):
        yield (i, os.urandom(600).hex())  # ~1.2 kB that deflate cannot shrink much


@pytest.mark.parametrize(("spill", "share"), [(0, 0.6), (2 << 20, 0.75)])
def test_slow_client_slows_the_producer(tmp_path: Path, live_server, spill: int, share: float) -> None:
    """Back-pressure past the spill's bound (none, or 2 MB ahead): while the client pauses, the producer stops well
    short of the end."""
    total = 40_000  # about 27 MB compressed: more than the socket buffers, the bounded hand-off and the spill hold
    columns = [Column("n", "integer"), Column("blob", "text")]
    store = InstrumentedStore(tmp_path / "x.db", noisy_rows(total), columns)
    settings = make_settings(tables=("orders",), data_dir=tmp_path, export_spill_bytes=spill)
    with live_server(create_app(settings, store)) as server:
        with httpx.stream("GET", f"{server.url}/exports/orders.xlsx", timeout=30) as response:
            chunks = response.iter_raw()
            received = len(next(chunks))
            time.sleep(1.5)
            stalled_at = store.produced
            time.sleep(0.5)
            assert store.produced == stalled_at, "the producer kept going while the client read nothing"
            received += sum(len(c) for c in chunks)
    assert stalled_at < total * share
    assert store.produced == total and received > 25_000_000


def test_client_disconnect_stops_the_producer(tmp_path: Path, live_server) -> None:
    total = 200_000
    columns = [Column("n", "integer"), Column("blob", "text")]
    store = InstrumentedStore(tmp_path / "x.db", noisy_rows(total), columns)
    with live_server(create_app(make_settings(tables=("orders",)), store)) as server:
        with httpx.stream("GET", f"{server.url}/exports/orders.xlsx", timeout=30) as response:
            next(response.iter_raw())
        # leaving the block closes the connection mid-body
        assert store.closed.wait(5), "the row stream was not closed after the client went away"
    assert store.produced < total
