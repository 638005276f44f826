"""The writer: every cell type, escaping, limits and sheet splits, read back by openpyxl and LibreOffice."""

from __future__ import annotations

import zipfile
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest

from sheetstream.formats.xlsx import CellTooLong, WriteStats, deflater, write_xlsx
from sheetstream.formats.xlsx.cells import MAX_CELL_CHARS, unescape_text
from sheetstream.store.demo import ORDERS, demo_rows

from ...helpers import assert_same_as_libreoffice, assert_same_as_openpyxl, openpyxl_sheets, write

HEADER = ["int", "float", "decimal", "bool", "date", "datetime", "time", "text", "none"]

ROWS = [
    (1, 1.5, Decimal("12.30"), True, date(2024, 1, 2), datetime(2024, 1, 2, 3, 4, 5), time(13, 30), "plain", None),
    (-7, -0.001, Decimal("-99999999.99"), False, date(1900, 3, 1), datetime(1999, 12, 31, 23, 59, 59), time(0, 0, 1),
     "a<&>\"'b", None),
    (2**40, 1e-300, Decimal("0.01"), True, date(9999, 12, 31), datetime(2020, 2, 29, 12, 0), time(23, 59, 59),
     "=SUM(A1:A9)", None),
    (0, 123456.789, Decimal("1000000"), False, date(2000, 1, 1), datetime(2000, 1, 1), time(12), "+1 -2 @x", None),
    (None, None, None, None, None, None, None, None, None),
    (3, 2.0, Decimal("3.10"), True, date(2024, 2, 29), datetime(2024, 2, 29, 6, 7, 8), time(6, 7, 8),
     "ctl\x01\x02\x0b\x1f bell\x07 tab\t nl\n cr\r", None),
    (4, 0.1, Decimal("7"), False, date(1970, 1, 1), datetime(1970, 1, 1), time(1), "unicode: Żółć 日本語 📦 Ελλ", None),
    (5, 3.25, Decimal("8.88"), True, date(2001, 9, 9), datetime(2001, 9, 9, 1, 46, 40), time(2),
     "literal _x0041_ and _x00e9_ stay", None),
    (6, 4.5, Decimal("9"), False, date(2010, 10, 10), datetime(2010, 10, 10, 10, 10, 10), time(3), "  padded  ", None),
    (7, 5.5, Decimal("10"), True, date(2011, 11, 11), datetime(2011, 11, 11, 11, 11, 11), time(4), "", None),
]
















def test_every_cell_type_reads_back_in_openpyxl(tmp_path: Path) -> None:
    path = write(tmp_path, ROWS, HEADER, sheet_name="types")
    sheets = openpyxl_sheets(path)
    assert list(sheets) == ["types"]
    rows = sheets["types"]
    assert rows[0] == tuple(HEADER)
    assert_same_as_openpyxl(ROWS, rows[1:])


@pytest.mark.libreoffice
def test_every_cell_type_reads_back_in_libreoffice(tmp_path: Path, libreoffice) -> None:
    path = write(tmp_path, ROWS, HEADER, sheet_name="types")
    sheets = libreoffice.to_csv(path)
    assert list(sheets) == ["types"]
    assert sheets["types"][0] == HEADER
    assert_same_as_libreoffice(ROWS, sheets["types"][1:])


def test_cells_are_typed_in_the_xml(tmp_path: Path) -> None:
    """Formula-looking text is an inline string, never a formula; numbers, booleans and dates are typed."""
    path = write(tmp_path, ROWS, HEADER)
    with zipfile.ZipFile(path) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in xml and "<f " not in xml
    assert '<c t="inlineStr"><is><t>=SUM(A1:A9)</t></is></c>' in xml
    assert '<c t="b"><v>1</v></c>' in xml
    assert '<c s="2"><v>45293</v></c>' in xml  # 2024-01-02 is serial 45293 in Excel
    assert '<c t="inlineStr"><is><t>a&lt;&amp;&gt;"\'b</t></is></c>' in xml
    assert "_x0001__x0002__x000B__x001F_" in xml and "_x005F_x0041_" in xml
    assert '<t xml:space="preserve">  padded  </t>' in xml
    # None is no cell; a row that ends in None ends with an empty cell, so that every row has the full width.
    assert '</c><c r="I2"/></row>' in xml and "<v></v>" not in xml
    wb = openpyxl.load_workbook(path)
    assert wb.active["H4"].data_type == "s"
    assert wb.active["E2"].number_format == "yyyy-mm-dd"


@pytest.mark.libreoffice
def test_header_is_bold_frozen_filtered_and_columns_sized(tmp_path: Path, libreoffice) -> None:
    rows = [(i, "x" * 40, "short") for i in range(10)]
    path = write(tmp_path, rows, header=["id", "long text", "a very long column header"])
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    assert ws["A1"].font.b and ws["C1"].font.b and not ws["A2"].font.b
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:C11"
    assert ws.column_dimensions["A"].width == 8  # narrow data: the minimum
    assert ws.column_dimensions["B"].width == 41  # from the data sample
    assert ws.column_dimensions["C"].width == len("a very long column header") + 3  # from the header
    assert libreoffice.to_csv(path)["Sheet1"][1] == ["0", "x" * 40, "short"]


@pytest.mark.libreoffice
def test_empty_table_has_header_only(tmp_path: Path, libreoffice) -> None:
    path = write(tmp_path, [], header=["a", "b"], sheet_name="empty")
    assert openpyxl_sheets(path) == {"empty": [("a", "b")]}
    assert libreoffice.to_csv(path) == {"empty": [["a", "b"]]}


@pytest.mark.libreoffice
def test_one_row(tmp_path: Path, libreoffice) -> None:
    path = write(tmp_path, [(1, "x")], header=["a", "b"])
    assert openpyxl_sheets(path) == {"Sheet1": [("a", "b"), (1, "x")]}
    assert libreoffice.to_csv(path) == {"Sheet1": [["a", "b"], ["1", "x"]]}


@pytest.mark.libreoffice
def test_rows_beyond_the_limit_continue_on_new_sheets(tmp_path: Path, libreoffice) -> None:
    rows = [(i, f"row {i}") for i in range(1, 11)]
    stats = WriteStats()
    path = write(tmp_path, rows, header=["n", "label"], sheet_name="orders", max_sheet_rows=4, stats=stats)
    assert stats.rows == 10 and stats.sheets == ["orders", "orders (2)", "orders (3)", "orders (4)"]
    expected = {
        "orders": [("n", "label"), *rows[0:3]],
        "orders (2)": [("n", "label"), *rows[3:6]],
        "orders (3)": [("n", "label"), *rows[6:9]],
        "orders (4)": [("n", "label"), *rows[9:10]],
    }
    assert openpyxl_sheets(path) == expected
    assert libreoffice.to_csv(path) == {name: [[str(v) for v in r] for r in rs] for name, rs in expected.items()}


def test_sheet_split_exactly_at_the_limit_adds_no_empty_sheet(tmp_path: Path) -> None:
    rows = [(i,) for i in range(6)]
    path = write(tmp_path, rows, header=["n"], max_sheet_rows=4)
    assert [len(r) for r in openpyxl_sheets(path).values()] == [4, 4]


@pytest.mark.libreoffice
def test_text_over_the_excel_limit_is_truncated_and_counted(tmp_path: Path, libreoffice) -> None:
    long = "é" * (MAX_CELL_CHARS + 10)
    astral = "📦" * 20_000  # 40,000 UTF-16 code units: Excel counts those
    stats = WriteStats()
    path = write(tmp_path, [(long, astral, "ok")], header=["a", "b", "c"], stats=stats)
    assert stats.truncated_cells == 2
    row = openpyxl_sheets(path)["Sheet1"][1]
    assert row[0] == "é" * MAX_CELL_CHARS
    assert row[1] == "📦" * (MAX_CELL_CHARS // 2)  # cut on a whole character, not half a surrogate pair
    assert row[2] == "ok"
    assert libreoffice.to_csv(path)["Sheet1"][1] == list(row)


def test_text_over_the_excel_limit_can_be_an_error(tmp_path: Path) -> None:
    with pytest.raises(CellTooLong, match="B2 has 32768 characters"):
        write(tmp_path, [("ok", "x" * (MAX_CELL_CHARS + 1))], header=["a", "b"], long_text="error")


def test_more_columns_than_a_sheet_holds_is_refused() -> None:
    with pytest.raises(ValueError, match="16,385 columns: a sheet holds at most 16,384"):
        next(write_xlsx([], [f"c{i}" for i in range(16_385)]))


def test_text_at_the_limit_is_kept_whole(tmp_path: Path) -> None:
    stats = WriteStats()
    path = write(tmp_path, [("y" * MAX_CELL_CHARS,)], header=["a"], stats=stats)
    assert stats.truncated_cells == 0
    assert openpyxl_sheets(path)["Sheet1"][1][0] == "y" * MAX_CELL_CHARS


@pytest.mark.libreoffice
def test_special_numbers_and_early_dates(tmp_path: Path, libreoffice) -> None:
    """NaN and infinity become #NUM! error cells; dates before 1900 (no Excel serial) are ISO text."""
    rows = [(float("nan"), float("inf"), Decimal("NaN"), date(1899, 12, 31), datetime(1850, 5, 6, 7, 8, 9), date(1900, 1, 1))]
    path = write(tmp_path, rows, header=list("abcdef"))
    row = openpyxl_sheets(path)["Sheet1"][1]
    assert row[:3] == ("#NUM!", "#NUM!", "#NUM!")
    assert row[3:5] == ("1899-12-31", "1850-05-06 07:08:09")
    assert row[5] == datetime(1900, 1, 1)  # serial 1 in Excel's 1900 system
    # LibreOffice has no phantom 1900-02-29, so it reads serials below 61 (before 1900-03-01) a day early:
    # the same file shows 1900-01-01 in Excel and 1899-12-31 in LibreOffice. Documented in the README.
    assert libreoffice.to_csv(path)["Sheet1"][1] == ["#NUM!", "#NUM!", "#NUM!", "1899-12-31", "1850-05-06 07:08:09",
                                                      "1899-12-31"]


@pytest.mark.libreoffice
def test_other_types_are_written_as_text(tmp_path: Path, libreoffice) -> None:
    import uuid

    u = uuid.UUID(int=1)
    path = write(tmp_path, [(u, b"\x01\xff", timedelta(hours=36))], header=["uuid", "bytes", "duration"])
    row = openpyxl_sheets(path)["Sheet1"][1]
    assert row[:2] == (str(u), "01ff")
    assert row[2] == timedelta(hours=36)
    assert libreoffice.to_csv(path)["Sheet1"][1] == [str(u), "01ff", "36:00:00"]


@pytest.mark.libreoffice
@pytest.mark.parametrize("library,level", [("isal", 1), ("zlib", 1), ("zlib", 6)])
def test_compression_settings_give_the_same_workbook(tmp_path: Path, library: str, level: int, libreoffice) -> None:
    path = write(tmp_path, ROWS, HEADER, compress=deflater(library, level))
    assert_same_as_openpyxl(ROWS, openpyxl_sheets(path)["Sheet1"][1:])
    assert_same_as_libreoffice(ROWS, libreoffice.to_csv(path)["Sheet1"][1:])


def test_zip64_entries_when_forced_still_read(tmp_path: Path) -> None:
    """From 4 GiB on the entries switch to Zip64; forced from the start here, the file still reads
    (LibreOffice too: test_writer_compat.py)."""
    rows = list(demo_rows(50))
    path = write(tmp_path, rows, header=[c.name for c in ORDERS], zip64_after=-1)
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert z.getinfo("xl/worksheets/sheet1.xml").extract_version >= 45  # Zip64
    assert_same_as_openpyxl(rows, openpyxl_sheets(path)["Sheet1"][1:])


def test_no_zip64_below_4_gib(tmp_path: Path) -> None:
    """Files that do not need Zip64 do not use it: plain ZIP is what every reader takes. (Zip64 entries
    open in LibreOffice 7.4 as long as the central directory holds no Zip64 fields that are not needed:
    test_writer_compat.py.)"""
    path = write(tmp_path, list(demo_rows(50)), header=[c.name for c in ORDERS])
    with zipfile.ZipFile(path) as z:
        assert {i.extract_version for i in z.infolist()} == {20}


@pytest.mark.libreoffice
def test_part_size_cap_continues_on_a_new_sheet(tmp_path: Path, libreoffice) -> None:
    """A worksheet part is closed before it outgrows a 32-bit ZIP entry; rows go on in the next sheet."""
    rows = [(i, "z" * 200) for i in range(20_000)]
    stats = WriteStats()
    path = write(tmp_path, rows, header=["n", "text"], max_part_bytes=1_000_000, stats=stats)
    sheets = openpyxl_sheets(path)
    assert len(sheets) == len(stats.sheets) > 1
    assert [r[0] for rs in sheets.values() for r in rs[1:]] == list(range(20_000))
    assert [int(r[0]) for rs in libreoffice.to_csv(path).values() for r in rs[1:]] == list(range(20_000))


def test_generator_yields_before_consuming_all_rows() -> None:
    """The writer is lazy: bytes come out while rows are still to be read."""
    consumed = 0

    def rows():
        nonlocal consumed
        for i in range(100_000):
            consumed += 1
            yield (i, f"text {i}", i * 0.5)

    chunks = write_xlsx(rows(), ["a", "b", "c"])
    next(chunks)
    assert consumed <= 101  # the width sample, nothing more
    next(chunks)
    assert consumed < 100_000
    chunks.close()


@pytest.mark.libreoffice
def test_demo_rows_round_trip_through_libreoffice(tmp_path: Path, libreoffice) -> None:
    rows = list(demo_rows(300))
    path = write(tmp_path, rows, header=[c.name for c in ORDERS], sheet_name="orders")
    assert_same_as_openpyxl(rows, openpyxl_sheets(path)["orders"][1:])
    csv_rows = libreoffice.to_csv(path)["orders"]
    assert csv_rows[0] == [c.name for c in ORDERS]
    assert_same_as_libreoffice(rows, csv_rows[1:])


@pytest.mark.parametrize("text", ["\tlead tab", "trail nl\n", "nbsp\xa0", "\u2003em space", "non\ufffechar", "a_xZZ",
                                  "_x00e9_", "lone \ud800 surrogate", " both ", "", "plain words", "x" * 16_383])
def test_texts_that_need_care_read_back_unchanged(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, [(text,)], header=["t"])
    value = openpyxl_sheets(path)["Sheet1"][1][0]
    assert unescape_text(value) == text


FORMATS = ["0", None, "#,##0.00", None, "#,##0.00", None, None, None, "#,##0.000"]


def test_number_formats_by_column_leave_the_values_unchanged(tmp_path: Path) -> None:
    """A differential check: the same rows with and without column formats read back as the same values; only the
    numbers of the formatted columns carry the format (dates keep theirs)."""
    plain = openpyxl.load_workbook(write(tmp_path, ROWS, HEADER, name="plain")).active
    formatted = openpyxl.load_workbook(write(tmp_path, ROWS, HEADER, name="formatted", number_formats=FORMATS)).active
    assert [[c.value for c in r] for r in formatted.iter_rows()] == [[c.value for c in r] for r in plain.iter_rows()]
    assert_same_as_openpyxl(ROWS, [tuple(c.value for c in r) for r in formatted.iter_rows(min_row=2)])
    assert formatted["A2"].number_format == "0" and formatted["C2"].number_format == "#,##0.00"
    assert formatted["B2"].number_format == "General" and formatted["A1"].font.b  # the header keeps its style
    assert formatted["E2"].number_format == "yyyy-mm-dd"  # a date in a formatted column keeps its own format
    assert plain["C2"].number_format == "General"
    assert formatted.column_dimensions["C"].width > plain.column_dimensions["C"].width  # room for the commas


def test_number_formats_share_a_style_and_use_builtin_ids(tmp_path: Path) -> None:
    path = write(tmp_path, ROWS, HEADER, number_formats=FORMATS)
    with zipfile.ZipFile(path) as z:
        styles = z.read("xl/styles.xml").decode()
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    assert '<cellXfs count="9">' in styles  # the six fixed styles, then "0", "#,##0.00", "#,##0.000" once each
    assert '<numFmt numFmtId="168" formatCode="#,##0.000"/>' in styles and 'numFmtId="4"' in styles
    assert '<c s="7"><v>12.30</v></c>' in xml and '<c s="6"><v>1</v></c>' in xml


@pytest.mark.libreoffice
def test_number_formats_show_in_libreoffice(tmp_path: Path, libreoffice) -> None:
    """LibreOffice writes cells as shown: the formatted columns with their places and separators, the values the
    same once those are taken out."""
    path = write(tmp_path, ROWS, HEADER, number_formats=FORMATS)
    rows = libreoffice.to_csv(path)["Sheet1"][1:]
    assert [r[2] for r in rows[:4]] == ["12.30", "-99,999,999.99", "0.01", "1,000,000.00"]
    assert rows[2][0] == "1099511627776"  # 2**40 in full, not 1.09951E+12
    assert rows[0][1] == "1.5" and rows[0][4] == "2024-01-02"
    plain = [[v.replace(",", "") if j == 2 else v for j, v in enumerate(r)] for r in rows]
    assert_same_as_libreoffice(ROWS, plain)


def test_several_sheets_in_one_workbook_each_read_in_its_turn(tmp_path: Path) -> None:
    """Sheets follow each other; the second one's rows are not touched until the first sheet is written; each
    keeps its own header and formats, and a sheet over the row limit continues before the next one starts."""
    from sheetstream.formats.xlsx import Sheet, write_workbook

    seen: list[str] = []

    def rows(name: str, count: int):
        for i in range(count):
            seen.append(name)
            yield (i, Decimal(i).scaleb(-2))

    chunks = write_workbook([Sheet("first", ["id", "amount"], rows("first", 30), ["0", "#,##0.00"]),
                             Sheet("second", ["n", "price"], rows("second", 5), [None, "#,##0.000"])],
                            max_sheet_rows=21)
    path = tmp_path / "book.xlsx"
    with open(path, "wb") as f:
        for chunk in chunks:
            if "second" in seen:
                assert seen.count("first") == 30  # the first table was read to its end before the second began
            f.write(chunk)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["first", "first (2)", "second"]
    assert [r[0] for r in wb["first (2)"].iter_rows(min_row=2, values_only=True)] == list(range(20, 30))
    assert list(wb["second"].iter_rows(values_only=True)) == [("n", "price"), *((i, i / 100) for i in range(5))]
    assert wb["first"]["B2"].number_format == "#,##0.00" and wb["second"]["B2"].number_format == "#,##0.000"
    assert wb["second"]["A2"].number_format == "General"
