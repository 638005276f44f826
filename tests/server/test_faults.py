"""Availability under faults: a worker process killed mid-task, and the readiness check that sees it."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import psutil
import pytest

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store import Column, open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore

from ..helpers import (
    XLSX,
    kill_busiest_worker,
    make_settings,
    make_xlsx,
    pool_workers,
    read_workbook,
    rows_of,
    wait_for,
)

SMALL = b"".join(write_xlsx(demo_rows(10), [c.name for c in ORDERS]))


def noise_store(path: Path, rows: int = 20_000) -> SqliteStore:
    """A table whose export is about 15 MB of incompressible text: the worker is still producing after the first
    chunk, blocked on a client that does not read."""
    store = SqliteStore(path)
    columns = [Column("n", "integer", nullable=False, primary_key=True), Column("blob", "text")]
    store.create_table("noise", columns)
    store.write_rows("noise", columns, ((i, os.urandom(600).hex()) for i in range(rows)))
    seed(store, 10)
    return store


def assert_serving_again(url: str, table: str = "orders") -> None:
    export = httpx.get(f"{url}/exports/{table}.xlsx", params={"limit": 10}, timeout=30)
    assert export.status_code == 200 and len(read_workbook(export.content)[table]) == 11
    imported = httpx.put(f"{url}/imports/{table}", content=SMALL, params={"wait": "true", "mode": "replace"},
                         headers={"Content-Type": XLSX}, timeout=30)
    assert imported.status_code == 200, imported.text
    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text


def test_a_worker_killed_mid_export_aborts_that_download_and_the_next_one_works(tmp_path: Path, live_server) -> None:
    store = noise_store(tmp_path / "db.sqlite")
    settings = make_settings(tables=("noise", "orders"), data_dir=tmp_path, strategy="process", workers=2)
    with live_server(create_app(settings, store)) as server:
        with httpx.stream("GET", f"{server.url}/exports/noise.xlsx", timeout=30) as response:
            chunks = response.iter_raw()
            next(chunks)
            kill_busiest_worker()
            with pytest.raises(httpx.RemoteProtocolError):  # never a clean end: the body is incomplete
                for _ in chunks:
                    pass
        assert response.status_code == 200
        assert_serving_again(server.url)
        status = httpx.get(f"{server.url}/status").json()
    assert status["active"] == {"export": 0, "import": 0}


def test_a_worker_killed_mid_import_fails_the_job_with_503_and_writes_nothing(store_url: str, request, tmp_path: Path,
                                                                             live_server) -> None:
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("pg_table")
    seed(store, 10, table)
    body = b"".join(write_xlsx(demo_rows(60_000), [c.name for c in ORDERS]))
    settings = make_settings(tables=("orders", table), data_dir=tmp_path, strategy="process", workers=2)
    with live_server(create_app(settings, store)) as server:
        job = httpx.put(f"{server.url}/imports/{table}", content=body, params={"mode": "replace"},
                        headers={"Content-Type": XLSX}, timeout=60).json()
        location = f"{server.url}/jobs/{job['id']}"
        assert wait_for(lambda: httpx.get(location).json()["rows_read"] > 0, 20)
        kill_busiest_worker()
        assert wait_for(lambda: httpx.get(location).json()["state"] == "failed", 20)
        failed = httpx.get(location).json()
        unchanged = rows_of(store, table) == list(demo_rows(10))
        assert_serving_again(server.url, table)
    assert failed["status"] == 503 and failed["error"] == "worker_lost", failed
    assert "nothing it did was kept" in failed["message"]
    assert unchanged
    assert list((tmp_path / "spool").iterdir()) == []


def test_readyz_checks_the_database_and_the_workers_and_healthz_only_liveness(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    settings = make_settings(data_dir=tmp_path, strategy="process", workers=1)
    with live_server(create_app(settings, store)) as server:
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        for worker in pool_workers():  # idle workers die: the probe finds the pool broken and replaces it
            worker.kill()
        assert wait_for(lambda: not pool_workers(), 5)
        healed = httpx.get(f"{server.url}/readyz", timeout=10)
        hung = pool_workers()
        for worker in hung:  # a worker that does not run anything
            worker.suspend()
        try:
            stuck = httpx.get(f"{server.url}/readyz", timeout=10)
            alive = httpx.get(f"{server.url}/healthz")
        finally:
            for worker in hung:
                worker.resume()
    assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
    assert healed.status_code == 200 and healed.json()["checks"] == {"database": "ok", "workers": "ok"}, healed.text
    assert stuck.status_code == 503 and alive.status_code == 200
    assert stuck.json()["checks"] == {"database": "ok", "workers": "no worker ran a trivial task within 3 s"}

    gone = open_store("postgresql://nobody@127.0.0.1:9/none")  # nothing listens on port 9
    with live_server(create_app(make_settings(data_dir=tmp_path), gone)) as server:
        not_ready = httpx.get(f"{server.url}/readyz", timeout=20)
    body = not_ready.json()
    assert not_ready.status_code == 503 and body["error"] == "not_ready" and body["checks"]["workers"] == "ok"
    assert body["message"].startswith("not ready: database: cannot connect to PostgreSQL")


def test_an_import_past_the_worker_memory_cap_fails_with_a_clear_422(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    store.create_table("pair", [Column("id", "integer", nullable=False, primary_key=True), Column("customer", "text")])
    # 50 million characters of shared strings (the reader keeps them in memory; under its own 100 million limit)
    # against a worker capped at 100 MB of address space (seen here: 30 million characters fit, 50 million do not).
    strings = [os.urandom(5_000).hex() for _ in range(5_000)]
    cells = "".join(f'<row r="{i + 2}"><c r="A{i + 2}"><v>{i}</v></c><c r="B{i + 2}" t="s"><v>{i}</v></c></row>'
                    for i in range(len(strings)))
    path = make_xlsx(tmp_path / "wide.xlsx", '<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c>'
                     f'<c r="B1" t="inlineStr"><is><t>customer</t></is></c></row>{cells}', shared=strings)
    settings = make_settings(tables=("orders", "pair"), data_dir=tmp_path, strategy="process", workers=1,
                             worker_memory_bytes=100 << 20)
    with live_server(create_app(settings, store)) as server:
        caps = {worker.rlimit(psutil.RLIMIT_AS)[0] for worker in pool_workers()}
        response = httpx.put(f"{server.url}/imports/pair", content=path.read_bytes(), params={"wait": "true"},
                             headers={"Content-Type": XLSX}, timeout=60)
        assert_serving_again(server.url)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "out_of_memory", body
    assert "more memory than a worker process may use (100 MB)" in body["message"]
    assert rows_of(store, "pair") == [] and caps == {100 << 20}
