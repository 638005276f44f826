"""Slow clients never hold what others need: every download goes through one admission (share, queue place, time
bounds), a cut-off frees the socket, and the stall guard cuts only a client that truly takes nothing."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store import Column
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore
from sheetstream.tools.harness import ServerProcess

from ..helpers import XLSX, add_token, bearer, make_settings, read_workbook, wait_for

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
    assert active == 0 and spill_files(tmp_path) == []


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


SMALL = b"".join(write_xlsx(demo_rows(10), [c.name for c in ORDERS]))


def read_to_end(sock: socket.socket, until: bytes | None = None) -> bytes:
    """What ``sock`` receives up to its end (or up to ``until``, the end of a chunked body)."""
    data = b""
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
            if until and data.endswith(until):
                break
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def spill_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("spool/spill-*"))


def dripping_upload(url: str, body: bytes, source: str = "127.0.0.2", forwarded: str = "") -> socket.socket:
    """A raw PUT from ``source`` (another loopback address than the well-behaved client's) that has sent one
    byte of ``body`` (the test drips the rest, or not)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20, source_address=(source, 0))
    head = f"X-Forwarded-For: {forwarded}\r\n" if forwarded else ""
    sock.sendall(f"PUT /imports/orders HTTP/1.1\r\nHost: x\r\nContent-Type: {XLSX}\r\n{head}"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:1])
    return sock


def test_never_reading_downloads_free_their_workers_and_others_get_through(tmp_path: Path, live_server) -> None:
    """2 workers, 2 exports whose clients never read and 10 uploads dripping a byte a second, at the default stall
    limit (60 s): a well-behaved export and a check-only import each answer within 10 s."""
    store = noise_store(tmp_path / "db.sqlite")
    settings = make_settings(tables=("noise", "orders"), data_dir=tmp_path, workers=2, max_waiting=8)
    with live_server(create_app(settings, store)) as server:
        status = lambda: httpx.get(f"{server.url}/status").json()  # noqa: E731
        stuck = [never_reading(server.url, "/exports/noise.xlsx") for _ in range(2)]
        drips = [dripping_upload(server.url, SMALL, f"127.0.0.{2 + i % 2}") for i in range(10)]
        stop = threading.Event()

        def drip() -> None:
            for i in range(1, len(SMALL)):
                for sock in drips:
                    try:
                        sock.sendall(SMALL[i:i + 1])
                    except OSError:  # answered (408 past the grace period) and closed
                        pass
                if stop.wait(1):
                    return

        dripping = threading.Thread(target=drip)
        dripping.start()
        try:
            started = time.monotonic()
            export = httpx.get(f"{server.url}/exports/orders.xlsx", params={"limit": 10}, timeout=10)
            checked = httpx.put(f"{server.url}/imports/orders", content=SMALL, timeout=10,
                                params={"wait": "true", "dry_run": "true", "mode": "replace"},
                                headers={"Content-Type": XLSX})
            took = time.monotonic() - started
            freed = wait_for(lambda: status()["active"].get("export") == 0, 10)  # both workbooks complete
            held = status()["spill"]
            files = spill_files(tmp_path)
            stuck[0].settimeout(10)
            stuck[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # a 4 kB window would take a minute
            whole = read_to_end(stuck[0], until=b"\r\n0\r\n\r\n")  # one reads at last: the rest comes from its spill
            one_left = spill_files(tmp_path)
        finally:
            stop.set()
            dripping.join()
            for sock in stuck + drips:
                sock.close()  # the other one leaves without reading
        gone = wait_for(lambda: not spill_files(tmp_path) and status()["spill"]["held"] == 0, 5)
    assert export.status_code == 200 and len(read_workbook(export.content)["orders"]) == 11
    assert checked.status_code == 200 and checked.json()["state"] == "done", checked.text
    assert took < 10, took
    assert freed and held["held"] > 10 << 20 and len(files) == 2, (held, files)
    assert whole.endswith(b"\r\n0\r\n\r\n") and len(whole) > 5 << 20 and len(one_left) == 1
    assert gone


def test_past_the_spill_bound_the_worker_waits_for_its_client(tmp_path: Path, live_server) -> None:
    """The documented fall-back: a download past SHEETSTREAM_EXPORT_SPILL_BYTES holds its worker, as before."""
    store = noise_store(tmp_path / "db.sqlite")
    settings = make_settings(tables=("noise",), data_dir=tmp_path, workers=1, export_spill_bytes=2 << 20)
    with live_server(create_app(settings, store)) as server:
        status = lambda: httpx.get(f"{server.url}/status").json()  # noqa: E731
        sock = never_reading(server.url, "/exports/noise.xlsx")
        try:
            assert wait_for(lambda: status()["spill"]["held"] >= 1 << 20, 10)
            time.sleep(1.5)
            seen = status()
            sizes = [path.stat().st_size for path in spill_files(tmp_path)]
        finally:
            sock.close()
        gone = wait_for(lambda: not spill_files(tmp_path) and status()["active"].get("export") == 0, 5)
    assert seen["active"]["export"] == 1  # the worker waits: its spill is full
    assert seen["spill"]["held"] <= (2 << 20) + (256 << 10) and all(size <= 2 << 20 for size in sizes), seen
    assert gone


def test_a_client_that_keeps_up_spills_nothing(tmp_path: Path, live_server) -> None:
    store = noise_store(tmp_path / "db.sqlite")
    settings = make_settings(tables=("noise",), data_dir=tmp_path, workers=1)
    with live_server(create_app(settings, store)) as server:
        export = httpx.get(f"{server.url}/exports/noise.xlsx", timeout=30)
        spill = httpx.get(f"{server.url}/status").json()["spill"]
    assert export.status_code == 200 and len(export.content) > 10 << 20
    assert spill == {"held": 0, "spilled": 0}


def test_a_killed_servers_spill_files_are_removed_at_the_next_start(tmp_path: Path) -> None:
    noise_store(tmp_path / "db.sqlite")
    database = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with ServerProcess(database, tables=["noise"], data_dir=tmp_path, workers=1) as server:
        sock = never_reading(server.url, "/exports/noise.xlsx", server.headers)
        try:
            assert wait_for(lambda: sum(p.stat().st_size for p in spill_files(tmp_path)) > 1 << 20, 15)
            server.process.kill()
            server.process.wait(10)
            left = spill_files(tmp_path)
        finally:
            sock.close()
    with ServerProcess(database, tables=["noise"], data_dir=tmp_path, workers=1):
        after = spill_files(tmp_path)
    assert left and after == []


def test_a_dripping_upload_gets_408_after_the_grace_period_and_gives_back_its_place(tmp_path: Path,
                                                                                    live_server) -> None:
    """A byte every 0.3 s: never idle long enough to be dropped (30 s), but far under the minimum rate."""
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    settings = make_settings(data_dir=tmp_path, upload_min_rate=100, upload_grace_seconds=2)
    with live_server(create_app(settings, store)) as server:
        sock = dripping_upload(server.url, SMALL)
        started = time.monotonic()
        answer = b""
        try:
            sock.settimeout(0.3)
            for i in range(1, 40):  # at most 12 s
                try:
                    sock.sendall(SMALL[i:i + 1])
                    answer += sock.recv(65536)
                except TimeoutError:
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
                if answer:
                    break
            took = time.monotonic() - started
            sock.settimeout(5)
            try:
                while data := sock.recv(65536):  # the rest of the answer, then the server closes
                    answer += data
            except (TimeoutError, ConnectionResetError):
                pass
        finally:
            sock.close()
        spool = httpx.get(f"{server.url}/status").json()["spool"]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 1.5 < took < 6, took
    assert b"the upload is too slow" in body and b"SHEETSTREAM_UPLOAD_MIN_RATE" in body
    assert spool == {"files": 0, "bytes": 0} and list((tmp_path / "spool").glob("upload-*")) == []


@pytest.mark.parametrize("via", ["direct", "trusted proxy"])
def test_uploads_in_flight_are_limited_per_client_address_even_without_auth(tmp_path: Path, live_server,
                                                                           via: str) -> None:
    """Auth off (every caller an admin, exempt from the fair share): the address's limit holds all the same.
    A forwarded address counts only from a trusted proxy; from anyone else it is ignored."""
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    proxy = via == "trusted proxy"
    settings = make_settings(data_dir=tmp_path, uploads_per_address=2,
                             trusted_proxies=("127.0.0.1",) if proxy else None)
    with live_server(create_app(settings, store)) as server:
        held = [dripping_upload(server.url, SMALL, "127.0.0.1", forwarded="10.0.0.1") for _ in range(2)]
        try:
            assert wait_for(lambda: httpx.get(f"{server.url}/status").json()["spool"]["files"] == 2)
            # Another address in X-Forwarded-For: believed from a trusted proxy only.
            third = httpx.put(f"{server.url}/imports/orders", content=SMALL, headers={
                "Content-Type": XLSX, "X-Forwarded-For": "10.0.0.2"}, params={"mode": "replace", "wait": "true"})
            same = httpx.put(f"{server.url}/imports/orders", content=SMALL, headers={
                "Content-Type": XLSX, "X-Forwarded-For": "10.0.0.1"}, params={"mode": "replace"})
            with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.3")) as other:
                elsewhere = other.put(f"{server.url}/imports/orders", content=SMALL, headers={"Content-Type": XLSX},
                                      params={"mode": "replace", "wait": "true"})
        finally:
            for sock in held:
                sock.close()
    assert same.status_code == 429 and same.json()["error"] == "busy", same.text
    assert "already sending 2 uploads, the most one address may send at once" in same.json()["message"]
    assert same.headers["retry-after"] == "5"
    if proxy:
        assert third.status_code == 200, third.text
    else:
        assert third.status_code == 429 and "127.0.0.1 is already sending" in third.json()["message"]
    assert elsewhere.status_code == 200, elsewhere.text


def test_readers_at_20_kb_a_second_hold_no_worker(tmp_path: Path, live_server) -> None:
    """4 clients reading steadily at 20 kB/s on 2 workers (each would hold its worker for minutes, and never be cut
    off): their workbooks complete into their spills, and a fast client's export answers at once."""
    store = noise_store(tmp_path / "db.sqlite")
    settings = make_settings(tables=("noise", "orders"), data_dir=tmp_path, workers=2)
    with live_server(create_app(settings, store)) as server:
        status = lambda: httpx.get(f"{server.url}/status").json()  # noqa: E731
        stop = threading.Event()
        received = [0] * 4

        def read(i: int) -> None:
            with never_reading(server.url, "/exports/noise.xlsx", small=False) as sock:
                while not stop.wait(0.1):
                    received[i] += len(sock.recv(2000))

        readers = [threading.Thread(target=read, args=(i,)) for i in range(4)]
        for reader in readers:
            reader.start()
        try:
            freed = wait_for(lambda: status()["active"].get("export") == 0 and status()["spill"]["held"] > 0, 15)
            started = time.monotonic()
            export = httpx.get(f"{server.url}/exports/orders.xlsx", params={"limit": 10}, timeout=10)
            took = time.monotonic() - started
        finally:
            stop.set()
            for reader in readers:
                reader.join()
        gone = wait_for(lambda: not spill_files(tmp_path) and status()["spill"]["held"] == 0, 5)
    assert freed and min(received) > 0
    assert export.status_code == 200 and len(read_workbook(export.content)["orders"]) == 11 and took < 10, took
    assert gone
