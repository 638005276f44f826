"""Rows in, CSV byte chunks out (RFC 4180, UTF-8, ``\\r\\n``): a generator that never holds more than a chunk.

The quoting is the stdlib ``csv`` writer's (C): a field is quoted only when it holds the delimiter, ``"``, CR or
LF (``"`` doubled); leading and trailing spaces are kept unquoted. What this module adds is the text form of each
value, chosen to read back exactly and to be what a spreadsheet app and PostgreSQL's ``COPY`` read:

========================  ====================================================================================
None, ``""``              an empty field (CSV has no NULL: both read back as None)
str                       as it is, with a ``'`` before a formula-like text (see :mod:`.injection`) unless
                          ``neutralise=False``; NUL (which no text file holds) and U+FEFF (a byte order mark, which
                          readers refuse past the start) are written as U+FFFD and U+2060 (word joiner, the same
                          zero-width no-break meaning), lone surrogates as U+FFFD
bool                      ``true`` / ``false``
int                       decimal digits
float                     the shortest text that reads back as the same float (``repr``): ``0.1``, ``1e+300``;
                          not-a-number and infinities as ``nan``, ``inf``, ``-inf`` (which PostgreSQL, Python and
                          spreadsheets read)
Decimal                   exact, never in exponent notation (``1E+3`` is written ``1000``)
date, time                ISO 8601: ``2024-03-01``, ``13:45:00`` (``.ffffff`` and ``+HH:MM`` when present)
datetime                  ``2024-03-01 13:45:00`` (ISO 8601 with a space, as spreadsheets and PostgreSQL write it)
timedelta                 hours, minutes, seconds: ``26:03:04`` (``[-]H:MM:SS[.ffffff]``, the spreadsheet duration)
bytes                     ``\\x`` and hex digits (PostgreSQL's bytea form)
anything else             ``str(value)``, as text
========================  ====================================================================================
"""

from __future__ import annotations

import codecs
import csv
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from .injection import STARTS
from .injection import neutralise as _neutralise

try:  # the compiled writer (setup.py builds it where a C compiler is); this module's loop is its reference
    from . import _fast
except ImportError:  # pragma: no cover - the Python loop below gives the same bytes
    _fast = None  # type: ignore[assignment]

DELIMITERS = (",", ";", "\t")
BOM = codecs.BOM_UTF8

# Types the C writer already writes in the form above (str() for int, date, datetime, time; repr() for float;
# "" for None): their values pass through untouched. (bool is not among them: str(True) is "True".)
_AS_IS = frozenset({int, float, type(None), date, datetime, time})
_MAX_SHAPES = 1024  # row shapes (tuples of types) given a compiled converter; past it rows take the general path
_FIRST_ROWS = 64  # rows in the first chunk after the header (the first bytes leave early), then sized by bytes


def write_csv(rows: Iterable[Sequence[Any]], header: Sequence[str], *, delimiter: str = ",", bom: bool = False,
              neutralise: bool = True, chunk_size: int = 65_536, compiled: bool = True) -> Iterator[bytes]:
    """The CSV bytes of ``header`` and ``rows``, in chunks of about ``chunk_size`` bytes (the header, with the BOM
    when ``bom=True``, is a chunk of its own so that the first bytes leave at once). No row limit.

    The rows are written by the compiled writer where it is built (``compiled=False``: by the Python loop, its
    reference; the two give the same bytes)."""
    if delimiter not in DELIMITERS:
        raise ValueError(f"delimiter must be one of {DELIMITERS!r}, not {delimiter!r}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    chunks = _compiled_chunks if compiled and _fast is not None else _chunks
    return chunks(iter(rows), list(header), delimiter, bom, neutralise, chunk_size)


def _compiled_chunks(rows: Iterator[Sequence[Any]], header: list[str], delimiter: str, bom: bool, neutralise: bool,
                     chunk_size: int) -> Iterator[bytes]:
    """As :func:`_chunks`, the rows written by ``_fast.write``: the first chunk is _FIRST_ROWS rows (the first
    bytes leave early), the others about chunk_size bytes. 5-8x the Python loop's rows per second."""
    lines: list[str] = []
    out = csv.writer(_Sink(lines.append), delimiter=delimiter, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    out.writerow([(_neutralise if neutralise else str)(name) for name in header])
    yield (BOM if bom else b"") + _encoded(lines)
    fallback, batch = _value_function(neutralise), _FIRST_ROWS
    while data := _fast.write(rows, delimiter, neutralise, fallback, batch, chunk_size):
        yield data
        batch = 1 << 62


def _chunks(rows: Iterator[Sequence[Any]], header: list[str], delimiter: str, bom: bool, neutralise: bool,
            chunk_size: int) -> Iterator[bytes]:
    lines: list[str] = []
    sink = _Sink(lines.append)
    out = csv.writer(sink, delimiter=delimiter, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    text_of = _neutralise if neutralise else str
    out.writerow([text_of(name) for name in header])
    yield (BOM if bom else b"") + _encoded(lines)
    converted = _converted(rows, neutralise)
    batch = _FIRST_ROWS
    while True:
        out.writerows(itertools.islice(converted, batch))
        if not lines:
            return
        data = _encoded(lines)
        yield data
        # Aim the next batch at chunk_size bytes, changing by at most 4x at a time (rows vary in width).
        batch = max(1, min(batch * 4, batch * chunk_size // max(len(data), 1)))


class _Sink:
    """The file the C writer writes to: each line goes into a list (``write`` is the list's ``append``)."""

    __slots__ = ("write",)

    def __init__(self, write: Callable[[str], Any]):
        self.write = write


def _encoded(lines: list[str]) -> bytes:
    text = "".join(lines)
    lines.clear()
    if "\x00" in text or "\ufeff" in text:  # one scan of the chunk, not of every value
        text = text.replace("\x00", "\ufffd").replace("\ufeff", "\u2060")
    return text.encode("utf-8", "sheetstream.csv.replace")


def _replace(error: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    # As bytes: the UTF-8 encoder takes only ASCII replacements as str.
    return "\ufffd".encode() * (error.end - error.start), error.end


codecs.register_error("sheetstream.csv.replace", _replace)


def _converted(rows: Iterator[Sequence[Any]], neutralise: bool) -> Iterator[Sequence[Any]]:
    """Each row with its values in their text forms (or left to the C writer where its form is ours).

    Rows from a table have few shapes (the tuple of their values' types: NULLs make a few per table), so each
    shape gets a converter compiled for it once, which touches only the values that need it: 2-3x faster than
    a type test per value in Python."""
    compiled: dict[tuple[type, ...], Callable[[Sequence[Any]], Sequence[Any]] | None] = {}
    general = _row_converter(neutralise)
    for row in rows:
        shape = tuple(map(type, row))
        try:
            convert = compiled[shape]
        except KeyError:
            convert = compiled[shape] = _compile(shape, neutralise) if len(compiled) < _MAX_SHAPES else general
        yield row if convert is None else convert(row)


def _compile(shape: tuple[type, ...], neutralise: bool) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
    """A function that converts a row of this shape, or None when the row can be written as it is."""
    parts, changed = [], False
    for i, kind in enumerate(shape):
        value = f"r[{i}]"
        if kind in _AS_IS or (kind is str and not neutralise):
            parts.append(value)
            continue
        changed = True
        if kind is str:
            parts.append(f"(n({value}) if {value}.startswith(S) else {value})")
        elif kind is bool:
            parts.append(f"('true' if {value} else 'false')")
        elif kind is Decimal:
            # str() is 4x faster than format(); it is exact and without exponent for all but very large or
            # very small exponents, which take format()
            parts.append(f"(t if 'E' not in (t := str({value})) else f({value}, 'f'))")
        else:
            parts.append(f"g({value})")
    if not changed:
        return None
    names = {"n": _neutralise, "S": STARTS, "f": format, "g": _value_function(neutralise)}
    return eval(f"lambda r: ({', '.join(parts)},)", names)  # noqa: S307 - built from the fixed pieces above


def _row_converter(neutralise: bool) -> Callable[[Sequence[Any]], Sequence[Any]]:
    value = _value_function(neutralise)
    return lambda row: [value(v) for v in row]


def _value_function(neutralise: bool) -> Callable[[Any], Any]:
    text_of = _neutralise if neutralise else str
    return lambda v: text_of(v) if type(v) is str else _text(v, text_of)


def _text(value: Any, text_of: Callable[[str], str]) -> Any:
    """The value's form (see the module), for any type; None and numbers as the C writer takes them."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int(value)  # an IntEnum's str() is its name
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (date, time)):  # datetime is a date
        return str(value)
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    return text_of(str(value))


def duration(value: timedelta) -> str:
    """``[-]H:MM:SS[.ffffff]``, the hours not wrapped at 24: ``timedelta(days=1, hours=2)`` is ``26:00:00``."""
    micro = value // timedelta(microseconds=1)
    sign = "-" if micro < 0 else ""
    seconds, micro = divmod(abs(micro), 1_000_000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}:{minutes:02}:{seconds:02}" + (f".{micro:06}" if micro else "")
