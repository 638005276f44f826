"""Python values <-> the text of spreadsheet cells: escaping, serial dates, limits.

Shared by the writer and the reader so that both sides agree on one encoding.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone

#: Excel's limit on the characters (UTF-16 code units) of one cell.
MAX_CELL_CHARS = 32_767
#: Excel's limit on rows in one sheet, the header included.
MAX_SHEET_ROWS = 1_048_576
#: Excel's limit on columns in one sheet.
MAX_SHEET_COLUMNS = 16_384

#: Day 0 of Excel's 1900 date system (serial 1 is 1900-01-01; Excel counts a 1900-02-29 that never was).
EPOCH_1900 = datetime(1899, 12, 30)
EPOCH_1904 = datetime(1904, 1, 1)
_EPOCH_1900_ORDINAL = EPOCH_1900.toordinal()

# Characters XML 1.0 cannot carry, plus a literal "_xHHHH_" that a reader would take for an escape.
_NEEDS_ESCAPE = re.compile(r"[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)")
_ESCAPED = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _escape_char(match: re.Match[str]) -> str:
    return f"_x{ord(match.group()):04X}_"


def escape_text(text: str) -> str:
    """Escape ``text`` for an XML text node in a worksheet.

    ``&``, ``<`` and ``>`` become entities; characters XML 1.0 forbids become Excel's ``_xHHHH_``;
    an ``_`` that starts a literal ``_xHHHH_`` becomes ``_x005F_`` so the text reads back unchanged.
    """
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if _NEEDS_ESCAPE.search(text):
        text = _NEEDS_ESCAPE.sub(_escape_char, text)
    return text


def unescape_text(text: str) -> str:
    """Undo Excel's ``_xHHHH_`` escapes (entities are the XML parser's job)."""
    if "_x" not in text:
        return text
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), text)


def excel_length(text: str) -> int:
    """Length as Excel counts it: UTF-16 code units."""
    if len(text) <= MAX_CELL_CHARS // 2:
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def truncate_to_excel(text: str) -> str:
    """Cut ``text`` to Excel's cell limit without splitting a surrogate pair."""
    units = text.encode("utf-16-le")[: MAX_CELL_CHARS * 2]
    return units.decode("utf-16-le", errors="ignore")


def date_to_serial(value: date) -> int:
    """Days since 1899-12-30, counted as Excel does (it believes 1900-02-29 existed).

    Below 1 the date has no serial in Excel; the writer stores such dates as ISO text.
    """
    serial = value.toordinal() - _EPOCH_1900_ORDINAL
    return serial - 1 if serial < 61 else serial


def datetime_to_serial(value: datetime) -> float:
    """Days since 1899-12-30 (Excel's 1900 system). Aware values are converted to UTC first."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    delta = value - EPOCH_1900
    days = delta.days - 1 if delta.days < 61 else delta.days
    return days + (delta.seconds * 1_000_000 + delta.microseconds) / 86_400_000_000


def time_to_serial(value: time) -> float:
    return (value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6) / 86_400


def timedelta_to_serial(value: timedelta) -> float:
    return value / timedelta(days=1)


def serial_to_datetime(serial: float, date1904: bool = False) -> datetime:
    """Excel serial (days) back to a naive datetime, rounded to the millisecond as Excel stores it."""
    epoch = EPOCH_1904 if date1904 else EPOCH_1900
    if not date1904 and serial < 60:
        # Excel's phantom 1900-02-29: serials below 60 are one day off.
        serial += 1
    ms = round(serial * 86_400_000)
    return epoch + timedelta(milliseconds=ms)


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def column_index(letters: str) -> int:
    """A -> 0, AA -> 26 (inverse of :func:`column_letter`)."""
    index = 0
    for ch in letters:
        index = index * 26 + (ord(ch) - 64)
    return index - 1
