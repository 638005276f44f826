"""Slow clients never hold what others need: every download goes through one admission (share, queue place, time
bounds), a cut-off frees the socket, and the stall guard cuts only a client that truly takes nothing."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import httpx
import psutil

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store import Column
from sheetstream.store.demo import seed
from sheetstream.store.sqlite import SqliteStore

from ..helpers import XLSX, add_token, bearer, make_settings, wait_for

NOISE = [Column("n", "integer", nullable=False, primary_key=True), Column("blob", "text")]


def noise_store(path: Path, rows: int = 20_000) -> SqliteStore:
    """A table whose export is about 15 MB of incompressible text: larger than every buffer on the way."""
    store = SqliteStore(path)
    store.create_table("noise", NOISE)
    store.write_rows("noise", NOISE, ((i, os.urandom(600).hex()) for i in range(rows)))
    seed(store, 10)
    return store


def server_side(url: str) -> list:
    """The server's ends of the TCP connections to ``url`` that are still established (the server runs in this
    process)."""
    port = int(url.rsplit(":", 1)[1])
    return [c for c in psutil.Process().net_connections("tcp") if c.laddr.port == port and c.status == "ESTABLISHED"]


def never_reading(url: str, path: str, headers: dict[str, str] | None = None, small: bool = True) -> socket.socket:
    """A raw GET whose client never reads (its receive buffer kept ``small``, so the server's sends soon wait)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if small:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect((host, int(port)))
    head = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
    return sock


def test_the_marked_up_workbook_takes_its_callers_share_and_is_cut_off_like_an_export(tmp_path: Path,
                                                                                      live_server) -> None:
    store = noise_store(tmp_path / "db.sqlite", rows=0)
    token = add_token(store, "alice", "noise:read,append")
    # An extra column: a warning, so the dry run's upload is kept and can come back marked up (about 5 MB).
    body = b"".join(write_xlsx(((i, os.urandom(600).hex(), "x") for i in range(8000)), ["n", "blob", "extra"]))
    settings = make_settings(tables=("noise",), data_dir=tmp_path, auth=True, max_per_identity=1,
                             export_stall_seconds=1)
    with live_server(create_app(settings, store)) as server:
        job = httpx.put(f"{server.url}/imports/noise", content=body, params={"wait": "true", "dry_run": "true"},
                        headers={"Content-Type": XLSX, **bearer(token)}, timeout=60).json()
        assert job["state"] == "done" and job["warnings"], job
        held = never_reading(server.url, f"/jobs/{job['id']}/problems.xlsx", bearer(token))
        try:
            assert wait_for(lambda: len(server_side(server.url)) == 1, 5)
            time.sleep(0.2)
            refused = httpx.get(f"{server.url}/exports/noise.xlsx", params={"limit": 1}, headers=bearer(token))
            freed = wait_for(lambda: not server_side(server.url), 10)  # the stall cut-off closed the socket
        finally:
            held.close()
        again = httpx.get(f"{server.url}/exports/noise.xlsx", params={"limit": 1}, headers=bearer(token))
    assert refused.status_code == 429 and refused.json()["error"] == "busy", refused.status_code
    assert freed
    assert again.status_code == 200


def test_a_cut_off_frees_the_socket_and_the_worker(tmp_path: Path, live_server) -> None:
    store = noise_store(tmp_path / "db.sqlite")
    settings = make_settings(tables=("noise",), data_dir=tmp_path, workers=1, export_stall_seconds=1)
    with live_server(create_app(settings, store)) as server:
        status = lambda: httpx.get(f"{server.url}/status").json()  # noqa: E731
        sock = never_reading(server.url, "/exports/noise.xlsx")
        try:
            assert wait_for(lambda: len(server_side(server.url)) == 1, 5)
            started = time.monotonic()
            freed = wait_for(lambda: not server_side(server.url), 10)
            took = time.monotonic() - started
            active = status()["active"].get("export")
        finally:
            sock.close()
    assert freed and took < 5, took
    assert active == 0


def test_a_client_reading_steadily_is_not_cut_off_while_its_sends_wait(tmp_path: Path, live_server) -> None:
    """About 300 kB/s against a 1.5 s stall limit: the kernel's buffers grow past a megabyte and drain in large
    steps, so one send waits longer than the limit although the client never stops taking bytes (cut off so on
    the old guard, which timed each send)."""
    store = noise_store(tmp_path / "db.sqlite")
    settings = make_settings(tables=("noise",), data_dir=tmp_path, workers=1, export_stall_seconds=1.5)
    with live_server(create_app(settings, store)) as server:
        sock = never_reading(server.url, "/exports/noise.xlsx", small=False)
        received = 0
        started = time.monotonic()
        try:
            while time.monotonic() - started < 6:
                data = sock.recv(6000)
                if not data:
                    break
                received += len(data)
                time.sleep(0.02)
            alive = bool(server_side(server.url))
        finally:
            sock.close()
    assert received > 1_000_000, received
    assert alive, f"cut off after {received:,} bytes while reading steadily"
