"""Job records on every database: an ended record is final, "done" commits with the rows (or, on SQLite, leaves
a marker that settles it), a job ended elsewhere cannot commit, and silent instances' jobs are found."""

from __future__ import annotations

import time
import uuid

import pytest

from sheetstream.errors import Conflict
from sheetstream.store import open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed


@pytest.fixture
def table(store_url: str, request: pytest.FixtureRequest) -> str:
    return "orders" if store_url.startswith("sqlite") else request.getfixturevalue("db_table")


def record(state: str, **extra) -> dict:
    return {"table": "orders", "state": state, "instance": "test-instance", **extra}


def new_id() -> str:
    return uuid.uuid4().hex


def test_an_ended_record_is_final(store_url: str) -> None:
    jobs = open_store(store_url).jobs
    job_id = new_id()
    assert jobs.save(job_id, record("inserting"))
    assert jobs.save(job_id, record("failed", message="why"))
    assert not jobs.save(job_id, record("inserting"))
    assert jobs.load(job_id)["state"] == "failed"


def import_with_job(store, table: str, job_id: str, fail_after: bool = False) -> None:
    def on_commit(conn, count: int) -> None:
        store.jobs.commit_with(conn, job_id, record("done", rows_inserted=count))
        if fail_after:
            raise RuntimeError("the COMMIT did not happen")

    store.write_rows(table, ORDERS, demo_rows(3), "append", False, on_commit)


def test_done_commits_with_the_rows(store_url: str, table: str) -> None:
    store = open_store(store_url)
    seed(store, 0, table)
    job_id = new_id()
    store.jobs.save(job_id, record("inserting"))
    import_with_job(store, table, job_id)
    assert store.count(table) == 3
    # PostgreSQL and MySQL: done in the same transaction. SQLite: committing until the worker saves done, and a worker that
    # died in between is settled by the marker its transaction left in the data file.
    expected = "committing" if store_url.startswith("sqlite") else "done"
    assert store.jobs.load(job_id)["state"] == expected
    settled = store.jobs.settle(job_id, record("failed", message="stopped"))
    assert (settled["state"], settled["rows_inserted"]) == ("done", 3)


def test_a_rolled_back_import_is_never_done(store_url: str, table: str) -> None:
    store = open_store(store_url)
    seed(store, 0, table)
    job_id = new_id()
    store.jobs.save(job_id, record("inserting"))
    with pytest.raises(RuntimeError):
        import_with_job(store, table, job_id, fail_after=True)
    assert store.count(table) == 0
    assert store.jobs.load(job_id)["state"] != "done"
    assert store.jobs.settle(job_id, record("failed", message="stopped"))["state"] == "failed"


def test_a_job_ended_elsewhere_cannot_commit(store_url: str, table: str) -> None:
    store = open_store(store_url)
    seed(store, 0, table)
    job_id = new_id()
    store.jobs.save(job_id, record("inserting"))
    assert store.jobs.settle(job_id, record("failed", message="stopped"))["state"] == "failed"
    with pytest.raises(Conflict, match="nothing was written"):
        import_with_job(store, table, job_id)
    assert store.count(table) == 0 and store.jobs.load(job_id)["message"] == "stopped"


def test_jobs_not_seen_are_orphans_and_the_heartbeat_keeps_only_the_live_ones(store_url: str) -> None:
    """A job is kept alive by its instance's heartbeat only while that instance names it (a live task runs it):
    this instance's job whose task has ended is an orphan like a dead instance's."""
    jobs = open_store(store_url).jobs
    live, lost, theirs, ended = new_id(), new_id(), new_id(), new_id()
    for job_id in (live, lost):
        jobs.save(job_id, record("inserting", instance="me"))
    jobs.save(theirs, record("inserting", instance=f"gone-{theirs}"))
    jobs.save(ended, record("done", instance=f"gone-{theirs}"))
    time.sleep(0.3)
    jobs.heartbeat("me", [live])
    orphans = jobs.orphans(timeout=0.2)
    assert theirs in orphans and lost in orphans and live not in orphans and ended not in orphans
    jobs.heartbeat(f"gone-{theirs}", [theirs])
    assert theirs not in jobs.orphans(timeout=0.2)
    for job_id in (live, lost, theirs):  # the test database is shared: leave no running job behind
        jobs.settle(job_id, record("failed", message="test over"))
