"""The writer's output against other readers: the ZIP layout (Zip64), sheet names, limits, the
``<dimension>`` and cells without references, each read back by LibreOffice, openpyxl (normal and
read-only), python-calamine, pandas and our own reader."""

from __future__ import annotations

import enum
import io
import re
import struct
import zipfile
import zlib
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openpyxl
import pytest

from sheetstream.formats.xlsx import CellTooLong, WriteStats, open_workbook, write_xlsx
from sheetstream.formats.xlsx.cells import MAX_CELL_CHARS, column_index, column_letter
from sheetstream.formats.xlsx.parts import NS_MAIN, NS_REL
from sheetstream.formats.xlsx.writer import zip_stream
from sheetstream.store.demo import ORDERS, demo_rows

from ...helpers import assert_same_as_libreoffice, assert_same_as_openpyxl, openpyxl_sheets, write

ORDER_HEADER = [c.name for c in ORDERS]


def records(data: bytes) -> dict[str, list[tuple]]:
    """The ZIP records of ``data`` by kind, read from the central directory and the local headers it points to."""
    found: dict[str, list[tuple]] = {"local": [], "descriptor": [], "central": [], "zip64_end": [], "end": []}
    end = data.rindex(b"PK\x05\x06")
    found["end"].append(struct.unpack_from("<HHHHIIH", data, end + 4))
    found["zip64_end"] = [struct.unpack_from("<QHHIIQQQQ", data, m.start() + 4)
                          for m in re.finditer(b"PK\x06\x06", data[max(end - 76, 0):end])]
    pos = found["end"][0][5] if not found["zip64_end"] else found["zip64_end"][0][8]
    while data[pos:pos + 4] == b"PK\x01\x02":
        fields = struct.unpack_from("<HHHHHHIIIHHHHHII", data, pos + 4)
        name_length, extra_length, comment_length = fields[9:12]
        extra = data[pos + 46 + name_length:pos + 46 + name_length + extra_length]
        found["central"].append((*fields, extra))
        pos += 46 + name_length + extra_length + comment_length
    for central in found["central"]:
        offset, compressed = central[15], central[7]
        if central[-1]:  # Zip64 extra: the 64-bit values in the fixed order, only those marked 0xFFFFFFFF
            values = list(struct.unpack_from(f"<{(len(central[-1]) - 4) // 8}Q", central[-1], 4))
            size = values.pop(0) if central[8] == 0xFFFFFFFF else central[8]
            compressed = values.pop(0) if central[7] == 0xFFFFFFFF else compressed
            offset = values.pop(0) if central[15] == 0xFFFFFFFF else offset
            del size
        local = struct.unpack_from("<HHHHHIIIHH", data, offset + 4)
        found["local"].append(local)
        start = offset + 30 + local[8] + local[9] + compressed
        width = 24 if local[0] == 45 else 16
        found["descriptor"].append((data[start:start + 4], width, data[start + width:start + width + 2]))
    return found


# --- Zip64 ---------------------------------------------------------------------------------------------


def test_forced_zip64_has_the_layout_libreoffice_and_excel_accept(tmp_path: Path) -> None:
    """Zip64 entries: version 4.5 local headers with zero sizes and no extra field, 64-bit data descriptors.
    The central directory and end record stay 32-bit, since every value fits (no 0xFFFFFFFF, no Zip64
    extra field, no Zip64 end records): the layout LibreOffice 7.4 opens."""
    data = write(tmp_path, list(demo_rows(50)), header=ORDER_HEADER, zip64_after=0).read_bytes()
    found = records(data)
    assert len(found["local"]) == len(found["central"]) == 7
    for version, flags, method, _, _, crc, compressed, size, _, extra_length in found["local"]:
        assert (version, flags & 0x08, method, crc, compressed, size, extra_length) == (45, 0x08, 8, 0, 0, 0, 0)
    for signature, width, following in found["descriptor"]:
        assert (signature, width) == (b"PK\x07\x08", 24)
        assert following in (b"PK", b"")  # the next record starts right after a 64-bit descriptor
    for central in found["central"]:
        assert central[1] == 45 and central[-1] == b""  # version needed 4.5, no extra field
        assert 0xFFFFFFFF not in (central[7], central[8], central[15])
    assert found["zip64_end"] == []
    assert b"PK\x06\x06" not in data and b"PK\x06\x07" not in data


def test_plain_zip_has_no_zip64_at_all(tmp_path: Path) -> None:
    data = write(tmp_path, list(demo_rows(50)), header=ORDER_HEADER).read_bytes()
    found = records(data)
    assert {local[0] for local in found["local"]} == {20}
    assert {width for _, width, _ in found["descriptor"]} == {16}
    assert {central[1] for central in found["central"]} == {20}
    assert b"PK\x06\x06" not in data


@pytest.mark.libreoffice
def test_forced_zip64_opens_in_libreoffice_openpyxl_and_zipfile(tmp_path: Path, libreoffice) -> None:
    rows = list(demo_rows(200))
    path = write(tmp_path, rows, header=ORDER_HEADER, sheet_name="orders", zip64_after=0)
    with zipfile.ZipFile(path) as z:
        assert z.testzip() is None
        assert {i.extract_version for i in z.infolist()} == {45}
    assert_same_as_openpyxl(rows, openpyxl_sheets(path)["orders"][1:])
    sheets = libreoffice.to_csv(path)
    assert list(sheets) == ["orders"] and sheets["orders"][0] == ORDER_HEADER
    assert_same_as_libreoffice(rows, sheets["orders"][1:])


def test_zip64_only_switches_on_mid_archive(tmp_path: Path) -> None:
    """Entries before ``zip64_after`` stay 32-bit, the ones after are Zip64; the archive reads as one."""
    rows = list(demo_rows(3_000))
    data = b"".join(write_xlsx(rows, ORDER_HEADER, zip64_after=50_000))
    versions = [local[0] for local in records(data)["local"]]
    assert versions[0] == 20 and versions[-1] == 45
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
    from stream_unzip import stream_unzip  # a streaming reader: it has to find each data descriptor

    names = []
    for name, _, chunks in stream_unzip([data]):
        names.append((name, len(b"".join(chunks))))
    assert names[0] == (b"xl/worksheets/sheet1.xml", len(zipfile.ZipFile(io.BytesIO(data)).read(names[0][0].decode())))
    assert len(names) == 7


class _Fill:
    """A stand-in compressor whose "compressed" output is ``size`` zero bytes, given out in 64 MiB pieces,
    so that a test can take an archive past 4 GiB without compressing 4 GiB."""

    piece = bytes(64 << 20)

    def __init__(self, size: int):
        self.left = size

    def compress(self, _chunk: bytes) -> bytes:
        if self.left >= len(self.piece):
            self.left -= len(self.piece)
            return self.piece
        return b""

    def flush(self) -> bytes:
        rest, self.left = bytes(self.left), 0
        return rest


def test_archive_past_4_gib_gets_zip64_offsets_and_end_records(tmp_path: Path) -> None:
    """Past 4 GiB the central directory gives the entries' offsets in a Zip64 extra field (only the offset:
    sizes fit) and the end of the archive gets the Zip64 end records; zipfile reads the members after
    4 GiB back. The big member's bytes are skipped (a sparse file), not written."""
    fills = iter([_Fill(0xFFFF_0000), _Fill(64 << 20)])

    def compressor() -> Any:
        return next(fills, None) or zlib.compressobj(1, zlib.DEFLATED, -15)

    small = [f"member {i} ".encode() * 1000 for i in range(3)]
    members = [("big", [b"x"] * 70), ("push", [b"x"] * 2), *((f"small{i}.xml", [body]) for i, body in enumerate(small))]
    path = tmp_path / "big.zip"
    tail = b""
    with open(path, "wb") as f:
        for chunk in zip_stream(members, modified_at=datetime(2024, 5, 6, 7, 8, 10), compress=compressor):
            if len(chunk) >= 1 << 20 and not chunk.strip(b"\0"):
                f.seek(len(chunk), io.SEEK_CUR)
            else:
                f.write(chunk)
            tail = (tail + chunk[-4096:])[-4096:]
    assert path.stat().st_size > 0x1_0000_0000
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        assert [i.filename for i in infos] == ["big", "push", "small0.xml", "small1.xml", "small2.xml"]
        assert infos[0].compress_size == 0xFFFF_0000 and infos[0].header_offset == 0
        assert all(i.header_offset > 0xFFFFFFFF for i in infos[2:])
        for i, body in enumerate(small):
            assert z.read(f"small{i}.xml") == body  # checks the CRC too
        assert infos[2].date_time == (2024, 5, 6, 7, 8, 10)
    # The records themselves, at the end of the archive: Zip64 end record, locator, end record.
    assert b"PK\x06\x06" in tail and b"PK\x06\x07" in tail
    end = struct.unpack_from("<HHHHIIH", tail, tail.rindex(b"PK\x05\x06") + 4)
    assert end[2:4] == (5, 5) and end[5] == 0xFFFFFFFF  # count fits; the directory's offset does not
    extras = re.findall(rb"small\d\.xml\x01\x00\x08\x00(.{8})", tail, re.S)
    assert len(extras) == 3  # each with an 8-byte extra: the offset alone


def test_zip_entry_too_large_for_32_bits_is_refused() -> None:
    """Below ``zip64_after`` an entry must fit 32-bit sizes (the writer caps parts far below that)."""
    members = [("big", [b"x"] * 70)]
    with pytest.raises(ValueError, match="need a Zip64 entry"):
        for _ in zip_stream(members, modified_at=datetime(2024, 1, 1), compress=lambda: _Fill(0x1_0000_0000)):
            pass


# --- sheet names, header limits, huge integers ---------------------------------------------------------


@pytest.mark.parametrize(
    "base,number,expected",
    [
        ("orders", 1, "orders"),
        ("orders", 2, "orders (2)"),
        ("a[b]c:d*e?f/g\\h", 1, "a_b_c_d_e_f_g_h"),
        ("tab\there\x00\x1f\x7f\x85 done", 1, "tabhere done"),
        ("lone \ud800 surrogate \ufffe", 1, "lone  surrogate "),
        ("History", 1, "History_"),
        ("HISTORY", 1, "HISTORY_"),
        ("History", 2, "History (2)"),
        ("'quoted'", 1, "quoted"),
        ("''", 1, "Sheet"),
        ("", 3, "Sheet (3)"),
        ("x" * 40, 1, "x" * 31),
        ("x" * 40, 12, "x" * 26 + " (12)"),
        ("📦" * 20, 1, "📦" * 15),  # 30 UTF-16 units: a 16th emoji would make 32
        ("📦" * 20, 2, "📦" * 13 + " (2)"),  # 26 units + " (2)" = 30
        ("a" * 30 + "'bc", 1, "a" * 30),  # cut at 31 it would end in an apostrophe
    ],
)
def test_sheet_names_follow_excel_rules(base: str, number: int, expected: str) -> None:
    from sheetstream.formats.xlsx.writer import _sheet_title

    name = _sheet_title(base, number)
    assert name == expected
    assert len(name.encode("utf-16-le")) // 2 <= 31


def test_continuation_names_stay_unique() -> None:
    from sheetstream.formats.xlsx.writer import _sheet_title

    taken: set[str] = set()
    base = "y" * 27 + " (2)"  # 31 characters: exactly what the continuation of "y" * 27 would be called
    names = [_sheet_title(base, n, taken) for n in (1, 2, 3)]
    assert len({n.lower() for n in names}) == 3 and all(len(n) <= 31 for n in names)


@pytest.mark.libreoffice
def test_awkward_sheet_names_open_in_libreoffice_and_openpyxl(tmp_path: Path, libreoffice) -> None:
    stats = WriteStats()
    rows = [(i, "v") for i in range(5)]
    path = write(tmp_path, rows, header=["n", "t"], sheet_name="'Ventes: 2024/Q1 📦📦📦📦📦📦📦📦📦📦📦📦'",
                 max_sheet_rows=4, stats=stats)
    assert stats.sheets == ["Ventes_ 2024_Q1 📦📦📦📦📦📦📦", "Ventes_ 2024_Q1 📦📦📦📦📦 (2)"]
    assert list(openpyxl_sheets(path)) == stats.sheets
    assert [r[0] for rs in libreoffice.to_csv(path).values() for r in rs[1:]] == [str(i) for i in range(5)]


def test_header_over_the_cell_limit_is_truncated_and_counted(tmp_path: Path) -> None:
    stats = WriteStats()
    long = "h" * (MAX_CELL_CHARS + 5)
    path = write(tmp_path, [(1, 2), (3, 4)], header=["a", long], max_sheet_rows=2, stats=stats)
    sheets = openpyxl_sheets(path)
    assert [rs[0][1] for rs in sheets.values()] == ["h" * MAX_CELL_CHARS] * 2
    assert stats.truncated_cells == 2  # the header of each sheet


def test_header_over_the_cell_limit_can_be_an_error(tmp_path: Path) -> None:
    with pytest.raises(CellTooLong, match=r"B1 has 32768 characters"):
        write(tmp_path, [(1, 2)], header=["a", "h" * (MAX_CELL_CHARS + 1)], long_text="error")


class Big(enum.IntEnum):
    HUGE = 10**400


@pytest.mark.libreoffice
def test_integers_beyond_the_double_range_are_text(tmp_path: Path, libreoffice) -> None:
    """An integer no double can hold becomes text with all its digits (a number would read as infinity or
    fail); from 2**53 to the largest double, integers stay numbers (precision is the reader's)."""
    largest = 2**1024 - 2**970 - 1  # rounds to the largest double, 1.7976931348623157e308
    values = [10**400, -(10**400), 2**1024 - 2**970, largest, 2**60, Big.HUGE, 10**5000]
    path = write(tmp_path, [tuple(values)], header=[f"c{i}" for i in range(len(values))])
    with zipfile.ZipFile(path) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    assert f"<v>{largest}</v>" in xml and f"<v>{2**60}</v>" in xml
    row = openpyxl_sheets(path)["Sheet1"][1]
    assert row == (str(10**400), str(-(10**400)), str(2**1024 - 2**970), largest, 2**60, str(10**400),
                   "1" + "0" * 5000)
    csv_row = libreoffice.to_csv(path)["Sheet1"][1]
    assert csv_row[:3] == [str(10**400), str(-(10**400)), str(2**1024 - 2**970)] and csv_row[6] == "1" + "0" * 5000
    assert float(csv_row[3]) == pytest.approx(float(largest), rel=1e-14)
    assert float(csv_row[4]) == pytest.approx(float(2**60), rel=1e-14)


# --- <dimension> and openpyxl's read-only mode ---------------------------------------------------------

TRAILING_NULLS = [(1, "a", None), (2, None, None), (None, None, None), (4, "d", "z"), (5,)]


def read_only_rows(path: Path) -> dict[str, list[tuple]]:
    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}
    finally:
        wb.close()


def rewrite_sheet(path: Path, out: Path, change) -> Path:
    """A copy of ``path`` with each worksheet's XML passed through ``change``."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.startswith("xl/worksheets/"):
                data = change(data.decode()).encode()
            dst.writestr(info.filename, data)
    return out


def test_openpyxl_read_only_sizes_rows_by_the_dimension_or_by_the_last_cell(tmp_path: Path) -> None:
    """What openpyxl's read-only mode does, pinned: without a dimension a row is as wide as its last cell
    (short rows for trailing NULLs); with one, rows have its width, and rows past its last row are dropped
    (so a dimension written before the row count is known, such as A1:C1, would lose the data)."""
    path = write(tmp_path, TRAILING_NULLS, header=["a", "b", "c"])
    bare = rewrite_sheet(path, tmp_path / "bare.xlsx", lambda xml: re.sub(r'<c r="[A-Z]+\d+"/>', "", xml))
    assert read_only_rows(bare)["Sheet1"][1:] == [(1, "a"), (2,), (), (4, "d", "z"), (5,)]
    short = rewrite_sheet(bare, tmp_path / "short.xlsx",
                          lambda xml: xml.replace("<sheetViews>", '<dimension ref="A1:C1"/><sheetViews>'))
    assert read_only_rows(short)["Sheet1"] == [("a", "b", "c")]
    sized = rewrite_sheet(bare, tmp_path / "sized.xlsx",
                          lambda xml: xml.replace("<sheetViews>", '<dimension ref="A1:C6"/><sheetViews>'))
    assert read_only_rows(sized)["Sheet1"][1:] == [(1, "a", None), (2, None, None), (None, None, None),
                                                   (4, "d", "z"), (5, None, None)]


def test_rows_have_full_width_in_openpyxl_read_only_without_a_row_count(tmp_path: Path) -> None:
    path = write(tmp_path, TRAILING_NULLS, header=["a", "b", "c"])
    with zipfile.ZipFile(path) as z:
        assert "<dimension" not in z.read("xl/worksheets/sheet1.xml").decode()
    expected = [(1, "a", None), (2, None, None), (None, None, None), (4, "d", "z"), (5, None, None)]
    assert read_only_rows(path)["Sheet1"] == [("a", "b", "c"), *expected]
    assert openpyxl_sheets(path)["Sheet1"][1:] == expected


def test_row_count_gives_each_sheet_its_dimension(tmp_path: Path) -> None:
    rows = [(i, None if i % 2 else "x", None) for i in range(10)]
    path = write(tmp_path, rows, header=["a", "b", "c"], max_sheet_rows=4, row_count=10)
    with zipfile.ZipFile(path) as z:
        dims = [re.search(r'<dimension ref="([^"]+)"/>', z.read(f"xl/worksheets/sheet{i}.xml").decode())[1]
                for i in range(1, 5)]
    assert dims == ["A1:C4", "A1:C4", "A1:C4", "A1:C2"]
    wb = openpyxl.load_workbook(path, read_only=True)
    assert [(ws.max_row, ws.max_column) for ws in wb.worksheets] == [(4, 3), (4, 3), (4, 3), (2, 3)]
    wb.close()
    got = [r for rs in read_only_rows(path).values() for r in rs[1:]]
    assert got == [(i, None if i % 2 else "x", None) for i in range(10)]


def test_row_count_of_an_empty_export(tmp_path: Path) -> None:
    path = write(tmp_path, [], header=["a", "b"], row_count=0)
    with zipfile.ZipFile(path) as z:
        assert '<dimension ref="A1:B1"/>' in z.read("xl/worksheets/sheet1.xml").decode()
    assert read_only_rows(path) == {"Sheet1": [("a", "b")]}


def test_more_rows_than_announced_go_on_a_new_sheet_and_none_is_lost(tmp_path: Path) -> None:
    """A sheet never holds more rows than its dimension says (openpyxl read-only would drop them)."""
    rows = [(i, "x") for i in range(7)]
    stats = WriteStats()
    path = write(tmp_path, rows, header=["a", "b"], row_count=5, stats=stats)
    assert stats.sheets == ["Sheet1", "Sheet1 (2)"] and stats.rows == 7
    with zipfile.ZipFile(path) as z:
        assert '<dimension ref="A1:B6"/>' in z.read("xl/worksheets/sheet1.xml").decode()
        assert "<dimension" not in z.read("xl/worksheets/sheet2.xml").decode()
    assert [r for rs in read_only_rows(path).values() for r in rs[1:]] == rows


def test_fewer_rows_than_announced_read_back_without_padding(tmp_path: Path) -> None:
    rows = [(i, "x", None) for i in range(3)]
    path = write(tmp_path, rows, header=["a", "b", "c"], row_count=50)
    assert read_only_rows(path)["Sheet1"][1:] == rows


def test_row_count_with_sheets_closed_early_by_the_part_size_cap(tmp_path: Path) -> None:
    """A sheet closed by the part size cap holds fewer rows than its dimension says (harmless: readers stop
    at the last row); the next sheet's dimension counts from the rows really written."""
    rows = [(i, "z" * 200) for i in range(6_000)]
    stats = WriteStats()
    path = write(tmp_path, rows, header=["n", "text"], max_part_bytes=400_000, row_count=6_000, stats=stats)
    assert len(stats.sheets) > 2
    with zipfile.ZipFile(path) as z:
        dims = [int(re.search(r'<dimension ref="A1:B(\d+)"/>', z.read(f"xl/worksheets/sheet{i}.xml").decode())[1])
                for i in range(1, len(stats.sheets) + 1)]
    sheets = read_only_rows(path)
    written = [len(rs) - 1 for rs in sheets.values()]
    assert sum(written) == 6_000 and dims[-1] - 1 == written[-1]
    assert all(d - 1 == 6_000 - sum(written[:i]) for i, d in enumerate(dims))
    assert [r[0] for rs in sheets.values() for r in rs[1:]] == list(range(6_000))


def test_negative_row_count_is_refused() -> None:
    with pytest.raises(ValueError, match="row_count"):
        next(write_xlsx([], ["a"], row_count=-1))


# --- cells without references: the same workbook in every reader ---------------------------------------

GAPS_HEADER = ["int", "text", "float", "decimal", "bool", "date", "datetime", "time", "duration", "last"]
GAPS = [
    (1, "first", 1.5, Decimal("12.30"), True, date(2024, 1, 2), datetime(2024, 1, 2, 3, 4, 5), time(13, 30),
     timedelta(hours=36), "end"),
    (None, "gap before", None, Decimal("-7.5"), None, None, datetime(1999, 12, 31, 23, 59, 59), None, None, None),
    (None,) * 10,  # an empty row still takes its row number
    (3, None, None, None, None, None, None, None, None, "only the ends"),
    (4, "short row"),  # shorter than the header: the rest is empty
    (5, "a<&>b", -0.25, None, False, date(2000, 2, 29), None, time(0, 0, 1), None, "  padded  "),
    (None, None, None, None, None, None, None, None, None, "last only"),
    (6, "ctl\x01 and 📦", 1e-300, Decimal("1000000"), True, date(1970, 1, 1), datetime(1970, 1, 1), time(23, 59, 59),
     timedelta(seconds=1), None),
    (2**40 + 1, "=SUM(A1:A2)", 2.0, Decimal("0.01"), None, None, None, None, None, "x"),
]


def with_references(xml: str) -> str:
    """The worksheet XML with an explicit ``r`` on every row and cell, as most writers put them."""
    ElementTree.register_namespace("", NS_MAIN)
    ElementTree.register_namespace("r", NS_REL)
    root = ElementTree.fromstring(xml)
    row_number = 0
    for row in root.iter(f"{{{NS_MAIN}}}row"):
        row_number = int(row.get("r") or row_number + 1)
        row.set("r", str(row_number))
        column = -1
        for cell in row.iter(f"{{{NS_MAIN}}}c"):
            ref = cell.get("r")
            column = column_index(ref.rstrip("0123456789")) if ref else column + 1
            cell.set("r", f"{column_letter(column)}{row_number}")
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)


@pytest.fixture(scope="module")
def gap_books(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The gap rows, split over sheets, as we write them and with every reference spelled out."""
    folder = tmp_path_factory.mktemp("gaps")
    ours = write(folder, GAPS, header=GAPS_HEADER, name="ours", sheet_name="gaps", max_sheet_rows=5)
    with zipfile.ZipFile(ours) as z:
        xml = z.read("xl/worksheets/sheet1.xml").decode()
    assert "<row>" in xml and "<row " not in xml and '<c r="B3"' in xml and '<c r="A2"' not in xml
    return ours, rewrite_sheet(ours, folder / "spelled.xlsx", with_references)


def test_gap_workbook_reads_back_in_openpyxl(gap_books) -> None:
    ours, spelled = gap_books
    sheets = openpyxl_sheets(ours)
    assert list(sheets) == ["gaps", "gaps (2)", "gaps (3)"]
    assert all(rs[0] == tuple(GAPS_HEADER) for rs in sheets.values())
    assert_same_as_openpyxl(GAPS, [r for rs in sheets.values() for r in rs[1:]])
    assert sheets == openpyxl_sheets(spelled)


def test_gap_workbook_reads_back_in_openpyxl_read_only(gap_books) -> None:
    ours, spelled = gap_books
    sheets = read_only_rows(ours)
    assert all(len(r) == len(GAPS_HEADER) for rs in sheets.values() for r in rs)
    assert_same_as_openpyxl(GAPS, [r for rs in sheets.values() for r in rs[1:]])
    assert sheets == read_only_rows(spelled)


def test_gap_workbook_reads_back_in_calamine(gap_books) -> None:
    calamine = pytest.importorskip("python_calamine")
    ours, spelled = gap_books

    def read(path: Path) -> dict[str, list[list]]:
        book = calamine.CalamineWorkbook.from_path(str(path))
        return {name: book.get_sheet_by_name(name).to_python() for name in book.sheet_names}

    sheets = read(ours)
    assert sheets == read(spelled)
    first = sheets["gaps"]
    assert first[1][:3] == [1.0, "first", 1.5] and first[1][6] == datetime(2024, 1, 2, 3, 4, 5)
    assert first[2][:2] == ["", "gap before"] and first[2][3] == -7.5
    assert first[3] == [""] * 10 and first[4][9] == "only the ends"
    assert sheets["gaps (2)"][1][:3] == [4.0, "short row", ""]
    assert sheets["gaps (3)"][-1][:2] == [float(2**40 + 1), "=SUM(A1:A2)"]


@pytest.mark.parametrize("engine", ["openpyxl", "calamine"])
def test_gap_workbook_reads_back_in_pandas(gap_books, engine: str) -> None:
    pandas = pytest.importorskip("pandas")
    if engine == "calamine":
        pytest.importorskip("python_calamine")
    ours, spelled = gap_books
    frames = pandas.read_excel(ours, sheet_name=None, engine=engine)
    reference = pandas.read_excel(spelled, sheet_name=None, engine=engine)
    assert list(frames) == ["gaps", "gaps (2)", "gaps (3)"]
    for name, frame in frames.items():
        assert list(frame.columns) == GAPS_HEADER
        pandas.testing.assert_frame_equal(frame, reference[name])
    assert frames["gaps"]["text"].tolist()[:2] == ["first", "gap before"]
    last = frames["gaps (2)"]["last"].tolist()
    assert pandas.isna(last[0]) and last[1] == "  padded  "


def test_gap_workbook_reads_back_in_our_reader(gap_books) -> None:
    ours, spelled = gap_books
    with open_workbook(ours) as book, open_workbook(spelled) as reference:
        assert book.sheet_names == ["gaps", "gaps (2)", "gaps (3)"]
        for name in book.sheet_names:
            assert list(book.rows(name)) == list(reference.rows(name))
        first = list(book.rows("gaps"))
    assert [number for number, _ in first] == [1, 2, 3, 5]  # row 4 is empty
    assert first[2][1][:2] == [None, "gap before"]


@pytest.mark.libreoffice
def test_gap_workbook_reads_back_in_libreoffice(gap_books, libreoffice) -> None:
    ours, spelled = gap_books
    sheets = libreoffice.to_csv(ours)
    assert sheets == libreoffice.to_csv(spelled)
    assert list(sheets) == ["gaps", "gaps (2)", "gaps (3)"]
    rows = [r for rs in sheets.values() for r in rs[1:]]
    expected = [row + (None,) * (len(GAPS_HEADER) - len(row)) for row in GAPS]
    # LibreOffice's CSV ends a sheet at its last non-empty row and reads times and durations as shown.
    as_shown = [tuple("36:00:00" if isinstance(v, timedelta) and v == timedelta(hours=36) else
                      "0:00:01" if isinstance(v, timedelta) else v for v in row) for row in expected]
    assert_same_as_libreoffice(as_shown, rows)
