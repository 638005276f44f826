"""Property: rows -> write_csv -> open_csv -> the same rows, in the writer's documented text forms."""

from __future__ import annotations

import tempfile
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheetstream.formats.csv import open_csv, write_csv

# Text that a reader gives back as it was written: no NUL or U+FEFF (written as U+FFFD and U+2060) and no lone
# surrogates; with the characters that need quoting or neutralising made likely.
_ALPHABET = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff")
_AWKWARD = st.sampled_from([",", ";", "\t", "|", '"', "'", "\r", "\n", "\r\n", "=", "+", "-", "@", " ", "é", "日"])
TEXT = st.lists(st.one_of(_AWKWARD, st.text(_ALPHABET, max_size=5)), max_size=6).map("".join)
VALUE = st.one_of(
    st.none(), TEXT, st.integers(min_value=-10**20, max_value=10**20),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.dates(min_value=date(1, 1, 1)), st.booleans(),
)


def expected(value: Any) -> str | None:
    """What the reader gives back for a value, by the writer's documented forms."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(1, 6), data=st.data(), delimiter=st.sampled_from([",", ";", "\t"]), bom=st.booleans())
def test_rows_read_back_as_written(width: int, data: st.DataObject, delimiter: str, bom: bool) -> None:
    header = data.draw(st.lists(TEXT.filter(bool), min_size=width, max_size=width), label="header")
    rows = data.draw(st.lists(st.lists(VALUE, min_size=width, max_size=width), max_size=8), label="rows")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        path.write_bytes(b"".join(write_csv(rows, header, delimiter=delimiter, bom=bom, chunk_size=64)))
        # The delimiter is given: a few random records can be ambiguous to sniff (a single column of ';' texts).
        with open_csv(path, delimiter=delimiter) as book:
            assert book.encoding == ("utf-8-sig" if bom else "utf-8")
            read = list(book.rows())
    wanted = [(1, header)] + [(n, [expected(v) for v in row]) for n, row in enumerate(rows, 2)]
    wanted = [(n, values) for n, values in wanted if any(v is not None for v in values)]  # empty rows are skipped
    assert read == wanted


@settings(max_examples=50, deadline=None)
@given(rows=st.lists(st.lists(st.one_of(st.integers(), TEXT), min_size=3, max_size=3), min_size=3, max_size=10))
def test_the_delimiter_of_our_own_files_is_sniffed(rows: list) -> None:
    """Files this writer wrote, with a header of plain names, sniff to the delimiter they were written with."""
    for delimiter in (",", ";", "\t"):
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "rows.csv"
            path.write_bytes(b"".join(write_csv(rows, ["id", "name", "note"], delimiter=delimiter)))
            with open_csv(path) as book:
                assert book.delimiter == delimiter
