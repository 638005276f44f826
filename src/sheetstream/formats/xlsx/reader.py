"""An ``.xlsx`` file on disk -> typed rows, streamed: :func:`open_workbook` and :class:`Workbook`, over one module
per part of the package (as openpyxl's reader is laid out): :mod:`.package` (the zip and its parts),
:mod:`.workbook`, :mod:`.styles`, :mod:`.shared_strings`, :mod:`.tokens` (parts in blocks of whole elements, XML
text) and :mod:`.sheet` (the rows: the import's hot loop).

The small parts (relationships, workbook, styles) are parsed by expat as they stream, keeping only what is read of
them and refusing any DTD in any encoding, so entity expansion and external entities (billion laughs, XXE) cannot
happen. Worksheets and shared
strings are read with a tokenizer built from compiled regular expressions over decompressed 1 MB blocks:
it handles what SpreadsheetML producers write (any attribute order, namespace prefixes, sparse rows and
cells, rich text runs, phonetic runs, formulas with cached results) and is about 5x faster than expat with
Python callbacks on the same sheet (README). Entities are never expanded by it: only the five XML ones and
character references are decoded. The usual forms of row, cell and shared string are read by a compiled
scanner first (``_cells.c``, built with the package where a C compiler is found; about 4x faster): it leaves
anything else to the Python code, which gives the same values (``tests/formats/xlsx/test_scan.py``).

Why ``zipfile`` on the spooled file rather than ``stream-unzip`` on the socket: a workbook's parts come in
any order (our own writer puts the worksheets first and the styles last, Excel puts them last), and dates
can only be told from numbers once the styles are known, so the reader needs random access to the parts;
the upload is on disk anyway, for the all-or-nothing guarantee. The parts are inflated here rather than by
``zipfile``'s own reader, so that sizes and expansion ratios are counted from the bytes actually read and inflated,
never taken from the zip's headers, which an upload can make lie.

Hostile input is refused as it is read, in bounded memory and linear time: cells outside Excel's grid (16,384
columns, 1,048,576 rows), texts over Excel's 32,767 characters, a row's XML over ``max_row_bytes``, shared strings
beyond what their bytes justify, a zip directory over 2 MB, over 4,096 sheets or 64,000 cell formats, DTDs anywhere
in any part, parts the tokenizer cannot read as UTF-8. Every error
is a :class:`BadWorkbook` naming the cell (A1) or the part and the problem.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import BadWorkbook, NotAWorkbook
from .package import (
    _CFB_MAGIC,
    _check_directory,
    _check_sizes,
    _Package,
    _refuse_other_files,
    _refuse_other_zips,
    _relationships,
)
from .shared_strings import SharedStrings, _read_shared_strings
from .sheet import CellError, _block_rows, last_row
from .styles import _number_styles, format_kind, is_date_format
from .tokens import _blocks
from .workbook import _SHEET_KINDS, workbook_part

__all__ = ["CellError", "ReadLimits", "SharedStrings", "Workbook", "format_kind", "is_date_format", "last_row",
           "open_workbook"]


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
        sheets, others, date1904, rels = workbook_part(package, target)
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
