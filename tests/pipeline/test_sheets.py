"""Workbooks of several sheets: the export's continuation sheets (``orders (2)``, ``orders (3)``) come back whole,
and any other sheet is left out with a warning that names it. Run directly on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import openpyxl
import pytest

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.pipeline.imports import continuations
from sheetstream.pipeline.jobs import Job, run_import_job
from sheetstream.store import open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed

from ..helpers import rows_of

HEADER = [c.name for c in ORDERS]


@pytest.fixture
def target(store_url: str, request: pytest.FixtureRequest):
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("pg_table")
    seed(store, 0, table)
    return store, table


def split_workbook(path: Path, rows: list, sheet_rows: int = 11) -> Path:
    """The export's shape past a sheet's last row, made small: ``sheet_rows`` rows per sheet, header included."""
    path.write_bytes(b"".join(write_xlsx(rows, HEADER, sheet_name="orders", max_sheet_rows=sheet_rows)))
    return path


def test_continuation_sheets_are_read_as_one(target, tmp_path: Path) -> None:
    store, table = target
    rows = list(demo_rows(25))
    path = split_workbook(tmp_path / "three.xlsx", rows)
    assert openpyxl.load_workbook(path, read_only=True).sheetnames == ["orders", "orders (2)", "orders (3)"]
    job = run_import_job(store, Job(table=table), path)
    assert job.state == "done" and job.rows_read == 25 and job.rows_inserted == 25 and job.warnings == []
    assert rows_of(store, table) == rows


def test_problems_and_keys_are_named_by_their_own_sheet(target, tmp_path: Path) -> None:
    store, table = target
    rows = list(demo_rows(25))
    rows[14] = ("fifteen", *rows[14][1:])  # orders (2), its 5th data row: A6
    rows[23] = (3, *rows[23][1:])  # orders (3), A5: the key of orders' row 4
    job = run_import_job(store, Job(table=table), split_workbook(tmp_path / "bad.xlsx", rows))
    assert job.state == "failed" and job.error_total == 2
    found = {(e["sheet"], e["cell"], e["kind"]): e["message"] for e in job.errors}
    assert found[("orders (2)", "A6", "cell")] == "'fifteen' is not a whole number"
    assert found[("orders (3)", "A5", "duplicate")].startswith("id 3 appears more than once in the sheet (first in row 4 "
                                                               "of sheet 'orders')")
    assert "continuation(s) 'orders (2)', 'orders (3)'" in job.message
    assert rows_of(store, table) == []


def test_a_preview_names_the_cells_of_each_sheet(target, tmp_path: Path) -> None:
    store, table = target
    run_import_job(store, Job(table=table), split_workbook(tmp_path / "first.xlsx", list(demo_rows(25))))
    rows = [(r[0], "Changed" if r[0] == 22 else r[1], *r[2:]) for r in demo_rows(25)]
    job = run_import_job(store, Job(table=table, mode="upsert", dry_run=True), split_workbook(tmp_path / "b.xlsx", rows))
    assert job.preview["updated"] == 1 and job.preview["unchanged"] == 24
    [change] = job.preview["changes"]
    assert (change["sheet"], change["cell"], change["new"]) == ("orders (3)", "B3", "Changed")


def test_other_sheets_are_left_out_with_a_warning(target, tmp_path: Path) -> None:
    store, table = target
    book = openpyxl.Workbook()
    main = book.active
    main.title = "orders"
    notes = book.create_sheet("notes")
    notes.append(["anything"])
    other = book.create_sheet("orders (2)")  # named like a continuation, but another header: not one
    other.append(["id", "something else"])
    main.append(HEADER)
    rows = list(demo_rows(3))
    for row in rows:
        main.append(list(row))
    path = tmp_path / "others.xlsx"
    book.save(path)
    job = run_import_job(store, Job(table=table), path)
    assert job.state == "done" and job.rows_inserted == 3
    [warning] = job.warnings
    assert warning["message"] == ("only sheet 'orders' was imported; the workbook's other sheet(s) were left out: "
                                  "'notes', 'orders (2)' (choose one with sheet=NAME)")
    assert "1 warning" in job.message
    job = run_import_job(store, Job(table=table, sheet="notes"), path)
    assert job.state == "failed" and "'orders', 'orders (2)'" not in (job.message or "")


def test_continuations_by_name() -> None:
    names = ["orders", "orders (3)", "orders (2)", "orders (5)", "other (2)"]
    assert continuations(names, "orders") == ["orders (2)", "orders (3)"]
    assert continuations(["a very long table name that was", "a very long table name th (2)"],
                         "a very long table name that was") == ["a very long table name th (2)"]
    assert continuations(["orders"], "orders") == []


def test_progress_is_the_share_of_the_sheets_xml_read(target, tmp_path: Path) -> None:
    from sheetstream.pipeline.imports import run_import

    store, table = target
    path = split_workbook(tmp_path / "big.xlsx", list(demo_rows(30_000)), sheet_rows=20_001)  # two sheets, ~8 MB XML
    seen: list[float] = []
    run_import(store, Job(table=table), path, lambda job: seen.append(job.progress) if job.progress else None)
    assert len(seen) >= 3 and seen == sorted(seen) and 0 < seen[0] < 0.5 and 0.5 < seen[-1] <= 0.99
