"""Crash safety with real processes: the server killed (SIGKILL) or stopped (SIGTERM) during an import, on SQLite,
PostgreSQL and MariaDB. The table is never changed by an import whose server is gone, no process of ours outlives the
server, and the job's record says what happened: failed, "nothing was written"."""

from __future__ import annotations

import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.pipeline.jobs import STOPPED, JobBoard
from sheetstream.store import Store, open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.mysql_connect import connect as mysql_connect
from sheetstream.tools.harness import ServerProcess

from ..helpers import XLSX, OwnedMariadb, OwnedPostgres, rows_of

# About 3 s of import into PostgreSQL here: long enough to be caught in the middle and to run past a 0.5 s drain
# (150,000 rows were once all written within that drain, once imports read cells in C).
ROWS = 400_000
FAST = {"SHEETSTREAM_HEARTBEAT_SECONDS": "0.3", "SHEETSTREAM_HEARTBEAT_TIMEOUT": "1.5"}


@pytest.fixture(scope="module")
def big_workbook(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "big.xlsx"
    path.write_bytes(b"".join(write_xlsx(demo_rows(ROWS), [c.name for c in ORDERS])))
    return path


@pytest.fixture
def database(store_url: str) -> Iterator[tuple[str, str, Store]]:
    """A table of 10 rows, on SQLite, on PostgreSQL in a schema of its own, and on MySQL in a database of its own:
    these servers settle jobs of instances silent for 1.5 s, which must not touch the jobs of other servers sharing
    the test database."""
    url = store_url
    schema = f"crash_{uuid.uuid4().hex[:10]}"
    if store_url.startswith("postgres"):
        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = f"{store_url}?options=-csearch_path%3D{schema}"
    elif store_url.startswith("mysql"):
        with mysql_connect(store_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{schema}"')
        url = f"{store_url.rsplit('/', 1)[0]}/{schema}"
    store = open_store(url)
    seed(store, 10, "orders")
    yield url, "orders", store
    if store_url.startswith("postgres"):
        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    elif store_url.startswith("mysql"):
        with mysql_connect(store_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{schema}"')


def until(predicate, seconds: float, step: float = 0.05):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


@pytest.fixture
def leftovers() -> Iterator[list[psutil.Process]]:
    """Processes a test saw; any still alive at the end (the test has failed then) are killed, by pid."""
    seen: list[psutil.Process] = []
    yield seen
    for process in seen:
        try:
            process.kill()
        except psutil.Error:
            pass


def descendants(pid: int, seen: list[psutil.Process]) -> list[psutil.Process]:
    found = psutil.Process(pid).children(recursive=True)
    seen.extend(found)
    return found


def alive(processes: list[psutil.Process]) -> list[int]:
    left = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                left.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return left


def start_import(server: ServerProcess, table: str, workbook: Path,
                 seen: list[psutil.Process]) -> tuple[str, list[psutil.Process]]:
    """PUT the workbook (replacing the table's rows: any commit would show); return the job's id once it is
    inserting rows, and our processes at that moment."""
    answer = httpx.put(f"{server.url}/imports/{table}", content=workbook.read_bytes(), params={"mode": "replace"},
                       headers={"Content-Type": XLSX, **server.headers}, timeout=30)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]

    def inserting() -> bool:
        job = httpx.get(f"{server.url}/jobs/{job_id}", headers=server.headers, timeout=5).json()
        assert job["state"] not in ("done", "failed"), job["message"]
        return job["state"] == "inserting" and job["rows_read"] > 0

    assert until(inserting, 30), "the import did not start inserting"
    return job_id, descendants(server.process.pid, seen)


@pytest.mark.parametrize("executor", ["process"])
def test_sigkill_mid_import_commits_nothing_and_the_job_ends_failed(database, big_workbook: Path, tmp_path: Path,
                                                                     executor: str, leftovers) -> None:
    url, table, store = database
    before = rows_of(store, table)
    server = ServerProcess(url, tables=[table], executor=executor, workers=1, data_dir=tmp_path, env=FAST)
    with server:
        job_id, ours = start_import(server, table, big_workbook, leftovers)
        assert len(ours) >= 1  # at least the worker (with forkserver: the fork server too)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        assert until(lambda: not alive(ours), 5), f"processes outlived the server: {alive(ours)}"
        time.sleep(0.5)  # nothing left that could commit; give a wrong commit the time to show
        assert rows_of(store, table) == before
        # What a dead server leaves behind: the job still running, or ended by its own worker, which saw the server
        # gone at a progress report before it was killed (a race); either way nothing was committed.
        left = JobBoard(store.jobs).load(job_id)
        assert left.state == "inserting" or (left.state, left.message) == ("failed", STOPPED), left

    with ServerProcess(url, tables=[table], executor=executor, workers=1, data_dir=tmp_path, env=FAST) as again:
        job = until(lambda: (j := httpx.get(f"{again.url}/jobs/{job_id}", headers=again.headers).json())["state"] == "failed" and j, 10)
        assert job, httpx.get(f"{again.url}/jobs/{job_id}", headers=again.headers).json()
        assert (job["message"], job["error"], job["status"]) == (STOPPED, "server_stopped", 503)
        assert httpx.delete(f"{again.url}/jobs/{job_id}", headers=again.headers).status_code == 409
        assert until(lambda: not list((tmp_path / "spool").glob("upload-*")), 5), "the dead run's spool file stayed"
        assert not list(Path(tempfile.gettempdir()).glob(f"sheetstream-channel-{server.process.pid}-*"))
        ours = descendants(again.process.pid, leftovers)
    assert rows_of(store, table) == before
    assert until(lambda: not alive(ours), 5), alive(ours)


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_sigterm_past_the_drain_deadline_rolls_back_and_fails_the_job(database, big_workbook: Path, tmp_path: Path,
                                                                       executor: str, leftovers) -> None:
    url, table, store = database
    before = rows_of(store, table)
    server = ServerProcess(url, tables=[table], executor=executor, workers=1, data_dir=tmp_path,
                           env={**FAST, "SHEETSTREAM_DRAIN_SECONDS": "0.5"})
    with server:
        job_id, ours = start_import(server, table, big_workbook, leftovers)  # (none with threads)
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(15)
        took = time.monotonic() - started
        assert not alive(ours), f"processes outlived the server: {alive(ours)}"
    assert took < 8, took
    job = JobBoard(store.jobs).load(job_id)
    assert (job.state, job.error, job.message) == ("failed", "server_stopped", STOPPED)
    assert rows_of(store, table) == before
    assert not list((tmp_path / "spool").glob("upload-*"))


@pytest.mark.parametrize("down", [0, 3], ids=["restart", "down-3s"])
@pytest.mark.parametrize("owned", [OwnedPostgres, OwnedMariadb], ids=["postgres", "mariadb"])
def test_a_database_restart_mid_import_fails_the_job_and_keeps_its_audit_record(big_workbook: Path, tmp_path: Path,
                                                                               leftovers, down: float, owned) -> None:
    """The database restarted under an import, at once or after 3 s down (the job's last saves and its audit record
    then meet no database, and must try again): PostgreSQL with ``pg_ctl restart -m fast``, MariaDB stopped with
    SIGTERM (connections cut, the import's transaction rolled back) and started again. The import loses its
    connection, and the job still ends, failed with a message that says so, within a bound; its audit record is
    written. Each on a server the test owns, on a free loopback port."""
    with owned() as db:
        store = open_store(db.url)
        seed(store, 10, "orders")
        before = rows_of(store, "orders")
        server = ServerProcess(db.url, tables=["orders"], executor="process", workers=1, data_dir=tmp_path, env=FAST)
        with server:
            job_id, _ = start_import(server, "orders", big_workbook, leftovers)
            db.restart(down)

            def ended() -> dict | None:
                try:
                    job = httpx.get(f"{server.url}/jobs/{job_id}", headers=server.headers, timeout=5).json()
                except httpx.HTTPError:
                    return None
                return job if job.get("state") in ("done", "failed") else None

            job = until(ended, 20, step=0.2)  # retried saves: about a second here; the sweep: 1.5 s after those
            assert job, {k: v for k, v in httpx.get(f"{server.url}/jobs/{job_id}", headers=server.headers,
                                                    timeout=5).json().items() if k in ("state", "message")}
            assert (job["state"], job["error"], job["status"]) == ("failed", "database_unavailable", 503), job
            assert owned.name in job["message"] and "nothing was written" in job["message"], job
            audited = until(lambda: [e for e in store.audit.recent(who=None) if e["job_id"] == job_id], 10, step=0.2)
            assert audited and audited[0]["outcome"] == "database_unavailable", audited
        assert rows_of(store, "orders") == before


def test_sigterm_when_idle_leaves_no_process(tmp_path: Path, leftovers) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    seed(open_store(url), 20)
    with ServerProcess(url, executor="process", workers=2, data_dir=tmp_path) as server:
        assert httpx.get(f"{server.url}/exports/orders.xlsx", headers=server.headers, timeout=30).status_code == 200  # starts the workers
        ours = descendants(server.process.pid, leftovers)
        assert ours
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(15)
        assert not alive(ours), f"processes outlived the server: {alive(ours)}"


def test_sigterm_lets_running_work_finish_within_the_drain(tmp_path: Path, leftovers) -> None:
    # Long enough that the import is seen mid-way: 40,000 rows were once all written before a poll saw a progress
    # record (saved at most every 0.5 s), on a day this machine ran imports faster; imports read cells in C since.
    rows = 250_000
    book = tmp_path / "medium.xlsx"
    book.write_bytes(b"".join(write_xlsx(demo_rows(rows), [c.name for c in ORDERS])))
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = open_store(url)
    seed(store, 10)
    server = ServerProcess(url, executor="process", workers=1, data_dir=tmp_path,
                           env={"SHEETSTREAM_DRAIN_SECONDS": "60"})
    with server:
        job_id, ours = start_import(server, "orders", book, leftovers)
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(60)
        assert not alive(ours), f"processes outlived the server: {alive(ours)}"
    job = JobBoard(store.jobs).load(job_id)
    assert (job.state, job.rows_inserted) == ("done", rows)
    assert store.count("orders") == rows
