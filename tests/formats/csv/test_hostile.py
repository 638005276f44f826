"""Hostile and broken CSV files: each bound is refused with a CsvError naming its line, quickly, in bounded memory,
never with another exception and never by reading the whole of a huge line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheetstream.formats.csv import CsvError, CsvLimits, CsvTooLarge, open_csv

from ...helpers import measured

MB = 1 << 20


def read_all(path: Path, limits: CsvLimits) -> list:
    with open_csv(path, limits=limits) as book:
        return list(book.rows())


def drain(path: Path, limits: CsvLimits) -> int:
    with open_csv(path, limits=limits) as book:
        return sum(1 for _ in book.rows())


def refused(path: Path, error: type[CsvError] = CsvError, match: str = "", line: int | None = None,
            limits: CsvLimits = CsvLimits(), seconds: float = 5.0, extra_mb: int = 16) -> CsvError:
    """Read all of ``path``: it must fail with ``error`` (message matching ``match``, detail naming ``line``), in
    under ``seconds``, with Python allocating under ``extra_mb`` MB meanwhile. Generous bounds: they catch
    blow-ups, not jitter."""
    result, elapsed, peak = measured(drain, path, limits)
    assert isinstance(result, error), f"expected {error.__name__}, got {result!r}"[:500]
    assert match in str(result), str(result)
    if line is not None:
        assert result.detail["line"] == line, result.detail
    assert elapsed < seconds, f"{elapsed:.1f} s"
    assert peak < extra_mb * MB, f"{peak / MB:.0f} MB"
    return result


def test_a_1_gb_line_is_refused_after_the_bound(tmp_path: Path) -> None:
    """A file of 1 GB with no line end: refused once the record passes 1 MiB, without reading on. (The file is
    sparse: 4 MB of text, then a hole that reads as NUL bytes, which would be refused differently.)"""
    path = tmp_path / "huge.csv"
    with path.open("wb") as f:
        f.write(b"id,name\r\n1,")
        f.write(b"x" * (4 * MB))
        f.truncate(1 << 30)
    error = refused(path, CsvTooLarge, "longer than 1,048,576 bytes", line=2)
    assert error.code == "csv_too_large" and str(error).startswith("line 2:")


def test_a_record_at_the_bound_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    limits = CsvLimits(max_line_bytes=100_000)
    record = b"1," + b"y" * (100_000 - 4) + b"\r\n"
    assert len(record) == 100_000
    path = tmp_path / "edge.csv"
    path.write_bytes(b"a,b\r\n" + record + b"2,z\r\n")
    assert [n for n, _ in read_all(path, limits)] == [1, 2, 3]
    path.write_bytes(b"a,b\r\n" + record[:-2] + b"y\r\n2,z\r\n")
    refused(path, CsvTooLarge, "100,000 bytes", line=2, limits=limits)


def test_an_unclosed_quote_is_refused_at_its_record_once_it_passes_the_bound(tmp_path: Path) -> None:
    """A missing closing quote swallows the rest of the file into one record: many short lines, no long one."""
    path = tmp_path / "open.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n3,\"oops\r\n" + b"4,5\r\n" * 600_000)
    refused(path, CsvTooLarge, "missing \"", line=3, seconds=5)


def test_a_record_of_many_quoted_lines_counts_them_all(tmp_path: Path) -> None:
    limits = CsvLimits(max_line_bytes=64_000)
    path = tmp_path / "lines.csv"
    path.write_bytes(b"a\r\nok\r\n\"" + b"line\r\n" * 20_000 + b"\"\r\n")
    refused(path, CsvTooLarge, "line 3 (line ", line=3, limits=limits)


@pytest.mark.parametrize("fields,refuse", [(16_384, False), (16_385, True)])
def test_more_fields_than_columns_in_a_spreadsheet(tmp_path: Path, fields: int, refuse: bool) -> None:
    path = tmp_path / "wide.csv"
    path.write_bytes(b"a\r\n" + b"x," * (fields - 1) + b"x\r\n")
    if refuse:
        refused(path, CsvTooLarge, "16,385 fields, over the limit of 16,384", line=2)
    else:
        assert len(read_all(path, CsvLimits())[1][1]) == 16_384


def test_a_line_of_only_delimiters_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "commas.csv"
    path.write_bytes(b"a,b\r\n" + b"," * (MB - 10) + b"\r\n")
    refused(path, CsvTooLarge, "fields, over the limit", line=2, extra_mb=24)


@pytest.mark.parametrize("where", [0, 5_000, 50_000])
def test_nul_bytes_are_refused_at_their_line(tmp_path: Path, where: int) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"a,b\r\n" + b"1,2\r\n" * where + b"3,\x004\r\n" + b"5,6\r\n" * 1_000)
    refused(path, CsvError, "NUL byte", line=where + 2)


def test_a_binary_file_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(bytes(range(256)) * 4_000)
    with pytest.raises(CsvError, match="NUL bytes") as caught:
        open_csv(path)
    assert caught.value.code == "not_csv"


@pytest.mark.parametrize("where", [1, 3_000])
def test_a_byte_order_mark_inside_the_file_is_refused(tmp_path: Path, where: int) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfa,b\r\n" + b"1,2\r\n" * where + b"\xef\xbb\xbfa,b\r\n3,4\r\n")
    refused(path, CsvError, "byte order mark", line=where + 2)


def test_a_utf16_byte_order_mark_inside_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "bom16.csv"
    path.write_bytes(b"\xff\xfe" + "a,b\r\n1,2\r\n\ufeffa,b\r\n".encode("utf-16-le"))
    refused(path, CsvError, "byte order mark", line=3)


def test_the_whole_file_bound(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\r\n" + b"1,2\r\n" * 1_000)
    with pytest.raises(CsvTooLarge, match="over the limit of 4,000") as caught:
        open_csv(path, limits=CsvLimits(max_bytes=4_000))
    assert caught.value.code == "csv_too_large"
    assert len(read_all(path, CsvLimits(max_bytes=5_005))) == 1_001


@pytest.mark.parametrize("data", [
    b'"', b'""""', b'"a""', b"\r", b"\n\r\n\r", b'a,"b\r\n', b"'", b"\xff\xfe\x00", b"\xfe\xff\xd8\x00",
    b"\xef\xbb\xbf", b'a,b\r\n"x"\x00', b"\x1a\x1b\x7f", b"\xc3", b"a\r\n\xff\xfe",
])
def test_odd_little_files_read_or_are_refused_cleanly(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "odd.csv"
    path.write_bytes(data)
    result, elapsed, _ = measured(read_all, path, CsvLimits())
    assert isinstance(result, (list, CsvError)), repr(result)
    assert elapsed < 1
