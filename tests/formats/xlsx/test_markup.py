"""The marked-up workbook: problem cells filled and commented, a Problems sheet linking to them, the rest of the
workbook unchanged; read back by openpyxl, by our reader and by LibreOffice."""

from __future__ import annotations

import gc
import re
import tracemalloc
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import openpyxl
import pytest

from sheetstream.formats.xlsx import open_workbook, write_xlsx
from sheetstream.formats.xlsx.markup import FILLS, Mark, mark_up
from sheetstream.store.demo import ORDERS, demo_rows

from ...helpers import make_xlsx

HEADER = [c.name for c in ORDERS]

MARKS = [
    Mark("orders", "D3", "'lots' is not a number", "amount", "lots"),
    Mark("orders", "B5", "is empty; the column requires a value", "customer"),
    Mark("orders", "E4", "'2024-13-45' is not a date", "ordered_on", "2024-13-45"),
    Mark("orders", "A2", "id 1 already exists in orders: choose Update existing rows and add new ones (mode upsert), or Replace the whole table (mode replace)", "id", 1),
    Mark("orders", "1:1", "required column 'x' is missing from the header", "x"),
    Mark("orders", "C20", "a cell in a row the sheet does not have", "email"),
    Mark("orders", "L1", "column 'helper' is not in the table and was ignored", "helper", "helper", level="warning"),
]


def ours(path: Path, rows: int = 10) -> Path:
    path.write_bytes(b"".join(write_xlsx(demo_rows(rows), HEADER, sheet_name="orders")))
    return path


def edited_in_openpyxl(path: Path) -> Path:
    """Saved by openpyxl: shared strings, its own styles, the edited cell B5 gone from the XML."""
    ours(path)
    book = openpyxl.load_workbook(path)
    book.active["B5"] = None
    book.active["L1"] = "helper"
    book.save(path)
    return path


def marked(source: Path, marks=MARKS, unlisted: int = 0) -> Path:
    out = source.with_name(source.stem + "-marked.xlsx")
    out.write_bytes(b"".join(mark_up(source, marks, unlisted=unlisted)))
    return out


@pytest.mark.parametrize("make", [ours, edited_in_openpyxl], ids=["sheetstream", "openpyxl"])
def test_problem_cells_are_filled_and_commented(make, tmp_path: Path) -> None:
    source = make(tmp_path / "in.xlsx")
    out = marked(source, unlisted=5)
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["orders", "Problems"]
    sheet = book["orders"]
    for mark in MARKS:
        if mark.cell == "1:1":
            continue
        cell = sheet[mark.cell]
        assert cell.comment is not None and mark.message in cell.comment.text, mark.cell
        assert cell.fill.fgColor.rgb == FILLS[mark.level], mark.cell
    assert sheet["L1"].comment.text.startswith("Warning: ")
    assert sheet["E4"].number_format == "yyyy-mm-dd"  # the cell's own format is kept with the fill
    assert sheet["C3"].comment is None and sheet["C3"].fill.fill_type is None
    problems = [list(r) for r in book["Problems"].iter_rows(values_only=True)]
    assert problems[0] == ["level", "sheet", "cell", "column", "value", "message"]
    assert problems[1] == ["error", "orders", "D3", "amount", "lots", "'lots' is not a number"]
    assert problems[-1][-1].startswith("... and 5 more problem(s), not listed")
    links = {c.coordinate: c.hyperlink.location for row in book["Problems"].iter_rows() for c in row if c.hyperlink}
    assert links["C2"] == "'orders'!D3" and "C6" not in links  # 1:1 is not a cell: listed, not linked
    # Every value of the workbook reads back as it was.
    with open_workbook(source) as before, open_workbook(out) as after:
        assert list(after.rows("orders")) == list(before.rows("orders"))


@pytest.mark.parametrize("make", [ours, edited_in_openpyxl], ids=["sheetstream", "openpyxl"])
def test_every_part_is_well_formed(make, tmp_path: Path) -> None:
    with zipfile.ZipFile(marked(make(tmp_path / "in.xlsx"))) as z:
        for name in z.namelist():
            if name.endswith((".xml", ".rels", ".vml")):
                ElementTree.fromstring(z.read(name))  # raises on anything malformed
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert re.search(r'<legacyDrawing (xmlns:r="[^"]+" )?r:id="rId9001"/>', sheet)


def test_parts_for_comments_are_declared(tmp_path: Path) -> None:
    out = marked(ours(tmp_path / "in.xlsx"))
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        types = z.read("[Content_Types].xml").decode()
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
        rels = z.read("xl/worksheets/_rels/sheet1.xml.rels").decode()
    assert {"xl/comments1.xml", "xl/drawings/vmlDrawing1.vml", "xl/worksheets/sheet2.xml"} <= names
    assert 'Extension="vml"' in types and "/xl/comments1.xml" in types and "/xl/worksheets/sheet2.xml" in types
    assert "<legacyDrawing " in sheet and sheet.index("<legacyDrawing ") > sheet.index("</sheetData>")
    assert "/comments" in rels and "/vmlDrawing" in rels


@pytest.mark.libreoffice
def test_libreoffice_opens_it_with_the_comments_in_place(tmp_path: Path, libreoffice) -> None:
    out = marked(edited_in_openpyxl(tmp_path / "in.xlsx"))
    again = libreoffice.convert(out, "xlsx")  # LibreOffice reads it, then writes its own xlsx
    book = openpyxl.load_workbook(again)
    sheet = book["orders"]
    for mark in MARKS:
        if mark.cell != "1:1":
            assert sheet[mark.cell].comment is not None and mark.message in sheet[mark.cell].comment.text, mark.cell
    assert sheet["D3"].fill.fgColor.rgb == FILLS["error"]
    sheets = libreoffice.to_csv(out)
    assert list(sheets) == ["orders", "Problems"]
    assert sheets["Problems"][1] == ["error", "orders", "D3", "amount", "lots", "'lots' is not a number"]
    assert sheets["orders"][2][0] == "2"


def test_memory_stays_flat_while_marking_a_large_sheet(tmp_path: Path) -> None:
    peaks = {}
    for rows in (5_000, 50_000):
        source = ours(tmp_path / f"{rows}.xlsx", rows)
        marks = [Mark("orders", f"D{r}", "bad", "amount") for r in range(2, rows, rows // 50)]
        gc.collect()
        tracemalloc.start()
        try:
            size = sum(len(chunk) for chunk in mark_up(source, marks))
            peaks[rows] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert size > 0
    assert peaks[50_000] < 1.5 * peaks[5_000] + (2 << 20), peaks


def test_a_bare_workbook_gets_its_comments_and_a_problems_sheet(tmp_path: Path) -> None:
    """No styles, no content types, no cell references beyond the minimum: comments, no fills."""
    source = make_xlsx(tmp_path / "bare.xlsx", '<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c></row>'
                       '<row r="2"><c r="A2" t="inlineStr"><is><t>x</t></is></c></row>')
    out = marked(source, [Mark("Data", "A2", "'x' is not a whole number", "id", "x"),
                          Mark("Data", "B3", "is empty", "name")])
    book = openpyxl.load_workbook(out)
    assert book.sheetnames == ["Data", "Problems"]
    assert book["Data"]["A2"].comment.text == "'x' is not a whole number" and book["Data"]["A2"].value == "x"
    assert book["Data"]["B3"].comment.text == "is empty"
