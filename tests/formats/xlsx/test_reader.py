"""The reader: files from our writer, openpyxl, XlsxWriter and LibreOffice, and hand-made XML for every case
real programs produce; hostile files are refused with a clear error."""

from __future__ import annotations

import csv
import zipfile
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter

from sheetstream.formats.xlsx import (
    BadWorkbook,
    CellError,
    NotAWorkbook,
    ReadLimits,
    UnsafeXml,
    WorkbookTooLarge,
    open_workbook,
    shared_strings,
    sheet,
    write_xlsx,
)
from sheetstream.formats.xlsx.reader import is_date_format
from sheetstream.store.demo import ORDERS, demo_rows

from ...helpers import NS, make_xlsx


def read(path: Path, sheet: str | None = None, limits: ReadLimits = ReadLimits()) -> list[tuple[int, list]]:
    with open_workbook(path, limits) as wb:
        return list(wb.rows(sheet))


DATE_STYLES = ('<numFmts count="1"><numFmt numFmtId="164" formatCode="dd/mm/yyyy\\ hh:mm"/></numFmts>'
               '<cellXfs count="4"><xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/><xf numFmtId="4"/></cellXfs>')


def test_our_writer_round_trips_the_demo_rows(tmp_path: Path) -> None:
    rows = list(demo_rows(500))
    path = tmp_path / "ours.xlsx"
    path.write_bytes(b"".join(write_xlsx(rows, [c.name for c in ORDERS], sheet_name="orders", max_sheet_rows=300)))
    with open_workbook(path) as wb:
        assert wb.sheet_names == ["orders", "orders (2)"]
        first = list(wb.rows())
        second = list(wb.rows("orders (2)"))
    assert first[0] == (1, [c.name for c in ORDERS]) and second[0] == (1, [c.name for c in ORDERS])
    got = [values + [None] * (11 - len(values)) for _, values in first[1:] + second[1:]]
    for want, have in zip(rows, got, strict=True):
        assert have[0] == want[0] and have[1:3] == list(want[1:3])
        assert Decimal(repr(have[3])) == want[3]
        assert have[4] == datetime.combine(want[4], time()) and have[5] == want[5]
        assert have[6:] == list(want[6:]), want[0]


def test_openpyxl_file_with_shared_strings_and_dates(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["name", "when", "n", "flag"])
    ws.append(["Zoë & <co>", datetime(2024, 5, 6, 7, 8, 9), 1.25, True])
    ws.append(["Zoë & <co>", date(1999, 1, 2), -3, False])
    ws["A5"] = "after a gap"
    path = tmp_path / "openpyxl.xlsx"
    wb.save(path)
    assert read(path) == [
        (1, ["name", "when", "n", "flag"]),
        (2, ["Zoë & <co>", datetime(2024, 5, 6, 7, 8, 9), 1.25, True]),
        (3, ["Zoë & <co>", datetime(1999, 1, 2), -3, False]),
        (5, ["after a gap"]),
    ]


def test_xlsxwriter_file_with_formulas_rich_text_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "xlsxwriter.xlsx"
    wb = xlsxwriter.Workbook(path)
    ws = wb.add_worksheet("Sheet A")
    bold = wb.add_format({"bold": True})
    ws.write_row(0, 0, ["text", "sum", "rich", "error", "date"])
    ws.write_string(1, 0, "=not a formula")
    ws.write_formula(1, 1, "=1+2", None, 3)
    ws.write_rich_string(1, 2, "plain ", bold, "bold", " end")
    ws.write_formula(1, 3, "=NA()", None, "#N/A")
    ws.write_datetime(1, 4, datetime(2030, 1, 31), wb.add_format({"num_format": "yyyy-mm-dd"}))
    ws.write_string(3, 3, "sparse")
    wb.close()
    rows = read(path)
    assert rows[0] == (1, ["text", "sum", "rich", "error", "date"])
    assert rows[1][1][:3] == ["=not a formula", 3, "plain bold end"]
    assert rows[1][1][3] == CellError("#N/A")
    assert rows[1][1][4] == datetime(2030, 1, 31)
    assert rows[2] == (4, [None, None, None, "sparse"])


@pytest.mark.libreoffice
def test_libreoffice_converted_csv(tmp_path: Path, libreoffice) -> None:
    source = tmp_path / "data.csv"
    with open(source, "w", newline="") as f:
        csv.writer(f).writerows([["id", "label", "amount", "day"], [1, "alpha", "12.50", "2024-01-31"],
                                 [2, "béta, \"quoted\"", "-0.25", "2024-02-29"]])
    converted = libreoffice.convert(source, "xlsx")
    rows = read(converted)
    assert rows[0] == (1, ["id", "label", "amount", "day"])
    assert rows[1] == (2, [1, "alpha", 12.5, datetime(2024, 1, 31)])
    assert rows[2] == (3, [2, 'béta, "quoted"', -0.25, datetime(2024, 2, 29)])


def test_sparse_cells_without_references_and_row_numbers(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "sparse.xlsx",
                     '<row r="2"><c r="C2"><v>1</v></c><c r="AA2" t="inlineStr"><is><t>far</t></is></c></row>'
                     '<row><c><v>5</v></c><c><v>6</v></c></row><row r="9"/><row r="10" spans="1:2"></row>'
                     '<row r="11"><c r="B11" s="0"/></row>')
    rows = read(path)
    assert rows[0] == (2, [None, None, 1] + [None] * 23 + ["far"])
    assert rows[1] == (3, [5, 6])
    assert len(rows) == 2  # empty rows and style-only cells carry no value


def test_cell_types_dates_and_escapes(tmp_path: Path) -> None:
    path = make_xlsx(
        tmp_path / "types.xlsx",
        '<row r="1">'
        '<c r="A1" t="s"><v>1</v></c>'
        '<c r="B1" t="str"><f>A1&amp;"!"</f><v>x &amp; y!</v></c>'
        '<c r="C1" t="b"><v>0</v></c>'
        '<c r="D1" t="e"><v>#DIV/0!</v></c>'
        '<c r="E1" s="1"><v>45293</v></c>'
        '<c r="F1" s="2"><v>45293.75</v></c>'
        '<c r="G1" s="3"><v>45293</v></c>'
        '<c r="H1" t="d"><v>2024-01-02T03:04:05</v></c>'
        '<c r="I1" t="inlineStr"><is><r><rPr><b/></rPr><t>ri</t></r><r><t xml:space="preserve">ch </t></r>'
        '<rPh sb="0" eb="1"><t>PHONETIC</t></rPh></is></c>'
        '<c r="J1" t="inlineStr"><is><t>ctl_x0001_ _x005F_x0041_ &#x263A; &lt;tag&gt;</t></is></c>'
        '<c r="K1" t="s" s="0"><v>0</v></c>'
        '<c r="L1"><f>1/0</f></c>'
        '<c r="M1" t="n"><v>1.5E3</v></c>'
        "</row>",
        shared=["first", "sécond"],
        styles=DATE_STYLES,
    )
    assert read(path) == [(1, [
        "sécond", "x & y!", False, CellError("#DIV/0!"), datetime(2024, 1, 2), datetime(2024, 1, 2, 18), 45293,
        datetime(2024, 1, 2, 3, 4, 5), "rich ", "ctl\x01 _x0041_ ☺ <tag>", "first", None, 1500.0,
    ])]


def test_1904_date_system(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "1904.xlsx", '<row r="1"><c r="A1" s="1"><v>0</v></c><c r="B1" s="1"><v>43830</v></c></row>',
                     styles=DATE_STYLES, date1904=True)
    assert read(path) == [(1, [datetime(1904, 1, 1), datetime(2024, 1, 1)])]


def test_namespace_prefixes(tmp_path: Path) -> None:
    sheet = ('<x:worksheet xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><x:sheetData>'
             '<x:row r="1"><x:c r="A1" t="inlineStr"><x:is><x:t>prefixed</x:t></x:is></x:c><x:c r="B1"><x:v>2</x:v></x:c>'
             "</x:row></x:sheetData></x:worksheet>")
    assert read(make_xlsx(tmp_path / "p.xlsx", "", raw_sheet=sheet)) == [(1, ["prefixed", 2])]


def test_attributes_in_any_order(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "order.xlsx",
                     '<row r="1"><c t="inlineStr" r="B1"><is><t>b</t></is></c><c r="C1" t="n" s="1"><v>45293</v></c>'
                     '<c s="1" r="D1"><v>45294</v></c></row>', styles=DATE_STYLES)
    assert read(path) == [(1, [None, "b", datetime(2024, 1, 2), datetime(2024, 1, 3)])]


#: (a <t> as written in an <si> or an <is>, its text as Excel and calamine read it)
EDGE_WHITESPACE = [
    ("<t> a b </t>", "a b"),
    ("<t>\ta\r\n</t>", "a"),
    ("<t>&#32;a&#10;&#x9;</t>", "a"),  # written as character references: trimmed too
    ("<t>   </t>", ""),
    ("<t>&#x0A;&#x0A;</t>", ""),
    ('<t xml:space="preserve"> a </t>', " a "),
    ("<t xml:space='preserve'>\tb\n</t>", "\tb\n"),
    ("<t>\u00a0a\u3000</t>", "\u00a0a\u3000"),  # not XML whitespace
    ("<t>a_x0020_</t>", "a "),  # an escaped space is a character of the text
    ("<t> &amp; </t>", "&"),
    ("<r><t>Regular </t></r><r><rPr><b/></rPr><t>Bold</t></r>", "RegularBold"),  # run by run
    ('<r><t xml:space="preserve">Regular </t></r><r><t>Bold</t></r>', "Regular Bold"),
    ("<r><t> x </t></r><r><t> y </t></r>", "xy"),
    ("<t> kana </t><rPh sb=\"0\" eb=\"1\"><t>カ</t></rPh>", "kana"),
]


@pytest.mark.parametrize("scanner", [True, False], ids=["compiled", "python"])
def test_whitespace_at_the_edges_of_a_text_without_xml_space_is_trimmed(tmp_path: Path, scanner: bool,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared, inline and rich text alike, as Excel and calamine read them (the corpus's LibreOffice and xlrd
    files): each <t> without xml:space="preserve" loses the XML whitespace at its edges."""
    if not scanner:
        monkeypatch.setattr(sheet, "_scan", None)
        monkeypatch.setattr(sheet, "_scan_rows", None)
        monkeypatch.setattr(shared_strings, "_shared_scan", None)
    shared = "".join(f"<si>{written}</si>" for written, _ in EDGE_WHITESPACE)
    cells = [f'<c t="s"><v>{i}</v></c>' for i in range(len(EDGE_WHITESPACE))]
    inline = [f'<c t="inlineStr"><is>{written}</is></c>' for written, _ in EDGE_WHITESPACE]
    path = make_xlsx(tmp_path / "spaces.xlsx", f'<row r="1">{"".join(cells)}</row><row r="2">{"".join(inline)}</row>',
                     shared_xml=f"<sst {NS}>{shared}</sst>")
    expected = [text for _, text in EDGE_WHITESPACE]
    assert read(path) == [(1, expected), (2, expected)]


def test_an_empty_attribute_of_a_cell_is_as_if_it_were_not_there(tmp_path: Path) -> None:
    """``s=""`` is no style (it refused the whole workbook), ``t=""`` no type."""
    path = make_xlsx(tmp_path / "empty.xlsx", '<row r="1"><c r="A1" s=""><v>45293</v></c><c r="B1" s="" t=""><v>7</v></c>'
                     '<c r="C1" t="" s="1"><v>45293</v></c><c s=\'\' r="D1" t="inlineStr"><is><t>d</t></is></c></row>',
                     styles=DATE_STYLES)
    assert read(path) == [(1, [45293, 7, datetime(2024, 1, 2), "d"])]


@pytest.mark.parametrize("row, cell", [
    ('<row r="3"><c r="C3" s="x"><v>1</v></c></row>', "C3"),
    ('<row r="2"><c r="A2"><v>1</v></c><c s="-1"><v>2</v></c></row>', "B2"),  # after a cell, without a reference
    ('<row r="1"><c s="1.5"><v>2</v></c></row>', "A1"),
])
def test_a_style_that_is_not_a_number_is_refused_at_its_cell(tmp_path: Path, row: str, cell: str) -> None:
    with pytest.raises(BadWorkbook) as caught:
        read(make_xlsx(tmp_path / "style.xlsx", row))
    assert f"cell {cell}: its style" in str(caught.value) and caught.value.detail["cell"] == cell


@pytest.mark.parametrize("code,is_date", [
    ("yyyy-mm-dd", True), ("[h]:mm:ss", True), ("dd/mm/yyyy\\ hh:mm", True), ('0.00 "days"', False),
    ("[Red]#,##0.00", False), ("0.00E+00", False), ("General", False), ("#,##0.00_);(#,##0.00)", False),
    ("[$-409]mmmm d, yyyy", True), ("0%", False),
])
def test_date_format_detection(code: str, is_date: bool) -> None:
    assert is_date_format(code) is is_date


def test_a_sheet_by_name_and_a_missing_sheet(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "n.xlsx", '<row r="1"><c r="A1"><v>1</v></c></row>')
    assert read(path, "Data") == [(1, [1])]
    with pytest.raises(BadWorkbook, match="there is no sheet 'Other'; the workbook has: Data"):
        read(path, "Other")


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    path.write_text("id,name\n1,a\n")
    with pytest.raises(NotAWorkbook, match="not an .xlsx workbook"):
        open_workbook(path)


def test_truncated_file(tmp_path: Path) -> None:
    whole = b"".join(write_xlsx(demo_rows(2_000), [c.name for c in ORDERS]))
    path = tmp_path / "cut.xlsx"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(NotAWorkbook, match="cut short"):
        open_workbook(path)


def test_a_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(NotAWorkbook, match="no workbook part"):
        open_workbook(path)


def test_zip_bomb_by_ratio_and_by_size(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.xlsx"
    make_xlsx(bomb, "", raw_sheet=f"<worksheet {NS}><sheetData>" + " " * (50 << 20) + "</sheetData></worksheet>")
    with pytest.raises(WorkbookTooLarge, match="zip bomb"):
        open_workbook(bomb)
    big = make_xlsx(tmp_path / "big.xlsx", '<row r="1"><c r="A1"><v>1</v></c></row>')
    with pytest.raises(WorkbookTooLarge, match="over the 0 MB limit"):
        open_workbook(big, ReadLimits(max_uncompressed=100))


@pytest.mark.parametrize("dtd", [
    '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>',
    '<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
])
@pytest.mark.parametrize("where", ["sheet", "workbook"])
def test_dtds_are_refused(tmp_path: Path, dtd: str, where: str) -> None:
    path = tmp_path / "dtd.xlsx"
    if where == "sheet":
        make_xlsx(path, "", raw_sheet=f'<?xml version="1.0"?>{dtd}<worksheet {NS}><sheetData><row r="1">'
                  '<c r="A1" t="inlineStr"><is><t>&lol2;&xxe;</t></is></c></row></sheetData></worksheet>')
    else:
        make_xlsx(path, '<row r="1"><c r="A1"><v>1</v></c></row>')
        with zipfile.ZipFile(path) as z:
            parts = {n: z.read(n) for n in z.namelist()}
        parts["xl/workbook.xml"] = f'<?xml version="1.0"?>{dtd}'.encode() + parts["xl/workbook.xml"]
        with zipfile.ZipFile(path, "w") as z:
            for n, data in parts.items():
                z.writestr(n, data)
    with pytest.raises(UnsafeXml, match="declares a DTD"):
        read(path)


def test_shared_strings_bound(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "sst.xlsx", '<row r="1"><c r="A1" t="s"><v>0</v></c></row>', shared=["x" * 1000] * 10)
    with pytest.raises(WorkbookTooLarge, match="shared strings table holds over 5,000 characters"):
        read(path, limits=ReadLimits(max_shared_chars=5_000))


def test_missing_shared_string(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "sst.xlsx", '<row r="1"><c r="A1" t="s"><v>7</v></c></row>', shared=["only"])
    with pytest.raises(BadWorkbook, match="shared string '7'"):
        read(path)


def test_reading_is_lazy(tmp_path: Path) -> None:
    """Rows come out before the sheet has been read: the first row of a large sheet is quick to get."""
    path = tmp_path / "big.xlsx"
    path.write_bytes(b"".join(write_xlsx(demo_rows(30_000), [c.name for c in ORDERS])))
    with open_workbook(path) as wb:
        rows = wb.rows()
        assert next(rows)[0] == 1
        assert next(rows)[1][0] == 1
