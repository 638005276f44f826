"""CSV file in, records out: the stdlib parser (C) fed lines that are cut, decoded and bounded here.

The file is read in chunks and cut into lines here, never with an unbounded ``readline()``, so that a record
longer than :attr:`CsvLimits.max_line_bytes` (a 1 GB line, or a quote that is never closed and swallows the
rest of the file) is refused at its line once it passes the bound, holding no more than the bound and a chunk.
Each line is decoded on its own: a line with bytes its encoding cannot decode keeps them escaped, and the fields
that hold them become :class:`~sheetstream.formats.values.Unreadable` values (the rest of the record reads).

Lines end at CRLF, LF or a lone CR (old Mac files), as the stdlib reads a file opened with ``newline=""``.
Records are numbered as a spreadsheet numbers rows: the first record (the header) is 1, and a newline inside a
quoted field does not start a new one. Errors name that number as ``line``, and the line of the file too
where newlines inside quotes make the two differ. Quoting is RFC 4180's, strictly: a quoted field that goes on
after its closing quote (``"a"b``), or is never closed, is refused at its line (the stdlib's ``strict=True``);
a quote inside an unquoted field (``5" tall``) is data, as in Excel.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..values import Unreadable
from . import dialect
from . import encoding as encodings
from .errors import CsvError, CsvTooLarge
from .injection import restore

try:  # the compiled record reader (setup.py builds it where a C compiler is); this module's loop is its reference
    from . import _fast
except ImportError:  # pragma: no cover - the Python loop gives the same records
    _fast = None  # type: ignore[assignment]

_CHUNK = 64 << 10
_BOM = b"\xef\xbb\xbf"  # the UTF-8 byte order mark (files in other encodings are read as UTF-8 by now)
_DIRTY, _QUOTED = 1, 2  # what a record's lines held: undecodable bytes; a ' (the neutralising mark?)


@dataclass(frozen=True)
class CsvLimits:
    """Bounds on what a CSV file may hold; each is refused with a :class:`CsvError` naming its line."""

    max_line_bytes: int = 1 << 20  # one record's bytes (quoted newlines included), as UTF-8
    max_fields: int = 16_384  # Excel's column limit
    max_bytes: int | None = None  # the whole file


def open_csv(path: str | Path, *, encoding: str | None = None, delimiter: str | None = None,
             sheet_name: str = "Sheet1", limits: CsvLimits = CsvLimits()) -> CsvBook:
    """Open a CSV file for reading: its encoding is told from its byte order mark (UTF-8 when it has none) or
    given (``encoding="cp1252"``), its delimiter sniffed among ``,`` ``;`` tab ``|`` (see :mod:`.dialect`) or
    given. Raises :class:`CsvError` for a file that is not text, or over ``limits.max_bytes``."""
    if delimiter is not None and (len(delimiter) != 1 or delimiter in "\"\r\n'"):
        raise CsvError(f"the delimiter must be one character other than a quote or a line break, not {delimiter!r}")
    file = open(path, "rb")  # noqa: SIM115 - closed by CsvBook.close()
    try:
        size = os.fstat(file.fileno()).st_size
        if limits.max_bytes is not None and size > limits.max_bytes:
            raise CsvTooLarge(f"the file is {size:,} bytes, over the limit of {limits.max_bytes:,}", bytes=size)
        head = file.read(dialect.SAMPLE_BYTES)
        name, skip = encodings.choose(head, encoding)
        decoder = encodings.codec(name, head)
        sample = codecs.getincrementaldecoder(decoder)(encodings.ESCAPE).decode(head[skip:])
        if delimiter is None:
            delimiter = dialect.sniff(sample, complete=len(head) < dialect.SAMPLE_BYTES)
        return CsvBook(file, skip, name, decoder, delimiter, sheet_name, limits)
    except BaseException:
        file.close()
        raise


class CsvBook:
    """An open CSV file, read as a workbook of one sheet (the interface of ``formats.xlsx.Workbook``)."""

    #: Rows must have exactly the header's width: a short or long record is a problem at its line (a spreadsheet
    #: row has no width of its own, a CSV record does).
    exact_width = True

    def __init__(self, file: IO[bytes], skip: int, encoding: str, decoder: str, delimiter: str, sheet_name: str,
                 limits: CsvLimits):
        self._file, self._skip, self._decoder, self.limits = file, skip, decoder, limits
        self.encoding, self.delimiter = encoding, delimiter
        self.sheet_names = [sheet_name]
        # The parser's own bound on a field (131,072 characters by default, process-wide) is raised to ours,
        # which counts bytes (never fewer than characters), so that it never refuses what ours lets through.
        if csv.field_size_limit() < limits.max_line_bytes:
            csv.field_size_limit(limits.max_line_bytes)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CsvBook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self, sheet: str | None = None, *, compiled: bool = True) -> Iterator[tuple[int, list[Any]]]:
        """(record number, values) per record, the header's record being 1 (so row N is what a spreadsheet shows
        as row N; a quoted newline does not start a new row). Values: str, None for an empty field, or
        :class:`Unreadable` for a field with bytes the encoding cannot decode. A ``'`` that the writer put before
        a formula-like text is taken off (see :mod:`.injection`). Records that are entirely empty (a blank line,
        or only delimiters) are skipped like empty spreadsheet rows, and keep their numbers.

        The records are read by the compiled reader where it is built and the delimiter is ASCII (``compiled=False``:
        by the Python loop, its reference; the two give the same records and errors)."""
        if sheet is not None and sheet not in self.sheet_names:
            raise CsvError(f"there is no sheet {sheet!r}; a CSV file has one: {self.sheet_names[0]!r}",
                           sheets=self.sheet_names)
        if compiled and _fast is not None and self.delimiter.isascii():
            return self._compiled_rows()
        return self._rows()

    def _compiled_rows(self) -> Iterator[tuple[int, list[Any]]]:
        """The records as ``_fast.Reader`` reads them, chunk by chunk, until it meets anything it leaves to the
        Python loop (a bound passed, a NUL, bytes that are not UTF-8, a quote out of place: see ``_fast.c``); then
        the Python loop reads the file from its start, skipping the records already given, and goes on (or says
        what is wrong where). 4-6x the rows per second of the Python loop on typical files."""
        reader = _fast.Reader(self.delimiter, self.limits.max_fields, self.limits.max_line_bytes)
        try:
            for chunk in self._utf8_chunks():
                records = reader.feed(chunk, False)
                if records is None:
                    break
                yield from records
            else:
                records = reader.feed(b"", True)
                if records is not None:
                    yield from records
                    return
        except CsvError:
            pass  # over max_bytes: the Python loop raises it again, after the same records
        done = reader.number
        for number, values in self._rows():
            if number > done:
                yield number, values

    def _rows(self) -> Iterator[tuple[int, list[Any]]]:
        state = _State()
        reader = csv.reader(self._lines(state), delimiter=self.delimiter, strict=True)
        max_fields, number = self.limits.max_fields, 0
        try:
            for fields in reader:
                number += 1
                if len(fields) > max_fields:
                    raise CsvTooLarge(_at(number, reader.line_num, f"{len(fields):,} fields, over the limit of "
                                                                   f"{max_fields:,} columns"), line=number)
                if any(fields):
                    if state.flags:
                        yield number, self._values(fields, state.flags, number)
                        state.flags = 0
                    elif "" in fields:  # a scan in C: most records have no empty field and are yielded as they are
                        yield number, [field or None for field in fields]
                    else:
                        yield number, fields
                state.done = reader.line_num
        except csv.Error as error:
            raise CsvError(_at(number + 1, reader.line_num, _parse_error(str(error), self.delimiter)),
                           line=number + 1) from None
        except _Refused as refused:
            raise refused.error(number + 1) from None

    def _values(self, fields: list[str], flags: int, number: int) -> list[Any]:
        if flags == _QUOTED:  # the common case: a field may begin with the neutralising mark
            return [(restore(field) if field[0] == "'" else field) if field else None for field in fields]
        values: list[Any] = []
        for column, field in enumerate(fields, 1):
            if not field:
                values.append(None)
            elif flags & _DIRTY and encodings.ESCAPED.search(field):
                values.append(Unreadable(encodings.unreadable_message(field, self.encoding, number, column)))
            else:
                values.append(restore(field) if field[0] == "'" else field)
        return values

    def _lines(self, state: _State) -> Iterator[str]:
        """The file's lines as text (line ends kept, for the parser), checked against the bounds as they pass.

        Lines end at LF, CRLF or a lone CR (as the stdlib reads a file opened with ``newline=""``). A block of
        lines (a chunk, cut after its last line end) that cannot hold a problem, because it decodes, holds no NUL,
        no byte order mark and no field that begins with ``'``, and cannot take the record in progress past the
        bound, goes to the parser without a look at each line: 2x faster on typical files. The others are looked
        at line by line. The record in progress begins after line ``state.done`` (set by the record loop), at
        byte ``start``."""
        limit, physical, consumed, start, known = self.limits.max_line_bytes, 0, 0, 0, 0
        block_line, block_offset, lines = 0, 0, []  # the previous block: its first line, first byte, lines
        starts = _field_starts(self.delimiter)
        carry = b""
        for chunk in self._utf8_chunks():
            if carry:
                chunk = carry + chunk
            cut = _last_line_end(chunk) + 1
            if state.done != known:  # records ended in the previous block: where does the one in progress begin?
                known = state.done
                start = block_offset + sum(map(len, lines[:known - block_line]))
            if not cut:
                carry = chunk
                if consumed + len(carry) - start > limit:
                    raise _Refused(_TOO_LONG, physical + 1, limit)
                continue
            block, carry = (chunk[:cut], chunk[cut:]) if cut < len(chunk) else (chunk, b"")
            lines, block_line, block_offset = block.splitlines(True), physical, consumed
            check = b"\x00" in block or _BOM in block
            quoted = b"'" in block
            if not check and consumed + len(block) - start <= limit:
                try:
                    text = [line.decode("utf-8") for line in lines]
                except UnicodeDecodeError:
                    pass
                else:
                    physical += len(lines)
                    consumed += len(block)
                    done = 0
                    for marked in _marked_lines(block, lines, starts) if quoted else ():
                        yield from text[done:marked]
                        state.flags |= _QUOTED  # before the parser reads the line: its record is looked at
                        yield text[marked]
                        done = marked + 1
                    yield from text[done:] if done else text
                    continue
            for raw in lines:
                if state.done != known:
                    known, start = state.done, consumed
                physical += 1
                consumed += len(raw)
                if consumed - start > limit:
                    raise _Refused(_TOO_LONG, physical, limit)
                if check:
                    _check(raw, physical)
                if quoted and b"'" in raw:
                    state.flags |= _QUOTED
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    state.flags |= _DIRTY
                    yield raw.decode("utf-8", "surrogateescape")
        if carry:  # the last line, without a line end
            if state.done != known:
                known = state.done
                start = block_offset + sum(map(len, lines[:known - block_line]))
            if consumed + len(carry) - start > limit:
                raise _Refused(_TOO_LONG, physical + 1, limit)
            _check(carry, physical + 1)
            state.flags |= _QUOTED if b"'" in carry else 0
            try:
                yield carry.decode("utf-8")
            except UnicodeDecodeError:
                state.flags |= _DIRTY
                yield carry.decode("utf-8", "surrogateescape")

    def _utf8_chunks(self) -> Iterator[bytes]:
        chunks = self._chunks()
        if self._decoder == "utf-8":
            return chunks
        return encodings.as_utf8(chunks, self._decoder)

    def _chunks(self) -> Iterator[bytes]:
        # pread, not seek and read: each rows() reads from its own offset, so two may run side by side.
        fd, offset, limit = self._file.fileno(), self._skip, self.limits.max_bytes
        while chunk := os.pread(fd, _CHUNK, offset):
            offset += len(chunk)
            if limit is not None and offset > limit:
                raise CsvTooLarge(f"the file is over the limit of {limit:,} bytes", bytes=offset)
            yield chunk


class _State:
    """Shared by the line source and the record loop: the lines that the records read so far took (the record in
    progress begins after them), and what the lines of the record in progress held (_DIRTY, _QUOTED)."""

    __slots__ = ("done", "flags")

    def __init__(self) -> None:
        self.done, self.flags = 0, 0


_TOO_LONG, _NUL, _INNER_BOM = "too long", "NUL", "BOM"


class _Refused(Exception):
    """Raised by the line source, which knows the line of the file but not the record: the record loop adds it."""

    def __init__(self, kind: str, physical: int, limit: int = 0):
        super().__init__(kind)
        self.kind, self.physical, self.limit = kind, physical, limit

    def error(self, record: int) -> CsvError:
        if self.kind == _TOO_LONG:
            return CsvTooLarge(_at(record, self.physical, f"the record is longer than {self.limit:,} bytes (a quoted "
                                                          "field that is never closed swallows the rest of the file: "
                                                          "look for a missing \")"), line=record)
        if self.kind == _NUL:
            what = ("a NUL byte; a text file has none: is this a binary file, or UTF-16 without a byte order mark? "
                    "Save it as UTF-8 (\"CSV UTF-8\")")
        else:
            what = ("a byte order mark (U+FEFF) inside the file, where only its start may have one: were two files "
                    "joined? Remove it, or save the file again")
        return CsvError(_at(record, self.physical, what), line=record)


def _last_line_end(chunk: bytes) -> int:
    """Where the last line of ``chunk`` ends (-1: none). Not at a CR that ends the chunk: its LF may follow."""
    end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r", 0, len(chunk) - 1))
    return end


def _field_starts(delimiter: str) -> tuple[bytes, ...]:
    """What may come before the ' of a field that begins with one (the start of a line is looked at apart)."""
    d = delimiter.encode()
    return d, b"\n", b"\r", d + b'"', b'\n"', b'\r"'


def _marked_lines(block: bytes, lines: list[bytes], starts: tuple[bytes, ...]) -> list[int]:
    """The indexes of the lines of ``block`` with a field that begins with ' (the neutralising mark?), in order.
    A loop over the ' of the block: in typical data, a few in a hundred lines have one (O'Brien)."""
    ends = list(itertools.accumulate(map(len, lines)))
    found: list[int] = []
    at = block.find(b"'")
    while at >= 0:
        if at == 0 or block.endswith(starts, max(at - 2, 0), at) or (at == 1 and block[0:1] == b'"'):
            line = bisect.bisect_right(ends, at)
            if not found or found[-1] != line:
                found.append(line)
        at = block.find(b"'", at + 1)
    return found


def _at(record: int, physical: int, what: str) -> str:
    if physical and physical != record:
        return f"line {record} (line {physical} of the file, counting line breaks inside quoted fields): {what}"
    return f"line {record}: {what}"


def _check(raw: bytes, physical: int) -> None:
    if b"\x00" in raw:
        raise _Refused(_NUL, physical)
    if _BOM in raw:
        raise _Refused(_INNER_BOM, physical)


def _parse_error(message: str, delimiter: str) -> str:
    if "expected after" in message:
        return (f"a quoted field goes on after its closing quote (expected {delimiter!r} or the end of the line "
                'after the "); a quote inside a quoted field is written twice: ""')
    if "unexpected end of data" in message:
        return 'a quoted field begins here and is never closed (a missing ")'
    return f"the record cannot be read as CSV ({message})"
