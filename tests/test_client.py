"""The HTTP client library against a real server: downloads, uploads followed to the end, 429s waited out."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from sheetstream.client import download, retry_after, upload
from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore

from .helpers import make_settings


def test_download_then_upload_with_and_without_following_progress(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 300)
    store.create_table("copy", ORDERS)
    with live_server(create_app(make_settings(tables=("orders", "copy"), data_dir=tmp_path), store)) as server:
        async def go():
            async with httpx.AsyncClient(timeout=30) as client:
                got = await download(client, f"{server.url}/exports/orders.xlsx", tmp_path / "orders.xlsx")
                readings: list[dict] = []
                followed = await upload(client, server.url, "copy", tmp_path / "orders.xlsx", mode="replace",
                                        job_progress=readings.append)
                waited = await upload(client, server.url, "copy", tmp_path / "orders.xlsx", mode="append")
                return got, followed, readings, waited

        got, followed, readings, waited = asyncio.run(go())
    assert got.ok and got.bytes == (tmp_path / "orders.xlsx").stat().st_size and got.ttfb is not None and got.ttfb <= got.seconds
    assert followed.ok and followed.job["rows_inserted"] == 300 and readings[-1]["state"] == "done"
    assert not waited.ok and waited.status == 422 and waited.job["state"] == "failed"
    assert "key(s) that already exist in the table" in waited.error and waited.error.startswith("HTTP 422:")


def test_a_failed_download_says_why_and_leaves_no_file(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    with live_server(create_app(make_settings(tables=("orders",), data_dir=tmp_path), store)) as server:
        async def go():
            async with httpx.AsyncClient(timeout=30) as client:
                return await download(client, f"{server.url}/exports/nope.xlsx", tmp_path / "nope.xlsx")

        got = asyncio.run(go())
    assert not got.ok and got.status == 404 and "not served by this server" in got.error
    assert not (tmp_path / "nope.xlsx").exists()


def test_an_upload_waits_out_429_when_asked(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    store.create_table("orders", ORDERS)
    path = tmp_path / "in.xlsx"
    path.write_bytes(b"".join(write_xlsx(demo_rows(10), [c.name for c in ORDERS])))
    settings = make_settings(tables=("orders",), data_dir=tmp_path, workers=1, max_waiting=0)
    with live_server(create_app(settings, store)) as server:
        app_queue = server.server.config.app.state.queue

        async def go():
            async with httpx.AsyncClient(timeout=30) as client:
                async with app_queue.slot("export"):  # the only worker is busy: the upload is refused
                    refused = await upload(client, server.url, "orders", path)
                    later = asyncio.create_task(upload(client, server.url, "orders", path, retries=5))
                    await asyncio.sleep(0.3)
                return refused, await later

        refused, later = asyncio.run(go())
    assert refused.status == 429 and not refused.ok and refused.busy_retries == 0
    assert later.ok and later.busy_retries >= 1 and later.job["rows_inserted"] == 10


def test_retry_after_reads_the_header_with_a_floor() -> None:
    assert retry_after(httpx.Response(429, headers={"Retry-After": "3"})) == 3
    assert retry_after(httpx.Response(429)) >= 0.1
