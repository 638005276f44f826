"""CSV file in, records out: the stdlib parser (C) fed lines that are cut, decoded and bounded here.

The file is read in chunks and cut into lines here, never with an unbounded ``readline()``, so that a record
longer than :attr:`CsvLimits.max_line_bytes` (a 1 GB line, or a quote that is never closed and swallows the
rest of the file) is refused at its line once it passes the bound, holding no more than the bound and a chunk.
Each line is decoded on its own: a line with bytes its encoding cannot decode keeps them escaped, and the fields
that hold them become :class:`~sheetstream.formats.values.Unreadable` values (the rest of the record reads).

Records are numbered as a spreadsheet numbers rows: the first record (the header) is 1, and a newline inside a
quoted field does not start a new one. Errors name that number as ``line``, and the line of the file too
where newlines inside quotes make the two differ.
"""

from __future__ import annotations

import codecs
import csv
import io
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
        # Lines end with LF or CRLF; a file whose first part has CRs and no LF ends its lines with CR alone
        # (the "CSV (Macintosh)" of old Excel versions).
        newline = b"\r" if "\r" in sample and "\n" not in sample else b"\n"
        return CsvBook(file, skip, name, decoder, delimiter, newline, sheet_name, limits)
    except BaseException:
        file.close()
        raise


class CsvBook:
    """An open CSV file, read as a workbook of one sheet (the interface of ``formats.xlsx.Workbook``)."""

    #: Rows must have exactly the header's width: a short or long record is a problem at its line (a spreadsheet
    #: row has no width of its own, a CSV record does).
    exact_width = True

    def __init__(self, file: IO[bytes], skip: int, encoding: str, decoder: str, delimiter: str, newline: bytes,
                 sheet_name: str, limits: CsvLimits):
        self._file, self._skip, self._decoder, self._newline, self.limits = file, skip, decoder, newline, limits
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

    def rows(self, sheet: str | None = None) -> Iterator[tuple[int, list[Any]]]:
        """(record number, values) per record, the header's record being 1 (so row N is what a spreadsheet shows
        as row N; a quoted newline does not start a new row). Values: str, None for an empty field, or
        :class:`Unreadable` for a field with bytes the encoding cannot decode. A ``'`` that the writer put before
        a formula-like text is taken off (see :mod:`.injection`). Records that are entirely empty (a blank line,
        or only delimiters) are skipped like empty spreadsheet rows, and keep their numbers."""
        if sheet is not None and sheet not in self.sheet_names:
            raise CsvError(f"there is no sheet {sheet!r}; a CSV file has one: {self.sheet_names[0]!r}",
                           sheets=self.sheet_names)
        return self._rows()

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
                    elif "" in fields:  # a scan in C: most records have no empty field and are yielded as they are
                        yield number, [field or None for field in fields]
                    else:
                        yield number, fields
                state.record, state.size, state.flags = number + 1, 0, 0
        except csv.Error as error:
            raise CsvError(_at(number + 1, reader.line_num, _parse_error(str(error), self.delimiter)),
                           line=number + 1) from None

    def _values(self, fields: list[str], flags: int, number: int) -> list[Any]:
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
        """The file's lines as text (line ends kept, for the parser), checked against the bounds as they pass."""
        limit, newline, physical = self.limits.max_line_bytes, self._newline, 0
        carry = b""
        for chunk in self._utf8_chunks():
            if carry:
                chunk = carry + chunk
            cut = chunk.rfind(newline) + 1
            if not cut:
                carry = chunk
                if state.size + len(carry) > limit:
                    raise _too_long(state.record, physical + 1, limit)
                continue
            block, carry = (chunk[:cut], chunk[cut:]) if cut < len(chunk) else (chunk, b"")
            check, quoted = b"\x00" in block or _BOM in block, b"'" in block
            lines = io.BytesIO(block) if newline == b"\n" else [line + newline for line in block.split(newline)[:-1]]
            for raw in lines:
                physical += 1
                state.size += len(raw)
                if state.size > limit:
                    raise _too_long(state.record, physical, limit)
                if check:
                    _check(raw, state.record, physical)
                if quoted and b"'" in raw:
                    state.flags |= _QUOTED
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError:
                    state.flags |= _DIRTY
                    yield raw.decode("utf-8", "surrogateescape")
        if carry:  # the last line, without a line end
            state.size += len(carry)
            if state.size > limit:
                raise _too_long(state.record, physical + 1, limit)
            _check(carry, state.record, physical + 1)
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
    """Shared by the line source and the record loop: the record being read, its bytes so far, its flags."""

    __slots__ = ("record", "size", "flags")

    def __init__(self) -> None:
        self.record, self.size, self.flags = 1, 0, 0


def _at(record: int, physical: int, what: str) -> str:
    if physical and physical != record:
        return f"line {record} (line {physical} of the file, counting line breaks inside quoted fields): {what}"
    return f"line {record}: {what}"


def _too_long(record: int, physical: int, limit: int) -> CsvTooLarge:
    what = (f"the record is longer than {limit:,} bytes (a quoted field that is never closed swallows the rest "
            "of the file: look for a missing \")")
    return CsvTooLarge(_at(record, physical, what), line=record)


def _check(raw: bytes, record: int, physical: int) -> None:
    if b"\x00" in raw:
        raise CsvError(_at(record, physical, "a NUL byte; a text file has none: is this a binary file, or UTF-16 "
                                             "without a byte order mark? Save it as UTF-8 (\"CSV UTF-8\")"),
                       line=record)
    if _BOM in raw:
        raise CsvError(_at(record, physical, "a byte order mark (U+FEFF) inside the file, where only its start may "
                                             "have one: were two files joined? Remove it, or save the file again"),
                       line=record)


def _parse_error(message: str, delimiter: str) -> str:
    if "expected after" in message:
        return (f"a quoted field goes on after its closing quote (expected {delimiter!r} or the end of the line "
                'after the "); a quote inside a quoted field is written twice: ""')
    if "unexpected end of data" in message:
        return 'a quoted field begins here and is never closed (a missing ")'
    if "new-line character" in message:
        return ("a line break (CR) inside an unquoted field; quote the field, or save the file with Windows (CRLF) "
                "or Unix (LF) line ends")
    return f"the record cannot be read as CSV ({message})"
