"""open_csv: RFC 4180 records, record numbers, encodings, the delimiter, Unreadable fields, the neutralising mark."""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path

import pytest

from sheetstream.formats.csv import CsvError, NotCsv, looks_like_csv, open_csv
from sheetstream.formats.values import Unreadable

from .both import read_both


def book(tmp_path: Path, data: bytes, **options):
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    return open_csv(path, **options)


def read(tmp_path: Path, data: bytes, **options) -> list:
    """The records, read by the compiled reader and by the Python loop, which must agree (see .both)."""
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    return read_both(path, **options)


# --- RFC 4180 ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data,rows", [
    (b"a,b\r\n1,2\r\n", [(1, ["a", "b"]), (2, ["1", "2"])]),
    (b"a,b\n1,2\n", [(1, ["a", "b"]), (2, ["1", "2"])]),  # LF line ends
    (b"a,b\r\n1,2", [(1, ["a", "b"]), (2, ["1", "2"])]),  # no line end at the end
    (b'a,b\r\n"1,5","x ""y"" z"\r\n', [(1, ["a", "b"]), (2, ["1,5", 'x "y" z'])]),
    (b'a,b\r\n"two\r\nlines","x"\r\n3,4\r\n', [(1, ["a", "b"]), (2, ["two\r\nlines", "x"]), (3, ["3", "4"])]),
    (b'a\n"one\n\n\nfield"\nnext\n', [(1, ["a"]), (2, ["one\n\n\nfield"]), (3, ["next"])]),
    (b'a,b\r\n"",x\r\n', [(1, ["a", "b"]), (2, [None, "x"])]),  # quoted empty is empty
    (b"a,b,c\r\n,,x\r\n,,\r\n\r\n1,,\r\n", [(1, ["a", "b", "c"]), (2, [None, None, "x"]), (5, ["1", None, None])]),
    (b"a,b\r\n  x , y \r\n", [(1, ["a", "b"]), (2, ["  x ", " y "])]),  # spaces are data
    (b'a\r\nsay 5" tall\r\n', [(1, ["a"]), (2, ['say 5" tall'])]),  # a quote inside an unquoted field is data
    (b"a,b\r\n1,2,3\r\n4\r\n", [(1, ["a", "b"]), (2, ["1", "2", "3"]), (3, ["4"])]),  # ragged: the caller's problem
    (b"a,b\r1,2\r", [(1, ["a", "b"]), (2, ["1", "2"])]),  # CR line ends (old Mac Excel)
    (b'a,b\r"x\ry",2\r', [(1, ["a", "b"]), (2, ["x\ry", "2"])]),
    (b"a,b\r\nx\ry,3\n4,5\r", [(1, ["a", "b"]), (2, ["x"]), (3, ["y", "3"]), (4, ["4", "5"])]),  # mixed, as newline=
    (b"", []),
    (b"\r\n\r\n", []),
])
def test_records(tmp_path: Path, data: bytes, rows: list) -> None:
    assert read(tmp_path, data) == rows


def test_record_numbers_count_records_not_lines(tmp_path: Path) -> None:
    """Row N is what a spreadsheet shows as row N: blank lines keep their numbers, quoted newlines do not count."""
    data = b'h\r\n"a\r\nb\r\nc"\r\n\r\nx\r\n"y\ny"\r\nz\r\n'
    assert [n for n, _ in read(tmp_path, data)] == [1, 2, 4, 5, 6]


@pytest.mark.parametrize("data,words", [
    (b'a,b\r\n"x"y,2\r\n', ["line 2", "closing quote"]),
    (b'a,b\r\n1,2\r\n"open,3\r\n4,5\r\n', ["line 3", "never closed"]),
])
def test_malformed_records_are_refused_at_their_line(tmp_path: Path, data: bytes, words: list[str]) -> None:
    with pytest.raises(CsvError) as caught:
        read(tmp_path, data)
    assert all(word in str(caught.value) for word in words), str(caught.value)
    assert caught.value.code == "bad_csv" and caught.value.detail["line"] == int(words[0].split()[1])


def test_errors_name_the_file_line_too_where_it_differs(tmp_path: Path) -> None:
    with pytest.raises(CsvError, match=r"^line 3 \(line 5 of the file"):
        read(tmp_path, b'h\r\n"a\r\nb\r\nc"\r\nx\x00\r\n')


def test_errors_pickle_with_their_detail(tmp_path: Path) -> None:
    with pytest.raises(CsvError) as caught:
        read(tmp_path, b"a\r\n" + b"1\r\n" * 20 + b"x\x00\r\n")
    copy = pickle.loads(pickle.dumps(caught.value))  # the error crosses a process boundary in imports
    assert type(copy) is CsvError and copy.message == caught.value.message and copy.detail == {"line": 22}


# --- encodings -----------------------------------------------------------------------------------------------------

TEXT = "name,city\r\nZoë,Kraków\r\n李,Ελλάδα 📦\r\n"
ROWS = [(1, ["name", "city"]), (2, ["Zoë", "Kraków"]), (3, ["李", "Ελλάδα 📦"])]


@pytest.mark.parametrize("data,encoding", [
    (TEXT.encode("utf-8"), "utf-8"),
    (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8-sig"),
    (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-16"),
    (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16"),
])
def test_unicode_encodings_are_told_from_the_byte_order_mark(tmp_path: Path, data: bytes, encoding: str) -> None:
    with book(tmp_path, data) as opened:
        assert opened.encoding == encoding and opened.delimiter == ","
        assert list(opened.rows()) == ROWS


def test_utf16_with_a_semicolon_and_quoted_newlines(tmp_path: Path) -> None:
    data = codecs.BOM_UTF16_LE + 'a;b\r\n"x\r\ny";€\r\n'.encode("utf-16-le")
    with book(tmp_path, data) as opened:
        assert opened.delimiter == ";" and list(opened.rows()) == [(1, ["a", "b"]), (2, ["x\r\ny", "€"])]


def test_cp1252_only_when_named(tmp_path: Path) -> None:
    data = "name,price\r\nCafé crème,5 €\r\n“quoted”,–\r\n".encode("cp1252")
    with book(tmp_path, data, encoding="cp1252") as opened:
        assert opened.encoding == "cp1252"
        assert list(opened.rows())[1:] == [(2, ["Café crème", "5 €"]), (3, ["“quoted”", "–"])]
    # Not named: read as UTF-8; each field with such bytes is Unreadable, naming its cell and the fix.
    (_, header), (_, first), (_, second) = read(tmp_path, data)
    assert header == ["name", "price"]
    assert all(isinstance(value, Unreadable) for value in first + second)
    message = first[0].message
    assert message.startswith("line 2, column 1 (A2): bytes that are not valid UTF-8 (E9 E8)")
    assert "'Café crème' in cp1252" in message and "encoding=cp1252" in message
    assert str(second[1]).startswith("line 3, column 2 (B3)")


def test_invalid_utf8_that_is_not_cp1252_says_so(tmp_path: Path) -> None:
    (_, _), (_, values) = read(tmp_path, b"a,b\r\nok,bad \x81\x8d here\r\n")
    assert values[0] == "ok" and isinstance(values[1], Unreadable)
    assert "(81 8D)" in values[1].message and "cp1252" not in values[1].message


def test_a_bad_byte_in_a_quoted_multiline_field(tmp_path: Path) -> None:
    rows = read(tmp_path, b'a,b\r\n"x\r\n\xff",y\r\n')
    assert rows[1][0] == 2 and isinstance(rows[1][1][0], Unreadable) and rows[1][1][1] == "y"
    assert rows[1][1][0].message.startswith("line 2, column 1 (A2)")


def test_invalid_utf16_is_unreadable_at_its_field(tmp_path: Path) -> None:
    data = codecs.BOM_UTF16_LE + "a,b\r\n".encode("utf-16-le") + b"x\x00\x00\xd8,\x00y\x00\r\x00\n\x00"
    (_, header), (_, values) = read(tmp_path, data)
    assert header == ["a", "b"] and values[1] == "y"
    assert isinstance(values[0], Unreadable) and "not valid utf-16" in values[0].message


@pytest.mark.parametrize("data,options,words", [
    (codecs.BOM_UTF8 + b"a\r\n", {"encoding": "cp1252"}, "UTF-8 byte order mark"),
    (codecs.BOM_UTF16_LE + "a\r\n".encode("utf-16-le"), {"encoding": "utf-8"}, "UTF-16 byte order mark"),
    (codecs.BOM_UTF32_LE + "a\r\n".encode("utf-32-le"), {}, "UTF-32"),
    ("a\r\n".encode("utf-16-le"), {}, "NUL bytes"),
    ("a\r\n".encode("utf-16-le"), {"encoding": "utf-16"}, "no UTF-16 byte order mark"),
    (b"a\r\n", {"encoding": "no-such-codec"}, "unknown encoding"),
    (b"PK\x03\x04rest of a zip", {}, "ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1rest", {}, "Office document"),
])
def test_encodings_that_are_refused(tmp_path: Path, data: bytes, options: dict, words: str) -> None:
    with pytest.raises(NotCsv, match=words) as caught:
        read(tmp_path, data, **options)
    assert caught.value.code == "not_csv"


def test_a_given_encoding_that_matches_the_bom(tmp_path: Path) -> None:
    with book(tmp_path, codecs.BOM_UTF8 + b"a\r\n1\r\n", encoding="utf-8") as opened:
        assert opened.encoding == "utf-8-sig" and list(opened.rows()) == [(1, ["a"]), (2, ["1"])]


# --- dialects ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data,delimiter", [
    (b"a,b,c\r\n1,2,3\r\n", ","),
    (b"a;b;c\r\n1,5;2;3\r\n", ";"),  # decimal commas
    (b"a\tb\r\n1,2\t3;4\r\n", "\t"),
    (b"a|b|c\r\n1|2|3\r\n", "|"),
    (b'a;b\r\n"x,y,z";2\r\n"p,q";3\r\n', ";"),  # quoted commas do not count
    (b"a,b;c\r\n1,2;3\r\n4,5,6;7\r\n", ";"),  # the consistent one, although ',' gives more fields somewhere
    (b"one column\r\nx\r\n", ","),
    (b"a;b\r\n", ";"),
])
def test_the_delimiter_is_sniffed(tmp_path: Path, data: bytes, delimiter: str) -> None:
    with book(tmp_path, data) as opened:
        assert opened.delimiter == delimiter


def test_sniffing_reads_only_the_first_records(tmp_path: Path) -> None:
    data = b"a;b\r\n" + b"1;2\r\n" * 200_000 + b"x,y,z,w\r\n" * 10
    with book(tmp_path, data) as opened:
        assert opened.delimiter == ";"


def test_a_ragged_record_does_not_change_the_delimiter(tmp_path: Path) -> None:
    with book(tmp_path, b"a,b,c\r\n1,2,3\r\n4,5\r\n6,7,8\r\n") as opened:
        assert opened.delimiter == ","


def test_the_delimiter_can_be_given(tmp_path: Path) -> None:
    assert read(tmp_path, b"a;b,c\r\n1;2,3\r\n", delimiter=",") == [(1, ["a;b", "c"]), (2, ["1;2", "3"])]
    with pytest.raises(CsvError, match="delimiter"):
        read(tmp_path, b"a\r\n", delimiter='"')


# --- the neutralising mark -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("'=1+2", "=1+2"), ("'+33", "+33"), ("'-x", "-x"), ("'@a", "@a"), ('"\'\tx"', "\tx"), ('"\'\rx"', "\rx"),
    ("''=x", "'=x"), ("'plain", "'plain"), ("O'Brien", "O'Brien"), ("'", "'"), ("''", "''"),
])
def test_the_mark_before_a_trigger_is_taken_off(tmp_path: Path, field: str, value: str) -> None:
    assert read(tmp_path, f"a,b\r\n{field},'=z\r\n".encode())[1] == (2, [value, "=z"])


# --- books and sniffing bytes --------------------------------------------------------------------------------------

def test_the_book_is_one_sheet_that_reads_again(tmp_path: Path) -> None:
    with book(tmp_path, b"a\r\n1\r\n", sheet_name="orders") as opened:
        assert opened.sheet_names == ["orders"] and opened.exact_width is True
        assert list(opened.rows("orders")) == list(opened.rows()) == [(1, ["a"]), (2, ["1"])]


def test_two_readings_at_once_each_read_the_whole_file(tmp_path: Path) -> None:
    data = b"n\r\n" + b"".join(b"%d\r\n" % i for i in range(50_000))  # several chunks
    with book(tmp_path, data) as opened:
        first, second = opened.rows(), opened.rows()
        head = [next(first) for _ in range(30_000)]
        assert list(second) == head + list(first)
        assert len(head) == 30_000 and head[-1] == (30_000, ["29998"])
        with pytest.raises(CsvError, match="no sheet 'other'"):
            opened.rows("other")


@pytest.mark.parametrize("head,expected", [
    (b"id,name\r\n1,x\r\n", True), (codecs.BOM_UTF8 + b"a;b", True), ("é,ü\n".encode("cp1252"), True),
    (codecs.BOM_UTF16_LE + "a,b\r\n".encode("utf-16-le"), True),
    (codecs.BOM_UTF16_BE + "a,b\r\n".encode("utf-16-be"), True),
    ("naïve,日本".encode()[:-1], True),  # a sequence cut by the end of the head
    (b"PK\x03\x04\x14\x00\x00\x00", False), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", False),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\x00", False), (bytes(range(256)), False),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", False), (b"", False),
    ("a,b\r\n".encode("utf-16-le"), False), (codecs.BOM_UTF32_LE + "a".encode("utf-32-le"), False),
])
def test_looks_like_csv(head: bytes, expected: bool) -> None:
    assert looks_like_csv(head) is expected


def test_many_blocks_read_like_the_stdlib(tmp_path: Path) -> None:
    """Several chunks of demo rows (multi-line notes, marks before formula-like notes, O'Brien, NULLs), with CRLF,
    LF and CR line ends: the same records as the stdlib reads, with the mark taken off."""
    import csv
    import io

    from sheetstream.formats.csv import write_csv
    from sheetstream.formats.csv.injection import restore
    from sheetstream.store.demo import ORDERS, demo_rows

    data = b"".join(write_csv(demo_rows(2_500), [c.name for c in ORDERS]))
    for line_end in (b"\r\n", b"\n", b"\r"):
        text = data.replace(b"\r\n", line_end)
        expected = [(n, [restore(v) if v else None for v in record])
                    for n, record in enumerate(csv.reader(io.StringIO(text.decode(), newline="")), 1)]
        rows = read(tmp_path, text)
        assert len(text) > 4 * 65_536 and len(rows) == 2_501
        assert rows == expected


def test_bytes_a_named_encoding_cannot_decode(tmp_path: Path) -> None:
    """cp1252 leaves five bytes undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D): such a field is Unreadable too."""
    (_, header), (_, values) = read(tmp_path, b"a,b\r\ncaf\xe9,x\x81y\r\n", encoding="cp1252")
    assert header == ["a", "b"] and values[0] == "café" and isinstance(values[1], Unreadable)
    assert values[1].message == "line 2, column 2 (B2): bytes that are not valid cp1252 (81); the file is damaged " \
                                "or in another encoding"


def test_neutralised_headers_and_values_read_back(tmp_path: Path) -> None:
    from sheetstream.formats.csv import write_csv

    data = b"".join(write_csv([("=1+1", "-x", "@y", "'=z", 5)], ["=id", "+name", "a", "b", "c"]))
    assert read(tmp_path, data) == [(1, ["=id", "+name", "a", "b", "c"]), (2, ["=1+1", "-x", "@y", "'=z", "5"])]
