"""An import read in two processes (``split``) writes and reports exactly what one process would: the same
rows, the same problems in the same order, refusals at the same sheet rows, across many blocks; on PostgreSQL
(COPY) and MariaDB (LOAD DATA LOCAL), the stores that take rows encoded in another process."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from sheetstream.formats.xlsx import package, write_xlsx
from sheetstream.pipeline.jobs import Job, run_import_job
from sheetstream.runtime.forked import forked_map
from sheetstream.store import open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed

from ..helpers import rows_of

HEADER = [c.name for c in ORDERS]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package, "_BLOCK", 16 << 10)  # a few hundred rows per block: many blocks


@pytest.fixture(params=[pytest.param("pg_url", marks=pytest.mark.postgres), "mysql_url"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A database server's URL and a unique table name in it, dropped afterwards."""
    url = request.getfixturevalue(request.param)
    table = f"t_{uuid.uuid4().hex[:10]}"
    yield url, table
    open_store(url).drop_table(table)


def _workbook(path: Path, rows) -> Path:
    path.write_bytes(b"".join(write_xlsx(rows, HEADER, sheet_name="orders")))
    return path


def _both(store, table: str, path: Path, **job) -> tuple[Job, list, Job, list]:
    """The import in one process, then in two, each on the table as it was; the jobs and the table after each."""
    results = []
    for split in (None, forked_map):
        seed(store, 0, table)
        done = run_import_job(store, Job(table=table, **job), path, split=split)
        results += [done, rows_of(store, table)]
    return tuple(results)  # type: ignore[return-value]


def _awkward_rows(count: int) -> list[tuple]:
    """Demo rows, with the texts COPY's text format must escape and the numbers it must keep exactly."""
    rows = [list(r) for r in demo_rows(count)]
    for i, text in enumerate(["back\\slash", "tab\tand\nnew line\r\n", "\\N", "trailing \\", "ünïcödé 李 📦", ""]):
        rows[i * 97][10] = text
    rows[5][3] = Decimal("-0.01")
    rows[6][9] = 1e-300
    rows[7][9] = 123456789.123456789
    return [tuple(r) for r in rows]


def test_two_processes_write_the_same_rows(server: tuple[str, str], tmp_path: Path) -> None:
    url, table = server
    store = open_store(url)
    path = _workbook(tmp_path / "rows.xlsx", _awkward_rows(3_000))
    one, one_rows, two, two_rows = _both(store, table, path)
    assert one.state == two.state == "done", (one.message, two.message)
    assert one.rows_inserted == two.rows_inserted == one.rows_read == two.rows_read == 3_000
    assert one_rows == two_rows
    assert [r[10] for r in two_rows[:6 * 97:97]] == ["back\\slash", "tab\tand\nnew line\r\n", "\\N", "trailing \\",
                                                     "ünïcödé 李 📦", ""]


def test_two_processes_report_the_same_problems_in_the_same_order(server: tuple[str, str], tmp_path: Path) -> None:
    url, table = server
    rows = [list(r) for r in demo_rows(3_000)]
    for i in range(3, 3_000, 23):  # problems in every block, more than are listed
        rows[i][1] = None  # customer is required
        rows[i][4] = "not a date"
    rows[2_500][0] = rows[100][0]  # a key repeated far apart
    path = _workbook(tmp_path / "bad.xlsx", [tuple(r) for r in rows])
    store = open_store(url)
    one, one_rows, two, two_rows = _both(store, table, path)
    assert one.state == two.state == "failed" and one.error == two.error == "invalid"
    assert one.error_total == two.error_total == 2 * len(range(3, 3_000, 23)) + 1
    assert one.errors == two.errors and len(two.errors) == 100
    assert one.message == two.message
    assert one_rows == two_rows == []


def test_a_refused_value_names_its_row_from_either_process(server: tuple[str, str], tmp_path: Path) -> None:
    url, table = server
    store = open_store(url)
    seed(store, 0, table)
    if url.startswith("postgres"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'ALTER TABLE "{table}" ALTER COLUMN quantity TYPE integer')  # 32 bits
    else:
        with store.connect(autocommit=True) as conn:
            conn.execute(f'ALTER TABLE "{table}" MODIFY quantity int NOT NULL')  # 32 bits
    for at in (1_234, 2_345):  # rows in blocks read by either process
        rows = [list(r) for r in demo_rows(3_000)]
        rows[at][6] = 3_000_000_000
        path = _workbook(tmp_path / f"big{at}.xlsx", [tuple(r) for r in rows])
        job = run_import_job(store, Job(table=table), path, split=forked_map)
        assert job.state == "failed" and [(e["cell"], e["kind"]) for e in job.errors] == [(f"G{at + 2}", "refused")]
        assert "out of range" in job.errors[0]["message"].lower()
    assert store.count(table) == 0


def test_sqlite_reads_in_one_process_when_given_a_split(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed(store, 0)
    path = _workbook(tmp_path / "rows.xlsx", demo_rows(1_000))
    job = run_import_job(store, Job(table="orders"), path, split=forked_map)
    assert job.state == "done" and store.count("orders") == 1_000


def test_a_cancelled_import_leaves_no_helper_and_nothing_written(server: tuple[str, str], tmp_path: Path) -> None:
    import psutil

    from sheetstream.errors import Cancelled
    from sheetstream.pipeline.imports import run_import

    url, table = server
    store = open_store(url)
    seed(store, 0, table)
    path = _workbook(tmp_path / "rows.xlsx", demo_rows(3_000))
    seen = []
    before = set(psutil.Process().children())  # a fork server or resource tracker that earlier tests started

    def report(job: Job) -> None:
        seen.append(job.rows_read)
        if job.rows_read > 1_000:  # mid-way, while the helper reads its blocks
            assert set(psutil.Process().children()) - before, "the helper should be running"
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        run_import(store, Job(table=table), path, report, split=forked_map)
    assert set(psutil.Process().children()) - before == set() and store.count(table) == 0
