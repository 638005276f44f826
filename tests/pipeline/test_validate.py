"""Validation on its own: header mapping and cell conversion, without HTTP or a database."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheetstream.errors import Invalid
from sheetstream.formats.xlsx import CellError
from sheetstream.pipeline.validate import Problems, convert_rows, map_header
from sheetstream.store import Column

COLUMNS = [
    Column("id", "integer", nullable=False, primary_key=True),
    Column("amount", "numeric", precision=6, scale=2),
    Column("name", "text", length=5),
    Column("day", "date"),
    Column("at", "timestamp"),
    Column("clock", "time"),
    Column("ok", "boolean"),
    Column("ratio", "float"),
]


def convert(rows: list[list], header: list | None = None) -> tuple[list[list], Problems, int]:
    plan = map_header(header or [c.name for c in COLUMNS], COLUMNS, "Data")
    problems, counters = Problems(), {"rows_read": 0}
    out = list(convert_rows(enumerate(rows, 2), plan, "Data", problems, counters))
    return out, problems, counters["rows_read"]


def test_header_is_matched_by_name_in_any_case_and_order() -> None:
    plan = map_header(["RATIO", None, "id", "Name"], COLUMNS, "Data")
    assert [c.name for c in plan.columns] == ["ratio", "id", "name"] and plan.sources == [0, 2, 3]


def test_header_problems_are_all_named_with_their_cells() -> None:
    with pytest.raises(Invalid) as caught:
        map_header(["id", "bogus", "ID", "amount"], [*COLUMNS, Column("must", "text", nullable=False)], "Data")
    problems = caught.value.detail["errors"]
    assert [(p["cell"], p["column"]) for p in problems] == [("B1", "bogus"), ("C1", "ID"), ("1:1", "must")]
    assert "unknown column 'bogus'" in problems[0]["message"] and "appears twice (also in A1)" in problems[1]["message"]


def test_an_empty_header_says_so() -> None:
    with pytest.raises(Invalid, match="header row") as caught:
        map_header([None, " "], COLUMNS, "Data")
    assert caught.value.detail["errors"][0]["message"] == "the first row must name the columns, and it is empty"


def test_good_values_convert_to_the_column_types() -> None:
    rows, problems, read = convert([[1, 12.5, "abc", datetime(2024, 5, 6), "2024-05-06 07:08:09",
                                     datetime(1899, 12, 30, 10, 30), "yes", 3],
                                    ["2", "0.1", 42.0, "2024-01-02", datetime(2024, 1, 2, 3, 4), "10:30:00", 0, "1.5"]])
    assert problems.total == 0 and read == 2
    assert rows[0] == [1, Decimal("12.50"), "abc", date(2024, 5, 6), datetime(2024, 5, 6, 7, 8, 9), time(10, 30),
                       True, 3.0]
    assert rows[1] == [2, Decimal("0.10"), "42", date(2024, 1, 2), datetime(2024, 1, 2, 3, 4), time(10, 30), False, 1.5]


@pytest.mark.parametrize("column,value,message", [
    ("id", 3.5, "is not a whole number"),
    ("id", None, "is empty; the column requires a value"),
    ("amount", 1.234, "has more than 2 decimal place(s); the column is numeric(6,2)"),
    ("amount", 12345.0, "is too large for numeric(6,2)"),
    ("amount", 1e30, "is too large for numeric(6,2)"),  # past what Decimal can round to 2 places: was a crash
    ("amount", "abc", "is not a number"),
    ("name", "toolong", "has 7 characters; the column allows 5"),
    ("day", datetime(2024, 1, 1, 12), "has a time of day; the column holds dates only"),
    ("day", "31/12/2024", "is not a date; write YYYY-MM-DD or format the cell as a date"),
    ("at", True, "is a boolean, not a date and time; format the cell as a date"),
    ("clock", datetime(2024, 1, 1, 10), "has a date; the column holds times of day only"),
    ("ok", "maybe", "is not TRUE or FALSE"),
    ("ratio", "x", "is not a number"),
    ("ratio", CellError("#N/A"), "holds the error #N/A; enter a value"),
])
def test_each_bad_value_is_a_problem_naming_its_cell(column: str, value, message: str) -> None:
    row: list = [1, None, None, None, None, None, None, None]
    index = [c.name for c in COLUMNS].index(column)
    row[index] = value
    rows, problems, read = convert([row])
    assert rows == [] and read == 1 and problems.total == 1
    problem = problems.listed[0]
    assert problem["cell"] == f"{'ABCDEFGH'[index]}2" and problem["column"] == column
    assert problem["message"].endswith(message)


def test_problems_are_counted_past_the_listed_cap() -> None:
    problems = Problems(limit=3)
    for i in range(10):
        problems.add("Data", f"A{i}", "id", i, "bad")
    error = problems.error("sheet 'Data' has cells that do not fit")
    assert problems.total == 10 and len(error.detail["errors"]) == 3 and error.detail["error_total"] == 10
    assert "10 problem(s) (the first 3 are listed); nothing was written" in error.message


# Values of every type a sheet reader gives, right and wrong for each column above.
_values = st.one_of(
    st.none(), st.just(""), st.booleans(), st.integers(-10**30, 10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
    st.sampled_from(["1", " 12 ", "1.25", "1e400", "NaN", "2024-01-02", "10:30", "2024-01-02 10:30:00", "true"]),
    st.datetimes(), st.times(), st.timedeltas(), st.sampled_from([CellError("#N/A"), CellError("#DIV/0!")]),
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.lists(_values, min_size=len(COLUMNS), max_size=len(COLUMNS)), min_size=1, max_size=3))
def test_every_value_converts_or_is_a_problem_at_its_cell(rows: list[list]) -> None:
    """Whatever a cell holds, it fits its column or is reported at its cell; nothing else escapes (1e30 in a
    numeric(6,2) column once raised decimal.InvalidOperation out of the import: an internal error)."""
    out, problems, read = convert(rows)
    assert read == len(rows) and len(out) + len({p["cell"][1:] for p in problems.listed}) == len(rows)
