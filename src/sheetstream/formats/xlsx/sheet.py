"""A worksheet's rows: each block of rows (from the tokenizer) read into values typed by cell type and style,
by the compiled scanner where it is built and by the Python loop here for whatever it leaves (same values)."""

from __future__ import annotations

import functools
import re
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from .cells import (
    EPOCH_1900,
    EPOCH_1904,
    MAX_SHEET_COLUMNS,
    MAX_SHEET_ROWS,
    column_index,
    column_letter,
    serial_to_datetime,
)
from .errors import BadCell
from .tokens import _ROW_R, _XML_SPACE, _CellProblem, _decode, _rich_text

if TYPE_CHECKING:
    from .reader import Workbook

try:  # the compiled cell scanner (_cells.c); optional: without it, rows are read in Python
    from ._cells import rows as _scan_rows
    from ._cells import scan as _scan
except ImportError:  # pragma: no cover
    _scan = _scan_rows = None


@dataclass(frozen=True)
class CellError:
    """An error value in a cell, such as ``#N/A`` or ``#DIV/0!``."""

    code: str

    def __str__(self) -> str:
        return self.code


# Worksheet tokens, written for namespace-free XML: a part that uses prefixes (``<x:worksheet>``, ``<s:row>``)
# is rewritten without them block by block first (one C-level substitution).
# A cell: column letters, style, type, the style again (for r-t-s order), other attributes, then its content:
# a plain <v>, a plain inline <is><t>, or anything else (rich text, formulas, attributes on <v>) for the careful path.
# No pattern may scan past where its element must end (the next "<" of a text, the next <c of a cell): with lazy
# ".*?" a run of unclosed cells took quadratic time (55 s for 200 kB), so the careful path stops at the next cell.
_CELL = re.compile(
    rb'<c\b(?: r="([A-Z]+)\d*")?(?: s="(\d+)")?(?: t="(\w+)")?(?: s="(\d+)")?([^<>]*?)'
    rb"(?:/>|>(?:<v>([^<]*)</v>|<is><t>([^<]*)</t></is>|((?:[^<]++|<(?!c[\s>/]))*?))</c>)",
)
_ATTR = re.compile(rb"""\s([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_VALUE = re.compile(rb"<v(?:\s[^<>]*)?>([^<]*)</v>")


def _shared(book: Workbook, raw: bytes) -> str:
    strings = book.shared_strings()
    try:
        index = int(raw)
    except ValueError:
        index = -1
    if not 0 <= index < len(strings):
        raise _CellProblem(f"it points to shared string {raw.decode('utf-8', 'replace')!r}, which does not exist")
    return strings[index]


def _iso(raw: bytes) -> datetime | time:
    """A ``t="d"`` value: an ISO 8601 date, date and time, or time alone (``T10:30:00`` or ``10:30:00``)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        if text[-1:] in ("Z", "z"):
            text = text[:-1]
        if text[:1] in ("T", "t"):
            return time.fromisoformat(text[1:])
        if "-" not in text:
            return time.fromisoformat(text)
        return datetime.fromisoformat(text)
    except ValueError:
        raise _CellProblem(f"its value {text[:40]!r} is not an ISO 8601 date or time") from None


def _serial(book: Workbook, style: int, raw: bytes) -> datetime | time | timedelta:
    """A number in a date, time or duration style: a datetime, a time of day, or a timedelta."""
    try:
        serial = float(raw)
    except ValueError:
        raise _CellProblem(f"its value {raw.decode('utf-8', 'replace')[:40]!r} is not a number") from None
    try:
        kind = book.clock_styles.get(style)
        if kind is None:
            return serial_to_datetime(serial, book.date1904)
        if kind == "duration":
            return timedelta(milliseconds=round(serial * 86_400_000))
        ms = round((serial % 1) * 86_400_000) % 86_400_000
        return time(ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60, ms % 1000 * 1000)
    except (OverflowError, ValueError):
        raise _CellProblem(f"its value {raw.decode('utf-8', 'replace')[:40]} is not a date or time Excel can show "
                           "(its dates run from 1900-01-01 to 9999-12-31)") from None


def _typed(book: Workbook, kind: bytes, raw: bytes, style: bytes) -> Any:
    """The value of a ``<v>`` by the cell's type attribute."""
    if kind == b"s":
        return _shared(book, raw)
    if kind == b"n":
        if style and int(style) in book.date_styles:
            return _serial(book, int(style), raw)
        try:
            return int(raw) if raw.isdigit() else float(raw)
        except ValueError:
            raise _CellProblem(f"its value {raw.decode('utf-8', 'replace')[:40]!r} is not a number") from None
    if kind == b"b":
        return raw.strip() in (b"1", b"true")
    if kind == b"e":
        return CellError(_decode(raw))
    if kind == b"d":
        return _iso(raw)
    return _decode(raw)  # str (a formula's text result), or an unknown type read as text


def _complex_cell(book: Workbook, kind: bytes, content: bytes, style: bytes) -> Any:
    """Rich inline text, formulas with cached results, values with odd whitespace: None when there is no value."""
    if kind == b"inlineStr":
        return _rich_text(content)
    found = _VALUE.search(content)
    if found is None or not found.group(1):
        return None  # a formula without a cached result, or an empty value
    return _typed(book, kind or b"n", found.group(1), style)


def _attributes(rest: bytes) -> dict[bytes, bytes]:
    """A cell's attributes in any order, with either quote; an empty one (``s=""``) is as if it were not there."""
    return {name: double or single for name, double, single in _ATTR.findall(rest) if double or single}


def _column(letters: bytes, row: int) -> int:
    """The index of column ``letters`` (A = 0), checked against Excel's 16,384 columns (XFD)."""
    if letters.isalpha() and letters.isupper():
        if len(letters) <= 3 and (index := column_index(letters.decode())) < MAX_SHEET_COLUMNS:
            return index
        problem = "is past the last column Excel allows (XFD, column 16,384)"
    else:
        problem = "is not a cell reference"
    ref = f"{letters.decode('utf-8', 'replace')[:20]}{row}"
    raise BadCell(f"cell {ref} {problem}", cell=ref)


def _row_number(head: bytes, previous: int) -> int:
    """The ``r`` of a ``<row>`` written unusually (other quotes, other spacing); the next row when it has none."""
    found = _ROW_R.search(head)
    if found is None:
        return previous + 1
    return int(found.group(1) if found.group(1) is not None else found.group(2))


def _bad_row(head: bytes) -> BadCell:
    found = _ROW_R.search(head)
    number = (found.group(1) if found.group(1) is not None else found.group(2)) if found else b"?"
    return BadCell(f"row {number.decode('utf-8', 'replace')[:30]} is not a row number Excel allows (1 to 1,048,576)",
                   row=number.decode("utf-8", "replace")[:30])


def _unended_row(previous: int) -> BadCell:
    return BadCell(f"the row after row {previous} has a tag that does not end (no \">\" before the next \"<\"): "
                   "the sheet's XML is damaged", row=previous + 1)


def _bad_cell(exc: Exception, col: int, row: int, raw: bytes) -> BadCell:
    ref = f"{column_letter(col)}{row}" if 0 <= col < MAX_SHEET_COLUMNS else None
    if isinstance(exc, _CellProblem):
        problem = str(exc)
    elif isinstance(exc, UnicodeDecodeError):
        problem = "its text is not valid UTF-8"
    elif isinstance(exc, OverflowError):
        problem = (f"its value {raw.decode('utf-8', 'replace')[:40]} is not a date or time Excel can show (its dates "
                   "run from 1900-01-01 to 9999-12-31)")
    else:
        problem = f"its value {raw.decode('utf-8', 'replace')[:40]!r} is not a number"
    return BadCell(f"cell {ref}: {problem}" if ref else f"a cell in row {row}: {problem}", cell=ref)


#: A row head that numbers itself, or an empty row: where counting ``<row`` tags does not give the last number.
#: Neither pattern here may pass a "<": a row head cannot hold one, and with ``[^>]`` a run of ``<row`` without ">"
#: made each search rescan the rest of the block (a 1 MB block of them took 245 s).
_NUMBERED_ROW = re.compile(rb"<row\b[^<>]*?(?:\sr\s*=|/>)")


def last_row(block: bytes, previous: int) -> int:
    """The number of the last row of ``block`` (as :func:`_block_rows` would number it) without reading its cells:
    a count of rows where none numbers itself (our own files), the last row's own number where it has one
    (Excel's), and otherwise row by row."""
    if _NUMBERED_ROW.search(block) is None:
        return previous + block.count(b"<row")
    start = block.rfind(b"<row")
    head = block[start:block.find(b">", start)]
    at = head.find(b' r="')
    if at >= 0:
        try:
            return int(head[at + 4:head.index(b'"', at + 4)])
        except ValueError:
            return previous  # a bad number: reading the block will say so
    try:
        return _numbered(block, previous)
    except BadCell:
        return previous


#: A row head, up to its ">" (group 1) or to the "<" that shows it does not end (no group 1): refused.
_ROW_HEAD = re.compile(rb"<row\b[^<>]*(>)?")


def _numbered(xml: bytes, previous: int) -> int:
    """The number of the last of the row heads in ``xml``, each numbered by its ``r`` or as the one before + 1."""
    for found in _ROW_HEAD.finditer(xml):
        head = found.group()
        if found.group(1) is None:
            raise _unended_row(previous)
        at = head.find(b' r="')
        try:
            previous = int(head[at + 4:head.index(b'"', at + 4)]) if at >= 0 else _row_number(head, previous)
        except ValueError:
            raise _bad_row(head) from None
        if not 0 < previous <= MAX_SHEET_ROWS:
            raise _bad_row(head)
    return previous


def _block_rows(book: Workbook, block: bytes, row_number: int) -> Generator[tuple[int, list[Any]], None, int]:
    """The hot loop of the import: the rows of one block of a worksheet, typed by cell type and style; returns
    the last row's number. Where the compiled scanner is built, it reads the rows (``rows``) up to a row head it
    leaves to the loop here, and each row's cells (``scan``); :func:`_row_values` reads the rows whose cells it
    leaves to Python, and every row where it is not built (same values)."""
    scan = _scan
    context = _scan_context(book) if scan is not None else None
    if context is not None and _scan_rows is not None:  # the rows in C, up to a row head left to the loop below
        found, row_number, rest = _scan_rows(block, row_number, context, functools.partial(_row_values, book))
        yield from found
        if rest == len(block):
            return row_number
        block = block[rest:]
    for piece in block.split(b"</row>"):
        start = piece.rfind(b"<row")
        if start < 0:
            continue
        if piece.find(b"<row", 0, start) >= 0:  # empty rows (<row .../>) before this one: they count too
            row_number = _numbered(piece[:start], row_number)
        head_end = piece.find(b">", start)
        if head_end < 0 or piece.find(b"<", start + 1, head_end) >= 0:
            raise _unended_row(row_number)
        head = piece[start:head_end]
        at = head.find(b' r="')
        try:
            row_number = (int(head[at + 4:head.index(b'"', at + 4)]) if at >= 0
                          else _row_number(head, row_number))
        except ValueError:
            raise _bad_row(head) from None
        if not 0 < row_number <= MAX_SHEET_ROWS:
            raise _bad_row(head)
        if head.endswith(b"/"):
            continue  # <row .../> at the end of the part: an empty row
        values = scan(piece, head_end + 1, context) if scan is not None else None
        if values is None:
            values = _row_values(book, piece, head_end, row_number)
        if values:
            yield row_number, values
    return row_number


def _scan_context(book: Workbook) -> tuple:
    """What the compiled scanner needs of the workbook (see _cells.c): the shared strings, a byte per style index
    (1 a date style, 2 a time or duration style, else 0), the epoch's ordinal, the date system, and the Python
    functions it leaves the rare dates and texts to."""
    kinds = bytearray(max(book.date_styles, default=-1) + 1)
    for style in book.date_styles:
        kinds[style] = 2 if style in book.clock_styles else 1
    epoch = (EPOCH_1904 if book.date1904 else EPOCH_1900).toordinal()
    strings = book.shared_strings()
    return ((memoryview(strings.data), memoryview(strings.ends), strings.cache, memoryview(strings.cached)),
            bytes(kinds), epoch, book.date1904,
            functools.partial(_date_cell, book), _decode)


def _date_cell(book: Workbook, v: bytes, style: int) -> Any:
    """A number in date style ``style``: a time of day or a duration, or a datetime (whole days are kept)."""
    if style in book.clock_styles:
        return _serial(book, style, v)
    value = book.days.get(v)  # whole-day serials repeat: convert each once
    if value is None:
        value = serial_to_datetime(float(v), book.date1904)
        if v.isdigit() and len(book.days) < 100_000:
            book.days[v] = value
    return value


def _row_values(book: Workbook, piece: bytes, head_end: int, row_number: int) -> list[Any]:
    """A row's values by column, from its XML after the row head: every form of cell, each problem at its cell."""
    columns = book.letters
    date_styles = book.date_styles
    col = -1
    v = b""
    values: list[Any] = []
    try:
        for letters, style, kind, style2, rest, v, text, other in _CELL.findall(piece, head_end):
            if rest and b"=" in rest:  # attributes in an unusual order, quoting or spacing
                attrs = _attributes(rest)
                letters = letters or attrs.get(b"r", b"").rstrip(b"0123456789")
                style = style or attrs.get(b"s", b"")
                kind = kind or attrs.get(b"t", b"")
                odd_style = style and not style.isdigit()
            else:
                odd_style = False
            if letters:
                col = columns.get(letters)
                if col is None:
                    col = columns[letters] = _column(letters, row_number)
            else:
                col += 1
                if col >= MAX_SHEET_COLUMNS:
                    raise BadCell(f"row {row_number} has a cell past the last column Excel allows (XFD, "
                                  "column 16,384)", row=row_number)
            if odd_style:  # said once the cell's column is known, so that the problem names the cell
                raise _CellProblem(f"its style {style.decode('utf-8', 'replace')[:20]!r} is not a number")
            if other:
                value = _complex_cell(book, kind, other, style or style2)
                if value is None:
                    continue
            elif v:
                if not kind:
                    style = style or style2
                    if style and (s := int(style)) in date_styles:
                        value = _date_cell(book, v, s)
                    else:
                        value = int(v) if v.isdigit() else float(v)
                else:
                    value = _typed(book, kind, v, style or style2)
            elif kind == b"inlineStr":
                value = (_decode(text, trim=True) if b"&" in text or b"_x" in text or len(text) > 32_767
                         else text.decode().strip(_XML_SPACE))  # a <t> without xml:space: trimmed
            else:
                continue  # an empty cell (style only)
            if col == len(values):
                values.append(value)
            else:
                if col > len(values):
                    values.extend([None] * (col - len(values)))
                    values.append(value)
                else:
                    values[col] = value
    except (ValueError, OverflowError) as exc:  # _CellProblem, or a value the fast path could not convert
        raise _bad_cell(exc, col, row_number, v) from None
    return values
