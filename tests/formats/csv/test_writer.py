"""write_csv: RFC 4180 bytes, the documented text form of each type, neutralising, streaming in chunks."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import IntEnum

import pytest

from sheetstream.formats.csv import write_csv
from sheetstream.store.demo import ORDERS, demo_rows


def written(rows, header=("a",), **options) -> bytes:
    return b"".join(write_csv(rows, list(header), **options))


def line(*values, **options) -> str:
    """The one data line written for a row of ``values`` (without its CRLF)."""
    data = written([values], header=[f"c{i}" for i in range(len(values))], **options).decode()
    return data.split("\r\n", 1)[1][:-2]


@pytest.mark.parametrize("value,text", [
    (None, ""), ("", ""), (True, "true"), (False, "false"), (0, "0"), (-12, "-12"), (10**30, str(10**30)),
    (1.5, "1.5"), (0.1, "0.1"), (1e300, "1e+300"), (-0.0, "-0.0"), (float("nan"), "nan"), (float("inf"), "inf"),
    (float("-inf"), "-inf"),
    (Decimal("12.30"), "12.30"), (Decimal("1E+3"), "1000"), (Decimal("1E-10"), "0.0000000001"),
    (Decimal("-0.000001"), "-0.000001"), (Decimal("123456789012345678901234567890.123456789"),
                                          "123456789012345678901234567890.123456789"),
    (Decimal("NaN"), "NaN"),
    (date(2024, 3, 1), "2024-03-01"), (time(13, 45), "13:45:00"), (time(1, 2, 3, 4), "01:02:03.000004"),
    (datetime(2024, 3, 1, 13, 45), "2024-03-01 13:45:00"),
    (datetime(2024, 3, 1, 13, 45, 0, 120), "2024-03-01 13:45:00.000120"),
    (datetime(2024, 3, 1, tzinfo=timezone.utc), "2024-03-01 00:00:00+00:00"),
    (timedelta(days=1, hours=2, minutes=3, seconds=4), "26:03:04"), (timedelta(seconds=-90), "-0:01:30"),
    (timedelta(microseconds=5), "0:00:00.000005"),
    (b"\x00\xff", "\\x00ff"), (bytearray(b"ab"), "\\x6162"),
])
def test_each_type_has_its_documented_form(value, text: str) -> None:
    # In the middle of a row and alone (a row of one value goes through the general path too).
    assert line("x", value, "y") == f"x,{text},y"


def test_int_subclasses_are_numbers_and_other_objects_text() -> None:
    class Level(IntEnum):
        HIGH = 3

    class Thing:
        def __str__(self) -> str:
            return "=thing"

    assert line(Level.HIGH, Thing()) == "3,'=thing"


def test_the_header_and_crlf_line_ends() -> None:
    assert written([(1, "x"), (2, "y")], header=["id", "name"]) == b"id,name\r\n1,x\r\n2,y\r\n"
    assert written([], header=["id", "name"]) == b"id,name\r\n"


@pytest.mark.parametrize("text,quoted", [
    ("a,b", '"a,b"'), ('say "hi"', '"say ""hi"""'), ("two\nlines", '"two\nlines"'), ("cr\rhere", '"cr\rhere"'),
    ("crlf\r\nhere", '"crlf\r\nhere"'), ('"', '""""'),
    ("  padded  ", "  padded  "), ("semi;colon", "semi;colon"), ("tab\there", "tab\there"), ("'", "'"),
])
def test_fields_are_quoted_only_where_needed(text: str, quoted: str) -> None:
    assert line(1, text) == f"1,{quoted}"


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_other_delimiters(delimiter: str) -> None:
    data = written([(1, f"a{delimiter}b", "c,d")], header=["x", "y", "z"], delimiter=delimiter).decode()
    assert data == f"x{delimiter}y{delimiter}z\r\n1{delimiter}\"a{delimiter}b\"{delimiter}c,d\r\n"


@pytest.mark.parametrize("delimiter", ["|", ",,", "", '"'])
def test_unsupported_delimiters_are_refused_at_once(delimiter: str) -> None:
    with pytest.raises(ValueError, match="delimiter"):
        write_csv([], ["a"], delimiter=delimiter)


def test_bom() -> None:
    assert written([(1,)], bom=True) == b"\xef\xbb\xbfa\r\n1\r\n"
    assert written([(1,)]) == b"a\r\n1\r\n"


@pytest.mark.parametrize("text,out", [
    ("=SUM(A1:A9)", "'=SUM(A1:A9)"), ("+33 1 23", "'+33 1 23"), ("-10% promo", "'-10% promo"),
    ("@mention", "'@mention"), ("\tindent", "'\tindent"), ("\rcr", "\"'\rcr\""),
    ("'=already", "''=already"), ("''-x", "'''-x"), ("'plain", "'plain"), ("a=b", "a=b"), (" =x", " =x"),
])
def test_formula_like_text_is_neutralised(text: str, out: str) -> None:
    assert line(text) == out
    assert line(text, neutralise=False) == (f'"{text}"' if "\r" in text else text)


def test_numbers_are_never_neutralised() -> None:
    assert line(-5, Decimal("-1.5"), -2.5, timedelta(seconds=-1)) == "-5,-1.5,-2.5,-0:00:01"


def test_header_names_are_neutralised_too() -> None:
    assert written([], header=["=a", "b"]) == b"'=a,b\r\n"
    assert written([], header=["=a", "b"], neutralise=False) == b"=a,b\r\n"


def test_characters_a_reader_refuses_are_replaced() -> None:
    assert line("a\x00b", "zero\ufeffwidth", "lone \ud800 surrogate") == \
        "a\ufffdb,zero\u2060width,lone \ufffd surrogate"


def test_rows_of_mixed_shapes() -> None:
    """Rows whose types change from row to row (NULLs, or any mix) each get their own form."""
    rows = [(1, "a", True), (None, None, None), ("=x", 2, Decimal("1E+2")), (False, 1.5, "-y")]
    assert written(rows, header=["a", "b", "c"]).decode().split("\r\n")[1:] == \
        ["1,a,true", ",,", "'=x,2,100", "false,1.5,'-y", ""]


def test_many_shapes_fall_back_to_the_general_path() -> None:
    rows = [tuple(None if (i >> bit) & 1 else "=v" for bit in range(11)) for i in range(2_048)]
    lines = written(rows, header=[str(i) for i in range(11)]).decode().split("\r\n")[1:-1]
    assert lines == [",".join("" if (i >> bit) & 1 else "'=v" for bit in range(11)) for i in range(2_048)]


def test_the_demo_rows_read_back_with_the_stdlib_reader() -> None:
    rows = list(demo_rows(3_000))
    data = written(rows, header=[c.name for c in ORDERS])
    records = list(csv.reader(io.StringIO(data.decode(), newline="")))
    assert records[0] == [c.name for c in ORDERS] and len(records) == 3_001
    for row, record in zip(rows, records[1:]):
        assert record[0] == str(row[0]) and record[3] == str(row[3]) and record[5] == str(row[5])
        assert record[7] == ("true" if row[7] else "false")
        note = row[10] or ""
        assert record[10] == ("'" + note if note[:1] in ("=", "+", "-", "@") else note)


def test_chunks_are_about_chunk_size_and_come_before_the_rows_run_out() -> None:
    """Rows without end: the generator yields the header at once, then chunks of about chunk_size bytes."""
    endless = ((i, "some text", Decimal(i)) for i in itertools.count())
    chunks = write_csv(endless, ["i", "t", "d"], chunk_size=16_384)
    assert next(chunks) == b"i,t,d\r\n"
    sizes = [len(next(chunks)) for _ in range(30)]
    assert sizes[0] < 4_096, sizes  # the first rows leave early
    assert all(8_000 < size < 40_000 for size in sizes[10:]), sizes


def test_a_long_export_keeps_memory_flat() -> None:
    from ...helpers import measured

    def drain(count: int) -> int:
        rows = ((i, "=text", Decimal(i), date(2024, 1, 1), None, True) for i in range(count))
        return sum(len(chunk) for chunk in write_csv(rows, ["i", "t", "d", "day", "n", "b"]))

    small, _, peak_small = measured(drain, 1_000)
    large, _, peak_large = measured(drain, 30_000)
    assert large > 25 * small
    assert peak_large < peak_small + (1 << 20), (peak_small, peak_large)
