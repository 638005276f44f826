"""CSV files from other projects' test suites (tests/corpus/files/csv, see tests/corpus/SOURCES.md) and the cases of
CPython's ``csv`` tests, read by open_csv and side by side by the stdlib ``csv`` module (and polars, when it is
installed): the same records, numbered the same, or the refusal listed here."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from sheetstream.formats.csv import CsvError
from sheetstream.formats.values import Unreadable

from .both import read_both

FILES = Path(__file__).parents[2] / "corpus" / "files" / "csv"
CORPUS = sorted(str(p.relative_to(FILES)) for p in FILES.rglob("*") if p.is_file() and p.name != "LICENSE")

#: What each file is, so that a change in sniffing or encoding shows: (encoding, delimiter, records read), or the
#: refusal (code, line). Options to read it with are in OPTIONS.
EXPECTED: dict[str, tuple[Any, ...]] = {
    "csv-spectrum/comma_in_quotes.csv": ("utf-8", ",", 2),
    "csv-spectrum/empty_crlf.csv": ("utf-8", ",", 3),
    "csv-spectrum/escaped_quotes.csv": ("utf-8", ",", 3),
    "csv-spectrum/json.csv": ("utf-8", ",", 2),
    "csv-spectrum/newlines.csv": ("utf-8", ",", 4),
    "csv-spectrum/newlines_crlf.csv": ("utf-8", ",", 4),
    "csv-spectrum/quotes_and_newlines.csv": ("utf-8", ",", 3),
    "csv-spectrum/simple_crlf.csv": ("utf-8", ",", 2),
    "csv-spectrum/utf8.csv": ("utf-8", ",", 3),
    "csvkit/bad.csv": ("utf-8", ",", 4),  # ragged records: widths 2 to 4
    "csvkit/blanks.csv": ("utf-8", ",", 2),
    "csvkit/dummy.tsv": ("utf-8", "\t", 2),
    "csvkit/ks_1033_data.csv": ("utf-8", ",", 1576),
    "csvkit/mac_newlines.csv": ("utf-8", ",", 3),  # CR line ends
    "csvkit/null_byte.csv": ("refused", "bad_csv", 2),
    "csvkit/optional_quote_characters.csv": ("utf-8", ",", 2),
    "csvkit/test_header_newline.csv": ("utf-8", ",", 2),
    "csvkit/test_latin1.csv": ("utf-8", ",", 3),  # not named: one Unreadable field (see the cp1252 test)
    "csvkit/test_utf16_big.csv": ("utf-16", ",", 3),
    "csvkit/test_utf16_little.csv": ("utf-16", ",", 3),
    "csvkit/test_utf8_bom.csv": ("utf-8-sig", ",", 3),
    "pandas/salaries_comments.tsv": ("utf-8", "\t", 50),  # three '#' comment lines: records of one field
    "pandas/test1.csv": ("utf-8", ",", 8),
    "polars/empty.csv": ("utf-8", ",", 0),
    "polars/foods1.csv": ("utf-8", ",", 28),
    "polars/only_header.csv": ("utf-8", ",", 1),
    "polars/small.csv": ("utf-8", ",", 5),
    "polars/user.csv": ("utf-8", ",", 4),
}
UNREADABLE = "<unreadable>"


def ours(path: Path, **options: Any) -> tuple[str, str, list]:
    """(encoding, delimiter, records): read by the compiled reader and by the Python loop, which must agree, and
    in chunks of 7 bytes too (records and quoted fields across chunks)."""
    found: list = []
    records = read_both(path, each=lambda book: found.extend((book.encoding, book.delimiter)), **options)
    assert read_both(path, chunk=7, **options) == records
    rows = [(n, [UNREADABLE if isinstance(v, Unreadable) else v for v in values]) for n, values in records]
    return found[0], found[1], rows


def stdlib(path: Path, encoding: str, delimiter: str) -> list:
    """The records as the stdlib reads them (a file opened with newline='', strict quoting), numbered, with our
    conventions applied: empty fields as None, records with no value left out, undecodable fields marked."""
    rows = []
    with path.open(encoding=encoding, errors="surrogateescape", newline="") as f:
        for number, record in enumerate(csv.reader(f, delimiter=delimiter, strict=True), 1):
            if any(record):
                rows.append((number, [UNREADABLE if any("\udc80" <= c <= "\udcff" for c in v) else (v or None)
                                      for v in record]))
    return rows


def test_the_corpus_is_there() -> None:
    assert sorted(EXPECTED) == CORPUS
    assert len(CORPUS) <= 30 and sum((FILES / name).stat().st_size for name in CORPUS) < 2 << 20


@pytest.mark.parametrize("name", CORPUS)
def test_reads_like_the_stdlib(name: str) -> None:
    path, expected = FILES / name, EXPECTED[name]
    if expected[0] == "refused":
        with pytest.raises(CsvError) as caught:
            ours(path)
        assert (caught.value.code, caught.value.detail.get("line")) == expected[1:]
        return
    encoding, delimiter, rows = ours(path)
    assert (encoding, delimiter, len(rows)) == expected
    assert rows == stdlib(path, encoding, delimiter)


def test_a_latin1_file_reads_with_encoding_cp1252() -> None:
    path = FILES / "csvkit/test_latin1.csv"
    (_, _, unnamed), (encoding, _, named) = ours(path), ours(path, encoding="cp1252")
    assert encoding == "cp1252" and named == stdlib(path, "cp1252", ",")
    assert unnamed[-1] == (3, ["4", "5", UNREADABLE]) and named[-1] == (3, ["4", "5", "©"])


@pytest.mark.parametrize("name", [n for n in CORPUS if EXPECTED[n][0] == "utf-8"])
def test_reads_like_polars(name: str) -> None:
    pl = pytest.importorskip("polars")
    path, (_, delimiter, _) = FILES / name, EXPECTED[name]
    _, _, rows = ours(path)
    if b"\r" in path.read_bytes().replace(b"\r\n", b"") or len({len(v) for _, v in rows}) > 1:
        pytest.skip("polars reads neither CR line ends nor ragged records")
    if any(UNREADABLE in values for _, values in rows):
        pytest.skip("polars refuses a file with invalid UTF-8")
    if not rows:
        return
    frame = pl.read_csv(path, has_header=False, infer_schema=False, separator=delimiter)
    theirs = [[v or None for v in row] for row in frame.rows()]
    assert [values for _, values in rows] == [row for row in theirs if any(row)]


# --- CPython's Lib/test/test_csv.py (TestDialectExcel and the reader tests): each input as a file ----------------

CPYTHON = [
    ("a,b\nc,d", [["a", "b"], ["c", "d"]]),
    ("a,b\r\nc,d\r\n", [["a", "b"], ["c", "d"]]),
    ("a,b\rc,d\r", [["a", "b"], ["c", "d"]]),
    ('1,",3,",5', [["1", ",3,", "5"]]),
    (',,"",', []),  # a record of empty fields: skipped like an empty row
    ('"a\nb", 7', [["a\nb", " 7"]]),
    ('a""b', [['a""b']]),
    ('a"b"c', [['a"b"c']]),
    ('a"b', [['a"b']]),
    (' "a"', [[' "a"']]),
    ('1,2,3,"I think, therefore I am",5,6', [["1", "2", "3", "I think, therefore I am", "5", "6"]]),
    ('1,2,3,"""I see,"" said the blind man","as he picked up his hammer and saw"',
     [["1", "2", "3", '"I see," said the blind man', "as he picked up his hammer and saw"]]),
    ('1,2,3,"""I see,""\nsaid the blind man","as he picked up his\nhammer and saw"\n9,8,7,6',
     [["1", "2", "3", '"I see,"\nsaid the blind man', "as he picked up his\nhammer and saw"], ["9", "8", "7", "6"]]),
    ('12,12,1",', [["12", "12", '1"', None]]),
    ('""""', [['"']]),
    ('""""""', [['""']]),
    ('"\na","b\nc","d\n"\n"\re","f\rg","h\r"\n', [["\na", "b\nc", "d\n"], ["\re", "f\rg", "h\r"]]),
]
# Refused where the stdlib reads them only without strict quoting (Excel never writes them; we say where they are).
CPYTHON_REFUSED = ['"ab"c', 'a,"', '"a', '"a" "b"']


@pytest.mark.parametrize("text,records", CPYTHON)
def test_cpython_cases(tmp_path: Path, text: str, records: list) -> None:
    path = tmp_path / "case.csv"
    path.write_bytes(text.encode())
    assert [values for _, values in ours(path, delimiter=",")[2]] == records


@pytest.mark.parametrize("text", CPYTHON_REFUSED)
def test_cpython_cases_that_strict_quoting_refuses(tmp_path: Path, text: str) -> None:
    path = tmp_path / "case.csv"
    path.write_bytes(text.encode())
    with pytest.raises(CsvError, match="^line 1: .*quote") as caught:
        ours(path, delimiter=",")
    assert caught.value.code == "bad_csv"
