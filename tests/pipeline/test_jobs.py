"""The import job's life cycle run directly (as a worker runs it): states, outcomes, cancellation, the record, and
what happens when its server is gone or the job was settled elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from sheetstream.config import ExportOptions
from sheetstream.formats.xlsx import write_xlsx
from sheetstream.pipeline.exports import export_workbook
from sheetstream.pipeline.jobs import STOPPED, UNRECORDED, Job, JobBoard, run_import_job
from sheetstream.pipeline.lifeline import Lifeline
from sheetstream.pipeline.query import ExportQuery
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore


def workbook(path: Path, rows: list, header: list[str] | None = None) -> Path:
    path.write_bytes(b"".join(write_xlsx(rows, header or [c.name for c in ORDERS])))
    return path


def test_a_good_import_ends_done_and_its_record_says_so(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 0)
    job = run_import_job(store, Job(table="orders"), workbook(tmp_path / "in.xlsx", list(demo_rows(50))))
    assert (job.state, job.error, job.rows_read, job.rows_inserted) == ("done", None, 50, 50)
    assert job.message == "50 rows written to 'orders' (add new rows)" and job.finished_at is not None
    saved = JobBoard(store.jobs).load(job.id)
    assert saved is not None and saved.state == "done" and saved.rows_inserted == 50
    assert store.count("orders") == 50


def test_a_dry_run_validates_and_writes_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 0)
    job = run_import_job(store, Job(table="orders", dry_run=True), workbook(tmp_path / "in.xlsx", list(demo_rows(5))))
    assert job.state == "done" and job.rows_inserted == 0 and "checked 5 rows: ready to import" in job.message
    assert store.count("orders") == 0


def test_a_bad_file_ends_failed_with_its_code_and_problems(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 3)
    rows = [list(r) for r in demo_rows(3)]
    rows[1][6] = "many"  # quantity
    job = run_import_job(store, Job(table="orders", mode="replace"), workbook(tmp_path / "in.xlsx", rows))
    assert job.state == "failed" and job.error == "invalid" and job.error_total == 1
    assert job.errors[0]["cell"] == "G3" and "nothing was written" in job.message
    not_xlsx = tmp_path / "not.xlsx"
    not_xlsx.write_bytes(b"id,customer\n1,x\n")
    job = run_import_job(store, Job(table="orders"), not_xlsx)
    assert job.state == "failed" and job.error == "not_xlsx"
    assert store.count("orders") == 3


def test_a_cancel_request_rolls_the_import_back(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 0)
    job = Job(table="orders")
    board = JobBoard(store.jobs)
    board.save(job, force=True)
    board.request_cancel(job.id)
    board.save(job, force=True)  # a progress save never clears the request
    assert board.cancel_requested(job.id)
    done = run_import_job(store, job, workbook(tmp_path / "in.xlsx", list(demo_rows(20_000))))
    assert done.state == "failed" and done.error == "cancelled" and store.count("orders") == 0


def test_the_export_task_returns_what_it_wrote(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    chunks = export_workbook(store, "orders", ExportQuery(store.columns("orders"), limit=4), ExportOptions())
    body = b""
    try:
        while True:
            body += next(chunks)
    except StopIteration as stop:
        stats = stop.value
    assert body.startswith(b"PK") and stats.rows == 4 and stats.sheets == ["orders"]


def gone_process() -> Lifeline:
    """The lifeline of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(child.pid).create_time()
    child.wait()
    return Lifeline(child.pid, started)


def test_a_worker_whose_server_is_gone_does_not_commit(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 2)
    book = workbook(tmp_path / "in.xlsx", list(demo_rows(5)))
    reused = Lifeline(os.getppid(), psutil.Process(os.getppid()).create_time() - 1)  # a pid taken by another
    for lifeline in (gone_process(), reused):
        job = run_import_job(store, Job(table="orders", mode="replace"), book, lifeline=lifeline)
        assert (job.state, job.error, job.message) == ("failed", "server_stopped", STOPPED)
        assert store.count("orders") == 2
    assert run_import_job(store, Job(table="orders", mode="replace"), book,
                          lifeline=Lifeline.of_this_process()).state == "done"


def test_a_job_settled_elsewhere_rolls_its_import_back(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 2)
    board = JobBoard(store.jobs, instance="dead-instance")
    job = Job(table="orders", mode="replace")
    board.save(job, force=True)
    time.sleep(0.2)
    reaped = JobBoard(store.jobs, instance="another").reap(timeout=0.1)
    assert [(j.id, j.state, j.error, j.message) for j in reaped] == [(job.id, "failed", "server_stopped", STOPPED)]
    done = run_import_job(store, job, workbook(tmp_path / "in.xlsx", list(demo_rows(5))))
    assert (done.state, done.message) == ("failed", STOPPED)  # the record that stands
    assert store.count("orders") == 2


def test_the_sweep_settles_this_instances_own_jobs_once_no_task_runs_them(tmp_path: Path) -> None:
    """The heartbeat names the jobs with a live task; a job of this instance whose task ended without recording its
    end (the database was away) ages like a dead instance's, and the sweep says why it failed."""
    store = SqliteStore(tmp_path / "db.sqlite")
    board = JobBoard(store.jobs, instance="me")
    running, lost = Job(table="orders"), Job(table="orders")
    for job in (running, lost):
        board.save(job, force=True)
    time.sleep(0.2)
    board.heartbeat([running.id])
    reaped = board.reap(timeout=0.1)
    assert [(j.id, j.state, j.error, j.message) for j in reaped] == [(lost.id, "failed", "database_unavailable",
                                                                     UNRECORDED)]
    assert board.load(running.id).state == "receiving"
