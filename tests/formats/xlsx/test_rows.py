"""The compiled row encoder (_rows.c) against the Python loop of writer._sheet, its reference: the same bytes, in
the same chunks, the same WriteStats and the same errors, on generated rows of every type the writer takes."""

from __future__ import annotations

import enum
import math
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheetstream.formats.xlsx import CellTooLong, Sheet, WriteStats, write_workbook
from sheetstream.formats.xlsx import writer as writer_module
from sheetstream.store.demo import ORDERS, demo_rows

ENCODE = writer_module._encode_rows
pytestmark = pytest.mark.skipif(ENCODE is None, reason="the compiled row encoder is not built")

NO_DOUBLE = writer_module._INT_NO_DOUBLE


class Colour(enum.IntEnum):
    RED = 1


class Name(str):
    pass


class Odd:
    def __str__(self) -> str:
        return "odd & <strange>"


def _unicode(categories: list[str] | None = None) -> st.SearchStrategy[str]:
    return st.text(st.characters(categories=categories) if categories else st.characters(), max_size=12)


texts = st.one_of(
    st.text(st.sampled_from("ab _x0123456789AFaf&<>\"' \t\n\r\x01\x1f\x7f"), max_size=12),  # escapes and edges
    _unicode(),
    st.text(st.characters(categories=["Cs", "Cc", "Zs", "Co", "Cn"]), max_size=6),  # surrogates, unassigned, ...
    st.sampled_from(["_x0041_", "_x005F_x0041_", "a_xZZZZ_", " lead", "trail ", "\tboth\n", "", "📦🚚", "\ufffe\uffff",
                     "x" * 16_383, "é" * 16_384, "y" * 32_768, "📦" * 16_384, " " + "z" * 40_000]),
)
numbers = st.one_of(
    st.integers(), st.integers(min_value=-2**70, max_value=2**70),
    st.sampled_from([NO_DOUBLE - 1, NO_DOUBLE, -NO_DOUBLE + 1, -NO_DOUBLE, 2**1100, 2**63, -2**63, 2**63 - 1, -2**63 - 1,
                     0, -1, True, False, Colour.RED]),
    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]),
    st.decimals(), st.sampled_from([Decimal("NaN"), Decimal("-Infinity"), Decimal("sNaN"), Decimal("1E+5"),
                                    Decimal("-0"), Decimal("0.0000001"), Decimal("-12.50")]),
)
moments = st.one_of(
    st.dates(), st.sampled_from([date(1900, 1, 1), date(1900, 2, 28), date(1900, 3, 1), date(1899, 12, 31),
                                 date(1, 1, 1), date(9999, 12, 31)]),
    st.datetimes(), st.datetimes(timezones=st.just(timezone.utc)),
    st.datetimes(timezones=st.sampled_from([timezone(timedelta(hours=-5)), timezone(timedelta(hours=14))])),
    st.sampled_from([datetime(1900, 2, 28, 23, 59, 59, 999999), datetime(1900, 3, 1), datetime(1899, 12, 30),
                     datetime(9999, 12, 31, 23, 59, 59, 999999)]),
    st.times(), st.timedeltas(),
)
others = st.one_of(st.binary(max_size=6), st.builds(Name, _unicode()), st.just(Odd()), st.just(bytearray(b"\x00\xff")))
cells = st.one_of(st.none(), st.none(), texts, numbers, moments, others)
rows_of = st.lists(st.lists(cells, max_size=7).map(tuple), max_size=25)


def _both(make: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """``make()`` with the compiled encoder and with the Python loop: (result or exception, ...)."""
    found = []
    for encode in (ENCODE, None):
        monkeypatch.setattr(writer_module, "_encode_rows", encode)
        try:
            found.append(make())
        except Exception as exc:  # the same error, at the same cell, from both
            found.append((type(exc), str(exc)))
    return found[0], found[1]


def _chunks(rows: list[tuple], width: int, long_text: str = "truncate", max_part: int = 2**32, announced: int | None = None,
            max_rows: int = 1_048_576) -> Any:
    header = [f"h{i}" for i in range(width)]
    stats, filters = WriteStats(), []
    styles = ["", ' s="6"', "", ' s="7"'][:width] + [""] * max(0, width - 4)
    chunks = list(writer_module._sheet(iter(rows), header, [8.0] * width, "S", max_rows, long_text, max_part, stats,
                                       filters, announced, styles))
    return chunks, stats, filters


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(rows=rows_of, width=st.integers(0, 6), flush=st.sampled_from([1, 3, 8, 4096]),
       long_text=st.sampled_from(["truncate", "error"]), max_part=st.sampled_from([1, 200, 2**32]),
       announced=st.none() | st.integers(0, 30), max_rows=st.sampled_from([2, 5, 1_048_576]))
def test_a_sheet_is_the_same_bytes_in_the_same_chunks(rows, width, flush, long_text, max_part, announced, max_rows):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(writer_module, "_FLUSH_PIECES", flush)
        compiled, python = _both(lambda: _chunks(rows, width, long_text, max_part, announced, max_rows), patch)
    assert compiled == python


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(sheets=st.lists(st.tuples(st.integers(0, 5), rows_of), min_size=1, max_size=3),
       max_rows=st.sampled_from([2, 4, 1_048_576]), row_count=st.none() | st.integers(0, 20))
def test_a_workbook_is_the_same_bytes(sheets, max_rows, row_count):
    def book() -> tuple[bytes, WriteStats]:
        stats = WriteStats()
        data = b"".join(write_workbook(
            [Sheet(f"s{i}", [f"c{j}" for j in range(width)], iter(rows), ["0", None, "#,##0.00"][: width], row_count)
             for i, (width, rows) in enumerate(sheets)],
            max_sheet_rows=max_rows, modified_at=datetime(2024, 5, 6, 7, 8, 10), stats=stats))
        return data, stats

    with pytest.MonkeyPatch.context() as patch:
        compiled, python = _both(book, patch)
    assert compiled == python


def test_the_demo_table_and_its_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every column kind and the awkward values of the demo rows, past several flushes."""
    rows = list(demo_rows(3_000))
    compiled, python = _both(lambda: _chunks(rows, len(ORDERS)), monkeypatch)
    assert compiled == python
    assert len(compiled[0]) > 3  # cut into chunks, at the same rows


def test_errors_and_counts_are_the_python_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [("a" * 40_000, None), ("ok", "b" * 40_000)]
    compiled, python = _both(lambda: _chunks(rows, 2), monkeypatch)
    assert compiled == python and compiled[1].truncated_cells == 2
    compiled, python = _both(lambda: _chunks(rows, 2, long_text="error"), monkeypatch)
    assert compiled == python and compiled[0] is CellTooLong


def test_the_compiled_path_writes_what_it_says() -> None:
    """One row of every fast type as the writer's docs promise it (so that the comparisons above are not of two
    equal mistakes): a column's number style on its numbers only, serial dates, escapes, a reference after a gap."""
    rows = [(1, 2.5, Decimal("1.10"), True, date(2024, 1, 2), datetime(2024, 1, 2, 12), "a & b", None, " x")]
    chunks, stats, _ = _chunks(rows, 9)
    xml = b"".join(chunks).decode()
    assert ('<row><c><v>1</v></c><c s="6"><v>2.5</v></c><c><v>1.10</v></c><c t="b"><v>1</v></c>'
            '<c s="2"><v>45293</v></c><c s="3"><v>45293.5</v></c><c t="inlineStr"><is><t>a &amp; b</t></is></c>'
            '<c r="I2" t="inlineStr"><is><t xml:space="preserve"> x</t></is></c></row>') in xml
    assert stats.rows == 1


def test_the_python_path_can_be_forced() -> None:
    """SHEETSTREAM_XLSX_ENCODER=python: the writer's own loop (how the writer tests run without the C file)."""
    probe = "from sheetstream.formats.xlsx import writer; print(writer._encode_rows is None)"
    for value, expected in (("python", "True"), ("", "False")):
        env = {**os.environ, "SHEETSTREAM_XLSX_ENCODER": value}
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
        assert done.stdout.strip() == expected
