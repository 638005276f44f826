"""The server's life cycle in-process: a draining server refuses new work with 503 and Retry-After, and the
sweep at start removes the spool files of dead runs but not those of running jobs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from sheetstream.pipeline.jobs import Job, JobBoard
from sheetstream.server import create_app
from sheetstream.store.demo import seed
from sheetstream.store.sqlite import SqliteStore

from ..helpers import XLSX, make_settings


def test_a_draining_server_refuses_new_work_with_503(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 5)
    app = create_app(make_settings(data_dir=tmp_path, drain_seconds=3), store)
    with live_server(app) as server:
        assert httpx.get(f"{server.url}/exports/orders.xlsx").status_code == 200
        app.state.lifecycle.drain()
        export = httpx.get(f"{server.url}/exports/orders.xlsx")
        upload = httpx.put(f"{server.url}/imports/orders", content=b"PK", headers={"Content-Type": XLSX})
        health = httpx.get(f"{server.url}/healthz")
    for answer in (export, upload):
        assert answer.status_code == 503 and answer.headers["retry-after"] == "3"
        assert answer.json()["error"] == "shutting_down" and "try again shortly" in answer.json()["message"]
    assert health.status_code == 200
    assert not list((tmp_path / "spool").glob("upload-*"))


def test_the_sweep_at_start_removes_dead_runs_spool_files(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 5)
    board = JobBoard(store.jobs, instance="another-live-instance")
    running, ended = Job(table="orders", state="inserting"), Job(table="orders", state="failed")
    board.save(running, force=True)
    board.save(ended, force=True)
    spool = tmp_path / "spool"
    spool.mkdir()
    files = {name: spool / name for name in (f"upload-{running.id}-a.xlsx", f"upload-{ended.id}-b.xlsx",
                                             "upload-unknown-c.xlsx", "upload-old.xlsx")}
    for path in files.values():
        path.write_bytes(b"PK")
        os.utime(path, (time.time() - 60, time.time() - 60))
    with live_server(create_app(make_settings(data_dir=tmp_path), store)):
        fresh = spool / "upload-x-new.xlsx"  # written after the start: an upload of this run
        fresh.write_bytes(b"PK")
        left = sorted(p.name for p in spool.iterdir())
    assert left == sorted([f"upload-{running.id}-a.xlsx", "upload-x-new.xlsx"])
