"""The export builder's row estimate: the database's own, without reading the rows, for the filters of an export."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from sheetstream.server import create_app
from sheetstream.store import open_store
from sheetstream.store.demo import demo_rows, seed

from ..helpers import make_settings

ROWS = 3_000


@pytest.fixture
def served(store_url: str, request: pytest.FixtureRequest, tmp_path: Path, live_server):
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("db_table")
    seed(store, ROWS, table)
    if store_url.startswith("postgresql"):
        with store.connect() as conn:
            conn.execute(f'ANALYZE "{table}"')
    elif store_url.startswith("mysql"):
        with store.connect(autocommit=True) as conn:
            conn.execute(f'ANALYZE TABLE "{table}"')
    with live_server(create_app(make_settings(tables=(table,), data_dir=tmp_path / "data"), store)) as server:
        yield store_url, server, table


def test_the_estimate_is_the_databases_own(served) -> None:
    store_url, server, table = served
    paid = sum(1 for r in demo_rows(ROWS) if r[7] is True)
    everything = httpx.get(f"{server.url}/tables/{table}/estimate").json()
    filtered = httpx.get(f"{server.url}/tables/{table}/estimate", params={"paid": "is.true", "order": "id"}).json()
    bad = httpx.get(f"{server.url}/tables/{table}/estimate", params={"amount": "lt.lots"})
    missing = httpx.get(f"{server.url}/tables/nope/estimate")
    assert bad.status_code == 400 and "'lots' is not a number" in bad.json()["message"]
    assert missing.status_code == 404
    if store_url.startswith("sqlite"):
        assert everything["rows"] is None and filtered["rows"] is None  # SQLite keeps no estimate to ask
    elif store_url.startswith("postgresql"):
        assert everything["rows"] == ROWS and paid / 2 < filtered["rows"] < paid * 2
    else:
        assert 0.5 * ROWS < everything["rows"] < 2 * ROWS and 0 < filtered["rows"] <= 2 * ROWS
