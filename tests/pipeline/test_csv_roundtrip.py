"""Random rows -> CSV (the export's writer) -> an import of that file -> the same rows, run as a worker runs
imports, on SQLite and PostgreSQL: the CSV reader, the checks and the store together keep every value."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheetstream.formats.csv import write_csv
from sheetstream.pipeline.jobs import Job, run_import_job
from sheetstream.store import Column, open_store

from ..helpers import rows_of

COLUMNS = [Column("id", "integer", nullable=False, primary_key=True), Column("name", "text"),
           Column("amount", "numeric", precision=12, scale=2), Column("ratio", "float"), Column("day", "date"),
           Column("at", "timestamp"), Column("clock", "time"), Column("ok", "boolean")]


def _printable(ch: str) -> bool:  # what a CSV can carry as itself (no NUL, no surrogates, no byte order marks)
    return unicodedata.category(ch) not in ("Cs", "Cc") and ch != "\ufeff" or ch in "\t\n\r"


texts = st.one_of(st.none(), st.text(st.characters().filter(_printable), min_size=1, max_size=30)
                  .filter(lambda t: t.strip() == t or any(c not in " \t\r\n" for c in t)))
rows = st.lists(st.tuples(
    texts,
    st.one_of(st.none(), st.decimals(min_value=-10**9, max_value=10**9, places=2, allow_nan=False)),
    st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=64)),
    st.one_of(st.none(), st.dates(min_value=date(1900, 1, 1), max_value=date(9999, 12, 31))),
    st.one_of(st.none(), st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9999, 12, 31))),
    st.one_of(st.none(), st.times()),
    st.one_of(st.none(), st.booleans()),
), min_size=1, max_size=25)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=rows)
def test_random_rows_come_back_the_same_through_csv(database: str, data, tmp_path: Path, request) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}" if database == "sqlite" else request.getfixturevalue("pg_url")
    table = "t_csv_roundtrip" if database == "sqlite" else request.getfixturevalue("pg_table")
    store = open_store(url)
    store.create_table(table, COLUMNS, replace=True)
    source = [(n, *values) for n, values in enumerate(data, 1)]
    path = tmp_path / "rows.csv"
    path.write_bytes(b"".join(write_csv(source, [c.name for c in COLUMNS])))
    job = run_import_job(store, Job(table=table, format="csv", mode="replace"), path)
    assert job.state == "done", (job.message, job.errors[:3])
    back = rows_of(store, table)
    assert back == [tuple(v for v in row) for row in source]
