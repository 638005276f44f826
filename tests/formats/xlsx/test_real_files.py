"""What real producers write, read right: attribute and prefix variants, strict OOXML, line ends, odd part names,
times and durations, and the files people upload that are not .xlsx at all."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime, time, timedelta
from pathlib import Path

import openpyxl
import pytest

from sheetstream.formats.xlsx import BadWorkbook, NotAWorkbook, PasswordProtected, open_workbook, package, write_xlsx
from sheetstream.formats.xlsx.reader import format_kind, is_date_format

from ...helpers import MAIN, REL, STRICT_MAIN, STRICT_REL, build, parts, read, read_all, sheet, styles

# --- markup variants -------------------------------------------------------------------------------------------------


def test_value_with_attributes_is_kept(tmp_path: Path) -> None:
    """Excel writes <v xml:space="preserve"> for a formula's text result with outer spaces."""
    path = build(tmp_path / "v.xlsx", parts(sheet(
        '<row r="1"><c r="A1" t="str"><f>" x "</f><v xml:space="preserve"> x </v></c>'
        '<c r="B1"><v xml:space="preserve">7</v></c></row>')))
    assert read(path) == [(1, [" x ", 7])]


def test_attributes_in_any_order_with_either_quote(tmp_path: Path) -> None:
    path = build(tmp_path / "q.xlsx", parts(sheet(
        "<row spans='1:3' r='2'><c s='0' t='inlineStr' r='B2'><is><t xml:space='preserve'> b </t></is></c>"
        "<c\n  r='C2'\tt='n'><v>3</v></c></row>"
        '<row\nr="3" ht="15"><c t="s" r="A3"><v>0</v></c><c r="B3" t="inlineStr"><is><t/></is></c>'
        '<c r="C3" t="inlineStr"><is><r><t>a</t></r><r><t xml:space="preserve"/></r><r><t>b</t></r></is></c></row>'),
        shared=f'<sst xmlns="{MAIN}"><si><t/></si></sst>'))
    assert read(path) == [(2, [None, " b ", 3]), (3, ["", "", "ab"])]


@pytest.mark.parametrize("prefix", ["x", "s", "main", "ns0"])
def test_any_namespace_prefix(tmp_path: Path, prefix: str) -> None:
    p = prefix
    xml = (f'<{p}:worksheet xmlns:{p}="{MAIN}"><{p}:sheetData><{p}:row r="1">'
           f'<{p}:c r="A1" t="inlineStr"><{p}:is><{p}:t>one</{p}:t></{p}:is></{p}:c>'
           f'<{p}:c r="B1" t="s"><{p}:v>0</{p}:v></{p}:c><{p}:c r="C1"><{p}:v>3</{p}:v></{p}:c></{p}:row>'
           f'</{p}:sheetData></{p}:worksheet>')
    shared = f'<{p}:sst xmlns:{p}="{MAIN}"><{p}:si><{p}:r><{p}:t>two</{p}:t></{p}:r></{p}:si></{p}:sst>'
    contents = parts(xml, shared=shared)
    workbook = contents["xl/workbook.xml"]
    contents["xl/workbook.xml"] = (workbook.replace(f'<workbook xmlns="{MAIN}"', f'<{p}:workbook xmlns:{p}="{MAIN}"')
                                   .replace("<sheets>", f"<{p}:sheets>").replace("</sheets>", f"</{p}:sheets>")
                                   .replace("<sheet ", f"<{p}:sheet ").replace("</workbook>", f"</{p}:workbook>"))
    assert read(build(tmp_path / "p.xlsx", contents)) == [(1, ["one", "two", 3])]


def test_strict_ooxml(tmp_path: Path) -> None:
    """ISO/IEC 29500 strict: other namespaces and relationship types (Excel's "Strict Open XML Spreadsheet")."""
    contents = parts(sheet('<row r="1"><c r="A1" t="inlineStr"><is><t>strict</t></is></c><c r="B1" s="1"><v>45293</v></c>'
                           '<c r="C1" t="s"><v>0</v></c></row>', ns=STRICT_MAIN),
                     shared=f'<sst xmlns="{STRICT_MAIN}"><si><t>shared</t></si></sst>',
                     style=styles("yyyy-mm-dd").replace(MAIN, STRICT_MAIN), main=STRICT_MAIN, rel=STRICT_REL)
    assert REL not in str(contents)
    with open_workbook(build(tmp_path / "strict.xlsx", contents)) as book:
        assert book.sheet_names == ["Data"]
        assert list(book.rows()) == [(1, ["strict", datetime(2024, 1, 2), "shared"])]


def test_line_ends_are_normalised_but_escaped_carriage_returns_kept(tmp_path: Path) -> None:
    xml = sheet('<row r="1"><c r="A1" t="inlineStr"><is><t>a\r\nb\rc</t></is></c>'
                '<c r="B1" t="inlineStr"><is><t>d_x000D_\r\ne&#13;e</t></is></c><c r="C1" t="s"><v>0</v></c>'
                '<c r="D1" t="str"><v>f\r\ng</v></c></row>')
    path = build(tmp_path / "crlf.xlsx", parts(xml.encode(), shared=f'<sst xmlns="{MAIN}"><si><t>h\r\ni\rj</t></si></sst>'))
    assert read(path) == [(1, ["a\nb\nc", "d\r\ne\re", "h\ni\nj", "f\ng"])]  # (at an edge, &#13; is trimmed)


def test_part_names_ignore_case_and_accept_backslashes(tmp_path: Path) -> None:
    contents = parts(sheet('<row r="1"><c r="A1"><v>1</v></c></row>'),
                     names={"xl/workbook.xml": "XL/Workbook.xml", "xl/worksheets/sheet1.xml": "xl\\worksheets\\Sheet1.XML",
                            "xl/_rels/workbook.xml.rels": "xl/_rels/WORKBOOK.xml.rels"})
    contents["xl/_rels/workbook.xml.rels"] = contents.pop("xl/_rels/WORKBOOK.xml.rels").replace(
        "worksheets/sheet1.xml", "Worksheets\\sheet1.xml")
    assert read(build(tmp_path / "names.xlsx", contents)) == [(1, [1])]


# --- dates, times and durations ---------------------------------------------------------------------------------------


def test_iso_date_cells_holding_only_a_time(tmp_path: Path) -> None:
    path = build(tmp_path / "d.xlsx", parts(sheet(
        '<row r="1"><c r="A1" t="d"><v>T10:30:00</v></c><c r="B1" t="d"><v>10:30:00</v></c>'
        '<c r="C1" t="d"><v>2024-01-02</v></c><c r="D1" t="d"><v>2024-01-02T03:04:05.250Z</v></c></row>')))
    assert read(path) == [(1, [time(10, 30), time(10, 30), datetime(2024, 1, 2), datetime(2024, 1, 2, 3, 4, 5, 250_000)])]


TIME_FORMATS = ["h:mm", "h:mm AM/PM", "h:mm:ss A/P", "[$-409]h:mm:ss", "mm:ss", 20, 21, 18, 45]
DURATION_FORMATS = ["[h]:mm:ss", "[mm]:ss", "[h]:mm", 46]


def test_time_and_duration_formats(tmp_path: Path) -> None:
    formats = [*TIME_FORMATS, *DURATION_FORMATS, "yyyy-mm-dd h:mm", "mmm"]
    cells = "".join(f'<c r="{chr(65 + i)}1" s="{i + 1}"><v>1.75</v></c>' for i in range(len(formats)))
    cells2 = "".join(f'<c r="{chr(65 + i)}2" s="{i + 1}" t="n"><f>1</f><v>0.5</v></c>' for i in range(len(formats)))
    path = build(tmp_path / "t.xlsx", parts(sheet(f'<row r="1">{cells}</row><row r="2">{cells2}</row>'),
                                             style=styles(*formats)))
    (_, first), (_, second) = read(path)
    n, m = len(TIME_FORMATS), len(DURATION_FORMATS)
    assert first[:n] == [time(18)] * n and second[:n] == [time(12)] * n
    assert first[n:n + m] == [timedelta(days=1, hours=18)] * m and second[n:n + m] == [timedelta(hours=12)] * m
    assert first[n + m:] == [datetime(1900, 1, 1, 18), datetime(1900, 1, 1, 18)]


@pytest.mark.parametrize("code,kind", [
    ("h:mm", "time"), ("h:mm AM/PM", "time"), ("[$-409]h:mm:ss", "time"), ("[h]:mm:ss", "duration"),
    ("[mm]:ss", "duration"), ("[ss]", "duration"), ("mmm", "date"), ("yyyy-mm-dd hh:mm", "date"), ('0.00 "h"', None),
    ("AM/PM", None), ("General", None),
])
def test_format_kinds(code: str, kind: str | None) -> None:
    assert format_kind(code) == kind
    assert is_date_format(code) is (kind is not None)


def test_our_writer_round_trips_times_and_durations(tmp_path: Path) -> None:
    path = tmp_path / "ours.xlsx"
    path.write_bytes(b"".join(write_xlsx([(time(13, 30, 5), timedelta(hours=36, seconds=1), datetime(2024, 1, 2, 3))],
                                         ["t", "d", "dt"])))
    assert read(path)[1] == (2, [time(13, 30, 5), timedelta(hours=36, seconds=1), datetime(2024, 1, 2, 3)])


def test_openpyxl_times(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append([time(7, 45), timedelta(minutes=90)])
    wb.save(tmp_path / "o.xlsx")
    assert read(tmp_path / "o.xlsx") == [(1, [time(7, 45), timedelta(minutes=90)])]


def test_times_and_short_durations_fill_a_time_column(tmp_path: Path) -> None:
    """Cells in h:mm or [h]:mm formats (and ISO times) pass validation into a time column; long durations do not."""
    from sheetstream.pipeline.validate import Problems, convert_rows, map_header
    from sheetstream.store import Column

    path = build(tmp_path / "t.xlsx", parts(sheet(
        '<row r="1"><c r="A1" t="inlineStr"><is><t>at</t></is></c></row>'
        '<row r="2"><c r="A2" s="1"><v>0.4375</v></c></row><row r="3"><c r="A3" s="2"><v>0.5</v></c></row>'
        '<row r="4"><c r="A4" t="d"><v>T23:59:59</v></c></row><row r="5"><c r="A5" s="2"><v>1.5</v></c></row>'),
        style=styles("h:mm", "[h]:mm")))
    with open_workbook(path) as book:
        rows = book.rows()
        plan = map_header(next(rows)[1], [Column("at", "time")], "Data")
        problems = Problems()
        typed = list(convert_rows(rows, plan, "Data", problems, {"rows_read": 0}))
    assert [list(row) for row in typed] == [[time(10, 30)], [time(12)], [time(23, 59, 59)]]
    assert problems.total == 1 and problems.listed[0]["cell"] == "A5" and "a duration" in problems.listed[0]["message"]


# --- not .xlsx, said so ----------------------------------------------------------------------------------------------


def _xlsx_bytes() -> bytes:
    return b"".join(write_xlsx([(1, "a")], ["id", "name"]))


def test_password_protected_workbook(tmp_path: Path) -> None:
    msoffcrypto = pytest.importorskip("msoffcrypto")
    from msoffcrypto.format.ooxml import OOXMLFile

    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(_xlsx_bytes())).encrypt("secret", encrypted)
    path = tmp_path / "locked.xlsx"
    path.write_bytes(encrypted.getvalue())
    assert msoffcrypto.OfficeFile(open(path, "rb")).is_encrypted()
    with pytest.raises(PasswordProtected, match="password-protected: remove the password and upload it again"):
        open_workbook(path)
    with open(path, "rb") as f:
        assert "EncryptionInfo" in package._cfb_streams(f)


@pytest.mark.libreoffice
@pytest.mark.parametrize("fmt,message", [
    ("xls", "Excel 97-2003 .xls file: save it as .xlsx (Excel Workbook) and upload that"),
    ("ods", "OpenDocument spreadsheet (.ods): save it as .xlsx (Excel Workbook) and upload that"),
])
def test_other_spreadsheet_formats_made_by_libreoffice(tmp_path: Path, libreoffice, fmt: str, message: str) -> None:
    source = tmp_path / "data.csv"
    with open(source, "w", newline="") as f:
        csv.writer(f).writerows([["id", "name"], [1, "a"]])
    converted = libreoffice.convert(source, fmt)
    with pytest.raises(NotAWorkbook, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        open_workbook(converted)


def test_xlsb_and_ods_zips(tmp_path: Path) -> None:
    xlsb = build(tmp_path / "b.xlsx", {"[Content_Types].xml": "<Types/>", "xl/workbook.bin": b"\x83\x01\x00"})
    with pytest.raises(NotAWorkbook, match=r"Excel Binary Workbook \(\.xlsb\): save it as \.xlsx"):
        open_workbook(xlsb)
    ods = tmp_path / "o.xlsx"
    with zipfile.ZipFile(ods, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("content.xml", "<office:document-content/>")
    with pytest.raises(NotAWorkbook, match=r"OpenDocument spreadsheet \(\.ods\)"):
        open_workbook(ods)


@pytest.mark.parametrize("content", [b"id,name\n1,a\n", "id;nom\n1;é\n".encode("utf-16"), b"\xef\xbb\xbfa\tb\r\n"])
def test_text_renamed_xlsx(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(content)
    with pytest.raises(NotAWorkbook, match="is text .*not an .xlsx workbook") as caught:
        open_workbook(path)
    assert caught.value.code == "not_xlsx"


# --- sheets that are not worksheets ---------------------------------------------------------------------------------


def test_chart_macro_and_dialog_sheets_are_skipped_and_named(tmp_path: Path) -> None:
    chart = f'<chartsheet xmlns="{MAIN}"><drawing r:id="rId1" xmlns:r="{REL}"/></chartsheet>'
    contents = parts(sheet('<row r="1"><c r="A1"><v>1</v></c></row>'), extra_sheets=[
        ("Chart1", "chartsheet", "chartsheets/sheet1.xml", chart),
        ("Macro1", "http://schemas.microsoft.com/office/2006/relationships/xlMacrosheet", "macrosheets/sheet1.xml",
         '<xm:macrosheet xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"/>'),
        ("Dialog1", "dialogsheet", "dialogsheets/sheet1.xml", f'<dialogsheet xmlns="{MAIN}"/>'),
    ])
    path = build(tmp_path / "chart.xlsx", contents)
    assert read_all(path) == {"Data": [(1, [1])]}
    for name, what in [("Chart1", "a chart sheet"), ("Macro1", "a macro sheet"), ("Dialog1", "a dialog sheet")]:
        with pytest.raises(BadWorkbook, match=f"sheet '{name}' is {what}, not a worksheet; it has no cells to import"):
            read(path, name)
