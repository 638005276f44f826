"""The compiled cell checks and COPY encoding (pipeline/_encode.c) against the Python path they stand for
(validate.convert_rows, then PostgreSQL's text encoder, or MySQL's LOAD DATA encoder with booleans as 1 or 0):
random cells -> the same bytes and the same problems."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheetstream.formats.values import Unreadable
from sheetstream.formats.xlsx import CellError
from sheetstream.pipeline import encode
from sheetstream.pipeline.validate import Plan, Problems
from sheetstream.store import Column
from sheetstream.store.mysql import _py_encoder as _load_data_encoder
from sheetstream.store.postgres import _text_encoder

pytestmark = pytest.mark.skipif(encode._compiled is None, reason="the compiled encoder is not built")

columns = st.one_of(
    st.builds(lambda n: Column("c", "integer", nullable=n), st.booleans()),
    st.builds(lambda n: Column("c", "float", nullable=n), st.booleans()),
    st.builds(lambda n, p, s: Column("c", "numeric", nullable=n, precision=max(p, s), scale=s),
              st.booleans(), st.integers(1, 12), st.integers(0, 4)),
    st.builds(lambda n: Column("c", "numeric", nullable=n), st.booleans()),
    st.builds(lambda n, length: Column("c", "text", nullable=n, length=length), st.booleans(),
              st.none() | st.integers(0, 12)),
    st.builds(lambda n: Column("c", "date", nullable=n), st.booleans()),
    st.builds(lambda n: Column("c", "timestamp", nullable=n), st.booleans()),
    st.builds(lambda n: Column("c", "boolean", nullable=n), st.booleans()),
)

cells = st.one_of(
    st.none(), st.just(""),
    st.integers(-10**20, 10**20), st.integers(-1000, 1000), st.sampled_from([0, 1, 2, -1, 10**18, 2**63, -2**63]),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e6, 1e6).map(lambda f: round(f, 2)),
    st.sampled_from([0.0, -0.0, 1.0, 0.5, 1.25, 1e16, 1e-5, 123.456, 9.5e18, 0.1 + 0.2, 100.0, 0.125, 99.99]),
    st.integers(-10**7, 10**7).map(lambda i: i / 1000), st.integers(-10**5, 10**5).map(lambda i: i / 10),
    st.text(max_size=15), st.sampled_from(["a\tb", "a\\b", "line\nbreak", "cr\r", " 12 ", "true", "x", "2024-01-02",
                                           "2024-01-02 10:00:00", "1.50", "é€😀", "\ud800"]),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    st.dates().map(lambda d: datetime(d.year, d.month, d.day)),
    st.booleans(), st.just(CellError("#N/A")), st.just(Unreadable("bad bytes")),
    st.just(time(10, 30)), st.just(timedelta(hours=2)),
)


def both(rows, plan: Plan, base: int, numbered: bool, flags: bool = False):
    """``flags``: MySQL's encoder (booleans as 1 or 0, the sheet row always last), else PostgreSQL's."""
    encoder = _load_data_encoder(plan.columns) if flags else _text_encoder(plan.columns, numbered=numbered)
    found = []
    for compiled in (None, encode.spec(plan, flags)):
        problems, counters = Problems(limit=10_000), {"rows_read": 0}
        # convert_rows and the Python encoder change the rows they get (escaping in place): each way gets a copy
        try:
            data: object = encode.lines([(n, list(v)) for n, v in rows], plan, "s", problems, counters, base, encoder,
                                        numbered, compiled)
        except UnicodeEncodeError as exc:  # a lone surrogate: neither way can write it, both fail alike
            found.append(type(exc))
            continue
        found.append((data, problems.listed, problems.total, counters["rows_read"]))
    return found


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(columns, min_size=1, max_size=4), st.lists(st.lists(cells, max_size=5), max_size=6),
       st.sampled_from([0, 3 << 21]), st.booleans(), st.booleans())
def test_the_compiled_encoder_gives_the_python_path_bytes_and_problems(table, values, base, numbered,
                                                                       flags) -> None:
    plan = Plan([Column(f"c{j}", c.kind, c.nullable, c.primary_key, c.precision, c.scale, c.length)
                 for j, c in enumerate(table)], [j for j in range(len(table))][::-1])
    rows = [(number, row) for number, row in enumerate(values, 2)]
    python, compiled = both(rows, plan, base, numbered or flags, flags)
    assert compiled == python


def test_common_cells_take_the_compiled_path() -> None:
    """The usual cells never call the Python path (which would make the compiled one pointless)."""
    table = [Column("id", "integer", nullable=False), Column("amount", "numeric", precision=12, scale=2),
             Column("name", "text", length=20), Column("on", "date"), Column("at", "timestamp"),
             Column("ok", "boolean"), Column("ratio", "float")]
    plan = Plan(table, list(range(len(table))))
    rows = [(2, [1, 12.5, "a\tb", datetime(2024, 1, 2), datetime(2024, 1, 2, 10, 0, 0, 5), True, 0.25]),
            (3, [2, 7, "x", None, None, 0, 3])]

    def fallback(number, values):
        raise AssertionError(f"row {number} left to Python")

    data = encode._compiled(rows, encode.spec(plan), 0, fallback)
    assert data == (b"1\t12.50\ta\\tb\t2024-01-02\t2024-01-02 10:00:00.000005\tTrue\t0.25\t2\n"
                    b"2\t7.00\tx\t\\N\t\\N\tFalse\t3.0\t3\n")
    mysql = encode._compiled(rows, encode.spec(plan, flags=True), 0, fallback)  # LOAD DATA: booleans as 1 or 0
    assert mysql == data.replace(b"\tTrue\t", b"\t1\t").replace(b"\tFalse\t", b"\t0\t")


def test_a_plan_with_a_time_column_takes_the_python_path() -> None:
    assert encode.spec(Plan([Column("t", "time")], [0])) is None
    assert encode.spec(Plan([Column("t", "text")], [0])) is not None
