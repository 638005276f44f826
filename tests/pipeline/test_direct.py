"""The direct path: an import that needs no review writes straight into the table (no staging table), and any
problem on the way gives exactly the staged import's answer, with nothing written. SQLite, PostgreSQL and
MySQL/MariaDB (with LOAD DATA LOCAL, and with multi-row INSERTs where it is not allowed)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.pipeline.jobs import Job, run_import_job
from sheetstream.store import Column, open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.mysql import MysqlStore
from sheetstream.store.staging import Staged, direct_allowed

from ..helpers import rows_of

HEADER = [c.name for c in ORDERS]


@pytest.fixture
def target(store_url: str, request: pytest.FixtureRequest):
    store = open_store(store_url)
    table = request.getfixturevalue("db_table")
    seed(store, 10, table)
    return store, table


@pytest.fixture
def staged_kinds(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every Staged made, as its ``direct`` flag."""
    made: list[bool] = []
    original = Staged.__init__

    def spy(self, *args, **kwargs) -> None:
        original(self, *args, **kwargs)
        made.append(self.direct)

    monkeypatch.setattr(Staged, "__init__", spy)
    return made


def workbook(path: Path, rows) -> Path:
    path.write_bytes(b"".join(write_xlsx(rows, HEADER, sheet_name="orders")))
    return path


def test_which_imports_skip_the_staging_table() -> None:
    keyed, plain = [Column("id", "integer", primary_key=True)], [Column("id", "integer")]
    assert direct_allowed(keyed, "replace", dry_run=False)
    assert direct_allowed(plain, "append", dry_run=False)
    assert not direct_allowed(keyed, "append", dry_run=False)  # existing keys: the review lists them
    assert direct_allowed(keyed, "append", dry_run=False, empty=lambda: True)  # none can exist yet
    assert not direct_allowed(keyed, "append", dry_run=True, empty=lambda: True)
    assert not direct_allowed(keyed, "upsert", dry_run=False)
    assert not direct_allowed(plain, "replace", dry_run=True)  # the preview reads the staging table


def test_a_replace_goes_straight_into_the_table(target, tmp_path: Path, staged_kinds: list[bool]) -> None:
    store, table = target
    rows = list(demo_rows(40))[5:]
    job = run_import_job(store, Job(table=table, mode="replace"), workbook(tmp_path / "r.xlsx", rows))
    assert job.state == "done" and job.rows_inserted == 35 and job.rows_read == 35, job.message
    assert staged_kinds == [True]
    assert [r[0] for r in rows_of(store, table)] == list(range(6, 41))


def test_an_append_into_a_table_without_a_key_goes_straight_in(store_url: str, db_table: str, tmp_path: Path,
                                                                staged_kinds: list[bool]) -> None:
    store = open_store(store_url)
    store.create_table(db_table, [Column(c.name, c.kind, precision=c.precision, scale=c.scale, length=c.length)
                                  for c in ORDERS])
    path = workbook(tmp_path / "a.xlsx", list(demo_rows(12)))
    for _ in range(2):  # the same rows twice: no key, nothing to review
        job = run_import_job(store, Job(table=db_table), path)
        assert job.state == "done" and job.rows_inserted == 12, job.message
    assert staged_kinds == [True, True] and store.count(db_table) == 24


def _problems(job: Job) -> tuple:
    return job.state, job.error, job.error_total, job.errors, job.message, job.problem_groups


def _faulty(kind: str) -> list[tuple]:
    rows = [list(r) for r in demo_rows(30)]
    if kind == "cell":
        rows[20][3] = "lots"  # amount: a word (sheet row 22)
        rows[3][6] = 2.5  # quantity: not whole (row 5)
    elif kind == "duplicate":
        rows[25][0] = rows[2][0]  # a key repeated (row 27 repeats row 4)
    elif kind == "null":
        rows[15][1] = None  # customer: required
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("kind", ["cell", "duplicate", "null"])
def test_a_problem_in_a_direct_import_gives_the_staged_answer(target, tmp_path: Path, kind: str,
                                                              staged_kinds: list[bool]) -> None:
    store, table = target
    before = rows_of(store, table)
    path = workbook(tmp_path / f"{kind}.xlsx", _faulty(kind))
    direct = run_import_job(store, Job(table=table, mode="replace"), path)
    assert staged_kinds == [True, False]  # tried directly, then staged for the review
    assert rows_of(store, table) == before
    staged_only = open_store(store.url)
    type(staged_only).direct = False
    try:
        staged = run_import_job(staged_only, Job(table=table, mode="replace"), path)
    finally:
        type(staged_only).direct = True
    assert direct.state == "failed" and direct.error == "invalid" and direct.error_total > 0
    assert _problems(direct) == _problems(staged)
    assert rows_of(store, table) == before


def test_a_row_the_database_refuses_in_a_direct_import_is_named_and_nothing_is_written(
        target, tmp_path: Path, staged_kinds: list[bool]) -> None:
    from .test_imports import add_check

    store, table = target
    add_check(store, table)
    before = rows_of(store, table)
    rows = [(100 + i, "x", None, Decimal(1), *r[4:6], 10, True, None, None, None) for i, r in enumerate(demo_rows(30))]
    rows[17] = (*rows[17][:6], 450, *rows[17][7:])  # sheet row 19
    job = run_import_job(store, Job(table=table, mode="replace"), workbook(tmp_path / "r.xlsx", rows))
    assert job.state == "failed" and job.error == "invalid", job.message
    assert [(e["cell"], e["kind"]) for e in job.errors] == [("A19", "refused")]
    assert staged_kinds == [True, False]
    assert rows_of(store, table) == before  # the replace's DELETE rolled back with the rest


@pytest.mark.parametrize("kind", [None, "cell", "duplicate"])
def test_mysql_without_load_data_goes_straight_in_with_inserts(mysql_url: str, db_table: str, tmp_path: Path,
                                                               kind: str | None, staged_kinds: list[bool]) -> None:
    """Where the server does not allow LOAD DATA LOCAL: multi-row INSERTs into the table, the same answers."""
    store = MysqlStore(mysql_url, load="insert")
    seed(store, 10, db_table)
    before = rows_of(store, db_table)
    staged_kinds.clear()  # the seed's
    rows = list(demo_rows(30)) if kind is None else _faulty(kind)
    job = run_import_job(store, Job(table=db_table, mode="replace"), workbook(tmp_path / "i.xlsx", rows))
    if kind is None:
        assert job.state == "done" and job.rows_inserted == 30 and staged_kinds == [True], job.message
        assert [r[0] for r in rows_of(store, db_table)] == list(range(1, 31))
    else:
        assert job.state == "failed" and job.error == "invalid" and staged_kinds == [True, False], job.message
        assert rows_of(store, db_table) == before


@pytest.mark.parametrize("kind", [None, "duplicate", "cell"])
def test_an_append_into_an_empty_keyed_table_goes_straight_in(store_url: str, db_table: str, tmp_path: Path,
                                                              kind: str | None, staged_kinds: list[bool]) -> None:
    """No key can exist in an empty table: the rows go straight in; a key repeated in the sheet (which the table's
    index refuses) or a bad cell gives the staged import's answer, with nothing written."""
    store = open_store(store_url)
    seed(store, 0, db_table)
    staged_kinds.clear()
    rows = list(demo_rows(30)) if kind is None else _faulty(kind)
    job = run_import_job(store, Job(table=db_table, mode="append"), workbook(tmp_path / "e.xlsx", rows))
    if kind is None:
        assert job.state == "done" and job.rows_inserted == 30 and staged_kinds == [True], job.message
        assert [r[0] for r in rows_of(store, db_table)] == list(range(1, 31))
        again = run_import_job(store, Job(table=db_table, mode="append"), workbook(tmp_path / "e.xlsx", rows))
        assert staged_kinds == [True, False]  # no longer empty: staged, and every key is listed as existing
        assert again.state == "failed" and again.error_total == 30 and store.count(db_table) == 30
    else:
        assert job.state == "failed" and job.error == "invalid" and staged_kinds == [True, False], job.message
        assert store.count(db_table) == 0
