"""The compiled CSV writer and reader (``formats/csv/_fast.c``) give exactly what their Python references give:
the writer the same bytes for any rows (hypothesis), the reader the same records and errors for any bytes
(hypothesis: CSV-shaped text with quotes, line ends, marks, NUL, byte order marks, invalid UTF-8, in chunks of a
few bytes, under small bounds). The fixed inputs of test_reader.py and test_corpus.py are compared too (.both)."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import IntEnum
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sheetstream.formats.csv import CsvError, CsvLimits, write_csv, writer
from sheetstream.store.demo import ORDERS, demo_rows

from .both import read_both


class Level(IntEnum):
    LOW = 1


class Name(str):
    def __str__(self) -> str:
        return "name:" + self


class Stamp(datetime):
    pass


# Texts made of the characters that matter to CSV: delimiters, quotes, line ends, the marks and triggers, NUL,
# U+FEFF, lone surrogates, and wider characters (2, 3, 4 UTF-8 bytes).
TEXT = st.text(st.sampled_from(list(",;\t|\"'=+-@\r\n\x00 aZ9é€日📦\ufeff\u2060\ud800\udcff")), max_size=12)
TIMEZONE = st.sampled_from([None, timezone.utc, timezone(timedelta(hours=-5, minutes=-30))])
VALUE = st.one_of(
    st.none(), TEXT, st.booleans(), st.integers(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
    # floats with few digits (prices, weights), which the compiled writer writes without repr()'s algorithm
    st.builds(lambda n, k: n / 10**k, st.integers(-10**16, 10**16), st.integers(0, 18)),
    st.decimals(allow_nan=True, allow_infinity=True), st.decimals(places=3, allow_nan=False, allow_infinity=False),
    st.dates(), st.datetimes(timezones=TIMEZONE), st.times(timezones=TIMEZONE), st.timedeltas(),
    st.binary(max_size=4), st.just(Level.LOW), TEXT.map(Name), st.datetimes().map(lambda d: Stamp(*d.timetuple()[:6])),
    st.just(object),
)


def both_written(rows: list, header: list[str], **options) -> bytes:
    assert writer._fast is not None, "the compiled writer is not built (setup.py: a C compiler?)"
    fast = b"".join(write_csv(rows, header, **options))
    slow = b"".join(write_csv(rows, header, compiled=False, **options))
    assert fast == slow
    return fast


@settings(max_examples=400, deadline=None)
@given(rows=st.lists(st.lists(VALUE, max_size=5), max_size=12), delimiter=st.sampled_from(writer.DELIMITERS),
       neutralise=st.booleans(), bom=st.booleans(), chunk_size=st.sampled_from([1, 50, 65_536]))
@example(rows=[[None], [""], [], ["x"], [None, None]], delimiter=",", neutralise=True, bom=False, chunk_size=1)
@example(rows=[[0.1, 0.3, 0.1 + 0.2, 1e-4, 9.9999e-5, 1e15, 999999999999999.9, 123456789012345.0, -2.5, 5.0, 1e22]],
         delimiter=",", neutralise=True, bom=False, chunk_size=1)
@example(rows=[[Decimal("1E+3"), Decimal("-0"), Decimal("sNaN"), Decimal("1E-7")]], delimiter=";", neutralise=True,
         bom=False, chunk_size=1)
def test_the_compiled_writer_writes_the_same_bytes(rows: list, delimiter: str, neutralise: bool, bom: bool,
                                                    chunk_size: int) -> None:
    both_written(rows, ["id", "=name"], delimiter=delimiter, neutralise=neutralise, bom=bom, chunk_size=chunk_size)


def test_the_compiled_writer_writes_the_demo_rows_the_same() -> None:
    rows = list(demo_rows(5_000))
    assert len(both_written(rows, [c.name for c in ORDERS])) > 500_000


def test_the_compiled_writer_sends_the_first_rows_early_then_chunks() -> None:
    """The header, then the first 64 rows (the first bytes leave before a chunk's worth is written), then chunks
    of about chunk_size bytes."""
    chunks = list(write_csv(([i, "x" * 100] for i in range(10_000)), ["n", "text"], chunk_size=65_536))
    assert chunks[0] == b"n,text\r\n"
    assert chunks[1].count(b"\r\n") == 64
    assert all(65_536 <= len(c) < 65_536 + 200 for c in chunks[2:-1])
    assert b"".join(chunks).count(b"\r\n") == 10_001


def test_an_error_in_the_rows_goes_through() -> None:
    def rows():
        yield [1]
        raise RuntimeError("the cursor broke")

    with pytest.raises(RuntimeError, match="the cursor broke"):
        b"".join(write_csv(rows(), ["n"]))
    with pytest.raises(TypeError, match="a row is a sequence"):
        b"".join(write_csv([5], ["n"]))


# --- the reader ----------------------------------------------------------------------------------------------------

PIECES = st.sampled_from([
    b"a", b"Z9", b" ", b",", b";", b"\t", b"|", b'"', b'""', b"'", b"'=", b"'+1", b"''-x", b"=", b"@", b"\r", b"\n",
    b"\r\n", b"\x00", b"\xef\xbb\xbf", b"\xe9", b"\xff", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x93\xa6",
    b"\xe2\x82", b'"x,y"', b'"a\r\nb"', b'"q""q"',
])
CLEAN = st.sampled_from([b"a", b"Z9", b" ", b",", b";", b"\t", b'"', b'""', b"'", b"'=", b"''-x", b"\r", b"\n",
                         b"\r\n", b"\xc3\xa9", b"\xf0\x9f\x93\xa6", b'"x,y"', b'"a\r\nb"', b'"q""q"'])


def read_bytes(data: bytes, chunk: int | None, **options) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_bytes(data)
        try:
            read_both(path, chunk=chunk, **options)
        except CsvError:  # raised by both readers alike (read_both compared them)
            pass


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.one_of(PIECES, CLEAN, CLEAN), max_size=40), chunk=st.sampled_from([None, 1, 2, 3, 5, 16]),
       delimiter=st.sampled_from([None, ",", ";", "\t", "|", "§"]), max_line_bytes=st.sampled_from([4, 9, 30, 1 << 20]),
       max_fields=st.sampled_from([1, 3, 16_384]), encoding=st.sampled_from([None, None, "cp1252"]))
@example(pieces=[b'"a', b"\r"], chunk=1, delimiter=",", max_line_bytes=1 << 20, max_fields=16_384, encoding=None)
@example(pieces=[b"a\r", b"\r\n", b"b\n\r"], chunk=2, delimiter=",", max_line_bytes=4, max_fields=3, encoding=None)
def test_the_compiled_reader_reads_the_same_records(pieces: list[bytes], chunk: int | None, delimiter: str | None,
                                                     max_line_bytes: int, max_fields: int,
                                                     encoding: str | None) -> None:
    read_bytes(b"".join(pieces), chunk, delimiter=delimiter, encoding=encoding,
               limits=CsvLimits(max_line_bytes=max_line_bytes, max_fields=max_fields))


@settings(max_examples=100, deadline=None)
@given(prefix=st.lists(CLEAN, max_size=20), width=st.integers(1, 4))
def test_the_compiled_reader_reads_utf16_the_same(prefix: list[bytes], width: int) -> None:
    text = b"".join(prefix).decode("utf-8")
    read_bytes("\ufeffh,k\r\n".encode("utf-16-le") + text.encode("utf-16-le"), width)


def test_the_compiled_reader_hands_over_mid_file(tmp_path: Path) -> None:
    """Invalid UTF-8 far into a file of several chunks: the compiled reader gives the records before it, the
    Python loop the rest (the Unreadable field, then the records after), as the Python loop alone reads them."""
    rows = [f"{i},name {i}\r\n".encode() for i in range(20_000)]
    rows[15_000] = b"15000,caf\xe9\r\n"
    path = tmp_path / "late.csv"
    path.write_bytes(b"n,name\r\n" + b"".join(rows))
    records = read_both(path)
    assert len(records) == 20_001 and records[15_001][1][1].message.startswith("line 15002, column 2 (B15002)")
