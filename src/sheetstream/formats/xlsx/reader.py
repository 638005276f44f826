"""An ``.xlsx`` file on disk -> typed rows, streamed.

The small parts (relationships, workbook, styles) are parsed with ElementTree after a check that refuses any
DTD, so entity expansion and external entities (billion laughs, XXE) cannot happen. Worksheets and shared
strings are read with a tokenizer built from compiled regular expressions over decompressed 1 MB blocks:
it handles what SpreadsheetML producers write (any attribute order, namespace prefixes, sparse rows and
cells, rich text runs, phonetic runs, formulas with cached results) and is about 5x faster than expat with
Python callbacks on the same sheet (README). Entities are never expanded by it: only the five XML ones and
character references are decoded.

Why ``zipfile`` on the spooled file rather than ``stream-unzip`` on the socket: a workbook's parts come in
any order (our own writer puts the worksheets first and the styles last, Excel puts them last), and dates
can only be told from numbers once the styles are known, so the reader needs random access to the parts;
the upload is on disk anyway, for the all-or-nothing guarantee.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from .cells import column_index, serial_to_datetime, unescape_text
from .errors import BadWorkbook, NotAWorkbook, UnsafeXml, WorkbookTooLarge

_BLOCK = 1 << 20


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
    date_styles: frozenset[int] = frozenset()
    shared_strings_path: str | None = None
    limits: ReadLimits = field(default_factory=ReadLimits)
    _shared: list[str] | None = None

    @property
    def sheet_names(self) -> list[str]:
        return [name for name, _ in self.sheets]

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> Workbook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def shared_strings(self) -> list[str]:
        if self._shared is None:
            self._shared = _read_shared_strings(self) if self.shared_strings_path else []
        return self._shared

    def rows(self, sheet: str | None = None) -> Iterator[tuple[int, list[Any]]]:
        """``(row number, values)`` for each row that has a value; values are indexed by column (A = 0)."""
        if not self.sheets:
            raise NotAWorkbook("the workbook has no worksheets")
        if sheet is None:
            path = self.sheets[0][1]
        else:
            found = [p for n, p in self.sheets if n == sheet]
            if not found:
                raise BadWorkbook(f"there is no sheet {sheet!r}; the workbook has: {', '.join(self.sheet_names)}",
                                  sheets=self.sheet_names)
            path = found[0]
        return _read_sheet(self, path)


def open_workbook(path: str | Path, limits: ReadLimits = ReadLimits()) -> Workbook:
    """Open and check a workbook: a real zip, no bombs, no DTDs, the parts a workbook needs."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise NotAWorkbook(
            "the file is not an .xlsx workbook (not a ZIP archive, or cut short: its end is missing)"
        ) from exc
    try:
        _check_sizes(archive, limits)
        names = set(archive.namelist())
        target = "xl/workbook.xml"
        if "_rels/.rels" in names:
            for rel in _relationships(archive, "_rels/.rels", "", limits):
                if rel[0].endswith("/officeDocument"):
                    target = rel[1]
        if target not in names:
            raise NotAWorkbook("the file is a ZIP archive but not an .xlsx workbook (it has no workbook part)")
        book = _parse_small(archive, target, limits)
        ns = {"m": _ns(book), "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships"}
        rels = {rid: (kind, part) for rid, kind, part in
                ((r[2], r[0], r[1]) for r in _relationships(archive, _rels_path(target), posixpath.dirname(target), limits))}
        sheets = []
        for sheet in book.iterfind("m:sheets/m:sheet", ns):
            rid = sheet.get(f"{{{ns['r']}}}id")
            if rid in rels and rels[rid][0].endswith("/worksheet") and rels[rid][1] in names:
                sheets.append((sheet.get("name", ""), rels[rid][1]))
        pr = book.find("m:workbookPr", ns)
        date1904 = pr is not None and pr.get("date1904", "false").lower() in ("1", "true")
        styles = next((part for kind, part in rels.values() if kind.endswith("/styles")), None)
        shared = next((part for kind, part in rels.values() if kind.endswith("/sharedStrings")), None)
        return Workbook(
            zip=archive,
            sheets=sheets,
            date1904=date1904,
            date_styles=_date_styles(archive, styles, limits) if styles in names else frozenset(),
            shared_strings_path=shared if shared in names else None,
            limits=limits,
        )
    except zipfile.BadZipFile as exc:
        archive.close()
        raise NotAWorkbook(f"the workbook's ZIP archive is damaged: {exc}") from exc
    except BaseException:
        archive.close()
        raise


def _check_sizes(archive: zipfile.ZipFile, limits: ReadLimits) -> None:
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


_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


def _refuse_dtd(part: str, head: bytes) -> None:
    if _DTD.search(head):
        raise UnsafeXml(f"part {part} declares a DTD; workbooks never need one, and DTDs enable entity attacks")


def _parse_small(archive: zipfile.ZipFile, part: str, limits: ReadLimits) -> ElementTree.Element:
    info = archive.getinfo(part)
    if info.file_size > limits.max_small_part:
        raise WorkbookTooLarge(f"part {part} is {info.file_size:,} bytes, over the limit for it")
    data = archive.read(part)
    _refuse_dtd(part, data)
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise BadWorkbook(f"part {part} is not well-formed XML: {exc}") from exc


def _ns(element: ElementTree.Element) -> str:
    return element.tag[1:].split("}")[0] if element.tag.startswith("{") else ""


def _rels_path(part: str) -> str:
    return posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")


def _relationships(archive: zipfile.ZipFile, rels: str, base: str, limits: ReadLimits) -> list[tuple[str, str, str]]:
    """(type, resolved target, id) of each relationship in ``rels``."""
    if rels not in archive.namelist():
        return []
    found = []
    for rel in _parse_small(archive, rels, limits):
        target = rel.get("Target", "")
        resolved = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(base, target))
        found.append((rel.get("Type", ""), resolved, rel.get("Id", "")))
    return found


# Built-in number formats that show dates or times (ECMA-376 18.8.30, and the CJK ones Excel uses).
_BUILTIN_DATES = frozenset([*range(14, 23), *range(27, 37), *range(45, 48), *range(50, 59), *range(71, 82)])
_NOT_TOKENS = re.compile(r'"[^"]*"|\\.|\[(?![hms]+\])[^\]]*\]|_.|\*.', re.IGNORECASE)


def is_date_format(code: str) -> bool:
    """True when a custom number format shows a date or time (tokens y, m, d, h, s outside quotes)."""
    section = _NOT_TOKENS.sub("", code.split(";")[0])
    return any(c in "ymdhsYMDHS" for c in section) and "General" not in section


def _date_styles(archive: zipfile.ZipFile, part: str | None, limits: ReadLimits) -> frozenset[int]:
    if part is None:
        return frozenset()
    root = _parse_small(archive, part, limits)
    ns = {"m": _ns(root)}
    custom = {int(f.get("numFmtId", -1)): f.get("formatCode", "") for f in root.iterfind("m:numFmts/m:numFmt", ns)}
    dates = set()
    for index, xf in enumerate(root.iterfind("m:cellXfs/m:xf", ns)):
        fmt = int(xf.get("numFmtId", 0))
        if fmt in custom:
            if is_date_format(custom[fmt]):
                dates.add(index)
        elif fmt in _BUILTIN_DATES:
            dates.add(index)
    return frozenset(dates)


def _blocks(archive: zipfile.ZipFile, part: str, element: bytes) -> Iterator[bytes]:
    """Decompressed ``part`` in blocks that end just after a closing tag of ``element`` (``</row>`` or a prefixed
    ``</x:row>``); the last block ends wherever the part does."""
    plain, prefixed = b"</" + element + b">", b":" + element + b">"
    pending = b""
    first = True
    try:
        with archive.open(part) as stream:
            while block := stream.read(_BLOCK):
                if first:
                    _refuse_dtd(part, block[:4096])
                    first = False
                pending += block
                cut = max(pending.rfind(plain) + len(plain), pending.rfind(prefixed) + len(prefixed))
                if cut > len(prefixed):
                    yield pending[:cut]
                    pending = pending[cut:]
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise BadWorkbook(f"part {part} of the workbook is damaged: {exc}") from exc
    if pending:
        yield pending


# Worksheet tokens, written for namespace-free XML: a part whose root element has a prefix (``<x:worksheet>``)
# is rewritten without prefixes block by block first (one C-level substitution).
# A cell: column letters, style, type, the style again (for r-t-s order), other attributes, then its content:
# a plain <v>, a plain inline <is><t>, or anything else (rich text, formulas) for the careful path.
_CELL = re.compile(
    rb'<c\b(?: r="([A-Z]+)\d*")?(?: s="(\d+)")?(?: t="(\w+)")?(?: s="(\d+)")?([^>]*?)'
    rb"(?:/>|>(?:<v>([^<]*)</v>|<is><t>([^<]*)</t></is>|(.*?))</c>)",
    re.S,
)
_ATTR = re.compile(rb'\s(\w+)="([^"]*)"')
_PREFIX = re.compile(rb"<(/?)[A-Za-z_][\w.-]*:(?!space)")
_ROOT_PREFIX = re.compile(rb"<[A-Za-z_][\w.-]*:worksheet\b")
_VALUE = re.compile(rb"<v>(.*?)</v>", re.S)
_TEXT = re.compile(rb"<t(?:\s[^>]*)?>(.*?)</t>", re.S)
_PHONETIC = re.compile(rb"<rPh\b.*?</rPh>", re.S)
_ENTITY = re.compile(r"&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|amp|quot|apos);")
_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def _entity(m: re.Match[str]) -> str:
    name = m.group(1)
    if name[0] == "#":
        return chr(int(name[2:], 16) if name[1] in "xX" else int(name[1:]))
    return _ENTITIES[name]


def _decode(raw: bytes) -> str:
    text = raw.decode("utf-8")
    if "&" in text:
        text = _ENTITY.sub(_entity, text)
    if "_x" in text:
        text = unescape_text(text)
    return text


def _rich_text(content: bytes) -> str:
    """The text of an ``<is>`` or ``<si>``: the ``<t>`` runs, without phonetic (``<rPh>``) runs."""
    if b"<rPh" in content:
        content = _PHONETIC.sub(b"", content)
    if b"<![CDATA[" in content:
        content = re.sub(rb"<!\[CDATA\[(.*?)\]\]>", lambda m: m.group(1).replace(b"&", b"&amp;").replace(b"<", b"&lt;"),
                         content, flags=re.S)
    return _decode(b"".join(_TEXT.findall(content)))


def _unprefixed(blocks: Iterator[bytes]) -> Iterator[bytes]:
    """Drop namespace prefixes (``<x:c>`` -> ``<c>``) when the part uses them; pass the blocks through otherwise."""
    first = next(blocks, None)
    if first is None:
        return
    if not _ROOT_PREFIX.search(first[:4096]) and b"<x:" not in first[:4096]:
        yield first
        yield from blocks
        return
    yield _PREFIX.sub(rb"<\1", first)
    for block in blocks:
        yield _PREFIX.sub(rb"<\1", block)


def _read_shared_strings(book: Workbook) -> list[str]:
    strings: list[str] = []
    chars = 0
    si = re.compile(rb"<si\b[^>]*?(?:/>|>(.*?)</si>)", re.S)
    for block in _unprefixed(_blocks(book.zip, book.shared_strings_path or "", b"si")):
        for m in si.finditer(block):
            text = _rich_text(m.group(1)) if m.group(1) else ""
            chars += len(text)
            if chars > book.limits.max_shared_chars:
                raise WorkbookTooLarge(
                    f"the shared strings table holds over {book.limits.max_shared_chars:,} characters, more than this "
                    "server keeps in memory; save the sheet with fewer distinct texts or split it"
                )
            strings.append(text)
    return strings


def _typed(book: Workbook, kind: bytes, raw: bytes, style: bytes) -> Any:
    """The value of a ``<v>`` by the cell's type attribute."""
    if kind == b"s":
        try:
            return book.shared_strings()[int(raw)]
        except (IndexError, ValueError):
            raise BadWorkbook(f"a cell points to shared string {raw.decode()!r}, which does not exist") from None
    if kind == b"n":
        if style and int(style) in book.date_styles:
            return serial_to_datetime(float(raw), book.date1904)
        return int(raw) if raw.isdigit() else float(raw)
    if kind == b"b":
        return raw.strip() in (b"1", b"true")
    if kind == b"e":
        return CellError(_decode(raw))
    if kind == b"d":
        return datetime.fromisoformat(raw.decode().rstrip("Z"))
    return _decode(raw)  # str (a formula's text result), or an unknown type read as text


def _complex_cell(book: Workbook, kind: bytes, content: bytes, style: bytes) -> Any:
    """Rich inline text, formulas with cached results, values with odd whitespace: None when there is no value."""
    if kind == b"inlineStr":
        return _rich_text(content)
    found = _VALUE.search(content)
    if found is None or not found.group(1):
        return None  # a formula without a cached result, or an empty value
    return _typed(book, kind or b"n", found.group(1), style)


def _read_sheet(book: Workbook, part: str) -> Iterator[tuple[int, list[Any]]]:
    """The hot loop of the import: rows of one worksheet, typed by cell type and style."""
    columns: dict[bytes, int] = {}
    date_styles = book.date_styles
    date1904 = book.date1904
    days: dict[bytes, datetime] = {}
    row_number = 0
    for block in _unprefixed(_blocks(book.zip, part, b"row")):
        for piece in block.split(b"</row>"):
            start = piece.rfind(b"<row")
            if start < 0:
                continue
            head_end = piece.find(b">", start)
            head = piece[start:head_end]
            at = head.find(b' r="')
            row_number = int(head[at + 4:head.index(b'"', at + 4)]) if at >= 0 else row_number + 1
            if head.endswith(b"/"):
                continue  # <row .../> at the end of the part: an empty row
            values: list[Any] = []
            col = -1
            for letters, style, kind, style2, rest, v, text, other in _CELL.findall(piece, head_end):
                if rest and b'="' in rest:  # attributes in an unusual order
                    attrs = dict(_ATTR.findall(rest))
                    letters = letters or attrs.get(b"r", b"").rstrip(b"0123456789")
                    style = style or attrs.get(b"s", b"")
                    kind = kind or attrs.get(b"t", b"")
                if letters:
                    col = columns.get(letters)
                    if col is None:
                        col = columns[letters] = column_index(letters.decode())
                else:
                    col += 1
                if other:
                    value = _complex_cell(book, kind, other, style or style2)
                    if value is None:
                        continue
                elif v:
                    if not kind:
                        style = style or style2
                        if style and int(style) in date_styles:
                            value = days.get(v)  # whole-day serials repeat: convert each once
                            if value is None:
                                value = serial_to_datetime(float(v), date1904)
                                if v.isdigit() and len(days) < 100_000:
                                    days[v] = value
                        else:
                            value = int(v) if v.isdigit() else float(v)
                    else:
                        value = _typed(book, kind, v, style or style2)
                elif kind == b"inlineStr":
                    value = _decode(text) if b"&" in text or b"_x" in text else text.decode()
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
            if values:
                yield row_number, values
