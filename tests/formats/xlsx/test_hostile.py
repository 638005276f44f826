"""Hostile and broken workbooks: each is refused with a BadWorkbook-family error (422), quickly, in bounded memory,
never with another exception (500) and never by reading the whole of a bomb."""

from __future__ import annotations

import io
import multiprocessing
import os
import re
import zipfile
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheetstream.formats.xlsx import (
    BadWorkbook,
    ReadLimits,
    UnsafeXml,
    WorkbookTooLarge,
    last_row,
    open_workbook,
    shared_strings,
    write_xlsx,
)
from sheetstream.formats.xlsx import sheet as sheet_module
from sheetstream.store.demo import ORDERS, demo_rows

from ...helpers import MAIN, build, measured, parts, patch_central_directory, read, read_all, sheet, styles

MB = 1 << 20
NO_RATIO = ReadLimits(max_ratio=1e12)  # to show that a bound holds without the zip bomb check


def refused(path: Path, error: type[BaseException] = BadWorkbook, match: str = "", limits: ReadLimits = ReadLimits(),
            seconds: float = 5.0, extra_mb: int = 64) -> BaseException:
    """Read every sheet of ``path``: it must fail with ``error`` (message matching ``match``), in under ``seconds``,
    with Python allocating under ``extra_mb`` MB meanwhile. Generous bounds: they catch blow-ups, not jitter."""
    result, elapsed, peak = measured(read_all, path, limits)
    assert isinstance(result, error), f"expected {error.__name__}, got {result!r}"[:500]
    assert match in str(result), str(result)
    assert elapsed < seconds, f"{elapsed:.1f} s"
    assert peak < extra_mb * MB, f"{peak / MB:.0f} MB"
    return result


# --- cell references and row numbers beyond Excel's grid ------------------------------------------------------------

@pytest.mark.parametrize("ref", ["XFE1", "AAAA3", "AAAAAAA3"])
def test_column_letters_beyond_xfd_are_refused(tmp_path: Path, ref: str) -> None:
    path = build(tmp_path / "cols.xlsx", parts(sheet(f'<row r="{ref[-1]}"><c r="{ref}"><v>1</v></c></row>')))
    refused(path, BadWorkbook, ref)


def test_the_last_column_and_row_are_fine(tmp_path: Path) -> None:
    path = build(tmp_path / "last.xlsx", parts(sheet('<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')))
    (number, values), = read(path)
    assert number == 1_048_576 and len(values) == 16_384 and values[-1] == 1


def test_cells_without_references_past_the_last_column(tmp_path: Path) -> None:
    path = build(tmp_path / "cols.xlsx", parts(sheet('<row r="2"><c r="XFD2"><v>1</v></c><c><v>2</v></c></row>')))
    refused(path, BadWorkbook, "row 2")


@pytest.mark.parametrize("row", ["1048577", "0", "99999999999999999999"])
def test_row_numbers_beyond_the_grid_are_refused(tmp_path: Path, row: str) -> None:
    path = build(tmp_path / "rows.xlsx", parts(sheet(f'<row r="{row}"><c><v>1</v></c></row>')))
    refused(path, BadWorkbook, row)


# --- one huge cell, one huge row: the tokenizer's buffer stays bounded and its time linear --------------------------

def _chunks(head: bytes, body: bytes, count: int, tail: bytes):
    yield head
    for _ in range(count):
        yield body
    yield tail


def test_a_huge_cell_is_refused_without_buffering_it(tmp_path: Path) -> None:
    """One 64 MB inline string: refused after its first megabytes, not after buffering it all (5x its size)."""
    head = '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1">' \
           '<c r="B1" t="inlineStr"><is><t>'.encode()
    contents = parts("")
    contents["xl/worksheets/sheet1.xml"] = _chunks(head, b"abcdefgh" * (MB // 8), 64, b"</t></is></c></row></sheetData></worksheet>")
    path = build(tmp_path / "cell.xlsx", contents)
    refused(path, BadWorkbook, "B1", limits=NO_RATIO, seconds=3, extra_mb=32)


def test_a_cell_over_32767_characters_is_refused(tmp_path: Path) -> None:
    text = "x" * 32_768
    path = build(tmp_path / "long.xlsx", parts(sheet(f'<row r="4"><c r="C4" t="inlineStr"><is><t>{text}</t></is></c></row>')))
    refused(path, BadWorkbook, "C4")
    rich = f'<row r="4"><c r="D4" t="inlineStr"><is><r><t>{text[:20_000]}</t></r><r><t>{text[:20_000]}</t></r></is></c></row>'
    refused(build(tmp_path / "rich.xlsx", parts(sheet(rich))), BadWorkbook, "D4")
    shared = build(tmp_path / "sst.xlsx", parts(sheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'),
                                                shared=f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>{text}</t></si></sst>'))
    refused(shared, BadWorkbook, "32,767")


def test_cells_at_the_limit_are_read(tmp_path: Path) -> None:
    """32,767 characters, counted as Excel does (UTF-16 units), however many bytes they take in the XML."""
    ascii_text, cjk, entities = "x" * 32_767, "日本" * 16_383, "&amp;" * 32_767
    path = build(tmp_path / "limit.xlsx", parts(sheet(
        f'<row r="1"><c r="A1" t="inlineStr"><is><t>{ascii_text}</t></is></c>'
        f'<c r="B1" t="inlineStr"><is><t>{cjk}</t></is></c><c r="C1" t="inlineStr"><is><t>{entities}</t></is></c></row>'
        + "".join(f'<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>' for r in range(2, 5_000)))))
    rows = read(path)
    assert rows[0][1] == [ascii_text, cjk, "&" * 32_767]
    assert len(rows) == 4_999 and rows[-1] == (4_999, [4_999])


def test_a_huge_row_is_refused_as_soon_as_it_passes_the_bound(tmp_path: Path) -> None:
    """A row of a million cells (all in A: no column check helps) is refused once its XML passes the bound."""
    head = b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="7">'
    contents = parts("")
    contents["xl/worksheets/sheet1.xml"] = _chunks(head, b'<c r="A7"><v>1</v></c>' * 50_000, 60, b"</row></sheetData></worksheet>")
    path = build(tmp_path / "row.xlsx", contents)
    refused(path, WorkbookTooLarge, "row 7", limits=NO_RATIO, seconds=4, extra_mb=48)


def test_empty_rows_and_long_sheets_are_not_mistaken_for_a_huge_row(tmp_path: Path) -> None:
    """Self-closing rows (Excel writes them for formatted empty rows) and what follows sheetData (merged cells,
    hyperlinks) may run to many megabytes: neither is one row."""
    empty = "".join(f'<row r="{r}" ht="20" customHeight="1"/>' for r in range(2, 200_000))
    merges = "".join(f'<mergeCell ref="A{r}:B{r}"/>' for r in range(1, 200_000))
    xml = (f'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
           f'<row r="1"><c r="A1"><v>1</v></c></row>{empty}<row r="200000"><c r="B200000"><v>2</v></c></row>'
           f"</sheetData><mergeCells>{merges}</mergeCells></worksheet>")
    path = build(tmp_path / "sparse.xlsx", parts(xml))
    assert read(path, limits=ReadLimits(max_row_bytes=2 * MB)) == [(1, [1]), (200_000, [None, 2])]


@pytest.mark.parametrize("unclosed", [
    '<c r="A1" t="inlineStr"><is><t>abc</t></is>',  # cells without </c>
    '<c r="A1" s="1" t="str"><f>1</f><v>2</v>',  # formula cells without </c>
    '<c r="A1" t="inlineStr',  # tags without >
    ('<c r="A1" t="inlineStr"><is>', "<rPh><t>x</t>", "</is></c>"),  # phonetic runs without </rPh>, in one cell
    ('<c r="A1" t="inlineStr"><is>', "<r><t>abc", "</is></c>"),  # text runs without </t>, in one cell
])
def test_unclosed_elements_take_linear_time(tmp_path: Path, unclosed: str | tuple[str, str, str]) -> None:
    """Patterns that searched ahead for a closing tag took quadratic time on elements that never close (55 s for
    200 kB of unclosed cells): each now stops where its element must end."""
    head, unit, tail = unclosed if isinstance(unclosed, tuple) else ("", unclosed, "")
    xml = sheet(f'<row r="1">{head}{unit * (600_000 // len(unit))}{tail}<c r="B1"><v>7</v></c></row>')
    result, elapsed, _ = measured(read_all, build(tmp_path / "unclosed.xlsx", parts(xml)))
    assert isinstance(result, (dict, BadWorkbook)), repr(result)
    assert elapsed < 5, f"{elapsed:.1f} s"


def _read_every_way(path: Path, scanner: bool) -> str:
    """Each block's last row (as a split import numbers them), then every row: what it ends with, as text."""
    if not scanner:
        sheet_module._scan = sheet_module._scan_rows = shared_strings._shared_scan = None
    try:
        with open_workbook(path, NO_RATIO) as book:  # the upload holds a few such blocks under the ratio bound
            previous = 0
            for block in book.row_blocks():
                previous = last_row(block, previous)
        return f"{previous} {sum(map(len, read_all(path, NO_RATIO).values()))} rows"
    except BadWorkbook as exc:
        return f"{type(exc).__name__}: {exc}"


def _in_child(seconds: float, func, *args) -> str:
    """``func(*args)`` in a forked process, killed after ``seconds``: a scan that never ends cannot hold the
    tests (nor can the compiled scanner's loops, which no signal interrupts)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=lambda: send.send(func(*args)), daemon=True)
    child.start()
    try:
        if not receive.poll(seconds):
            pytest.fail(f"still reading after {seconds} s")
        return receive.recv()
    finally:
        child.kill()
        child.join()


@pytest.mark.parametrize("scanner", [True, False], ids=["compiled", "python"])
@pytest.mark.parametrize("unit", ["<row", '<row r="2" ', '<row><c r="A1"', "<row>"])
@pytest.mark.parametrize("end", ["", "><row/><row>"], ids=["unended", "ended-far-away"])
def test_row_heads_without_an_end_take_linear_time(tmp_path: Path, unit: str, scanner: bool, end: str) -> None:
    """Most of a 1 MB block of row heads that do not end (a 9 kB upload) made every search for a head's ">"
    rescan the rest of the block: to the block's end in the Python pattern, to a ">" far away in the compiled
    scanner's loop (245 s for 1 MB). Each head is now looked at once: a head cut by the next "<" is refused at
    once, and closed ones are read in linear time."""
    rows = 25_000  # a first block of rows (1.2 MB), so that the heads are in the second, read by the rows loop
    prefix = sheet("".join(f'<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>' for r in range(1, rows + 1)))
    prefix = prefix[:prefix.index("</sheetData>")]
    count = (2 * MB - len(prefix) - 100) // len(unit)  # the heads and their end in the second 1 MB block
    assert count * len(unit) > 700_000
    path = build(tmp_path / "heads.xlsx", parts(prefix + unit * count + end + "</sheetData></worksheet>"))
    outcome = _in_child(5, _read_every_way, path, scanner)
    if unit.startswith("<row>"):  # closed heads: rows without a value (the cells do not end), numbered on
        assert outcome == f"{rows + count + end.count('<row')} {rows} rows", outcome
    else:
        assert outcome.startswith("BadCell:") and "does not end" in outcome and f"row {rows}" in outcome, outcome


def test_unclosed_shared_strings_take_linear_time(tmp_path: Path) -> None:
    sst = '<sst xmlns="x">' + "<si><t>x</t>" * 50_000 + "<si><t>last</t></si></sst>"
    path = build(tmp_path / "sst.xlsx", parts(sheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'), shared=sst))
    result, elapsed, _ = measured(read_all, path)
    assert result == {"Data": [(1, ["last"])]} and elapsed < 5, (result, elapsed)


# --- shared strings ----------------------------------------------------------------------------------------------

def test_a_flood_of_empty_shared_strings_is_refused(tmp_path: Path) -> None:
    """Millions of <si/> cost 5 bytes each to send and far more to keep: refused early, ratio check or not."""
    sst = _chunks(b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">', b"<si/>" * 200_000, 40, b"</sst>")
    contents = parts(sheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'), shared="")
    contents["xl/sharedStrings.xml"] = sst
    path = build(tmp_path / "sst.xlsx", contents)
    refused(path, WorkbookTooLarge, "shared strings", limits=NO_RATIO, seconds=3, extra_mb=48)


def test_the_shared_strings_count_has_an_absolute_cap(tmp_path: Path) -> None:
    sst = "".join(f"<si><t>text number {i}</t></si>" for i in range(2_000))
    path = build(tmp_path / "sst.xlsx", parts(sheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'),
                                              shared=f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{sst}</sst>'))
    assert read(path) == [(1, ["text number 0"])]
    refused(path, WorkbookTooLarge, "1,000", limits=ReadLimits(max_shared_strings=1_000))


def test_many_short_shared_strings_are_held_compactly(tmp_path: Path) -> None:
    """500,000 distinct texts of 4 bytes (5,000,000 took 467 MB as a Python string each; these, some 35 MB): held
    as one buffer of their UTF-8 and an end offset each, they take a fraction of that, and the last reads back."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    count = 500_000

    def text(i: int) -> str:
        return digits[i // 238_328] + digits[i // 3_844 % 62] + digits[i // 62 % 62] + digits[i % 62]

    sst = f'<sst xmlns="{MAIN}">' + "".join(f"<si><t>{text(i)}</t></si>" for i in range(count)) + "</sst>"
    path = build(tmp_path / "sst.xlsx", parts(sheet(f'<row r="1"><c r="A1" t="s"><v>{count - 1}</v></c></row>'),
                                              shared=sst))
    result, elapsed, peak = measured(read_all, path)
    assert result == {"Data": [(1, [text(count - 1)])]}, result
    assert peak < 24 * MB, f"{peak / MB:.0f} MB"


def test_a_flood_of_sheets_is_refused_as_it_is_parsed(tmp_path: Path) -> None:
    """200,000 sheets listed in a workbook part of a few MB (560,000 took 490 MB as elements): refused at the
    4,097th, with the part parsed as it streams and nothing but each sheet's name and id kept."""
    contents = parts(sheet('<row r="1"><c r="A1"><v>1</v></c></row>'))
    listed = "".join(f'<sheet name="s{i}" sheetId="{i + 2}" r:id="rX{i}"/>' for i in range(200_000))
    contents["xl/workbook.xml"] = contents["xl/workbook.xml"].replace("</sheets>", listed + "</sheets>")
    refused(build(tmp_path / "sheets.xlsx", contents), WorkbookTooLarge, "over 4,096 sheets", limits=NO_RATIO,
            seconds=5, extra_mb=16)


def test_cell_formats_past_excels_64000_are_refused(tmp_path: Path) -> None:
    """Excel's own limit: 64,000 cell formats. 600,000 (a 12 MB styles part, 600 MB as elements) are refused as
    the part is parsed; 64,000 are read, the date ones still telling dates."""
    contents = parts(sheet('<row r="1"><c r="A1" s="63999"><v>45000</v></c></row>'), style=styles("yyyy-mm-dd"))
    styles_xml = contents["xl/styles.xml"]
    at_limit = styles_xml.replace("</cellXfs>", '<xf numFmtId="0"/>' * (64_000 - 3) + '<xf numFmtId="14"/></cellXfs>')
    assert at_limit.count("<xf ") - styles_xml.count("<xf ") == 63_998 and styles_xml.count("<cellXfs")
    path = build(tmp_path / "limit.xlsx", dict(contents, **{"xl/styles.xml": at_limit}))
    assert read(path, limits=NO_RATIO) == [(1, [datetime(2023, 3, 15)])]
    flood = styles_xml.replace("</cellXfs>", '<xf numFmtId="14"/>' * 600_000 + "</cellXfs>")
    refused(build(tmp_path / "xfs.xlsx", dict(contents, **{"xl/styles.xml": flood})), WorkbookTooLarge,
            "over 64,000 cell formats", limits=NO_RATIO, seconds=10, extra_mb=16)


def test_a_zip_of_too_many_parts_is_refused_before_its_directory_is_read(tmp_path: Path) -> None:
    """Parts listed in a directory of over 2 MB (200,000 empty parts, an 18 MB upload, took 117 MB as zipfile's
    entries): refused from the directory's size that the zip's end record declares, before zipfile reads it."""
    contents = parts(sheet('<row r="1"><c r="A1"><v>1</v></c></row>'))
    contents.update((f"x/{i:0200}", b"") for i in range(10_000))  # long names: fewer parts to write here
    refused(build(tmp_path / "parts.xlsx", contents, zipfile.ZIP_STORED), WorkbookTooLarge, "ZIP directory",
            seconds=2, extra_mb=4)


# --- sizes from the bytes actually inflated, not from the zip's headers ---------------------------------------------

def test_a_central_directory_that_lies_about_sizes_does_not_pass_the_bomb_check(tmp_path: Path) -> None:
    rows = b'<row><c t="inlineStr"><is><t>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</t></is></c></row>' * 20_000
    contents = parts("")
    contents["xl/worksheets/sheet1.xml"] = _chunks(b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>',
                                                   rows, 15, b"</sheetData></worksheet>")
    contents["xl/media/image1.png"] = os.urandom(4 * MB)  # room after the part for the compressed size it claims
    path = build(tmp_path / "liar.xlsx", contents)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("xl/worksheets/sheet1.xml")
        assert info.file_size / info.compress_size > 200  # a bomb by the honest sizes
    # The directory claims a compressed size ten times too large: by the headers, the part expands 10 times.
    patch_central_directory(path, "xl/worksheets/sheet1.xml", compress_size=info.file_size // 10)
    refused(path, WorkbookTooLarge, "zip bomb", seconds=3, extra_mb=32)


# --- errors that were 500s: a BadWorkbook naming the cell -----------------------------------------------------------

DATES = styles("yyyy-mm-dd")


@pytest.mark.parametrize("xml,style,words", [
    ('<row r="abc"><c><v>1</v></c></row>', None, ["row", "abc"]),
    ('<row r="2"><c r="B2"><v>abc</v></c></row>', None, ["B2", "abc", "not a number"]),
    ('<row r="2"><c r="B2" t="n"><v>1,5</v></c></row>', None, ["B2", "1,5", "not a number"]),
    ('<row r="3"><c r="C3" t="d"><v>yesterday</v></c></row>', None, ["C3", "yesterday", "ISO"]),
    ('<row r="3"><c r="C3" t="s"><v>x1</v></c></row>', None, ["C3", "shared string", "x1"]),
    ('<row r="3"><c r="C3" t="s"><v>-1</v></c></row>', None, ["C3", "shared string", "-1"]),
    ('<row r="4"><c r="D4" s="1"><v>3000000</v></c></row>', DATES, ["D4", "9999-12-31"]),
    ('<row r="4"><c r="D4" s="1"><v>1e308</v></c></row>', DATES, ["D4", "9999-12-31"]),
    ('<row r="4"><c r="D4" s="1" t="n"><f>A1</f><v>-800000</v></c></row>', DATES, ["D4", "9999-12-31"]),
    ('<row r="5"><c r="E5" t="inlineStr"><is><t>&#x110000;</t></is></c></row>', None, ["E5", "character"]),
    ('<row r="5"><c r="E5" t="inlineStr"><is><t>\xff\xfe</t></is></c></row>', None, ["E5", "UTF-8"]),
])
def test_unreadable_values_name_the_cell(tmp_path: Path, xml: str, style: str | None, words: list[str]) -> None:
    data = sheet(xml).encode("latin-1" if "\xff" in xml else "utf-8")
    path = build(tmp_path / "bad.xlsx", parts(data, shared='<sst xmlns="x"><si><t>s</t></si></sst>', style=style))
    error = refused(path, BadWorkbook)
    for word in words:
        assert word in str(error), str(error)


# --- DTDs in every part, in every encoding, anywhere --------------------------------------------------------------

LAUGHS = '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'


def test_a_utf16_workbook_part_with_an_internal_entity_is_refused(tmp_path: Path) -> None:
    contents = parts(sheet('<row r="1"><c r="A1"><v>1</v></c></row>'))
    workbook = contents["xl/workbook.xml"]
    contents["xl/workbook.xml"] = (f'<?xml version="1.0" encoding="UTF-16"?>{LAUGHS}'
                                   + workbook.replace('name="Data"', 'name="&lol2;"')).encode("utf-16")
    refused(build(tmp_path / "utf16.xlsx", contents), UnsafeXml, "DTD")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_a_sheet_not_in_utf8_is_refused(tmp_path: Path, encoding: str) -> None:
    xml = f'<?xml version="1.0" encoding="{encoding.upper()}"?>{LAUGHS}' + sheet(
        '<row r="1"><c r="A1" t="inlineStr"><is><t>&lol2;</t></is></c></row>').split("?>", 1)[1]
    refused(build(tmp_path / "utf16.xlsx", parts(xml.encode(encoding))), BadWorkbook, "UTF-8")


def test_a_sheet_declaring_another_encoding_is_refused(tmp_path: Path) -> None:
    xml = sheet('<row r="1"><c r="A1" t="inlineStr"><is><t>caf\xe9</t></is></c></row>').replace("UTF-8", "ISO-8859-1")
    refused(build(tmp_path / "latin1.xlsx", parts(xml.encode("latin-1"))), BadWorkbook, "ISO-8859-1")


@pytest.mark.parametrize("offset", [5_000, (1 << 20) - 3, (1 << 20) + 100, 3 * (1 << 20) - 7])
@pytest.mark.parametrize("part", ["sheet", "shared strings"])
def test_a_dtd_anywhere_in_a_large_part_is_refused(tmp_path: Path, offset: int, part: str) -> None:
    """Past the first 4 kB, and across the boundary of the 1 MB blocks the tokenizer reads."""
    if part == "sheet":
        head = '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        unit, tail = '<row><c t="inlineStr"><is><t>lol</t></is></c></row>', "</sheetData></worksheet>"
    else:
        head = '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        unit, tail = "<si><t>lol</t></si>", "</sst>"
    body = head + unit * (offset // len(unit) + 1)
    body = body[:body.rfind("<", 0, offset)]  # cut at a tag boundary just before the offset
    xml = body + LAUGHS + unit * 10 + tail
    assert abs(xml.find("<!DOCTYPE") - offset) < 100
    if part == "sheet":
        contents = parts(xml)
    else:
        contents = parts(sheet('<row r="1"><c r="A1" t="s"><v>0</v></c></row>'), shared=xml)
    # Rows before the marker are read as usual (slowly under tracemalloc): the point here is where, not how fast.
    refused(build(tmp_path / "dtd.xlsx", contents), UnsafeXml, "DTD", limits=NO_RATIO, seconds=60, extra_mb=256)


# --- damage the property test found ----------------------------------------------------------------------------

def test_found_by_the_property_test(tmp_path: Path) -> None:
    contents = parts(sheet('<row r="1"><c r="A1"><v>1</v></c></row>'), style=styles("0.00"))
    unknown = dict(contents, **{"xl/workbook.xml": '<?xml version="1.0" encoding="abc"?>' + contents["xl/workbook.xml"]})
    refused(build(tmp_path / "encoding.xlsx", unknown), BadWorkbook, "xl/workbook.xml")
    version = build(tmp_path / "version.xlsx", contents)
    data = bytearray(version.read_bytes())
    data[data.find(b"PK\x01\x02") + 6] = 64  # "needs zip version 6.4 to extract"
    version.write_bytes(bytes(data))
    refused(version, BadWorkbook, "not an .xlsx workbook")
    bad_ids = dict(contents, **{"xl/styles.xml": contents["xl/styles.xml"].replace('numFmtId="164"', 'numFmtId="\u00b2"')})
    assert read_all(build(tmp_path / "ids.xlsx", bad_ids)) == {"Data": [(1, [1])]}


# --- fuzz: mutated workbooks give rows or a BadWorkbook, nothing else ---------------------------------------------

def _seed_workbooks() -> list[bytes]:
    seeds = []
    buffer = io.BytesIO()
    for chunk in write_xlsx(demo_rows(20), [c.name for c in ORDERS]):
        buffer.write(chunk)
    seeds.append(buffer.getvalue())
    rows = ('<row r="1" spans="1:4"><c r="A1" t="s"><v>0</v></c><c r="B1" s="1"><v>45293.5</v></c>'
            '<c r="C1" t="inlineStr"><is><r><t xml:space="preserve"> a </t></r><rPh><t>x</t></rPh></is></c>'
            '<c r="D1" t="b"><v>1</v></c></row><row r="3"><c r="A3" t="d"><v>2024-01-02T03:04:05</v></c>'
            '<c r="B3" t="e"><v>#N/A</v></c><c r="C3" t="str"><f>A1</f><v>x &amp; y</v></c><c r="D3"><v>1.5E3</v></c></row>')
    for compression in (zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression) as z:
            for name, data in parts(sheet(rows), shared='<sst xmlns="x"><si><t>one</t></si><si><r><t>two</t></r></si></sst>',
                                    style=styles("yyyy-mm-dd hh:mm", "[h]:mm")).items():
                z.writestr(name, data)
        seeds.append(buffer.getvalue())
    return seeds


SEEDS = _seed_workbooks()
_XML_BITS = [b"<", b">", b"/>", b'"', b"'", b"&", b"&#", b";", b"=", b" r=", b"<c", b"</c>", b"<row", b"</row>", b"<v>",
             b"</v>", b"<t>", b"</t>", b"<si>", b"t=\"s\"", b"t=\"d\"", b"t=\"n\"", b"s=\"1\"", b"r=\"ZZZZ9\"", b"9" * 30,
             b"-", b"1e400", b"_x0000_", b"\xff", b"\x00", b"<!DOCTYPE", b"x:", b"\r", b"\r\n", b""]


_ATTRIBUTE_VALUES = [b"", b"0", b"-1", b"1.5", b"abc", b"1e400", b"nan", b"99999999999999999999", b"A1", b"XFE1",
                     b"ZZZZZZZ9", b"a1", b"s", b"d", b"n", b"e", b"b", b"str", b"inlineStr", b"r", b"t", b"x:id",
                     b"..\\..\\x", b"/xl/worksheets/sheet1.xml", b"XL/STYLES.XML", b"1 2", b"\xff", b"&amp;", b"&#0;",
                     b"http://purl.oclc.org/ooxml/officeDocument/relationships/worksheet"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(SEEDS))
    how = draw(st.sampled_from(["part", "part", "attribute", "attribute", "zip", "truncate"]))
    if how == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if how == "zip":
        raw = bytearray(data)
        for _ in range(draw(st.integers(1, 8))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        return bytes(raw)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        contents = {info.filename: z.read(info) for info in z.infolist()}
        compression = z.infolist()[0].compress_type
    name = draw(st.sampled_from(sorted(contents)))
    xml = bytearray(contents[name])
    if how == "attribute":  # a value or a name of an attribute, or its quotes
        spans = [m.span(draw(st.sampled_from([1, 2]))) for m in re.finditer(rb'([\w:]+)="([^"]*)"', xml)]
        for _ in range(draw(st.integers(1, 4)) if spans else 0):
            start, end = draw(st.sampled_from(spans))
            xml[start:end] = draw(st.sampled_from(_ATTRIBUTE_VALUES))
            spans = [m.span(2) for m in re.finditer(rb'([\w:]+)="([^"]*)"', xml)] or [(0, 0)]
    for _ in range(draw(st.integers(1, 6)) if how == "part" else 0):
        at = draw(st.integers(0, len(xml)))
        cut = draw(st.integers(0, 12))
        xml[at:at + cut] = draw(st.one_of(st.sampled_from(_XML_BITS), st.binary(max_size=6)))
    contents[name] = bytes(xml)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z:
        for part_name, part in contents.items():
            z.writestr(part_name, part)
    return buffer.getvalue()


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=mutated())
def test_mutated_workbooks_give_rows_or_a_bad_workbook(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.xlsx"
    path.write_bytes(data)
    try:
        for rows in read_all(path).values():
            for number, values in rows:
                assert 1 <= number <= 1_048_576 and len(values) <= 16_384
    except BadWorkbook:
        pass
