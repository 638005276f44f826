"""An ``.xlsx`` file on disk -> typed rows, streamed.

The small parts (relationships, workbook, styles) are parsed by expat into ElementTree, refusing any DTD in any
encoding, so entity expansion and external entities (billion laughs, XXE) cannot happen. Worksheets and shared
strings are read with a tokenizer built from compiled regular expressions over decompressed 1 MB blocks:
it handles what SpreadsheetML producers write (any attribute order, namespace prefixes, sparse rows and
cells, rich text runs, phonetic runs, formulas with cached results) and is about 5x faster than expat with
Python callbacks on the same sheet (README). Entities are never expanded by it: only the five XML ones and
character references are decoded. The usual forms of row, cell and shared string are read by a compiled
scanner first (``_cells.c``, built with the package where a C compiler is found; about 4x faster): it leaves
anything else to the Python code here, which gives the same values (``tests/formats/xlsx/test_scan.py``).

Why ``zipfile`` on the spooled file rather than ``stream-unzip`` on the socket: a workbook's parts come in
any order (our own writer puts the worksheets first and the styles last, Excel puts them last), and dates
can only be told from numbers once the styles are known, so the reader needs random access to the parts;
the upload is on disk anyway, for the all-or-nothing guarantee. The parts are inflated here rather than by
``zipfile``'s own reader, so that sizes and expansion ratios are counted from the bytes actually read and inflated,
never taken from the zip's headers, which an upload can make lie.

Hostile input is refused as it is read, in bounded memory and linear time: cells outside Excel's grid (16,384
columns, 1,048,576 rows), texts over Excel's 32,767 characters, a row's XML over ``max_row_bytes``, shared strings
beyond what their bytes justify, DTDs anywhere in any part, parts the tokenizer cannot read as UTF-8. Every error
is a :class:`BadWorkbook` naming the cell (A1) or the part and the problem.
"""

from __future__ import annotations

import functools
import itertools
import posixpath
import re
import struct
import zipfile
import zlib
from array import array
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote
from xml.parsers import expat

from .cells import (
    EPOCH_1900,
    EPOCH_1904,
    MAX_CELL_CHARS,
    MAX_SHEET_COLUMNS,
    MAX_SHEET_ROWS,
    column_index,
    column_letter,
    excel_length,
    serial_to_datetime,
    unescape_text,
)
from .errors import BadCell, BadWorkbook, NotAWorkbook, PasswordProtected, UnsafeXml, WorkbookTooLarge

try:  # the compiled cell scanner (_cells.c); optional: without it, rows and strings are read in Python
    from ._cells import rows as _scan_rows
    from ._cells import scan as _scan
    from ._cells import shared as _shared_scan
except ImportError:  # pragma: no cover
    _scan = _scan_rows = _shared_scan = None

_BLOCK = 1 << 20

try:  # ISA-L inflates and checksums faster than zlib (sheetstream depends on it already, for writing)
    from isal.isal_zlib import crc32 as _crc32
    from isal.isal_zlib import decompressobj as _decompressobj
    from isal.isal_zlib import error as _isal_error

    _INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, _isal_error)
except ImportError:  # pragma: no cover
    from zlib import crc32 as _crc32
    from zlib import decompressobj as _decompressobj

    _INFLATE_ERRORS = (zlib.error,)


class _CellProblem(ValueError):
    """What is wrong with the value of the cell being read; the sheet reader adds the cell's name."""


@dataclass(frozen=True)
class ReadLimits:
    #: Total uncompressed size of all parts.
    max_uncompressed: int = 4 << 30
    #: Uncompressed/compressed ratio allowed for a part larger than 1 MB (zip bombs run in the thousands).
    max_ratio: float = 200.0
    #: Characters held for the shared strings table, which must stay in memory.
    max_shared_chars: int = 100_000_000
    #: Size of the small XML parts (workbook, styles, relationships).
    max_small_part: int = 32 << 20
    #: XML of one row (or one shared string), held whole by the tokenizer: 16,384 columns x 1 kB, or some 500
    #: cells at Excel's limit of 32,767 characters; a row past it is refused as soon as it passes it.
    max_row_bytes: int = 16 << 20
    #: Entries in the shared strings table, however short (each costs a list slot and a string object).
    max_shared_strings: int = 5_000_000


@dataclass(frozen=True)
class CellError:
    """An error value in a cell, such as ``#N/A`` or ``#DIV/0!``."""

    code: str

    def __str__(self) -> str:
        return self.code


@dataclass
class Workbook:
    zip: zipfile.ZipFile
    sheets: list[tuple[str, str]]  # (name, part path) in workbook order
    date1904: bool = False
    date_styles: frozenset[int] = frozenset()  # styles that show dates, times or durations
    shared_strings_path: str | None = None
    limits: ReadLimits = field(default_factory=ReadLimits)
    _shared: SharedStrings | None = None
    clock_styles: dict[int, str] = field(default_factory=dict)  # of those, the ones showing a "time" or "duration"
    other_sheets: dict[str, str] = field(default_factory=dict)  # chart, macro and dialog sheets: name -> kind
    package: _Package | None = None
    # What the hot loop learns once and reuses from block to block: column letters -> index, whole-day serials.
    letters: dict[bytes, int] = field(default_factory=dict, repr=False)
    days: dict[bytes, datetime] = field(default_factory=dict, repr=False)
    #: Called with the bytes of XML inflated so far (all parts) after each block of a worksheet or of the shared
    #: strings is inflated (about every megabyte), whether or not the block holds a row: a caller reports
    #: progress there, and may raise to stop reading (a cancel, a time bound).
    on_progress: Callable[[int], None] | None = field(default=None, repr=False)

    @property
    def sheet_names(self) -> list[str]:
        return [name for name, _ in self.sheets]

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def shared_strings(self) -> SharedStrings:
        if self._shared is None:
            self._shared = _read_shared_strings(self) if self.shared_strings_path else SharedStrings()
        elif not isinstance(self._shared, SharedStrings):  # a list, given when the book is made by hand
            self._shared = SharedStrings.of(self._shared)
        return self._shared

    def rows(self, sheet: str | None = None) -> Iterator[tuple[int, list[Any]]]:
        """``(row number, values)`` for each row that has a value; values are indexed by column (A = 0)."""
        return self.rows_of(self.row_blocks(sheet))

    def rows_of(self, blocks: Iterable[bytes], previous: int = 0) -> Iterator[tuple[int, list[Any]]]:
        """The rows of ``blocks`` (from :meth:`row_blocks`, whole or what is left of them), numbered on from
        ``previous``, the number of the row before them."""
        for block in blocks:
            previous = yield from _block_rows(self, block, previous)

    def row_blocks(self, sheet: str | None = None) -> Iterator[bytes]:
        """The sheet's rows as XML in blocks of whole rows, for :meth:`block_rows` to read one by one, possibly in
        other processes (each block's first row number is :func:`last_row` of the blocks before it)."""
        return _blocks(self, self._part(sheet), b"<row", b"</sheetData", "row")

    def block_rows(self, block: bytes, previous: int = 0) -> Generator[tuple[int, list[Any]], None, int]:
        """The rows of one block as :meth:`rows` gives them, ``previous`` being the number of the row before the
        block; returns the number of its last row."""
        self.shared_strings()  # loaded once, before any block is read (and before a process forks to read some)
        return _block_rows(self, block, previous)

    def _part(self, sheet: str | None) -> str:
        if sheet is not None and sheet in self.other_sheets and sheet not in self.sheet_names:
            raise BadWorkbook(f"sheet {sheet!r} is {_SHEET_KINDS[self.other_sheets[sheet]]}, not a worksheet; it has "
                              "no cells to import", sheets=self.sheet_names)
        if not self.sheets:
            raise NotAWorkbook("the workbook has no worksheets")
        if sheet is None:
            return self.sheets[0][1]
        found = [p for n, p in self.sheets if n == sheet]
        if not found:
            raise BadWorkbook(f"there is no sheet {sheet!r}; the workbook has: {', '.join(self.sheet_names)}",
                              sheets=self.sheet_names)
        return found[0]


_SHEET_KINDS = {"chartsheet": "a chart sheet", "xlMacrosheet": "a macro sheet", "xlIntlMacrosheet": "a macro sheet",
                "dialogsheet": "a dialog sheet"}


def open_workbook(path: str | Path, limits: ReadLimits = ReadLimits()) -> Workbook:
    """Open and check a workbook: a real zip, no bombs, no DTDs, the parts a workbook needs."""
    with open(path, "rb") as f:
        if f.read(len(_CFB_MAGIC)) == _CFB_MAGIC:  # an .xls or an encrypted workbook, even one holding a ZIP inside
            _refuse_other_files(path)
        _check_directory(f)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError, EOFError, struct.error, NotImplementedError) as exc:  # a zip version
        _refuse_other_files(path)
        raise NotAWorkbook(
            "the file is not an .xlsx workbook (not a ZIP archive, or cut short: its end is missing)"
        ) from exc
    try:
        _check_sizes(archive, limits)
        package = _Package(archive, limits)
        target = "xl/workbook.xml"
        if package.find("_rels/.rels"):
            for rel in _relationships(package, "_rels/.rels", ""):
                if rel[0].endswith("/officeDocument"):
                    target = rel[1]
        if not package.find(target):
            _refuse_other_zips(package)
            raise NotAWorkbook("the file is a ZIP archive but not an .xlsx workbook (it has no workbook part)")
        book = _parse_small(package, target, {
            "sheets/sheet": (MAX_SHEETS, "the workbook has over {most:,} sheets, more than this server reads in one "
                             "workbook: split it into workbooks of fewer sheets", _sheet_entry),
            "workbookPr": (16, "part {part} has over {most} workbookPr elements", lambda a: a.get("date1904", "")),
        })
        rels = {rid: (kind, part)
                for kind, part, rid in _relationships(package, _rels_path(target), posixpath.dirname(target))}
        sheets, others = [], {}
        for name, rid in book["sheets/sheet"]:
            kind, part = rels.get(rid or "", ("", ""))
            if kind.endswith("/worksheet") and package.find(part):
                sheets.append((name, part))
            elif kind.rsplit("/", 1)[-1] in _SHEET_KINDS:
                others[name] = kind.rsplit("/", 1)[-1]
        date1904 = any(value.lower() in ("1", "true") for value in book["workbookPr"][:1])
        styles = next((part for kind, part in rels.values() if kind.endswith("/styles")), None)
        shared = next((part for kind, part in rels.values() if kind.endswith("/sharedStrings")), None)
        date_styles, clock_styles = (_number_styles(package, styles) if styles and package.find(styles)
                                     else (frozenset(), {}))
        return Workbook(
            zip=archive,
            sheets=sheets,
            date1904=date1904,
            date_styles=date_styles,
            shared_strings_path=shared if shared and package.find(shared) else None,
            limits=limits,
            clock_styles=clock_styles,
            other_sheets=others,
            package=package,
        )
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, struct.error) as exc:
        archive.close()
        raise NotAWorkbook(f"the workbook's ZIP archive is damaged: {exc}") from exc
    except BaseException:
        archive.close()
        raise


#: The zip's central directory, read whole by ``zipfile`` (an object of some 600 bytes a part): 2 MB holds at
#: most 45,000 parts, some 26,000 as workbooks name them, where a workbook of 4,096 sheets needs under 10,000.
#: Without it, an upload of 18 MB holding 200,000 empty parts took 117 MB before anything else was looked at.
MAX_DIRECTORY_BYTES = 2 << 20


def _check_directory(f: BinaryIO) -> None:
    """Refuse a zip whose central directory (its list of parts) is too large to read, before ``zipfile`` reads
    it: its size is taken from the end record as ``zipfile`` will take it (its ``_EndRecData``, zip64 too)."""
    try:
        end = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # stdlib since 2.6; absent: zipfile decides
    except (AttributeError, OSError, struct.error, ValueError):
        return
    if end and end[zipfile._ECD_SIZE] > MAX_DIRECTORY_BYTES:  # type: ignore[attr-defined]
        size = end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
        raise WorkbookTooLarge(f"the file's ZIP directory is {size / 2**20:,.1f} MB (it may list up to "
                               f"{size // 46:,} parts), more than a workbook needs (limit "
                               f"{MAX_DIRECTORY_BYTES / 2**20:,.0f} MB): refused", limit=MAX_DIRECTORY_BYTES)


def _check_sizes(archive: zipfile.ZipFile, limits: ReadLimits) -> None:
    """A first look at the sizes the zip declares (the parts are measured again as they are inflated)."""
    total = 0
    for info in archive.infolist():
        total += info.file_size
        if info.file_size > 1 << 20 and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise WorkbookTooLarge(
                f"part {info.filename} would expand {info.file_size / max(info.compress_size, 1):,.0f} times "
                f"(limit {limits.max_ratio:,.0f}): refused as a likely zip bomb"
            )
    if total > limits.max_uncompressed:
        raise WorkbookTooLarge(
            f"the workbook expands to {total / 2**20:,.0f} MB, over the {limits.max_uncompressed / 2**20:,.0f} MB limit"
        )


# --- files that are not .xlsx, told apart so that the message says what to do ---------------------------------------

_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _refuse_other_files(path: str | Path) -> None:
    """Raise a clear error for a file that is not a ZIP archive but is something a person might upload as .xlsx."""
    with open(path, "rb") as f:
        head = f.read(4096)
        if head.startswith(_CFB_MAGIC):
            f.seek(0)
            streams = _cfb_streams(f)
            if "EncryptionInfo" in streams or "EncryptedPackage" in streams:
                raise PasswordProtected("the workbook is password-protected: remove the password and upload it again")
            if "Workbook" in streams or "Book" in streams:
                raise NotAWorkbook("this is an Excel 97-2003 .xls file: save it as .xlsx (Excel Workbook) and upload "
                                   "that", format="xls")
            raise NotAWorkbook("the file is an older Office document (OLE2), not an .xlsx workbook: save it as .xlsx "
                               "(Excel Workbook) and upload that", format="ole2")
    if _looks_like_text(head):
        raise NotAWorkbook("the file is text (perhaps CSV), not an .xlsx workbook: open it in Excel, save it as .xlsx "
                           "(Excel Workbook) and upload that", format="text")


def _looks_like_text(head: bytes) -> bool:
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return True
    if not head or b"\x00" in head:
        return False
    controls = sum(head.count(bytes([c])) for c in range(32) if c not in (9, 10, 12, 13))
    return controls <= len(head) // 100


def _cfb_streams(f: BinaryIO, max_sectors: int = 1024) -> set[str]:
    """Names in the directory of an OLE2 compound file (CFB, MS-CFB), such as ``Workbook`` or ``EncryptionInfo``."""
    names: set[str] = set()
    try:
        header = f.read(512)
        if len(header) < 512 or not header.startswith(_CFB_MAGIC):
            return names
        shift = struct.unpack_from("<H", header, 30)[0]
        if not 7 <= shift <= 16:
            return names
        size = 1 << shift
        per_sector = size // 4
        fat_count, first_dir = struct.unpack_from("<L", header, 44)[0], struct.unpack_from("<L", header, 48)[0]
        difat_next, difat_count = struct.unpack_from("<LL", header, 68)
        difat = list(struct.unpack_from("<109L", header, 76))

        def sector(number: int) -> bytes:
            f.seek((number + 1) * size)
            return f.read(size)

        for _ in range(min(difat_count, max_sectors)):
            if difat_next >= 0xFFFFFFFA:
                break
            data = sector(difat_next)
            if len(data) < size:
                break
            entries = struct.unpack(f"<{per_sector}L", data)
            difat.extend(entries[:-1])
            difat_next = entries[-1]
        fat = [s for s in difat[:fat_count] if s < 0xFFFFFFFA]
        current = first_dir
        for _ in range(max_sectors):
            if current >= 0xFFFFFFFA:
                break
            data = sector(current)
            for at in range(0, len(data) - 127, 128):
                length = struct.unpack_from("<H", data, at + 64)[0]
                if 2 <= length <= 64:
                    names.add(data[at:at + length - 2].decode("utf-16-le", "replace"))
            if current // per_sector >= len(fat):
                break
            table = sector(fat[current // per_sector])
            if len(table) < size:
                break
            current = struct.unpack_from("<L", table, (current % per_sector) * 4)[0]
    except (struct.error, OSError, ValueError, OverflowError):
        pass
    return names


def _refuse_other_zips(package: _Package) -> None:
    """Raise a clear error for the ZIP-based formats that are not .xlsx."""
    if package.find("xl/workbook.bin"):
        raise NotAWorkbook("this is an Excel Binary Workbook (.xlsb): save it as .xlsx (Excel Workbook) and upload "
                           "that", format="xlsb")
    mimetype = package.find("mimetype")
    if mimetype and mimetype.file_size < 200:
        kind = b"".join(package.stream(mimetype)).strip()
        if kind == b"application/vnd.oasis.opendocument.spreadsheet":
            raise NotAWorkbook("this is an OpenDocument spreadsheet (.ods): save it as .xlsx (Excel Workbook) and "
                               "upload that", format="ods")
        if kind.startswith(b"application/vnd.oasis.opendocument"):
            raise NotAWorkbook("this is an OpenDocument file, not a spreadsheet in .xlsx form", format="odf")


# --- the parts of the package -------------------------------------------------------------------------------------


def _norm(name: str) -> str:
    """A part name as Excel matches it: ignoring case, with ``/`` or ``\\`` separators, percent-escapes decoded."""
    return posixpath.normpath(unquote(name).replace("\\", "/").lstrip("/")).lower()


class _Package:
    """The parts of the zip by normalised name, each inflated with the bytes read and produced counted."""

    def __init__(self, archive: zipfile.ZipFile, limits: ReadLimits):
        self.archive = archive
        self.limits = limits
        self.inflated = 0
        self.parts: dict[str, zipfile.ZipInfo] = {}
        for info in archive.infolist():
            if not info.filename.endswith("/"):  # a directory (is_dir() fails on an empty name)
                self.parts.setdefault(_norm(info.filename), info)

    def find(self, name: str) -> zipfile.ZipInfo | None:
        return self.parts.get(_norm(name))

    def stream(self, info: zipfile.ZipInfo) -> Iterator[bytes]:
        """The inflated part in blocks of at most 1 MB, refused as soon as it expands more than the limits allow."""
        name, limits = info.filename, self.limits
        if info.flag_bits & 1:
            raise PasswordProtected(f"part {name} of the workbook is encrypted: remove the password and upload it "
                                    "again")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise BadWorkbook(f"part {name} is compressed with method {info.compress_type}, which Excel never uses")
        out = crc = 0
        try:
            with open(self.archive.filename or "", "rb") as f:
                f.seek(info.header_offset)
                local = f.read(30)
                if len(local) < 30 or not local.startswith(b"PK\x03\x04"):
                    raise BadWorkbook(f"part {name} of the workbook is damaged: its local header is missing")
                f.seek(info.header_offset + 30 + sum(struct.unpack_from("<HH", local, 26)))
                left = info.compress_size  # stored parts only: for deflate, the stream's own end counts
                inflater = _decompressobj(-15)
                raw = b""
                fed = 0
                while True:
                    if info.compress_type == zipfile.ZIP_STORED:
                        data = f.read(min(_BLOCK, left))
                        left -= len(data)
                        fed += len(data)
                        if not data and left > 0:
                            raise EOFError("cut short")
                        done = left <= 0
                    else:
                        data = b""
                        while len(data) < _BLOCK and not inflater.eof:  # whole blocks: even shares of the work
                            if len(raw) < 1 << 16:
                                more = f.read(1 << 18)
                                if not more and not raw:
                                    raise EOFError("cut short")
                                raw += more
                                fed += len(more)
                            data += inflater.decompress(raw, _BLOCK - len(data))
                            raw = inflater.unconsumed_tail
                        done = inflater.eof
                    if data:
                        out += len(data)
                        self.inflated += len(data)
                        crc = _crc32(data, crc)
                        if out > 1 << 20 and out > limits.max_ratio * max(fed - len(raw), 1):
                            raise WorkbookTooLarge(
                                f"part {name} expands over {out / max(fed - len(raw), 1):,.0f} times (limit "
                                f"{limits.max_ratio:,.0f}): refused as a likely zip bomb")
                        if self.inflated > limits.max_uncompressed:
                            raise WorkbookTooLarge("the workbook expands to over "
                                                   f"{limits.max_uncompressed / 2**20:,.0f} MB, the limit")
                        if out > info.file_size:
                            raise BadWorkbook(f"part {name} of the workbook is damaged: it is larger than its zip "
                                              "entry says")
                        yield data
                    if done:
                        break
        except (*_INFLATE_ERRORS, EOFError, OSError, ValueError) as exc:
            raise BadWorkbook(f"part {name} of the workbook is damaged: {exc}") from exc
        if out != info.file_size or crc != info.CRC:
            raise BadWorkbook(f"part {name} of the workbook is damaged: its size or checksum is wrong")


_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def _refuse_dtd(part: str, head: bytes) -> None:
    if _DTD.search(head):
        raise UnsafeXml(f"part {part} declares a DTD; workbooks never need one, and DTDs enable entity attacks")


#: What one element kept from a small part becomes (a few strings), by the path of names from the root below it
#: (``sheets/sheet``; ``*``: any child of the root), with the most that may be kept and what is said past it.
Wanted = dict[str, tuple[int, str, Callable[[dict[str, str]], Any]]]

#: Bounds on what a workbook lists, enforced as its small parts are parsed: a part of 32 MB could otherwise list
#: 560,000 sheets or 600,000 cell formats, half a gigabyte as elements. Excel allows 64,000 cell formats; it has no
#: fixed sheet limit, but 4,096 sheets is far past any workbook made by hand or by a program (and past what a
#: person picks from); a workbook's relationships are one per sheet and a few more.
MAX_SHEETS = 4_096
MAX_CELL_FORMATS = 64_000
MAX_RELATIONSHIPS = 4 * MAX_SHEETS + 1_024


def _parse_small(package: _Package, part: str, wanted: Wanted) -> dict[str, list[Any]]:
    """What ``wanted`` keeps of a small part's elements, by path: the part is parsed by expat as it is inflated
    (any DTD refused, in whatever encoding the part is), and nothing else of it is kept, so that memory follows
    what is kept, never the part's size. Paths are of names in the root's namespace (as Excel writes them)."""
    info = package.find(part)
    limit = package.limits.max_small_part
    if info is None:
        raise BadWorkbook(f"part {part} is missing")
    if info.file_size > limit:
        raise WorkbookTooLarge(f"part {part} is {info.file_size:,} bytes, over the limit for it")
    found: dict[str, list[Any]] = {path: [] for path in wanted}
    deepest = max(path.count("/") + 1 for path in wanted)
    names: list[str] = []  # the open elements' names below the root, as deep as a path goes
    depth = 0
    prefix = ""  # the root's namespace, as expat writes it ("uri}"), or ""

    def refuse(*_: object) -> None:
        raise UnsafeXml(f"part {part} declares a DTD; workbooks never need one, and DTDs enable entity attacks")

    def start(tag: str, attrs: dict[str, str]) -> None:
        nonlocal depth, prefix
        depth += 1
        if depth == 1:
            prefix = tag[:tag.rfind("}") + 1]
            return
        if depth - 1 > deepest:
            return
        local = tag[len(prefix):]
        names.append(local if tag.startswith(prefix) and "}" not in local else "")  # "": in another namespace
        path = "*" if depth == 2 and "*" in wanted else "/".join(names)
        if path in wanted:
            most, problem, keep = wanted[path]
            kept = found[path]
            if len(kept) >= most:
                raise WorkbookTooLarge(problem.format(most=most, part=part), limit=most)
            kept.append(keep(attrs))

    def end(tag: str) -> None:
        nonlocal depth
        if 1 < depth <= deepest + 1:
            names.pop()
        depth -= 1

    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        for block in package.stream(info):
            parser.Parse(block, False)
        parser.Parse(b"", True)
    except (expat.ExpatError, LookupError, ValueError) as exc:  # an unknown encoding, among others
        raise BadWorkbook(f"part {part} is not well-formed XML: {exc}") from exc
    return found


def _rels_path(part: str) -> str:
    return posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")


def _relationships(package: _Package, rels: str, base: str) -> list[tuple[str, str, str]]:
    """(type, resolved target, id) of each relationship in ``rels``."""
    if not package.find(rels):
        return []
    found = []
    listed = _parse_small(package, rels, {"*": (MAX_RELATIONSHIPS, "part {part} lists over {most:,} relationships, more "
                                                "than a workbook of 4,096 sheets needs", _relationship)})
    for mode, target, kind, rid in listed["*"]:
        if mode.lower() == "external":
            continue
        target = target.replace("\\", "/")
        resolved = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(base, target))
        found.append((kind, resolved, rid))
    return found


def _relationship(attrs: dict[str, str]) -> tuple[str, str, str, str]:
    return attrs.get("TargetMode", ""), attrs.get("Target", ""), attrs.get("Type", ""), attrs.get("Id", "")


def _sheet_entry(attrs: dict[str, str]) -> tuple[str, str | None]:
    """A ``<sheet>``'s name and relationship id (``r:id``, in the transitional or the strict namespace)."""
    return attrs.get("name", ""), next((value for key, value in attrs.items() if key.endswith("}id")), None)


# Built-in number formats that show dates or times (ECMA-376 18.8.30, and the CJK ones Excel uses).
_BUILTIN_DATES = frozenset([*range(14, 23), *range(27, 37), *range(45, 48), *range(50, 59), *range(71, 82)])
_BUILTIN_CLOCKS = {18: "time", 19: "time", 20: "time", 21: "time", 45: "time", 47: "time", 46: "duration"}
_NOT_TOKENS = re.compile(r'"[^"]*"|\\.|\[(?![hms]+\])[^\]]*\]|_.|\*.', re.IGNORECASE)
_AM_PM = re.compile(r"AM/PM|A/P", re.IGNORECASE)
_ELAPSED = re.compile(r"\[(?:h+|m+|s+)\]", re.IGNORECASE)


def format_kind(code: str) -> str | None:
    """What a custom number format shows: ``"date"`` (a date, maybe with a time: a datetime), ``"time"`` (a time of
    day only), ``"duration"`` (elapsed time: ``[h]:mm:ss``), or None (a number or text)."""
    section = _NOT_TOKENS.sub("", code.split(";")[0])
    if "general" in section.lower():
        return None
    section = _AM_PM.sub("", section)
    tokens = {c for c in section.lower() if c in "ymdhs"}
    if not tokens:
        return None
    if "y" in tokens or "d" in tokens:
        return "date"
    if _ELAPSED.search(section):
        return "duration"
    if "h" in tokens or "s" in tokens:
        return "time"
    return "date"  # months alone: mmm, mmmm


def is_date_format(code: str) -> bool:
    """True when a custom number format shows a date, time or duration (tokens y, m, d, h, s outside quotes)."""
    return format_kind(code) is not None


def _format_id(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return -1


def _number_styles(package: _Package, part: str) -> tuple[frozenset[int], dict[int, str]]:
    """The cell styles that show dates, times or durations; and of those, the times and durations by kind."""
    found = _parse_small(package, part, {
        "numFmts/numFmt": (MAX_CELL_FORMATS, "the workbook has over {most:,} number formats, more than Excel allows",
                           lambda a: (_format_id(a.get("numFmtId")), a.get("formatCode", ""))),
        "cellXfs/xf": (MAX_CELL_FORMATS, "the workbook has over {most:,} cell formats, more than Excel allows "
                       "(64,000): refused", lambda a: _format_id(a.get("numFmtId"))),
    })
    custom = dict(found["numFmts/numFmt"])
    dates, clocks = set(), {}
    for index, fmt in enumerate(found["cellXfs/xf"]):
        kind = format_kind(custom[fmt]) if fmt in custom else ("date" if fmt in _BUILTIN_DATES else None)
        kind = _BUILTIN_CLOCKS.get(fmt, kind) if fmt not in custom else kind
        if kind:
            dates.add(index)
            if kind != "date":
                clocks[index] = kind
    return frozenset(dates), clocks


# --- the tokenizer -------------------------------------------------------------------------------------------------

#: XML bytes that one text of Excel's 32,767 characters can take at most: an entity or escape for each, of up
#: to 8 bytes (``&#65535;``). A text node longer than this is refused while it streams in.
_MAX_TEXT_BYTES = MAX_CELL_CHARS * 8
_ENCODING = re.compile(rb'\s*<\?xml[^>]*?encoding\s*=\s*["\']([^"\']*)', re.IGNORECASE)
_PREFIXED = re.compile(rb"<[A-Za-z_][\w.-]*:(?:worksheet|sst|sheetData|row|c|si)\b")
_REF = re.compile(rb"""<(?:[\w.-]+:)?c\b[^<>]*?\sr\s*=\s*["']([A-Za-z]+\d+)""")
_ROW_R = re.compile(rb"""\sr\s*=\s*(?:"([^"]*)"|'([^']*)')""")


def _check_encoding(part: str, head: bytes) -> None:
    """The tokenizer reads UTF-8 only, as every spreadsheet program writes; anything else is refused."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:4]:
        raise BadWorkbook(f"part {part} is encoded in UTF-16 or UTF-32; only UTF-8 is supported here: save the "
                          "workbook again as .xlsx (Excel Workbook)")
    declared = _ENCODING.match(head.removeprefix(b"\xef\xbb\xbf"))
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8", b"us-ascii", b"ascii"):
        raise BadWorkbook(f"part {part} is encoded in {declared.group(1).decode('ascii', 'replace')}; only UTF-8 is "
                          "supported here: save the workbook again as .xlsx (Excel Workbook)")


def _last_ref(data: bytes) -> str | None:
    found = _REF.findall(data)
    return found[-1].decode() if found else None


def _aligned(stream: Iterator[bytes]) -> Iterator[bytes]:
    """The blocks of ``stream`` re-cut just before their last ``<`` (the rest is carried on to the next block), so
    that no tag, DTD marker or ``\\r\\n`` is split between two; a block without ``<`` (a long text) passes whole."""
    carry = b""
    for raw in stream:
        lt = raw.rfind(b"<")
        if lt < 0:
            chunk, carry = carry + raw, b""
        else:
            chunk, carry = carry + raw[:lt], raw[lt:]
        if chunk:
            yield chunk
    if carry:
        yield carry


def _blocks(book: Workbook, part: str, start: bytes, end: bytes | None, what: str) -> Iterator[bytes]:
    """The decompressed ``part`` in blocks of whole elements: each block ends just before an element ``start``
    (``<row`` or ``<si``) opens, so that none is split; the last ends with the part, or just before ``end``
    (``</sheetData``: nothing after the rows is needed). Namespace prefixes are dropped (``<x:c>`` -> ``<c>``) when
    the part uses them, line ends are normalised (XML 1.0, 2.11) and DTDs refused, wherever they are.

    An element spanning blocks is held up to ``max_row_bytes``, a text node up to what 32,767 characters can take:
    past either, the part is refused at once. Memory stays bounded and time linear, whatever the part holds.
    """
    info = book.package.find(part) if book.package else None
    if info is None:
        raise BadWorkbook(f"part {part} is missing")
    limit = book.limits.max_row_bytes
    stream = book.package.stream(info)  # type: ignore[union-attr]
    chunks = _aligned(stream)
    held: list[bytes] = []  # an element in progress, cut off at the end of the last block
    size = run = 0  # bytes held; bytes since the last "<" (a text node in progress)
    prefixed: bool | None = None
    try:
        for chunk in chunks:
            if book.on_progress is not None:
                book.on_progress(book.package.inflated)  # type: ignore[union-attr]
            if prefixed is None:
                _check_encoding(part, chunk)
            last = chunk.rfind(b"<")
            run = run + len(chunk) if last < 0 else len(chunk) - last
            if run > _MAX_TEXT_BYTES:
                ref = _last_ref(b"".join(held[-8:]) + (chunk[:last] if last >= 0 else b""))
                raise BadCell(f"{f'cell {ref}' if ref else 'a ' + what} holds a text of over {_MAX_TEXT_BYTES:,} "
                              "bytes, more than Excel's limit of 32,767 characters for a cell allows", cell=ref)
            if b"!" in chunk:  # one memchr; a search for "<!" costs 50 times more where tags are dense
                _refuse_dtd(part, chunk)
            if b"\r" in chunk:
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if prefixed is None:
                prefixed = _PREFIXED.search(chunk, 0, 65536) is not None
            if prefixed:
                chunk = _PREFIX.sub(rb"<\1", chunk)
            cut = chunk.rfind(start)
            while cut >= 0 and chunk[cut + len(start):cut + len(start) + 1].isalpha():  # <rowBreaks>: not a row
                cut = chunk.rfind(start, 0, cut)
            # The end of sheetData can only follow the last row that starts in the block: search that tail only.
            stop = end is not None and (at := chunk.find(end, max(cut, 0))) >= 0
            if stop:
                chunk = chunk[:at]
            if cut > 0 or (cut == 0 and held):
                held.append(chunk[:cut])
                yield b"".join(held)
                held, size = [chunk[cut:]], len(chunk) - cut
            else:
                held.append(chunk)
                size += len(chunk)
                if size > limit:
                    head = held[0][:4096]  # where the row starts
                    number = _ROW_R.search(head, 0, head.find(b">")) if what == "row" else None
                    name = f"row {(number.group(1) or number.group(2) or b'?').decode()}" if number else f"a {what}"
                    needs = "a row of Excel's 16,384 columns needs" if what == "row" else "32,767 characters need"
                    raise WorkbookTooLarge(f"{name} holds over {limit / 2**20:,.0f} MB of XML, more than {needs}: "
                                           "refused", limit=limit)
            if stop:
                break
        if held:
            yield b"".join(held)
    finally:
        chunks.close()
        stream.close()


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
_PREFIX = re.compile(rb"<(/?)[A-Za-z_][\w.-]*:(?!space)")
_VALUE = re.compile(rb"<v(?:\s[^<>]*)?>([^<]*)</v>")
_TEXT = re.compile(rb"<t(\s[^<>]*?)?(?:/>|>([^<]*)</t>)")
_PRESERVE = re.compile(rb"""\sxml:space\s*=\s*["']preserve["']""")
#: XML's whitespace (2.3): what is trimmed from the edges of a <t> without xml:space="preserve".
_XML_SPACE = " \t\n\r"
_PHONETIC = re.compile(rb"<rPh\b(?:[^<]++|<(?!rPh\b))*?</rPh>")
_ENTITY = re.compile(r"&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|amp|quot|apos);")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def _entity(m: re.Match[str]) -> str:
    name = m.group(1)
    if name[0] == "#":
        return chr(int(name[2:], 16) if name[1] in "xX" else int(name[1:]))
    return _ENTITIES[name]


def _decode(raw: bytes, trim: bool = False, check: bool = True) -> str:
    """XML text -> str: entities and character references decoded, then (``trim``) XML whitespace taken from
    both edges, then Excel's ``_xHHHH_`` escapes undone (so an escaped space stays), then (``check``) Excel's
    32,767 characters checked."""
    try:
        text = raw.decode("utf-8")
        if "&" in text:
            text = _ENTITY.sub(_entity, text)
    except UnicodeDecodeError:
        raise _CellProblem("its text is not valid UTF-8") from None
    except (ValueError, OverflowError):
        raise _CellProblem("its text holds a character reference to no character (&#...;)") from None
    if trim:
        text = text.strip(_XML_SPACE)
    if "_x" in text:
        text = unescape_text(text)
    if check:
        _check_length(text)
    return text


def _check_length(text: str) -> None:
    if len(text) > MAX_CELL_CHARS // 2 and excel_length(text) > MAX_CELL_CHARS:
        raise _CellProblem(f"its text is {excel_length(text):,} characters long, over Excel's limit of 32,767")


def _rich_text(content: bytes) -> str:
    """The text of an ``<is>`` or ``<si>``: its ``<t>`` runs joined, without phonetic (``<rPh>``) runs.

    Whitespace is trimmed run by run, as Excel and calamine read it: each ``<t>`` without ``xml:space="preserve"``
    loses the XML whitespace (space, tab, line ends; written as characters or as character references such as
    ``&#32;``) at both of its edges, so ``<r><t>Regular </t></r><r><t>Bold</t></r>`` reads ``RegularBold`` and a
    text of whitespace only reads empty. Other spaces (no-break, ideographic) and escaped ones (``_x0020_``) stay.
    """
    if b"<rPh" in content:
        content = _PHONETIC.sub(b"", content)
    if b"<![CDATA[" in content:
        if content.count(b"<![CDATA[") > content.count(b"]]>"):  # searching for the ends would take quadratic time
            raise _CellProblem("its text has a CDATA section that does not end")
        content = re.sub(rb"<!\[CDATA\[(.*?)\]\]>", lambda m: m.group(1).replace(b"&", b"&amp;").replace(b"<", b"&lt;"),
                         content, flags=re.S)
    runs = _TEXT.findall(content)
    if len(runs) == 1:
        attributes, raw = runs[0]
        return _decode(raw, trim=not _PRESERVE.search(attributes))
    text = "".join(_decode(raw, trim=not _PRESERVE.search(attributes), check=False) for attributes, raw in runs)
    _check_length(text)
    return text


#: Bytes of XML that a shared string takes at least (``<si><t>a</t></si>`` is 17; empty ones are rare, as the table
#: holds each text once): far more strings than the bytes allow is a flood meant to fill memory.
_SHARED_MIN_BYTES = 12


_SI = re.compile(rb"<si\b[^<>]*?(?:/>|>((?:[^<]++|<(?!si[\s>/]))*?)</si>)")


class SharedStrings(Sequence[str]):
    """The shared strings table, held compactly: the UTF-8 of every text in one buffer, and where each ends
    (4 bytes a string), rather than a Python string each (some 60 bytes more a string: 5,000,000 texts of 4
    bytes took 467 MB). A text is decoded when a cell asks for it (the compiled scanner does that itself)."""

    #: Recently read short texts, by index modulo this (the compiled scanner's, not Python's): repeated texts
    #: (a category, a name) are then one string object each, as in a list, for at most a few hundred kB.
    CACHED = 4096

    def __init__(self) -> None:
        self.data = bytearray()
        self.ends = array("I")  # the buffer stays under 4 GB: max_shared_chars is 100 million by default
        self.cache: list[str | None] = [None] * self.CACHED
        self.cached = array("q", [-1]) * self.CACHED  # the index of the text in each slot of the cache

    @classmethod
    def of(cls, texts: Iterable[str]) -> SharedStrings:
        table = cls()
        table.extend(list(texts))
        return table

    def extend(self, texts: list[str]) -> None:
        try:
            encoded = list(map(str.encode, texts))  # a loop in C: a third of the time of a comprehension
        except UnicodeEncodeError:  # a lone surrogate, from an escape such as _xD800_
            encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
        ends = itertools.accumulate(map(len, encoded), initial=len(self.data))
        next(ends)  # the start of the first: the end of the last one there
        self.ends.extend(ends)
        self.data += b"".join(encoded)
        if len(self.data) >= 1 << 32:
            raise WorkbookTooLarge("the shared strings table holds over 4 GB of text")

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        end = self.ends[index]
        start = self.ends[index - 1] if index > 0 else 0
        return self.data[start:end].decode("utf-8", "surrogatepass")

    def nbytes(self) -> int:
        return len(self.data) + self.ends.itemsize * len(self.ends)


def _read_shared_strings(book: Workbook) -> SharedStrings:
    strings = SharedStrings()
    count = chars = seen = 0
    limits = book.limits
    for block in _blocks(book, book.shared_strings_path or "", b"<si", None, "shared string"):
        seen += len(block)
        texts = _shared_texts(block, count)
        chars += sum(map(len, texts))
        if chars > limits.max_shared_chars:
            raise WorkbookTooLarge(
                f"the shared strings table holds over {limits.max_shared_chars:,} characters, more than this "
                "server keeps in memory; save the sheet with fewer distinct texts or split it"
            )
        count += len(texts)
        if count > limits.max_shared_strings or count > seen // _SHARED_MIN_BYTES + 10_000:
            raise WorkbookTooLarge(
                f"the shared strings table holds over {min(count, limits.max_shared_strings):,} strings"
                + (f" in {seen:,} bytes, more than real workbooks ever do" if count <= limits.max_shared_strings
                   else ", more than this server keeps in memory; save the sheet with fewer distinct texts or split it")
            )
        strings.extend(texts)
    return strings


def _shared_texts(block: bytes, first: int) -> list[str]:
    """The texts of a block of shared strings, the first being string number ``first``: plain ones read by the
    compiled scanner where it is built, the others (and every one, where it is not) by :func:`_rich_text`."""
    found = _shared_scan(block, _decode) if _shared_scan is not None else None
    if found is None:
        found = [m.group(1) or "" for m in _SI.finditer(block)]
    for i, item in enumerate(found):
        if type(item) is bytes:
            try:
                found[i] = _rich_text(item)
            except _CellProblem as exc:
                raise BadWorkbook(f"shared string {first + i} cannot be read: {exc}") from None
    return found


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
