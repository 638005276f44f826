"""Rows in, ``.xlsx`` byte chunks out: a generator that never holds the sheet in memory.

The worksheets come first in the archive so that bytes leave as soon as the first row is read;
the parts that depend on the whole export (sheet list, filter ranges, content types) come last,
which every reader that uses the ZIP central directory (Excel, LibreOffice, openpyxl) accepts.
The ZIP container is written by :func:`zip_stream` (why not stream-zip: see there).
"""

from __future__ import annotations

import itertools
import math
import os
import struct
import time as _time
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from . import parts
from .cells import (
    EPOCH_1900,
    MAX_CELL_CHARS,
    MAX_SHEET_COLUMNS,
    MAX_SHEET_ROWS,
    column_letter,
    date_to_serial,
    datetime_to_serial,
    escape_text,
    excel_length,
    time_to_serial,
    timedelta_to_serial,
    truncate_to_excel,
)
from .errors import CellTooLong

try:  # the compiled row encoder (_rows.c); optional: without it, or with SHEETSTREAM_XLSX_ENCODER=python, rows
    # are written by the Python loop in _sheet, the reference it is tested against (tests/formats/xlsx/test_rows.py)
    from ._rows import encode as _encode_rows
except ImportError:  # pragma: no cover
    _encode_rows = None
if os.environ.get("SHEETSTREAM_XLSX_ENCODER") == "python":
    _encode_rows = None

LongText = Literal["truncate", "error"]

_ZIP32_LIMIT = 0xFFFFFFFF
#: A worksheet part is closed (rows continue on a new sheet) before its XML reaches this size,
#: so each part fits a 32-bit ZIP entry.
MAX_PART_BYTES = _ZIP32_LIMIT - (64 << 20)
#: Entries that start at or beyond this offset are written as Zip64 entries (see :func:`zip_stream`).
ZIP64_AFTER = _ZIP32_LIMIT

# Text takes the fast path (written as it is) when it is printable (no control characters, surrogates,
# noncharacters or whitespace other than the space), holds no &, <, > or "_x", and neither starts nor ends
# with a space: then it needs no escaping and no xml:space="preserve". Everything else goes to _text_cell.
_SHORT_TEXT = MAX_CELL_CHARS // 2  # no string this short can pass Excel's limit, even in UTF-16 units
_SERIAL_61 = datetime(1900, 3, 1)  # from here on, serials need no correction for Excel's 1900-02-29

_FLUSH_PIECES = 4096  # join and encode the XML every this many pieces (roughly 30-60 kB)
# Integers from here on have no double (float() overflows): they are written as text, not as numbers that
# readers would turn into infinity or refuse. (The largest double is 2**1024 - 2**971; halfway up rounds to inf.)
_INT_NO_DOUBLE = 2**1024 - 2**970
_RESERVED_SHEET_NAMES = {"history"}  # Excel keeps "History" for the change history of shared workbooks


@dataclass
class WriteStats:
    """Filled in while the generator runs: what was written."""

    rows: int = 0
    sheets: list[str] = field(default_factory=list)
    truncated_cells: int = 0


#: The deflate libraries :func:`deflater` knows (isal is the default: see docs/performance.md).
DEFLATERS = ("isal", "zlib", "zlib-ng")


def deflater(name: str = "isal", level: int = 1) -> Callable[[], Any]:
    """A factory of raw-deflate compressors: ``zlib`` (levels 0-9), ``isal`` (0-3) or ``zlib-ng`` (0-9)."""
    if name == "zlib":
        module: Any = zlib
    elif name == "isal":
        from isal import isal_zlib as module
    elif name == "zlib-ng":
        from zlib_ng import zlib_ng as module
    else:
        raise ValueError(f"unknown deflate library {name!r}: use one of {', '.join(DEFLATERS)}")

    def compressor(zdict: bytes = b"") -> Any:
        # zdict: the last 32 kB before a level switch (see Adaptive), so the new compressor may refer back to them.
        if zdict:
            return module.compressobj(level, module.DEFLATED, -15, zdict=zdict)
        return module.compressobj(level, module.DEFLATED, -15)

    return compressor


#: The level an adaptive export switches to while the client is the bottleneck. On the demo sheet XML
#: (docs/performance.md): isal 1 0.9 ms of CPU per MB of XML, ratio 0.157; isal 3 2.4 ms, 0.149; zlib 6 10.9 ms,
#: 0.124; zlib 9 34.7 ms, 0.114. zlib 6 takes a fifth off the bytes for about a third more export CPU (the XML
#: costs about 30 ms per MB); zlib 9 would triple that deflate CPU for 8% fewer bytes.
ADAPTIVE_SLOW = ("zlib", 6)


@dataclass
class Adaptive:
    """A deflate factory for :func:`zip_stream` whose level follows back-pressure, measured in the generator.

    zip_stream times how long it computes between its yields (``busy``) and how long it stays suspended at
    them (``away``, the consumer's time: a slow client's socket makes it wait). When the consumer takes more
    than half the wall time (``away > busy``, both smoothed over about 8 chunks), the CPU is idle anyway: the
    sheet continues with ``slow``, a higher level, for fewer bytes. When ``away`` falls under a tenth of the
    time, the client keeps up (we are the bottleneck): back to ``fast``. A switch sync-flushes the current
    compressor (no final block) and continues with a new one primed with the last 32 kB as its dictionary:
    raw deflate data so joined is one valid stream, and CRC and sizes count uncompressed bytes anyway.
    """

    fast: Callable[..., Any]
    slow: Callable[..., Any]
    smoothing: float = 1 / 8
    switches: int = 0  # level changes so far (the tests read it)
    slowed: bool = False
    _busy: float = 0.0
    _away: float = 0.0

    def __call__(self, zdict: bytes = b"") -> Any:
        return (self.slow if self.slowed else self.fast)(zdict)

    def update(self, busy: float, away: float) -> bool:
        """Account one chunk's producing and waiting seconds; True when the level should change."""
        self._busy += (busy - self._busy) * self.smoothing
        self._away += (away - self._away) * self.smoothing
        if self.slowed:
            change = self._away < 0.1 * (self._away + self._busy)
        else:
            change = self._away > self._busy
        if change:
            self.slowed = not self.slowed
            self.switches += 1
        return change


def adaptive(name: str = "isal", level: int = 1) -> Adaptive:
    """``name`` at ``level`` while the client keeps up, :data:`ADAPTIVE_SLOW` while it is the bottleneck."""
    return Adaptive(deflater(name, level), deflater(*ADAPTIVE_SLOW))


def write_xlsx(
    rows: Iterable[Sequence[Any]],
    header: Sequence[str],
    *,
    sheet_name: str = "Sheet1",
    max_sheet_rows: int = MAX_SHEET_ROWS,
    long_text: LongText = "truncate",
    compress: Callable[[], Any] | None = None,
    width_sample: int = 100,
    chunk_size: int = 65_536,
    modified_at: datetime | None = None,
    stats: WriteStats | None = None,
    zip64_after: int = ZIP64_AFTER,
    max_part_bytes: int = MAX_PART_BYTES,
    row_count: int | None = None,
    number_formats: Sequence[str | None] | None = None,
) -> Iterator[bytes]:
    """Stream an ``.xlsx`` of ``header`` and ``rows`` as byte chunks.

    ``number_formats``: per column, the format code of its numbers (``#,##0.00``), or None for General; dates
    and times keep their own formats whatever the column's.

    Rows beyond ``max_sheet_rows`` (header included) continue on a new sheet with the header repeated.
    Texts over Excel's cell limit, in the header too, are cut to 32,767 characters (counted in
    ``stats.truncated_cells``) or, with ``long_text="error"``, raise :class:`CellTooLong`.

    ``row_count``, when the caller knows it (counted in the same snapshot as the rows), gives every sheet
    a ``<dimension>`` with its real size, which readers such as openpyxl's read-only mode use. Should
    more rows come than announced, a sheet never holds more rows than its dimension says: the extra rows
    continue on a new sheet, without a dimension.
    """
    yield from write_workbook(
        [Sheet(sheet_name, header, rows, number_formats, row_count)], max_sheet_rows=max_sheet_rows,
        long_text=long_text, compress=compress, width_sample=width_sample, chunk_size=chunk_size,
        modified_at=modified_at, stats=stats, zip64_after=zip64_after, max_part_bytes=max_part_bytes)


@dataclass
class Sheet:
    """One sheet of :func:`write_workbook`: its name, header and rows (read only when its turn comes), and per
    column the format code of its numbers (or None for General); ``row_count`` as for :func:`write_xlsx`."""

    name: str
    header: Sequence[str]
    rows: Iterable[Sequence[Any]]
    number_formats: Sequence[str | None] | None = None
    row_count: int | None = None


def write_workbook(
    sheets: Iterable[Sheet],
    *,
    max_sheet_rows: int = MAX_SHEET_ROWS,
    long_text: LongText = "truncate",
    compress: Callable[[], Any] | None = None,
    width_sample: int = 100,
    chunk_size: int = 65_536,
    modified_at: datetime | None = None,
    stats: WriteStats | None = None,
    zip64_after: int = ZIP64_AFTER,
    max_part_bytes: int = MAX_PART_BYTES,
) -> Iterator[bytes]:
    """Stream an ``.xlsx`` of ``sheets``, one after the other, as byte chunks (see :func:`write_xlsx`): a sheet's
    rows are read only once the sheets before it are written, so memory stays flat however many there are."""
    sheets = list(sheets)
    if max_sheet_rows < 2:
        raise ValueError("max_sheet_rows must leave room for the header and one row")
    for sheet in sheets:
        if len(sheet.header) > MAX_SHEET_COLUMNS:
            raise ValueError(f"{len(sheet.header):,} columns: a sheet holds at most {MAX_SHEET_COLUMNS:,}")
        if sheet.row_count is not None and sheet.row_count < 0:
            raise ValueError("row_count cannot be negative")
    stats = stats if stats is not None else WriteStats()
    modified_at = modified_at or datetime.now().replace(microsecond=0)
    distinct: list[str] = []  # every column format of the workbook, once: the styles part comes after the sheets

    def members() -> Iterator[tuple[str, Iterable[bytes]]]:
        filters: list[tuple[str, str | None]] = []
        taken: set[str] = set()
        part = 0
        for sheet in sheets:
            header, row_count = sheet.header, sheet.row_count
            formats = list(sheet.number_formats or ())[:len(header)]
            distinct.extend(f for f in dict.fromkeys(formats) if f and f not in distinct)
            number_styles = [f' s="{parts.FIRST_COLUMN_STYLE + distinct.index(f)}"' if f else "" for f in formats]
            number_styles += [""] * (len(header) - len(number_styles))
            rows = iter(sheet.rows)
            sample = list(itertools.islice(rows, width_sample))
            widths = _column_widths(header, sample, [bool(f and "," in f) for f in formats])
            pending = itertools.chain(sample, rows)
            rows_before = stats.rows
            first = True
            for number in itertools.count(1):
                try:
                    row = next(pending)
                except StopIteration:
                    if not first:
                        break
                    row = None  # an empty export still gets one sheet with its header
                first = False
                name = _sheet_title(sheet.name, number, taken)
                stats.sheets.append(name)
                source = pending if row is None else itertools.chain((row,), pending)
                # Rows the caller announced that are still to come, for this sheet's dimension (None: unknown).
                announced = None if row_count is None else row_count - (stats.rows - rows_before)
                if announced is not None and announced <= 0 and row is not None:
                    announced = None  # more rows than announced: this sheet's size is unknown
                part += 1
                yield f"xl/worksheets/sheet{part}.xml", _sheet(
                    source, header, widths, name, max_sheet_rows, long_text, max_part_bytes, stats, filters,
                    announced, number_styles)
        yield "xl/styles.xml", (parts.styles(distinct).encode(),)
        yield "xl/workbook.xml", (parts.workbook(filters).encode(),)
        yield "xl/_rels/workbook.xml.rels", (parts.workbook_rels(len(filters)).encode(),)
        yield "docProps/app.xml", (parts.APP_PROPS.encode(),)
        yield "_rels/.rels", (parts.ROOT_RELS.encode(),)
        yield "[Content_Types].xml", (parts.content_types(len(filters)).encode(),)

    yield from zip_stream(members(), modified_at=modified_at, compress=compress or deflater(), chunk_size=chunk_size,
                          zip64_after=zip64_after)


def _sheet(
    rows: Iterator[Sequence[Any]],
    header: Sequence[str],
    widths: list[float],
    name: str,
    max_rows: int,
    long_text: LongText,
    max_part_bytes: int,
    stats: WriteStats,
    filters: list[tuple[str, str | None]],
    announced: int | None = None,
    number_styles: Sequence[str] = (),
) -> Iterator[bytes]:
    """One worksheet's XML. Consumes at most ``max_rows - 1`` rows of ``rows``; the hot loop of the export.

    ``announced``: rows still to come by the caller's count, or None. With it the sheet gets a
    ``<dimension>`` and holds no more rows than that dimension says. ``number_styles``: per column, the style
    attribute of its numbers (`` s="6"``) or "".

    Cells and rows carry no ``r="B7"`` reference, which SpreadsheetML makes optional: a row follows the
    previous one, a cell the previous cell. A cell gets its reference only after a gap (a None is no cell).
    A row whose last cell is None ends with an empty cell in the last column, so that readers which size
    rows by their cells (openpyxl's read-only mode without a dimension) see every row at full width.
    """
    letters = [column_letter(i) for i in range(len(header))]
    number_styles = list(number_styles) or [""] * len(letters)
    width = len(letters)
    last = width - 1
    n = 1 if header else 0
    limit = max_rows - n
    if announced is not None:
        limit = min(limit, announced)
    head = [parts.XML_DECL, f'<worksheet xmlns="{parts.NS_MAIN}" xmlns:r="{parts.NS_REL}">']
    if header and announced is not None:
        head.append(f'<dimension ref="A1:{letters[-1]}{n + limit}"/>')
    if header:
        head.append(
            '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft"'
            ' state="frozen"/><selection pane="bottomLeft"/></sheetView></sheetViews>'
        )
        head.append("<cols>" + "".join(
            f'<col min="{i}" max="{i}" width="{w:.1f}" customWidth="1"/>' for i, w in enumerate(widths, 1)
        ) + "</cols>")
    head.append("<sheetData>")
    if header:
        head.append("<row>")
        for letter, h in zip(letters, map(str, header)):
            if len(h) > _SHORT_TEXT and excel_length(h) > MAX_CELL_CHARS:
                h = _too_long(h, name, f"{letter}1", long_text, stats)
            head.append(f'<c s="1" t="inlineStr"><is><t{_space(h)}>{escape_text(h)}</t></is></c>')
        head.append("</row>")

    out = head
    size = 0
    if _encode_rows is not None:
        # The same rows, cells and chunks as the loop below, in C: about 10x faster (docs/performance.md).
        def text(c: str, letter: str, n: int, v: str) -> str:
            return _text_cell(c, letter, n, v, name, long_text, stats)

        def other(c: str, letter: str, n: int, v: Any) -> str:
            return _other_cell(c, letter, n, v, name, long_text, stats)

        styles = tuple(number_styles)
        date_style, datetime_style = f' s="{parts.STYLE_DATE}"', f' s="{parts.STYLE_DATETIME}"'
        held = ["".join(out).encode("utf-8")]
        pieces, first = len(out), n
        out.clear()
        while True:
            data, last_row, pieces = _encode_rows(rows, limit - (n - first), n, pieces, _FLUSH_PIECES, tuple(letters),
                                                  styles, date_style, datetime_style, text, other)
            held.append(data)
            taken, n = last_row - n, last_row
            if not taken or pieces <= _FLUSH_PIECES:  # the rows, or the sheet's room, ended
                break
            chunk = b"".join(held)
            held.clear()
            pieces = 0
            size += len(chunk)
            yield chunk
            if size > max_part_bytes:
                break
        stats.rows += n - (1 if header else 0)
        yield b"".join(held) + "".join(_tail(header, letters, n, name, filters)).encode("utf-8")
        return
    append = out.append
    date_serials: dict[date, int] = {}  # dates repeat: look their serials up
    for row in itertools.islice(rows, limit):
        n += 1
        append("<row>")
        c = "<c"  # the cell's start: with its reference only after a gap
        for letter, s, v in zip(letters, number_styles, row):
            if v is None:
                c = None
                continue
            if c is None:
                c = f'<c r="{letter}{n}"'
            t = type(v)
            if t is str:
                if (v.isprintable() and "&" not in v and "<" not in v and ">" not in v and "_x" not in v
                        and v[:1] != " " and v[-1:] != " " and len(v) <= _SHORT_TEXT):
                    append(f'{c} t="inlineStr"><is><t>{v}</t></is></c>')
                else:
                    append(_text_cell(c, letter, n, v, name, long_text, stats))
            elif t is int and -_INT_NO_DOUBLE < v < _INT_NO_DOUBLE:
                append(f"{c}{s}><v>{v}</v></c>")
            elif t is float and v - v == 0:  # finite: inf - inf and nan - nan are nan
                append(f"{c}{s}><v>{v!r}</v></c>")
            elif t is Decimal and v.is_finite():
                append(f"{c}{s}><v>{v}</v></c>")
            elif t is date and v in date_serials:
                append(f'{c} s="{parts.STYLE_DATE}"><v>{date_serials[v]}</v></c>')
            elif t is datetime and v.tzinfo is None and v >= _SERIAL_61:
                d = v - EPOCH_1900
                serial = d.days + (d.seconds * 1_000_000 + d.microseconds) / 86_400_000_000
                append(f'{c} s="{parts.STYLE_DATETIME}"><v>{serial!r}</v></c>')
            elif t is bool:
                append(f'{c} t="b"><v>{1 if v else 0}</v></c>')
            else:
                if t is date and date_to_serial(v) >= 1:
                    date_serials[v] = date_to_serial(v)
                append(_other_cell(c, letter, n, v, name, long_text, stats))
            c = "<c"
        if width and (len(row) < width or row[last] is None):
            append(f'<c r="{letters[last]}{n}"/>')
        append("</row>")
        if len(out) > _FLUSH_PIECES:
            chunk = "".join(out).encode("utf-8")
            out.clear()
            size += len(chunk)
            yield chunk
            if size > max_part_bytes:
                break
    stats.rows += n - (1 if header else 0)
    out.extend(_tail(header, letters, n, name, filters))
    yield "".join(out).encode("utf-8")


def _tail(header: Sequence[str], letters: list[str], n: int, name: str, filters: list[tuple[str, str | None]]) -> list[str]:
    """The end of a worksheet whose last row is ``n``; its autofilter's range goes to ``filters``."""
    tail = ["</sheetData>"]
    ref = f"A1:{letters[-1]}{max(n, 1)}" if header else None
    if ref:
        tail.append(f'<autoFilter ref="{ref}"/>')
    tail.append('<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/></worksheet>')
    filters.append((name, ref))
    return tail


def _other_cell(c: str, letter: str, n: int, v: Any, sheet: str, long_text: LongText, stats: WriteStats) -> str:
    """Cells of the less common types: dates and times, subclasses, huge integers, anything else as text.

    ``c`` is the cell's start (``<c`` or ``<c r="B7"``); ``letter`` and ``n`` name it in errors.
    """
    if isinstance(v, datetime):
        serial = datetime_to_serial(v)
        if serial >= 1:
            return f'{c} s="{parts.STYLE_DATETIME}"><v>{serial!r}</v></c>'
        v = v.isoformat(sep=" ")
    elif isinstance(v, date):
        serial = date_to_serial(v)
        if serial >= 1:
            return f'{c} s="{parts.STYLE_DATE}"><v>{serial}</v></c>'
        v = v.isoformat()
    elif isinstance(v, time):
        return f'{c} s="{parts.STYLE_TIME}"><v>{time_to_serial(v)!r}</v></c>'
    elif isinstance(v, timedelta):
        return f'{c} s="{parts.STYLE_DURATION}"><v>{timedelta_to_serial(v)!r}</v></c>'
    elif isinstance(v, bool):
        return f'{c} t="b"><v>{1 if v else 0}</v></c>'
    elif isinstance(v, int):
        if -_INT_NO_DOUBLE < v < _INT_NO_DOUBLE:
            return f"{c}><v>{int(v)}</v></c>"
        # No double holds it: as text, all its digits (Decimal has no limit on digits, str(int) has).
        v = str(Decimal(int(v)))
    elif isinstance(v, (float, Decimal)):
        if not math.isfinite(v):
            return f'{c} t="e"><v>#NUM!</v></c>'
        return f"{c}><v>{repr(float(v)) if isinstance(v, float) else v}</v></c>"
    elif isinstance(v, (bytes, bytearray, memoryview)):
        v = bytes(v).hex()
    return _text_cell(c, letter, n, str(v), sheet, long_text, stats)


def _text_cell(c: str, letter: str, n: int, v: str, sheet: str, long_text: LongText, stats: WriteStats) -> str:
    """A text cell that needs care: escaping, edge whitespace or Excel's length limit."""
    if len(v) > _SHORT_TEXT and excel_length(v) > MAX_CELL_CHARS:
        v = _too_long(v, sheet, f"{letter}{n}", long_text, stats)
    return f'{c} t="inlineStr"><is><t{_space(v)}>{escape_text(v)}</t></is></c>'


def _too_long(v: str, sheet: str, ref: str, long_text: LongText, stats: WriteStats) -> str:
    if long_text == "error":
        length = excel_length(v)
        raise CellTooLong(f"cell {sheet}!{ref} has {length} characters; Excel allows at most {MAX_CELL_CHARS}",
                          sheet=sheet, cell=ref, length=length)
    stats.truncated_cells += 1
    return truncate_to_excel(v)


def _space(v: str) -> str:
    return ' xml:space="preserve"' if v and (v[0] in " \t\n\r" or v[-1] in " \t\n\r") else ""


def _column_widths(header: Sequence[str], sample: list[Sequence[Any]], grouped: Sequence[bool] = ()) -> list[float]:
    """Widths from the header and a sample of rows; ``grouped[i]``: column i shows thousands separators."""
    widths = [len(str(h)) + 3 for h in header]  # room for the autofilter button
    grouped = list(grouped) + [False] * (len(widths) - len(grouped))
    for row in sample:
        for i, v in enumerate(row[: len(widths)]):
            if v is None:
                continue
            shown = (19 if isinstance(v, datetime) else 10 if isinstance(v, date)
                     else 60 if isinstance(v, int) and abs(v) >= 10**60 else len(str(v)))  # str(): 4,300 digits at most
            if grouped[i] and isinstance(v, (int, float, Decimal)) and shown < 60:
                shown += max(len(str(abs(int(v)))) - 1, 0) // 3  # 1,234,567.00: a comma per three digits
            if shown + 1 > widths[i]:
                widths[i] = shown + 1
    return [float(min(max(w, 8), 60)) for w in widths]


def _sheet_title(base: str, number: int, taken: set[str] | None = None) -> str:
    """A sheet name Excel accepts, unique among ``taken`` (lower-cased names, updated), ``name (2)`` for
    continuations.

    Excel's rules: no control characters (dropped, with surrogates and noncharacters, which XML cannot
    carry) and none of ``[]:*?/\\`` (each becomes ``_``); no apostrophe first or last; not ``History``
    in any case; at most 31 characters counted in UTF-16 units, as Excel counts (an emoji is 2), the
    continuation suffix included.
    """
    clean = "".join(
        "_" if ch in "[]:*?/\\" else ch
        for ch in base
        if unicodedata.category(ch) not in ("Cc", "Cs") and ch not in "\ufffe\uffff"
    )
    suffix = "" if number == 1 else f" ({number})"
    room = 31 - len(suffix)
    taken = taken if taken is not None else set()
    while True:
        name = _cut_utf16(clean.strip("'"), room).strip("'")
        if not name:
            name = "Sheet"
        name += suffix
        if name.lower() in _RESERVED_SHEET_NAMES:
            name = _cut_utf16(name, 30) + "_"
        if name.lower() not in taken or room <= 1:
            taken.add(name.lower())
            return name
        room -= 1  # "orders (2)" asked for by name and as the continuation of "orders": shorten the latter


def _cut_utf16(text: str, units: int) -> str:
    """``text`` cut to at most ``units`` UTF-16 code units, never inside a surrogate pair."""
    if len(text) * 2 <= units:
        return text
    return text.encode("utf-16-le")[: units * 2].decode("utf-16-le", errors="ignore")


# The ZIP container. Little-endian records of APPNOTE.TXT (PKWARE's ZIP specification), section 4.3.
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")
_DATA_DESCRIPTOR = struct.Struct("<IIII")
_DATA_DESCRIPTOR_64 = struct.Struct("<IIQQ")
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")
_ZIP64_END = struct.Struct("<IQHHIIQQQQ")
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_END = struct.Struct("<IHHHHIIH")
_FLAGS = 0x0808  # bit 3: sizes and CRC in a data descriptor after the data; bit 11: names are UTF-8
_DEFLATED = 8
_UNIX = 3 << 8  # "version made by": upper byte, the host system
_MODE = 0o600 << 16  # external attributes: rw------- (Unix mode in the upper 16 bits)


def zip_stream(
    members: Iterable[tuple[str, Iterable[bytes]]],
    *,
    modified_at: datetime,
    compress: Callable[[], Any],
    chunk_size: int = 65_536,
    zip64_after: int = ZIP64_AFTER,
) -> Iterator[bytes]:
    """A ZIP archive of ``members`` (name, byte chunks), deflated as it streams, in chunks of about
    ``chunk_size`` bytes; every local header is sent as soon as it is written. With an :class:`Adaptive`
    ``compress``, the deflate level follows the consumer's speed (see there).

    Entries carry a data descriptor (their sizes are not known up front). Entries that start at or beyond
    ``zip64_after`` are Zip64 entries, in the layout Apache POI found Excel requires: a version 4.5 local
    header with zero sizes and no extra field, and a data descriptor with 64-bit sizes. The central
    directory and the end record use Zip64 only for what does not fit in 32 bits, as APPNOTE 4.4.1.4 and
    4.5.3 ask: a Zip64 extra field with just those values, Zip64 end records only when the directory's
    offset, size or entry count needs them.

    Why not stream-zip (its ``ZIP_64``): it marks all of an entry's sizes and offset as 0xFFFFFFFF in the
    central directory, with a Zip64 extra field, and always adds the Zip64 end records. LibreOffice 7.4
    refuses either one (seen with ``soffice --convert-to``: a central record with 0xFFFFFFFF and a Zip64
    extra field, even with a plain end record; Zip64 end records, even with a plain central directory and
    the true values repeated in the 32-bit end record), so a workbook with any Zip64 entry did not open
    there, though all its values fit in 32 bits. stream-zip 0.0.84 has no option for another layout
    (``ZIP_AUTO`` picks 32 or 64 bits per entry but ignores the compressor given).

    No part of an ``.xlsx`` needs 64-bit sizes (the writer closes a worksheet before 4 GB of XML), only
    offsets past 4 GiB: LibreOffice 7.4 opens no archive that needs those (a Zip64 offset or end record is
    unavoidable there); LibreOffice's current source reads both.
    """
    dos_time = (modified_at.hour << 11) | (modified_at.minute << 5) | (modified_at.second // 2)
    dos_date = (max(modified_at.year - 1980, 0) << 9) | (modified_at.month << 5) | modified_at.day
    crc32 = zlib.crc32
    clock = _time.perf_counter
    adapt = compress if isinstance(compress, Adaptive) else None
    directory: list[tuple[bytes, bool, int, int, int, int]] = []
    offset = 0
    pending: list[bytes] = []
    buffered = 0
    for name, chunks in members:
        encoded = name.encode("utf-8")
        zip64 = offset >= zip64_after
        header = _LOCAL_HEADER.pack(0x04034B50, 45 if zip64 else 20, _FLAGS, _DEFLATED, dos_time, dos_date,
                                    0, 0, 0, len(encoded), 0) + encoded
        pending.append(header)
        yield b"".join(pending)
        pending.clear()
        buffered = 0
        crc = size = compressed = 0
        compressor = compress()
        before = b""  # the chunk before this one: with it, a new compressor gets the last 32 kB as its dictionary
        resumed = clock()
        for chunk in chunks:
            size += len(chunk)
            crc = crc32(chunk, crc)
            data = compressor.compress(chunk)
            if data:
                compressed += len(data)
                pending.append(data)
                buffered += len(data)
                if buffered >= chunk_size:
                    out = b"".join(pending)
                    pending.clear()
                    buffered = 0
                    if adapt is None:
                        yield out
                    else:
                        paused = clock()
                        yield out
                        busy, resumed = paused - resumed, clock()
                        if adapt.update(busy, resumed - paused):
                            data = compressor.flush(zlib.Z_SYNC_FLUSH)  # ends a block, not the stream
                            compressed += len(data)
                            pending.append(data)
                            buffered += len(data)
                            compressor = adapt((before[-32768:] + chunk)[-32768:])
            before = chunk
        data = compressor.flush()
        compressed += len(data)
        if zip64:
            descriptor = _DATA_DESCRIPTOR_64.pack(0x08074B50, crc, compressed, size)
        elif compressed >= _ZIP32_LIMIT or size >= _ZIP32_LIMIT:
            raise ValueError(f"{name}: {size:,} bytes need a Zip64 entry (it started before zip64_after)")
        else:
            descriptor = _DATA_DESCRIPTOR.pack(0x08074B50, crc, compressed, size)
        pending += (data, descriptor)
        buffered += len(data) + len(descriptor)
        directory.append((encoded, zip64, crc, compressed, size, offset))
        offset += len(header) + compressed + len(descriptor)
    pending.append(_central_directory(directory, offset, dos_time, dos_date))
    yield b"".join(pending)


def _central_directory(directory: list[tuple[bytes, bool, int, int, int, int]], start: int, dos_time: int,
                       dos_date: int) -> bytes:
    """The central directory of ``directory``'s entries, written from ``start``, and the end record(s)."""
    records = []
    offset = start
    for encoded, zip64, crc, compressed, size, at in directory:
        # In the order APPNOTE fixes, the values that do not fit (0xFFFFFFFF itself marks "in the extra field").
        large = [value for value in (size, compressed, at) if value >= _ZIP32_LIMIT]
        extra = struct.pack(f"<HH{len(large)}Q", 1, 8 * len(large), *large) if large else b""
        version = 45 if zip64 or large else 20
        record = _CENTRAL_HEADER.pack(
            0x02014B50, _UNIX | version, version, _FLAGS, _DEFLATED, dos_time, dos_date, crc,
            min(compressed, _ZIP32_LIMIT), min(size, _ZIP32_LIMIT), len(encoded), len(extra), 0, 0, 0, _MODE,
            min(at, _ZIP32_LIMIT),
        ) + encoded + extra
        records.append(record)
        offset += len(record)
    count, length = len(directory), offset - start
    if count >= 0xFFFF or length >= _ZIP32_LIMIT or start >= _ZIP32_LIMIT:
        records.append(_ZIP64_END.pack(0x06064B50, 44, _UNIX | 45, 45, 0, 0, count, count, length, start))
        records.append(_ZIP64_LOCATOR.pack(0x07064B50, 0, offset, 1))
    records.append(_END.pack(0x06054B50, 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), min(length, _ZIP32_LIMIT),
                             min(start, _ZIP32_LIMIT), 0))
    return b"".join(records)
