"""Imports that help people fix their files: every problem in one pass, warnings, previews, refusals by row.
Run directly (as a worker runs them) on SQLite and PostgreSQL."""

from __future__ import annotations

import gc
import tracemalloc
from decimal import Decimal
from pathlib import Path

import openpyxl
import psycopg
import pytest

from sheetstream.errors import Cancelled, TooMuchCpu
from sheetstream.formats.xlsx import write_xlsx
from sheetstream.pipeline.imports import run_import
from sheetstream.pipeline.jobs import Job, run_import_job
from sheetstream.server.errors import status_of
from sheetstream.store import open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore

from ..helpers import build, parts, rows_of, sheet

HEADER = [c.name for c in ORDERS]


@pytest.fixture
def target(store_url: str, request: pytest.FixtureRequest):
    """(store, table) with the demo table (10 rows) in SQLite or PostgreSQL."""
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("db_table")
    seed(store, 10, table)
    return store, table


def workbook(path: Path, rows, header: list[str] = HEADER) -> Path:
    path.write_bytes(b"".join(write_xlsx(rows, header, sheet_name="orders")))
    return path


def edited_download(path: Path, rows: int = 10, extra_column: bool = False) -> Path:
    """The export as a person edits it: four cells changed by hand (openpyxl saves it, as a spreadsheet would)."""
    workbook(path, demo_rows(rows))
    book = openpyxl.load_workbook(path)
    sheet = book.active
    sheet["D3"] = "lots"  # amount: a word
    sheet["E4"] = "2024-13-45"  # ordered_on: a bad date
    sheet["B5"] = None  # customer: emptied
    sheet["G6"] = 3.5  # quantity: not whole
    if extra_column:
        sheet["L1"], sheet["L2"] = "helper", "my notes"
    book.save(path)
    return path


def test_four_edits_show_every_cell_and_key_problem_at_once(target, tmp_path: Path) -> None:
    store, table = target
    before = rows_of(store, table)
    job = run_import_job(store, Job(table=table), edited_download(tmp_path / "orders.xlsx", extra_column=True))
    assert job.state == "failed" and job.error == "invalid" and job.error_total == 14
    cells = {(e["cell"], e["kind"]): e for e in job.errors}
    assert set(cells) == {("D3", "cell"), ("E4", "cell"), ("B5", "cell"), ("G6", "cell"),
                          *((f"A{r}", "existing") for r in range(2, 12))}
    assert cells["D3", "cell"]["message"] == "'lots' is not a number" and cells["D3", "cell"]["value"] == "lots"
    assert "is not a date" in cells["E4", "cell"]["message"]
    assert cells["B5", "cell"]["message"] == "is empty; the column requires a value"
    assert cells["G6", "cell"]["message"] == "3.5 is not a whole number"
    existing = cells["A2", "existing"]
    assert existing["value"] == 1 and existing["sheet"] == "orders"
    assert existing["message"] == f"id 1 already exists in {table}: choose Update existing rows and add new ones (mode upsert), or Replace the whole table (mode replace)"
    assert "4 cell(s) that do not fit their column" in job.message
    assert "10 key(s) that already exist in the table (choose Update existing rows and add new ones: mode upsert" in job.message
    assert "nothing was written" in job.message
    assert [w["cell"] for w in job.warnings] == ["L1"] and "'helper' is not in the table and was ignored" in job.warnings[0]["message"]
    assert rows_of(store, table) == before


def test_extra_columns_can_be_refused(target, tmp_path: Path) -> None:
    store, table = target
    path = workbook(tmp_path / "extra.xlsx", [(*r, "x") for r in demo_rows(12)][10:], [*HEADER, "helper"])
    job = run_import_job(store, Job(table=table, extra_columns="error"), path)
    assert job.state == "failed" and job.warnings == []
    assert [(e["cell"], e["kind"]) for e in job.errors] == [("L1", "header")]
    assert "unknown column 'helper'" in job.errors[0]["message"]
    job = run_import_job(store, Job(table=table), path)
    assert job.state == "done" and job.rows_inserted == 2 and [w["column"] for w in job.warnings] == ["helper"]
    assert "(1 warning(s))" in job.message


def test_header_problems_do_not_hide_cell_problems(target, tmp_path: Path) -> None:
    store, table = target
    rows = [(11, "x", "y", None), ("twelve", "x", "y", None)]
    job = run_import_job(store, Job(table=table), workbook(tmp_path / "h.xlsx", rows, ["id", "customer", "id", "note"]))
    assert [(e["cell"], e["kind"]) for e in job.errors][:2] == [("C1", "header"), ("1:1", "header")]
    assert ("A3", "cell") in [(e["cell"], e["kind"]) for e in job.errors]


def test_keys_repeated_in_the_sheet_are_problems_in_every_mode(target, tmp_path: Path) -> None:
    store, table = target
    rows = list(demo_rows(14))[10:]
    rows += [rows[0], rows[1], rows[0]]  # 11, 12, 13, 14, 11, 12, 11: rows 6, 7 and 8 repeat a key
    path = workbook(tmp_path / "dup.xlsx", rows)
    for mode in ("append", "upsert", "replace"):
        job = run_import_job(store, Job(table=table, mode=mode), path)
        assert job.state == "failed" and job.error_total == 3, mode
        assert [(e["cell"], e["kind"]) for e in job.errors] == [("A6", "duplicate"), ("A7", "duplicate"),
                                                               ("A8", "duplicate")]
        assert job.errors[0]["message"] == "id 11 appears more than once in the sheet (first in row 2): keep one row per key"
        assert job.errors[2]["message"].endswith("(first in row 2): keep one row per key")
    assert store.count(table) == 10


def changed_rows() -> list[tuple]:
    """Rows 1-10 of the demo with row 2's customer and row 3's amount changed, and rows 11-12 new."""
    rows = [list(r) for r in demo_rows(12)]
    rows[1][1] = "Renamed"
    rows[2][3] = Decimal("1.25")
    return [tuple(r) for r in rows[1:]]  # row 1 is left out (replace deletes it)


@pytest.mark.parametrize("mode,counts", [
    ("upsert", {"inserted": 2, "updated": 2, "unchanged": 7, "deleted": 0}),
    ("replace", {"inserted": 2, "updated": 2, "unchanged": 7, "deleted": 1}),
])
def test_preview_counts_and_changes(target, tmp_path: Path, mode: str, counts: dict) -> None:
    store, table = target
    before = rows_of(store, table)
    job = run_import_job(store, Job(table=table, mode=mode, dry_run=True), workbook(tmp_path / "p.xlsx", changed_rows()))
    assert job.state == "done", job.message
    preview = job.preview
    assert {k: preview[k] for k in counts} == counts
    old = list(demo_rows(3))
    assert preview["changes"] == [
        {"row": 2, "sheet": "orders", "cell": "B2", "column": "customer", "old": old[1][1], "new": "Renamed"},
        {"row": 3, "sheet": "orders", "cell": "D3", "column": "amount", "old": str(old[2][3]), "new": "1.25"},
    ]
    assert "it would add 2, update 2, leave 7 unchanged" in job.message
    assert rows_of(store, table) == before
    real = run_import_job(store, Job(table=table, mode=mode), workbook(tmp_path / "p.xlsx", changed_rows()))
    assert real.state == "done" and store.count(table) == 12 - counts["deleted"]


def test_preview_of_an_append(target, tmp_path: Path) -> None:
    store, table = target
    job = run_import_job(store, Job(table=table, dry_run=True), workbook(tmp_path / "a.xlsx", list(demo_rows(15))[10:]))
    assert job.state == "done"
    assert {k: job.preview[k] for k in ("inserted", "updated", "unchanged", "deleted")} == \
        {"inserted": 5, "updated": 0, "unchanged": 0, "deleted": 0}
    assert job.preview["changes"] == [] and store.count(table) == 10


def add_check(store, table: str) -> None:
    """A rule only the database knows: quantity below 400 (rows of the demo go up to 499)."""
    if store.url.startswith("postgresql"):
        with psycopg.connect(store.url, autocommit=True) as conn:
            conn.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT small_quantity CHECK (quantity < 400) NOT VALID')
        return
    if store.url.startswith("mysql"):
        with store.connect(autocommit=True) as conn:
            conn.execute("SET SESSION check_constraint_checks = 0")  # MariaDB's NOT VALID: existing rows unchecked
            conn.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT small_quantity CHECK (quantity < 400)')
        return
    import sqlite3

    conn = sqlite3.connect(store.path)
    conn.execute(f'CREATE TRIGGER small_quantity BEFORE INSERT ON "{table}" WHEN NEW.quantity >= 400 '
                 "BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: small_quantity'); END")
    conn.close()


def test_a_refusal_at_write_time_names_its_sheet_row(target, tmp_path: Path) -> None:
    store, table = target
    add_check(store, table)
    rows = [(100 + i, "x", None, Decimal(1), *r[4:6], 10, True, None, None, None) for i, r in enumerate(demo_rows(30))]
    rows[17] = (*rows[17][:6], 450, *rows[17][7:])  # sheet row 19
    rows[25] = (*rows[25][:6], 499, *rows[25][7:])
    job = run_import_job(store, Job(table=table), workbook(tmp_path / "r.xlsx", rows))
    assert job.state == "failed" and job.error == "invalid", job.message
    assert [(e["cell"], e["kind"]) for e in job.errors] == [("A19", "refused")]
    assert "small_quantity" in job.errors[0]["message"] and "row 19" in job.message
    assert store.count(table) == 10


@pytest.mark.postgres
def test_a_value_postgres_refuses_while_loading_names_its_sheet_row(pg_url: str, pg_table: str, tmp_path: Path) -> None:
    store = open_store(pg_url)
    seed(store, 0, pg_table)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'ALTER TABLE "{pg_table}" ALTER COLUMN quantity TYPE integer')  # 32 bits
    rows = [list(r) for r in demo_rows(40)]
    rows[33][6] = 3_000_000_000
    rows[5][1] = None  # a cell problem earlier on: row 7 is staged without its customer
    path = workbook(tmp_path / "big.xlsx", [tuple(r) for r in rows])
    job = run_import_job(store, Job(table=pg_table), path)
    assert job.state == "failed" and [(e["cell"], e["kind"]) for e in job.errors] == [("G35", "refused")], job.errors
    assert "out of range" in job.errors[0]["message"]


def test_memory_stays_flat_for_a_large_preview(tmp_path: Path) -> None:
    """A dry run's peak Python memory does not grow with the rows: 10,000 and 100,000 rows, same ceiling."""
    store = open_store(f"sqlite:///{tmp_path / 'big.db'}")
    seed(store, 100_000)
    peaks = {}
    for count in (10_000, 100_000):
        path = workbook(tmp_path / f"{count}.xlsx", ((r[0], f"new {r[0]}", *r[2:]) for r in demo_rows(count)))
        gc.collect()
        tracemalloc.start()
        try:
            job = run_import_job(store, Job(table="orders", mode="upsert", dry_run=True), path)
            peaks[count] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert job.state == "done" and job.preview["updated"] == count and len(job.preview["changes"]) == 20
    print(f"peak traced memory: {peaks[10_000] / 2**20:.1f} MB for 10,000 rows, {peaks[100_000] / 2**20:.1f} MB "
          "for 100,000")
    assert peaks[100_000] < 1.5 * peaks[10_000] + (2 << 20)
    assert peaks[100_000] < 30 << 20


def _header_then_empty_rows(path: Path, rows: int) -> Path:
    """The header, then ``rows`` rows without a value (a formatted, empty range): megabytes that give no row."""
    header = "".join(f'<c r="{chr(65 + i)}1" t="inlineStr"><is><t>{name}</t></is></c>' for i, name in enumerate(HEADER))
    empty = "".join(f'<row r="{r}" ht="20" customHeight="1"/>' for r in range(2, rows + 2))
    return build(path, parts(sheet(f'<row r="1">{header}</row>{empty}')))


def test_a_sheet_that_gives_no_row_is_still_reported_and_can_be_cancelled(tmp_path: Path) -> None:
    """Progress is reported (and a cancel request seen) about every megabyte read, not only every 5,000 rows:
    4 MB of rows without a value give no row to count, and were read to the end before a cancel could stop them."""
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 0)
    reports: list[str] = []

    def report(job: Job) -> None:
        reports.append(job.state)
        if len(reports) == 5:
            raise Cancelled("the import was cancelled")

    with pytest.raises(Cancelled):
        run_import(store, Job(table="orders"), _header_then_empty_rows(tmp_path / "empty.xlsx", 100_000), report)
    assert reports == ["parsing", "parsing", "inserting", "inserting", "inserting"]
    assert store.count("orders") == 0


def test_an_import_past_its_cpu_bound_fails_with_a_clear_error(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 0)
    path = workbook(tmp_path / "in.xlsx", demo_rows(100))
    with pytest.raises(TooMuchCpu) as caught:
        run_import(store, Job(table="orders"), path, lambda job: None, cpu_seconds=1e-6)
    assert "SHEETSTREAM_IMPORT_CPU_SECONDS" in caught.value.message and "nothing was written" in caught.value.message
    assert status_of(caught.value) == 422 and caught.value.code == "cpu_limit"
    assert store.count("orders") == 0
    assert run_import(store, Job(table="orders"), path, lambda job: None).rows_inserted == 100  # under the default
