"""Rows in, ``.xlsx`` byte chunks out: a generator that never holds the sheet in memory.

The worksheets come first in the archive so that bytes leave as soon as the first row is read;
the parts that depend on the whole export (sheet list, filter ranges, content types) come last,
which every reader that uses the ZIP central directory (Excel, LibreOffice, openpyxl) accepts.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from stream_zip import ZIP_32, ZIP_64, stream_zip

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

LongText = Literal["truncate", "error"]

_ZIP32_LIMIT = 0xFFFFFFFF
#: A worksheet part is closed (rows continue on a new sheet) before its XML reaches this size,
#: so each part fits a 32-bit ZIP entry.
MAX_PART_BYTES = _ZIP32_LIMIT - (64 << 20)
#: Entries that start beyond this offset get Zip64 headers (margin for bytes still in the deflater).
ZIP64_AFTER = _ZIP32_LIMIT - (256 << 20)

# Text takes the fast path (written as it is) when it is printable (no control characters, surrogates,
# noncharacters or whitespace other than the space), holds no &, <, > or "_x", and neither starts nor ends
# with a space: then it needs no escaping and no xml:space="preserve". Everything else goes to _text_cell.
_SHORT_TEXT = MAX_CELL_CHARS // 2  # no string this short can pass Excel's limit, even in UTF-16 units
_SERIAL_61 = datetime(1900, 3, 1)  # from here on, serials need no correction for Excel's 1900-02-29

_FLUSH_PIECES = 4096  # join and encode the XML every this many pieces (roughly 30-60 kB)


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
    return lambda: module.compressobj(level, module.DEFLATED, -15)


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
) -> Iterator[bytes]:
    """Stream an ``.xlsx`` of ``header`` and ``rows`` as byte chunks.

    Rows beyond ``max_sheet_rows`` (header included) continue on a new sheet with the header repeated.
    Texts over Excel's cell limit are cut to 32,767 characters (counted in ``stats.truncated_cells``) or,
    with ``long_text="error"``, raise :class:`CellTooLong`.
    """
    if max_sheet_rows < 2:
        raise ValueError("max_sheet_rows must leave room for the header and one row")
    if len(header) > MAX_SHEET_COLUMNS:
        raise ValueError(f"{len(header):,} columns: a sheet holds at most {MAX_SHEET_COLUMNS:,}")
    stats = stats if stats is not None else WriteStats()
    modified_at = modified_at or datetime.now().replace(microsecond=0)
    rows = iter(rows)
    sample = list(itertools.islice(rows, width_sample))
    widths = _column_widths(header, sample)
    pending = itertools.chain(sample, rows)
    emitted = 0

    def member(name: str, chunks: Iterable[bytes]) -> tuple:
        method = ZIP_64 if emitted > zip64_after else ZIP_32
        return name, modified_at, 0o600, method, chunks

    def text(xml: str) -> tuple[bytes]:
        return (xml.encode("utf-8"),)

    def members() -> Iterator[tuple]:
        filters: list[tuple[str, str | None]] = []
        first = True
        for number in itertools.count(1):
            try:
                row = next(pending)
            except StopIteration:
                if not first:
                    break
                row = None  # an empty export still gets one sheet with its header
            first = False
            name = _sheet_title(sheet_name, number)
            stats.sheets.append(name)
            source = pending if row is None else itertools.chain((row,), pending)
            sheet = _sheet(source, header, widths, name, max_sheet_rows, long_text, max_part_bytes, stats, filters)
            yield member(f"xl/worksheets/sheet{number}.xml", sheet)
        yield member("xl/styles.xml", text(parts.STYLES))
        yield member("xl/workbook.xml", text(parts.workbook(filters)))
        yield member("xl/_rels/workbook.xml.rels", text(parts.workbook_rels(len(filters))))
        yield member("docProps/app.xml", text(parts.APP_PROPS))
        yield member("_rels/.rels", text(parts.ROOT_RELS))
        yield member("[Content_Types].xml", text(parts.content_types(len(filters))))

    for chunk in stream_zip(members(), chunk_size=chunk_size, get_compressobj=compress or deflater()):
        emitted += len(chunk)
        yield chunk


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
) -> Iterator[bytes]:
    """One worksheet's XML. Consumes at most ``max_rows - 1`` rows of ``rows``; the hot loop of the export."""
    letters = [column_letter(i) for i in range(len(header))]
    head = [parts.XML_DECL, f'<worksheet xmlns="{parts.NS_MAIN}" xmlns:r="{parts.NS_REL}">']
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
        head.append('<row r="1">')
        head.extend(f'<c r="{letter}1" s="1" t="inlineStr"><is><t{_space(h)}>{escape_text(h)}</t></is></c>'
                    for letter, h in zip(letters, map(str, header)))
        head.append("</row>")

    out = head
    size = 0
    n = 1 if header else 0
    limit = max_rows - n
    append = out.append
    date_serials: dict[date, int] = {}  # dates repeat: look their serials up
    for row in itertools.islice(rows, limit):
        n += 1
        r = str(n)
        append(f'<row r="{r}">')
        for letter, v in zip(letters, row):
            if v is None:
                continue
            t = type(v)
            if t is str:
                if (v.isprintable() and "&" not in v and "<" not in v and ">" not in v and "_x" not in v
                        and v[:1] != " " and v[-1:] != " " and len(v) <= _SHORT_TEXT):
                    append(f'<c r="{letter}{r}" t="inlineStr"><is><t>{v}</t></is></c>')
                else:
                    append(_text_cell(f"{letter}{r}", v, name, long_text, stats))
            elif t is int:
                append(f'<c r="{letter}{r}"><v>{v}</v></c>')
            elif t is float and v - v == 0:  # finite: inf - inf and nan - nan are nan
                append(f'<c r="{letter}{r}"><v>{v!r}</v></c>')
            elif t is Decimal and v.is_finite():
                append(f'<c r="{letter}{r}"><v>{v}</v></c>')
            elif t is date and v in date_serials:
                append(f'<c r="{letter}{r}" s="{parts.STYLE_DATE}"><v>{date_serials[v]}</v></c>')
            elif t is datetime and v.tzinfo is None and v >= _SERIAL_61:
                d = v - EPOCH_1900
                serial = d.days + (d.seconds * 1_000_000 + d.microseconds) / 86_400_000_000
                append(f'<c r="{letter}{r}" s="{parts.STYLE_DATETIME}"><v>{serial!r}</v></c>')
            elif t is bool:
                append(f'<c r="{letter}{r}" t="b"><v>{1 if v else 0}</v></c>')
            else:
                if t is date and date_to_serial(v) >= 1:
                    date_serials[v] = date_to_serial(v)
                append(_other_cell(f"{letter}{r}", v, name, long_text, stats))
        append("</row>")
        if len(out) > _FLUSH_PIECES:
            chunk = "".join(out).encode("utf-8")
            out.clear()
            size += len(chunk)
            yield chunk
            if size > max_part_bytes:
                break
    stats.rows += n - (1 if header else 0)
    tail = ["</sheetData>"]
    ref = f"A1:{letters[-1]}{max(n, 1)}" if header else None
    if ref:
        tail.append(f'<autoFilter ref="{ref}"/>')
    tail.append('<pageMargins left="0.7" right="0.7" top="0.75" bottom="0.75" header="0.3" footer="0.3"/></worksheet>')
    filters.append((name, ref))
    out.extend(tail)
    yield "".join(out).encode("utf-8")


def _other_cell(ref: str, v: Any, sheet: str, long_text: LongText, stats: WriteStats) -> str:
    """Cells of the less common types: dates and times, subclasses, anything else as text."""
    if isinstance(v, datetime):
        serial = datetime_to_serial(v)
        if serial >= 1:
            return f'<c r="{ref}" s="{parts.STYLE_DATETIME}"><v>{serial!r}</v></c>'
        v = v.isoformat(sep=" ")
    elif isinstance(v, date):
        serial = date_to_serial(v)
        if serial >= 1:
            return f'<c r="{ref}" s="{parts.STYLE_DATE}"><v>{serial}</v></c>'
        v = v.isoformat()
    elif isinstance(v, time):
        return f'<c r="{ref}" s="{parts.STYLE_TIME}"><v>{time_to_serial(v)!r}</v></c>'
    elif isinstance(v, timedelta):
        return f'<c r="{ref}" s="{parts.STYLE_DURATION}"><v>{timedelta_to_serial(v)!r}</v></c>'
    elif isinstance(v, bool):
        return f'<c r="{ref}" t="b"><v>{1 if v else 0}</v></c>'
    elif isinstance(v, (int, float, Decimal)):
        if not math.isfinite(v):
            return f'<c r="{ref}" t="e"><v>#NUM!</v></c>'
        number = repr(float(v)) if isinstance(v, float) else str(int(v)) if isinstance(v, int) else str(v)
        return f'<c r="{ref}"><v>{number}</v></c>'
    elif isinstance(v, (bytes, bytearray, memoryview)):
        v = bytes(v).hex()
    return _text_cell(ref, str(v), sheet, long_text, stats)


def _text_cell(ref: str, v: str, sheet: str, long_text: LongText, stats: WriteStats) -> str:
    """A text cell that needs care: escaping, edge whitespace or Excel's length limit."""
    if len(v) > _SHORT_TEXT and excel_length(v) > MAX_CELL_CHARS:
        v = _too_long(v, sheet, ref, long_text, stats)
    return f'<c r="{ref}" t="inlineStr"><is><t{_space(v)}>{escape_text(v)}</t></is></c>'


def _too_long(v: str, sheet: str, ref: str, long_text: LongText, stats: WriteStats) -> str:
    if long_text == "error":
        length = excel_length(v)
        raise CellTooLong(f"cell {sheet}!{ref} has {length} characters; Excel allows at most {MAX_CELL_CHARS}",
                          sheet=sheet, cell=ref, length=length)
    stats.truncated_cells += 1
    return truncate_to_excel(v)


def _space(v: str) -> str:
    return ' xml:space="preserve"' if v and (v[0] in " \t\n\r" or v[-1] in " \t\n\r") else ""


def _column_widths(header: Sequence[str], sample: list[Sequence[Any]]) -> list[float]:
    widths = [len(str(h)) + 3 for h in header]  # room for the autofilter button
    for row in sample:
        for i, v in enumerate(row[: len(widths)]):
            if v is None:
                continue
            shown = 19 if isinstance(v, datetime) else 10 if isinstance(v, date) else len(str(v))
            if shown + 1 > widths[i]:
                widths[i] = shown + 1
    return [float(min(max(w, 8), 60)) for w in widths]


def _sheet_title(base: str, number: int) -> str:
    """A legal, unique sheet name: no ``[]:*?/\\``, at most 31 characters, ``name (2)`` for continuations."""
    clean = "".join("_" if c in "[]:*?/\\" else c for c in base).strip("'") or "Sheet"
    suffix = "" if number == 1 else f" ({number})"
    return clean[: 31 - len(suffix)] + suffix
