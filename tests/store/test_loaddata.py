"""MySQL's LOAD DATA encoding: the compiled encoder (``store/_loaddata.c``) gives the same bytes as the Python
one (``mysql._py_encoder``, the reference) on generated rows of every kind of value, and the Python one says what
LOAD DATA reads (the MariaDB tests load its output: tests/store/test_mysql.py)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheetstream.store import Column
from sheetstream.store import mysql as store

from ..helpers import missing

KINDS = ["integer", "float", "numeric", "text", "date", "timestamp", "time", "boolean"]
ZONES = st.sampled_from([None, timezone.utc, timezone(timedelta(hours=-3, minutes=-30))])
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12) | st.sampled_from(
    ["a\\b", "tab\there", "line\nbreak", "cr\r", "\\N", "None", "é€😀", ""])
ANY = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True),
    st.decimals(allow_nan=True), st.dates(), st.datetimes(timezones=ZONES), st.times(timezones=ZONES), TEXT,
    st.timedeltas())
#: What each kind of column holds after an import's checks, and now and then anything (write_rows takes any row).
VALUES = {"text": st.none() | TEXT | ANY, "boolean": st.none() | st.booleans() | st.integers(-2, 2)}


@st.composite
def blocks(draw) -> tuple[list[Column], list[tuple[int, list]]]:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=6))
    columns = [Column(name=f"c{i}", kind=k) for i, k in enumerate(kinds)]
    row = st.tuples(*(VALUES.get(k, ANY) for k in kinds)).map(list)
    numbers = draw(st.lists(st.integers(1, 2**40), min_size=0, max_size=20))
    return columns, [(n, draw(row)) for n in numbers]


@pytest.fixture(scope="module")
def compiled():
    if store._c_encode is None:
        missing("the compiled LOAD DATA encoder was not built (no C compiler?)")
    return store._c_encode


@settings(max_examples=400, deadline=None)
@given(blocks())
def test_the_compiled_encoder_writes_the_bytes_of_the_python_one(compiled, block) -> None:
    columns, rows = block
    assert store._encoder(columns)(rows) == store._py_encoder(columns)(rows)


def test_what_load_data_reads() -> None:
    columns = [Column(name=k, kind=k) for k in KINDS]
    rows = [(7, [-3, 1.5, Decimal("1E+3"), "a\tb\\c\nd\re", date(999, 1, 2), datetime(2024, 1, 2, 10, 0, 0, 5),
                 time(23, 59, 58), True]),
            (9, [2**64 - 1, None, None, None, None, datetime(2024, 1, 2), time(0, 0, 0, 120), False])]
    expected = (b"-3\t1.5\t1E+3\ta\\tb\\\\c\\nd\\re\t0999-01-02\t2024-01-02 10:00:00.000005\t23:59:58\t1\t7\n"
                b"18446744073709551615\t\\N\t\\N\t\\N\t\\N\t2024-01-02 00:00:00\t00:00:00.000120\t0\t9\n")
    assert store._py_encoder(columns)(rows) == expected
    assert store._encoder(columns)(rows) == expected
    assert store._encoder(columns)([]) == store._py_encoder(columns)([]) == b""
