"""Availability under faults and hostile clients: a worker process killed mid-task or out of memory, the readiness
check, idle and stalled sockets, a burst of uploads, a full disk."""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store import Column, open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore
from sheetstream.tools.harness import ServerProcess

from ..helpers import (
    XLSX,
    add_token,
    bearer,
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


def assert_serving_again(url: str, headers: dict | None = None, table: str = "orders") -> None:
    headers = headers or {}
    export = httpx.get(f"{url}/exports/{table}.xlsx", params={"limit": 10}, headers=headers, timeout=30)
    assert export.status_code == 200 and len(read_workbook(export.content)[table]) == 11
    imported = httpx.put(f"{url}/imports/{table}", content=SMALL, params={"wait": "true", "mode": "replace"},
                         headers={"Content-Type": XLSX, **headers}, timeout=30)
    assert imported.status_code == 200, imported.text
    ready = httpx.get(f"{url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text


@pytest.mark.parametrize("where", ["thread", "subprocess"])
def test_a_worker_killed_mid_export_aborts_that_download_and_the_next_one_works(tmp_path: Path, live_server,
                                                                                where: str) -> None:
    """In a server thread of the test, and in ``sheetstream serve`` run as a subprocess (the real command)."""
    store = noise_store(tmp_path / "db.sqlite")
    settings = make_settings(tables=("noise", "orders"), data_dir=tmp_path, strategy="process", workers=2)
    if where == "thread":
        running = live_server(create_app(settings, store))
    else:
        running = ServerProcess(f"sqlite:///{tmp_path / 'db.sqlite'}", tables=["noise", "orders"], executor="process",
                                workers=2, data_dir=tmp_path)
    with running as server:
        pid = server.process.pid if where == "subprocess" else None
        headers = getattr(server, "headers", {})  # the real command starts with authentication on
        with httpx.stream("GET", f"{server.url}/exports/noise.xlsx", headers=headers, timeout=30) as response:
            chunks = response.iter_raw()
            next(chunks)
            kill_busiest_worker(pid)
            with pytest.raises(httpx.RemoteProtocolError):  # never a clean end: the body is incomplete
                for _ in chunks:
                    pass
        assert response.status_code == 200
        assert_serving_again(server.url, headers)
        status = httpx.get(f"{server.url}/status", headers=headers).json()
    assert status["active"] == {"export": 0, "import": 0}


def test_a_worker_killed_mid_import_fails_the_job_with_503_and_writes_nothing(store_url: str, request, tmp_path: Path,
                                                                             live_server) -> None:
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("db_table")
    seed(store, 10, table)
    # Enough rows that the import is still running when its first progress is seen (about 1.5 s of work).
    body = b"".join(write_xlsx(demo_rows(200_000), [c.name for c in ORDERS]))
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
        assert_serving_again(server.url, table=table)
    assert failed["status"] == 503 and failed["error"] == "worker_lost", failed
    assert "nothing it did was kept" in failed["message"]
    assert unchanged
    assert list((tmp_path / "spool").iterdir()) == []


def test_a_worker_killed_mid_import_leaves_the_import_on_the_other_worker_running(pg_url: str, pg_table: str,
                                                                                   tmp_path: Path, live_server) -> None:
    """Two imports on two workers, one worker killed: its import fails (worker_lost), the other ends done."""
    store = open_store(pg_url)
    tables = [pg_table, f"{pg_table}_2"]
    for table in tables:
        seed(store, 10, table)
    body = b"".join(write_xlsx(demo_rows(200_000), [c.name for c in ORDERS]))
    settings = make_settings(tables=tuple(tables), data_dir=tmp_path, strategy="process", workers=2)
    try:
        with live_server(create_app(settings, store)) as server:
            locations = []
            for table in tables:
                job = httpx.put(f"{server.url}/imports/{table}", content=body, params={"mode": "replace"},
                                headers={"Content-Type": XLSX}, timeout=60).json()
                locations.append(f"{server.url}/jobs/{job['id']}")
            assert wait_for(lambda: all(httpx.get(at).json()["rows_read"] > 0 for at in locations), 30)
            kill_busiest_worker()
            assert wait_for(lambda: all(httpx.get(at).json()["state"] in ("done", "failed") for at in locations), 60)
            jobs = [httpx.get(at).json() for at in locations]
        outcomes = sorted((job["state"], job["error"]) for job in jobs)
        assert outcomes == [("done", None), ("failed", "worker_lost")], [(j["state"], j["message"]) for j in jobs]
        counts = sorted(store.count(table) for table in tables)
        assert counts == [10, 200_000]
    finally:
        store.drop_table(tables[1])


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
        response = httpx.put(f"{server.url}/imports/pair", content=path.read_bytes(), params={"wait": "true"},
                             headers={"Content-Type": XLSX}, timeout=60)
        caps = {worker.rlimit(psutil.RLIMIT_AS)[0] for worker in pool_workers()}
        assert_serving_again(server.url)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "out_of_memory", body
    assert "more memory than a worker process may use (100 MB)" in body["message"]
    assert rows_of(store, "pair") == [] and caps == {100 << 20}


def open_upload(url: str, body: bytes, sent: int) -> socket.socket:
    """A raw PUT of ``body`` that has sent only its first ``sent`` bytes (the test decides when, or if, the rest
    follows)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=20)
    sock.sendall(f"PUT /imports/orders HTTP/1.1\r\nHost: x\r\nContent-Type: {XLSX}\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:sent])
    return sock


def open_export(url: str, path: str) -> socket.socket:
    """A raw GET whose client never reads (its receive buffer kept small, so the server's sends soon block)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    sock.connect((host, int(port)))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def answers_within(socks: list[socket.socket], seconds: float, expected: int) -> list[bytes]:
    """What each socket has received once ``expected`` of them hold a whole response (or ``seconds`` have passed);
    the others stay open, unanswered."""
    answers = {sock: b"" for sock in socks}
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        for sock in socks:
            selector.register(sock, selectors.EVENT_READ)
        while sum(map(whole_response, answers.values())) < expected and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.1):
                data = key.fileobj.recv(65536)
                answers[key.fileobj] += data
                if not data:
                    selector.unregister(key.fileobj)
    return [answers[sock] for sock in socks]


def whole_response(data: bytes) -> bool:
    head, found, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")),
                  None)
    return bool(found) and length is not None and len(body) >= length


@pytest.mark.parametrize("strategy", ["thread", "process"])
def test_idle_sockets_do_not_lock_out_a_well_behaved_client(tmp_path: Path, live_server, strategy: str) -> None:
    store = noise_store(tmp_path / "db.sqlite")
    settings = make_settings(tables=("noise", "orders"), data_dir=tmp_path, workers=2, max_waiting=8,
                             export_stall_seconds=2, strategy=strategy, uploads_per_address=16)
    with live_server(create_app(settings, store)) as server:
        status = lambda: httpx.get(f"{server.url}/status").json()  # noqa: E731
        stuck = [open_export(server.url, "/exports/noise.xlsx") for _ in range(2)]
        drips = [open_upload(server.url, SMALL, 1) for _ in range(10)]
        stop = threading.Event()

        def drip() -> None:  # one byte a second on each upload: never idle long enough to be dropped
            for i in range(1, len(SMALL)):
                for sock in drips:
                    sock.sendall(SMALL[i:i + 1])
                if stop.wait(1):
                    return

        dripping = threading.Thread(target=drip)
        dripping.start()
        try:
            assert wait_for(lambda: status()["active"].get("export") == 2 and status()["spool"]["files"] == 10)
            held = status()
            started = time.monotonic()
            export = httpx.get(f"{server.url}/exports/orders.xlsx", params={"limit": 10}, timeout=10)
            imported = httpx.put(f"{server.url}/imports/orders", content=SMALL, params={"wait": "true", "mode": "replace"},
                                 headers={"Content-Type": XLSX}, timeout=10)
            took = time.monotonic() - started
        finally:
            stop.set()
            dripping.join()
        assert wait_for(lambda: status()["active"].get("export") == 0, 5)  # both workbooks complete, or cut off
        assert wait_for(lambda: status()["spill"]["held"] == 0, 5)  # both stalled ones were cut off: spills gone
        cut_off = [read_to_end(sock) for sock in stuck]
        for sock in stuck + drips:
            sock.close()
    assert held["queued"].get("import", 0) == 0  # uploads still arriving hold spool places, not queue places
    assert export.status_code == 200 and len(read_workbook(export.content)["orders"]) == 11
    assert imported.status_code == 200, imported.text
    assert took < 10, took
    for body in cut_off:  # the stalled downloads were cut off: started, never ended
        assert body.startswith(b"HTTP/1.1 200") and not body.endswith(b"0\r\n\r\n")


def test_an_export_past_its_time_is_cut_off_and_its_worker_freed(tmp_path: Path, live_server) -> None:
    store = noise_store(tmp_path / "db.sqlite")
    settings = make_settings(tables=("noise",), data_dir=tmp_path, workers=1, export_max_seconds=1)
    with live_server(create_app(settings, store)) as server:
        active = lambda: httpx.get(f"{server.url}/status").json()["active"]["export"]  # noqa: E731
        with pytest.raises(httpx.RemoteProtocolError):  # cut off: the body never ends cleanly
            with httpx.stream("GET", f"{server.url}/exports/noise.xlsx", timeout=10) as response:
                chunks = response.iter_raw()
                started = time.monotonic()
                running = [active()]
                for _ in chunks:  # a slow reader, never idle long enough to count as stalled
                    time.sleep(0.05)
                    if time.monotonic() - started > 2:
                        break
                running.append(active())  # the server has cut it off; the socket still holds what was sent
                for _ in chunks:
                    pass
    assert running == [1, 0]


def test_an_upload_that_stops_sending_is_dropped_and_its_place_given_back(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    settings = make_settings(data_dir=tmp_path, upload_idle_seconds=1)
    with live_server(create_app(settings, store)) as server:
        with open_upload(server.url, SMALL, 100) as sock:
            started = time.monotonic()
            answer = sock.recv(65536)
            took = time.monotonic() - started
            answer += read_to_end(sock)  # and the server closes the connection
        after = httpx.get(f"{server.url}/status").json()["spool"]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and 0.9 < took < 5, (head, took)
    assert json.loads(body)["error"] == "request_timeout" and b"nothing arrived for 1 seconds" in body
    assert after == {"files": 0, "bytes": 0} and list((tmp_path / "spool").iterdir()) == []
    assert rows_of(store, "orders") == list(demo_rows(10))


def test_a_burst_of_uploads_is_bounded_by_the_spool(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    settings = make_settings(data_dir=tmp_path, workers=1, max_waiting=8, max_spool_files=8,
                             max_spool_bytes=len(SMALL) * 8 + 1000, uploads_per_address=64)  # the spool's bound
    with live_server(create_app(settings, store)) as server:
        uploads = [open_upload(server.url, SMALL, 100) for _ in range(40)]
        answers = answers_within(uploads, seconds=10, expected=32)
        held = httpx.get(f"{server.url}/status").json()["spool"]
        files_held = len(list((tmp_path / "spool").iterdir()))
        for sock in uploads:
            sock.close()
        spool = lambda: httpx.get(f"{server.url}/status").json()["spool"]  # noqa: E731
        assert wait_for(lambda: spool() == {"files": 0, "bytes": 0})
        with open_upload(server.url, SMALL * 5, 100):  # its declared size is set aside while it arrives
            assert wait_for(lambda: spool()["files"] == 1)
            no_room = httpx.put(f"{server.url}/imports/orders", content=SMALL * 4, headers={"Content-Type": XLSX})
        assert wait_for(lambda: spool() == {"files": 0, "bytes": 0})
        never = httpx.put(f"{server.url}/imports/orders", content=SMALL * 9, headers={"Content-Type": XLSX})
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 429")]
    assert len(refused) == 32 and all(a == b"" for a in answers if a not in refused)
    assert held["files"] == 8 and files_held == 8
    head, _, body = refused[0].partition(b"\r\n\r\n")
    assert b"retry-after: 5" in head.lower() and b"application/problem+json" in head
    assert json.loads(body)["error"] == "busy" and "uploads are already being received" in json.loads(body)["message"]
    assert no_room.status_code == 429 and "too little room" in no_room.json()["message"]
    assert never.status_code == 507 and "larger than the room this server sets aside" in never.json()["message"]
    assert list((tmp_path / "spool").iterdir()) == []


def test_kept_uploads_count_in_the_spool_and_make_room_for_other_users(tmp_path: Path, live_server) -> None:
    """One user's dry runs keep their files (for commit) within a quarter of the spool, their oldest going first;
    another user's upload that needs the room takes it from the oldest kept files instead of being refused; a
    commit of a dry run whose file went answers 410."""
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    greedy, other = add_token(store, "greedy", "orders:read,append"), add_token(store, "other", "orders:read,append")
    small = b"".join(write_xlsx(((i + 1000, *r[1:]) for i, r in enumerate(demo_rows(500), 1)), [c.name for c in ORDERS]))
    large = b"".join(write_xlsx(((i + 5000, *r[1:]) for i, r in enumerate(demo_rows(5000), 1)), [c.name for c in ORDERS]))
    room = len(large) + len(small) * 3 // 2  # the large one fits beside one small kept file, not beside two
    assert len(small) * 2 <= room // 4 < len(small) * 3  # so one identity keeps two small files, not three
    settings = make_settings(auth=True, tables=("orders",), data_dir=tmp_path, max_spool_bytes=room)
    kept = tmp_path / "spool" / "kept"

    def dry_run(token: str, body: bytes) -> dict:
        answer = httpx.put(f"{server.url}/imports/orders", content=body, params={"dry_run": "true", "wait": "true"},
                           headers={**bearer(token), "Content-Type": XLSX}, timeout=60)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def commit(job: dict, token: str = greedy) -> httpx.Response:
        return httpx.post(f"{server.url}/jobs/{job['id']}/commit", params={"wait": "true"}, headers=bearer(token),
                          timeout=60)

    with live_server(create_app(settings, store)) as server:
        runs = [dry_run(greedy, small) for _ in range(5)]
        assert all(run["kept_until"] for run in runs)
        on_disk = sorted(kept.iterdir())
        assert len(on_disk) == 2 and sum(p.stat().st_size for p in on_disk) <= room // 4, on_disk
        assert {p.name.split("-")[0] for p in on_disk} == {runs[3]["id"], runs[4]["id"]}  # the newest two
        assert dry_run(other, large)["state"] == "done"  # room taken from the oldest kept file
        assert sum(p.stat().st_size for p in kept.iterdir()) <= room
        for evicted in (runs[0], runs[3]):
            gone = commit(evicted)
            assert gone.status_code == 410 and "no longer kept" in gone.json()["message"], gone.text
        done = commit(runs[4])
        assert done.status_code == 200 and done.json()["rows_inserted"] == 500, done.text
    assert store.count("orders") == 510


def test_a_full_disk_while_spooling_is_a_507_and_leaves_nothing(tmp_path: Path, live_server) -> None:
    """The spool is a real 1 MB tmpfs (mounting needs root; skipped where the sandbox does not allow it)."""
    spool = tmp_path / "data" / "spool"
    spool.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(spool)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        store = SqliteStore(tmp_path / "db.sqlite")
        seed(store, 10)
        settings = make_settings(data_dir=tmp_path / "data")
        with live_server(create_app(settings, store)) as server:
            response = httpx.put(f"{server.url}/imports/orders", content=os.urandom(3 << 20), timeout=30,
                                 headers={"Content-Type": XLSX}, params={"wait": "true"})
            after = httpx.get(f"{server.url}/status").json()["spool"]
        left = list(spool.iterdir())
    finally:
        subprocess.run(["umount", str(spool)], check=True)
    assert response.status_code == 507, response.text
    assert response.json()["error"] == "insufficient_storage"
    assert "no room left to receive the upload (No space left on device)" in response.json()["message"]
    assert left == [] and after == {"files": 0, "bytes": 0}
    assert rows_of(store, "orders") == list(demo_rows(10))
