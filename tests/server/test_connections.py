"""Connections bounded before any route runs: the header timeout, the cap on open connections (the health probes
still answered past it), and the descriptor limit raised at start."""

from __future__ import annotations

import resource
import selectors
import socket
import time
from pathlib import Path

import httpx

from sheetstream.server import create_app
from sheetstream.server.connections import PROBES
from sheetstream.store.demo import seed
from sheetstream.store.sqlite import SqliteStore
from sheetstream.tools.harness import ServerProcess

from ..helpers import make_settings, read_workbook


def connect(url: str, send: bytes = b"") -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    if send:
        sock.sendall(send)
    return sock


def closed_by_server(socks: list[socket.socket], seconds: float) -> list[bytes]:
    """What each socket received up to its end of file, for those the server closed within ``seconds``."""
    got = {sock: b"" for sock in socks}
    ended: list[socket.socket] = []
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while len(ended) < len(socks) and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                try:
                    data = key.fileobj.recv(65536)
                except ConnectionResetError:
                    data = b""
                got[key.fileobj] += data
                if not data:
                    selector.unregister(key.fileobj)
                    ended.append(key.fileobj)
    return [got[sock] for sock in ended]


def still_open(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def test_1100_idle_connections_leave_the_server_answering_and_are_closed_by_the_header_timeout(tmp_path: Path) -> None:
    """``sheetstream serve`` started with the common default of 1,024 open files: it raises its own limit, and idle
    sockets (nothing sent, or half a request line) are closed after SHEETSTREAM_HEADER_SECONDS."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2600:  # the test's own 1,100 sockets and a few more
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    with ServerProcess(f"sqlite:///{tmp_path / 'db.sqlite'}", data_dir=tmp_path, workers=1, open_files=1024,
                       env={"SHEETSTREAM_HEADER_SECONDS": "4"}) as server:
        idle = [connect(server.url, b"" if i % 2 else b"GET /exports/ord") for i in range(1100)]
        try:
            opened = time.monotonic()
            health = httpx.get(f"{server.url}/healthz", timeout=3)
            export = httpx.get(f"{server.url}/exports/orders.xlsx", params={"limit": 10}, headers=server.headers,
                               timeout=5)
            all_open = sum(map(still_open, idle))
            took = time.monotonic() - opened
            closed = closed_by_server(idle, 10)
            after = time.monotonic() - opened
            health_after = httpx.get(f"{server.url}/healthz", timeout=3)
        finally:
            for sock in idle:
                sock.close()
    assert health.status_code == 200 and export.status_code == 200, (health.text, export.status_code)
    assert len(read_workbook(export.content)["orders"]) == 11
    assert took < 4 and all_open == 1100  # answered while all 1,100 were open
    assert len(closed) == 1100 and set(closed) == {b""} and after < 10, (len(closed), after)
    assert health_after.status_code == 200


def test_past_the_connection_cap_probes_answer_and_the_rest_get_a_fast_503(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    settings = make_settings(data_dir=tmp_path, max_connections=20)
    with live_server(create_app(settings, store)) as server:
        idle = [connect(server.url) for _ in range(20 + PROBES - 1)]  # the cap, and all but one of the probes' places
        try:
            time.sleep(0.3)  # accepted
            with httpx.Client(timeout=5) as client:
                health = client.get(f"{server.url}/healthz")
                ready = client.get(f"{server.url}/readyz")
            time.sleep(0.3)  # the probes' connection is closed: one place is free again
            started = time.monotonic()
            refused_export = httpx.get(f"{server.url}/exports/orders.xlsx", params={"limit": 10}, timeout=5)
            time.sleep(0.3)
            more = [connect(server.url) for _ in range(10)]  # the last probe place, then 9 refused at once
            refused = closed_by_server(more[1:], 2)
            took = time.monotonic() - started
            for sock in more:
                sock.close()
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.3)
        export = httpx.get(f"{server.url}/exports/orders.xlsx", params={"limit": 10}, timeout=10)
    assert health.status_code == 200 and ready.status_code == 200, ready.text
    assert refused_export.status_code == 503 and refused_export.json()["error"] == "busy"
    assert refused_export.headers["retry-after"] == "1"
    assert len(refused) == 9 and all(r.startswith(b"HTTP/1.1 503") for r in refused), refused[:2]
    assert took < 3, took
    assert export.status_code == 200 and len(read_workbook(export.content)["orders"]) == 11
