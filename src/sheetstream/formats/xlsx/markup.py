"""A workbook handed back marked up: each problem cell filled and commented, and a ``Problems`` sheet that
links to every problem's cell.

Streamed: the parts come out of the uploaded file (``zipfile``, random access) and go back through the writer's ZIP container (zip_stream).
Worksheets with marks are rewritten row by row as they are inflated (blocks that end after ``</row>``), every
other part is copied as it is, and the small parts that change (styles, workbook, relationships, content
types) are edited as text, never parsed and written back, so what the producer wrote (namespaces, extensions,
``mc:Ignorable`` prefixes) stays as it was. Comments are legacy comments, as Excel, LibreOffice and openpyxl
write them: ``xl/commentsN.xml``, a VML drawing ``xl/drawings/vmlDrawingN.vml`` for their boxes, both related
from the sheet, which names the drawing in ``<legacyDrawing>``.

Every problem cell is filled, however many (the marks come sorted from the caller, a sheet at a time, and are
merged into the rows as they stream: memory does not grow with their number). Comments go on the first
:data:`MAX_COMMENTS` cells of a sheet: a comment is a VML shape of about 700 bytes, and Excel takes minutes to
open a workbook with 200,000 of them; the ``Problems`` sheet's summary says what the rest have.

Limits, on purpose: a sheet that already has comments keeps them, and gets fills but no new comments (merging
two comment parts is not worth its risk here); a workbook without a styles part gets comments but no fills.
"""

from __future__ import annotations

import itertools
import posixpath
import re
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .cells import column_index, column_letter, escape_text
from .errors import BadWorkbook, NotAWorkbook
from .parts import NS_MAIN, NS_PKG_REL, NS_REL, XML_DECL
from .writer import deflater, zip_stream

_BLOCK = 1 << 20
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument"
#: Fills (ARGB): Excel's own "bad" red for problems, its "neutral" yellow for warnings.
FILLS = {"error": "FFFFC7CE", "warning": "FFFFEB9C"}
_REF = re.compile(r"^([A-Z]{1,3})([1-9]\d{0,6})$")
#: Cells of a sheet that get a comment (all of them are filled).
MAX_COMMENTS = 10_000


@dataclass(frozen=True)
class Mark:
    """One problem (``level="error"``) or warning at a cell of a sheet."""

    sheet: str
    cell: str  # A1 reference; anything else (such as ``1:1``) is listed but marks no cell
    message: str
    column: str | None = None
    value: Any = None
    level: str = "error"

    @property
    def position(self) -> tuple[int, int] | None:
        """(row, column index) of the cell, or None when the reference is not a single cell."""
        found = _REF.match(self.cell or "")
        return (int(found.group(2)), column_index(found.group(1))) if found else None


#: A sheet's marks in (row, column) order, as often as asked: ``cells(sheet name)``.
Cells = Callable[[str], Iterable[Mark]]


@dataclass
class _Sheet:
    name: str
    part: str
    marked: bool = False
    marks: list[Mark] = field(default_factory=list)  # the ones that get a comment
    has_comments: bool = False
    comments_part: str = ""
    vml_part: str = ""


def mark_up(path: str | Path, marks: Sequence[Mark], unlisted: int = 0, compress: Any = None,
            sheet_title: str = "Problems", cells: Cells | None = None, marked: Iterable[str] | None = None,
            groups: Sequence[dict[str, Any]] = ()) -> Iterator[bytes]:
    """The workbook at ``path`` with its problem cells filled and commented, plus a sheet listing ``marks``
    (``unlisted``: problems counted but not listed) under a summary of ``groups`` (``{count, kind, column, cells,
    summary, advice}``), as zip chunks. The cells marked are ``cells(sheet)`` for each sheet in ``marked`` when
    given (any number, sorted by row and column), else ``marks``. ``compress``: a deflate factory (the writer's
    default if None)."""
    if cells is None:
        cells, marked = _in_memory(marks)
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise NotAWorkbook("the kept upload is not a ZIP archive") from exc
    with archive:
        book = _Book(archive, marks, cells, set(marked or ()))
        now = datetime.now().replace(microsecond=0)
        yield from zip_stream(book.members(sheet_title, unlisted, groups), modified_at=now,
                              compress=compress or deflater())


def _in_memory(marks: Sequence[Mark]) -> tuple[Cells, set[str]]:
    by_sheet: dict[str, list[Mark]] = {}
    for mark in marks:
        if mark.position:
            by_sheet.setdefault(mark.sheet, []).append(mark)
    for found in by_sheet.values():
        found.sort(key=lambda m: m.position)  # type: ignore[arg-type,return-value]
    return (lambda sheet: by_sheet.get(sheet, [])), set(by_sheet)


def _commented(marks: Iterable[Mark], limit: int = MAX_COMMENTS) -> list[Mark]:
    """The marks of the first ``limit`` cells (every mark of each)."""
    found: list[Mark] = []
    cells: set[str] = set()
    for mark in marks:
        if mark.cell not in cells:
            if len(cells) == limit:
                break
            cells.add(mark.cell)
        found.append(mark)
    return found


class _Book:
    """What is known of the workbook before streaming: its sheets, styles, and the new parts' names."""

    def __init__(self, archive: zipfile.ZipFile, marks: Sequence[Mark], cells: Cells, marked: set[str]):
        self.archive, self.cells = archive, cells
        self.names = set(archive.namelist())
        self.workbook_part = "xl/workbook.xml"
        for kind, target, _ in self._rels("_rels/.rels", ""):
            if kind.endswith("/officeDocument"):
                self.workbook_part = target
        if self.workbook_part not in self.names:
            raise NotAWorkbook("the kept upload has no workbook part")
        self.base = posixpath.dirname(self.workbook_part)
        self.workbook_rels = _rels_path(self.workbook_part)
        rels = {rid: (kind, target) for kind, target, rid in self._rels(self.workbook_rels, self.base)}
        self.styles_part = next((t for k, t in rels.values() if k.endswith("/styles") and t in self.names), None)
        workbook = self._text(self.workbook_part)
        self.sheets: dict[str, _Sheet] = {}
        for attrs in re.findall(r"<(?:\w+:)?sheet\b([^>]*?)/?>", workbook):
            name = _attr(attrs, "name")
            rid = re.search(r'\b\w+:id="([^"]*)"', attrs)
            if name is not None and rid and rid.group(1) in rels and rels[rid.group(1)][1] in self.names:
                self.sheets[_unescape(name)] = _Sheet(_unescape(name), rels[rid.group(1)][1])
        self.listed = list(marks)
        for name in marked:
            if name in self.sheets:
                self.sheets[name].marked = True
        self.styles = _Styles(self._text(self.styles_part)) if self.styles_part else None
        self._name_new_parts()

    def _text(self, part: str) -> str:
        data = self.archive.read(part)
        if re.search(rb"<!DOCTYPE|<!ENTITY", data[:4096], re.IGNORECASE):
            raise BadWorkbook(f"part {part} declares a DTD")
        return data.decode("utf-8")

    def _rels(self, part: str, base: str) -> list[tuple[str, str, str]]:
        if part not in self.names:
            return []
        found = []
        for attrs in re.findall(r"<(?:\w+:)?Relationship\b([^>]*?)/?>", self._text(part)):
            target = _unescape(_attr(attrs, "Target") or "")
            resolved = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(base, target))
            found.append((_attr(attrs, "Type") or "", resolved, _attr(attrs, "Id") or ""))
        return found

    def _unused(self, pattern: str) -> str:
        n = 1
        while pattern.format(n) in self.names:
            n += 1
        self.names.add(pattern.format(n))
        return pattern.format(n)

    def _name_new_parts(self) -> None:
        for sheet in self.sheets.values():
            if not sheet.marked:
                continue
            related = self._rels(_rels_path(sheet.part), posixpath.dirname(sheet.part))
            sheet.has_comments = any(k.endswith(("/comments", "/vmlDrawing")) for k, _, _ in related)
            if not sheet.has_comments:
                sheet.marks = _commented(self.cells(sheet.name))
                sheet.comments_part = self._unused(f"{self.base}/comments{{}}.xml")
                sheet.vml_part = self._unused(f"{self.base}/drawings/vmlDrawing{{}}.vml")
        self.problems_part = self._unused(f"{self.base}/worksheets/sheet{{}}.xml")

    def members(self, title: str, unlisted: int, groups: Sequence[dict[str, Any]] = ()
                ) -> Iterator[tuple[str, Iterable[bytes]]]:
        changed = {self.workbook_part, self.workbook_rels, "[Content_Types].xml", *(
            [self.styles_part] if self.styles_part else [])}
        commented = [s for s in self.sheets.values() if s.marks and not s.has_comments]
        changed |= {_rels_path(s.part) for s in commented}
        marked = {s.part: s for s in self.sheets.values() if s.marked}
        for info in self.archive.infolist():
            name = info.filename
            if name in changed:
                continue
            yield name, self._marked_sheet(marked[name]) if name in marked else self._copy(name)
        for sheet in commented:
            yield sheet.comments_part, _comments(sheet.marks)
            yield sheet.vml_part, _vml(sheet.marks, 50 + commented.index(sheet) * _VML_BLOCKS)
            yield _rels_path(sheet.part), [self._sheet_rels(sheet).encode()]
        title = self._title(title)
        yield self.problems_part, _problems_sheet(self.listed, unlisted, set(self.sheets), groups)
        if self.styles_part and self.styles:
            yield self.styles_part, [self.styles.text().encode()]
        rid = self._workbook_rels_id()
        yield self.workbook_part, [self._workbook(title, rid).encode()]
        yield self.workbook_rels, [self._add_workbook_rel(rid).encode()]
        yield "[Content_Types].xml", [self._content_types(commented).encode()]

    def _copy(self, name: str) -> Iterator[bytes]:
        with self.archive.open(name) as stream:
            while chunk := stream.read(1 << 16):
                yield chunk

    def _marked_sheet(self, sheet: _Sheet) -> Iterator[bytes]:
        drawing = f"rId{_SHEET_RID}" if sheet.marks and not sheet.has_comments else None
        yield from _rewrite_sheet(_blocks(self.archive, sheet.part), _marked_rows(self.cells(sheet.name)), self.styles,
                                  drawing)

    def _sheet_rels(self, sheet: _Sheet) -> str:
        part = _rels_path(sheet.part)
        here = posixpath.dirname(sheet.part)
        added = (f'<Relationship Id="rId{_SHEET_RID}" Type="{_REL}/vmlDrawing" '
                 f'Target={quoteattr(posixpath.relpath(sheet.vml_part, here))}/>'
                 f'<Relationship Id="rId{_SHEET_RID + 1}" Type="{_REL}/comments" '
                 f'Target={quoteattr(posixpath.relpath(sheet.comments_part, here))}/>')
        if part in self.names and part in self.archive.namelist():
            return _insert_before_close(self._text(part), "Relationships", added)
        return XML_DECL + f'<Relationships xmlns="{NS_PKG_REL}">{added}</Relationships>'

    def _title(self, wanted: str) -> str:
        taken = {name.lower() for name in self.sheets}
        title, n = wanted, 1
        while title.lower() in taken:
            n += 1
            title = f"{wanted} ({n})"
        return title

    def _workbook_rels_id(self) -> str:
        ids = {rid for _, _, rid in self._rels(self.workbook_rels, self.base)}
        n = len(ids) + 1
        while f"rId{n}" in ids:
            n += 1
        return f"rId{n}"

    def _workbook(self, title: str, rid: str) -> str:
        text = self._text(self.workbook_part)
        prefix = re.search(r'xmlns:(\w+)="' + re.escape(NS_REL) + '"', text)
        ns = "" if prefix else f' xmlns:r="{NS_REL}"'
        r = prefix.group(1) if prefix else "r"
        element = re.search(r"<(\w+:)?sheets\b", text)
        tag = f"{element.group(1) or ''}sheet" if element else "sheet"
        ids = [int(i) for i in re.findall(r'\bsheetId="(\d+)"', text)]
        entry = f'<{tag} name={quoteattr(title)} sheetId="{max(ids, default=0) + 1}"{ns} {r}:id="{rid}"/>'
        return _insert_before_close(text, "sheets", entry)

    def _add_workbook_rel(self, rid: str) -> str:
        target = posixpath.relpath(self.problems_part, self.base)
        entry = f'<Relationship Id="{rid}" Type="{_REL}/worksheet" Target={quoteattr(target)}/>'
        return _insert_before_close(self._text(self.workbook_rels), "Relationships", entry)

    def _content_types(self, commented: list[_Sheet]) -> str:
        if "[Content_Types].xml" in self.archive.namelist():
            text = self._text("[Content_Types].xml")
        else:  # a package without one (readers that go by relationships accept it): the parts it needs
            sheets = "".join(f'<Override PartName="/{s.part}" ContentType="{_CT}.spreadsheetml.worksheet+xml"/>'
                             for s in self.sheets.values())
            text = (XML_DECL + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                    f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                    '<Default Extension="xml" ContentType="application/xml"/>'
                    f'<Override PartName="/{self.workbook_part}" ContentType="{_CT}.spreadsheetml.sheet.main+xml"/>'
                    f"{sheets}</Types>")
        added = ""
        if commented and not re.search(r'<(?:\w+:)?Default\b[^>]*Extension="vml"', text, re.IGNORECASE):
            added += f'<Default Extension="vml" ContentType="{_CT}.vmlDrawing"/>'
        for sheet in commented:
            added += f'<Override PartName="/{sheet.comments_part}" ContentType="{_CT}.spreadsheetml.comments+xml"/>'
        added += f'<Override PartName="/{self.problems_part}" ContentType="{_CT}.spreadsheetml.worksheet+xml"/>'
        return _insert_before_close(text, "Types", added)


#: VML shape-id blocks (1,024 ids each) per commented sheet: room for :data:`MAX_COMMENTS` shapes.
_VML_BLOCKS = -(-MAX_COMMENTS // 1024)
_SHEET_RID = 9001  # relationship ids added to a sheet's part: rId9001 (drawing) and rId9002 (comments)


def _rels_path(part: str) -> str:
    return posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")


def _attr(attrs: str, name: str) -> str | None:
    found = re.search(r'(?:^|\s)' + name + r'="([^"]*)"', attrs)
    return found.group(1) if found else None


def _unescape(text: str) -> str:
    return (text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'")
            .replace("&amp;", "&"))


def _insert_before_close(text: str, element: str, added: str) -> str:
    """``added`` just before the closing tag of ``element`` (with any prefix); a self-closed one is opened."""
    close = list(re.finditer(r"</(\w+:)?" + element + r"\s*>", text))
    if close:
        at = close[-1].start()
        return text[:at] + added + text[at:]
    empty = re.search(r"<((?:\w+:)?" + element + r")\b([^>]*?)/>", text)
    if empty is None:
        raise BadWorkbook(f"the workbook has no <{element}> where one is needed")
    return text[:empty.start()] + f"<{empty.group(1)}{empty.group(2)}>{added}</{empty.group(1)}>" + text[empty.end():]


class _Styles:
    """The styles part, with a fill per mark level and, per original cell style, a copy of it with that fill."""

    def __init__(self, text: str):
        self.original = text
        xfs = re.search(r"<((?:\w+:)?)cellXfs\b[^>]*>(.*?)</(?:\w+:)?cellXfs>", text, re.S)
        fills = re.search(r"<(?:\w+:)?fills\b[^>]*>(.*?)</(?:\w+:)?fills>", text, re.S)
        self.prefix = xfs.group(1) if xfs else ""
        self.xfs = re.findall(r"<(?:\w+:)?xf\b[^>]*?(?:/>|>.*?</(?:\w+:)?xf>)", xfs.group(2), re.S) if xfs else []
        self.fill_count = len(re.findall(r"<(?:\w+:)?fill\b", fills.group(1))) if fills else 0
        self.usable = bool(xfs and fills and self.xfs)
        self.added: dict[tuple[int, str], int] = {}

    def marked(self, style: int, level: str) -> int | None:
        """The index of ``style`` with ``level``'s fill (made on first use); None when styles cannot be changed."""
        if not self.usable:
            return None
        key = (style if style < len(self.xfs) else 0, level)
        if key not in self.added:
            self.added[key] = len(self.xfs) + len(self.added)
        return self.added[key]

    def text(self) -> str:
        if not self.added:
            return self.original
        p = self.prefix
        fills = "".join(f'<{p}fill><{p}patternFill patternType="solid"><{p}fgColor rgb="{FILLS[level]}"/>'
                        f'<{p}bgColor indexed="64"/></{p}patternFill></{p}fill>' for level in FILLS)
        levels = list(FILLS)
        copies = "".join(_with_fill(self.xfs[style], self.fill_count + levels.index(level))
                         for (style, level), _ in sorted(self.added.items(), key=lambda kv: kv[1]))
        text = _insert_before_close(self.original, "fills", fills)
        text = re.sub(r'(<(?:\w+:)?fills\b[^>]*?\bcount=")\d+', lambda m: f"{m.group(1)}{self.fill_count + len(FILLS)}",
                      text, count=1)
        text = _insert_before_close(text, "cellXfs", copies)
        return re.sub(r'(<(?:\w+:)?cellXfs\b[^>]*?\bcount=")\d+', lambda m: f"{m.group(1)}{len(self.xfs) + len(self.added)}",
                      text, count=1)


def _with_fill(xf: str, fill: int) -> str:
    head_end = xf.index(">")
    head, rest = xf[:head_end], xf[head_end:]
    head = re.sub(r'\s(?:fillId|applyFill)="[^"]*"', "", head)
    if head.endswith("/"):
        head, rest = head[:-1], "/" + rest
    return f'{head} fillId="{fill}" applyFill="1"{rest}'


def _blocks(archive: zipfile.ZipFile, part: str) -> Iterator[bytes]:
    """``part`` inflated in blocks that end just after a ``</row>`` (any prefix); the last one wherever it ends."""
    pending = b""
    with archive.open(part) as stream:
        while block := stream.read(_BLOCK):
            pending += block
            ends = deque(_ROW_CLOSE.finditer(pending, max(0, len(pending) - len(block) - 64)), maxlen=1)
            if ends:
                cut = ends[0].end()
                yield pending[:cut]
                pending = pending[cut:]
    yield pending


_ROW_CLOSE = re.compile(rb"</(?:\w+:)?row>")


_TAIL = ("legacyDrawingHF", "drawingHF", "picture", "oleObjects", "controls", "webPublishItems", "tableParts", "extLst")


def _marked_rows(marks: Iterable[Mark]) -> Iterator[tuple[int, dict[int, str]]]:
    """Sorted marks -> (row, {column index: level}) per row; a cell with a problem and a warning shows the problem."""
    placed = ((m.position, m.level) for m in marks if m.position)
    for row, found in itertools.groupby(placed, key=lambda item: item[0][0]):
        cells: dict[int, str] = {}
        for (_, col), level in found:
            if cells.get(col) != "error":
                cells[col] = level
        yield row, cells


def _rewrite_sheet(blocks: Iterable[bytes], marked: Iterable[tuple[int, dict[int, str]]], styles: _Styles | None,
                   drawing: str | None) -> Iterator[bytes]:
    """The sheet's XML with the marked cells restyled (cells and rows that are not there are added), and a
    ``<legacyDrawing>`` for the comments when ``drawing`` names its relationship. ``marked``: (row, cells) in row
    order, consumed as the rows stream by."""
    rows = iter(marked)
    pending = next(rows, None)
    prefix = b""
    relationships: bytes | None = None
    first = True
    row_number = 0
    for block in blocks:
        if first:
            root = re.search(rb"<(\w+:)?worksheet\b[^>]*>", block)
            prefix = root.group(1) or b"" if root else b""
            declared = re.search(rb'xmlns:(\w+)="' + re.escape(NS_REL.encode()) + rb'"', root.group(0)) if root else None
            relationships = declared.group(1) if declared else None  # the root's prefix for r:id, if it has one
            first = False
        row_tag = re.compile(rb"<" + re.escape(prefix) + rb"row\b([^>]*?)(/?)>")
        out: list[bytes] = []
        at = 0
        matches = list(row_tag.finditer(block))
        for index, found in enumerate(matches):
            number = _row_number(found.group(1), row_number)
            row_number = number
            while pending and pending[0] < number:  # marked rows that are not in the sheet: add them
                out.append(block[at:found.start()])
                at = found.start()
                out.append(_new_row(prefix, pending[0], pending[1], styles))
                pending = next(rows, None)
            if pending and pending[0] == number:
                cells = pending[1]
                pending = next(rows, None)
                end = matches[index + 1].start() if index + 1 < len(matches) else len(block)
                closed = bool(found.group(2))  # <row .../>: no cells
                close = found.end() if closed else block.find(b"</" + prefix + b"row>", found.end(), end)
                if close < 0:
                    continue  # not the shape blocks have (a row cut in two): left as it is
                out.append(block[at:found.start()])
                out.append(_marked_row(prefix, found, block[found.end():close], number, cells, styles))
                at = close if closed else close + len(prefix) + 6
        tail = block[at:]
        sheet_end = re.search(rb"</" + re.escape(prefix) + rb"sheetData>|<" + re.escape(prefix) + rb"sheetData\s*/>", tail)
        if sheet_end:
            added = b"".join(_new_row(prefix, n, cells, styles)
                             for n, cells in itertools.chain([pending] if pending else [], rows))
            pending = None
            if tail[sheet_end.start():sheet_end.end()].endswith(b"/>"):
                tail = tail[:sheet_end.start()] + b"<" + prefix + b"sheetData>" + added + b"</" + prefix + b"sheetData>" \
                    + tail[sheet_end.end():]
            else:
                tail = tail[:sheet_end.start()] + added + tail[sheet_end.start():]
            if drawing:
                tail = _add_drawing(tail, prefix, drawing, relationships)
        out.append(tail)
        yield b"".join(out)


def _row_number(attrs: bytes, previous: int) -> int:
    found = re.search(rb'\br="(\d+)"', attrs)
    return int(found.group(1)) if found else previous + 1


def _style_of(level: str, original: int, styles: _Styles | None) -> bytes:
    index = styles.marked(original, level) if styles else None
    return b"" if index is None else b' s="%d"' % index


def _new_row(prefix: bytes, number: int, cells: dict[int, str], styles: _Styles | None) -> bytes:
    body = b"".join(b'<%sc r="%s%d"%s/>' % (prefix, column_letter(col).encode(), number, _style_of(level, 0, styles))
                    for col, level in sorted(cells.items()))
    return b'<%srow r="%d">%s</%srow>' % (prefix, number, body, prefix)


_CELL = re.compile(rb'<(\w+:)?c\b([^>]*?)(/?)>')


def _marked_row(prefix: bytes, row: re.Match[bytes], content: bytes, number: int, cells: dict[int, str],
                styles: _Styles | None) -> bytes:
    """A row whose marked cells get their fill; marked cells the row does not have are added in column order."""
    wanted = dict(cells)
    out: list[bytes] = []
    at = 0
    col = -1
    for cell in _CELL.finditer(content):
        ref = re.search(rb'\br="([A-Z]+)\d*"', cell.group(2))
        # A cell without a reference is the one after the previous cell (our writer leaves them out but after a gap).
        col = column_index(ref.group(1).decode()) if ref else col + 1
        for missing in sorted(c for c in wanted if c < col):
            out.append(content[at:cell.start()])
            at = cell.start()
            out.append(b'<%sc r="%s%d"%s/>' % (prefix, column_letter(missing).encode(), number,
                                             _style_of(wanted.pop(missing), 0, styles)))
        if col in wanted:
            style = re.search(rb'\ss="(\d+)"', cell.group(2))
            attrs = re.sub(rb'\ss="\d+"', b"", cell.group(2)) + _style_of(wanted.pop(col), int(style.group(1)) if style else 0,
                                                                       styles)
            out.append(content[at:cell.start()])
            out.append(b"<%sc%s%s>" % (cell.group(1) or b"", attrs, cell.group(3)))
            at = cell.end()
    out.append(content[at:])
    out.extend(b'<%sc r="%s%d"%s/>' % (prefix, column_letter(c).encode(), number, _style_of(level, 0, styles))
               for c, level in sorted(wanted.items()))
    attrs = re.sub(rb'\sspans="[^"]*"', b"", row.group(1))  # the cells may now span more columns
    return b"<%srow%s>%s</%srow>" % (prefix, attrs, b"".join(out), prefix)


def _add_drawing(tail: bytes, prefix: bytes, rid: str, relationships: bytes | None) -> bytes:
    """``<legacyDrawing>`` where the schema puts it: before the first of the elements that follow it. Its ``id``
    takes the root's prefix for the relationships namespace, or declares one of its own."""
    if relationships:
        element = b'<%slegacyDrawing %s:id="%s"/>' % (prefix, relationships, rid.encode())
    else:
        element = b'<%slegacyDrawing xmlns:r="%s" r:id="%s"/>' % (prefix, NS_REL.encode(), rid.encode())
    names = b"|".join(n.encode() for n in _TAIL)
    after = re.search(rb"<" + re.escape(prefix) + rb"(?:" + names + rb")\b|</" + re.escape(prefix) + rb"worksheet>", tail)
    if after is None:
        return tail
    return tail[:after.start()] + element + tail[after.start():]


def _comments(marks: Sequence[Mark]) -> Iterator[bytes]:
    """The comments part, a comment at a time (a cell's messages in one)."""
    yield (XML_DECL + f'<comments xmlns="{NS_MAIN}"><authors><author>sheetstream</author></authors>'
           "<commentList>").encode()
    for ref, found in itertools.groupby(marks, key=lambda m: m.cell):
        text = "\n".join(("Warning: " if m.level == "warning" else "") + m.message for m in found)
        yield (f'<comment ref="{ref}" authorId="0"><text><t xml:space="preserve">'
               f"{escape(escape_text(text))}</t></text></comment>").encode()
    yield b"</commentList></comments>"


def _vml(marks: Sequence[Mark], block: int) -> Iterator[bytes]:
    """The VML drawing of the comments' boxes, a shape at a time (one per cell)."""
    cells = [next(found) for _, found in itertools.groupby(marks, key=lambda m: m.cell)]
    yield ('<xml xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" '
           'xmlns:x="urn:schemas-microsoft-com:office:excel">'
           f'<o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="{_id_blocks(block, len(cells))}"/>'
           '</o:shapelayout>'
           '<v:shapetype id="_x0000_t202" coordsize="21600,21600" o:spt="202" path="m,l,21600r21600,l21600,xe">'
           '<v:stroke joinstyle="miter"/><v:path gradientshapeok="t" o:connecttype="rect"/></v:shapetype>').encode()
    for n, mark in enumerate(cells, 1):
        row, col = mark.position  # type: ignore[misc]
        yield (
            f'<v:shape id="_x0000_s{block * 1024 + n}" type="#_x0000_t202" '
            'style="position:absolute;margin-left:59.25pt;margin-top:1.5pt;width:216pt;height:72pt;z-index:1;'
            'visibility:hidden" fillcolor="#ffffe1" o:insetmode="auto"><v:fill color2="#ffffe1"/>'
            '<v:shadow on="t" color="black" obscured="t"/><v:path o:connecttype="none"/>'
            '<v:textbox style="mso-direction-alt:auto"><div style="text-align:left"></div></v:textbox>'
            '<x:ClientData ObjectType="Note"><x:MoveWithCells/><x:SizeWithCells/>'
            f"<x:Anchor>{col + 1}, 15, {max(row - 2, 0)}, 2, {col + 4}, 15, {max(row - 2, 0) + 5}, 16</x:Anchor>"
            f"<x:AutoFill>False</x:AutoFill><x:Row>{row - 1}</x:Row><x:Column>{col}</x:Column></x:ClientData>"
            "</v:shape>"
        ).encode()
    yield b"</xml>"


def _id_blocks(first: int, shapes: int) -> str:
    """The shape-id blocks ``shapes`` shapes numbered from ``first * 1024 + 1`` use, as VML's idmap lists them."""
    return ",".join(str(b) for b in range(first, first + shapes // 1024 + 1))


def _text_cell(ref: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<c r="{ref}"><v>{value!r}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(escape_text(str(value)))}</t></is></c>'


def _sheet_ref(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def _problems_sheet(marks: Sequence[Mark], unlisted: int, sheets: set[str],
                    groups: Sequence[dict[str, Any]] = ()) -> Iterator[bytes]:
    """The ``Problems`` sheet: a summary, one row per group of problems (count, first cells, what to do), then
    one row per listed mark, its cell a link to the cell (when the sheet has it)."""
    yield (XML_DECL + f'<worksheet xmlns="{NS_MAIN}"><cols><col min="1" max="4" width="12" customWidth="1"/>'
           '<col min="5" max="5" width="20" customWidth="1"/><col min="6" max="7" width="70" customWidth="1"/></cols>'
           '<sheetData>').encode()
    n = 0

    def row(values: Sequence[Any]) -> bytes:
        return (f'<row r="{n}">' + "".join(_text_cell(f"{column_letter(i)}{n}", v) for i, v in enumerate(values))
                + "</row>").encode()

    if groups:
        n += 1
        yield row(["count", "kind", "column", "first cells", "", "problem", "what to do"])
        for group in groups:
            n += 1
            first = ", ".join(c["cell"] if isinstance(c, dict) else str(c) for c in group.get("cells", []))
            yield row([group.get("count"), group.get("kind"), group.get("column"), first, "", group.get("summary"),
                       group.get("advice")])
        n += 1  # a blank row between the summary and the list
    n += 1
    yield row(["level", "sheet", "cell", "column", "value", "message"])
    links = []
    for mark in marks:
        n += 1
        yield row([mark.level, mark.sheet, mark.cell, mark.column, mark.value, mark.message])
        if mark.position and mark.sheet in sheets:
            links.append(f'<hyperlink ref="C{n}" location={quoteattr(f"{_sheet_ref(mark.sheet)}!{mark.cell}")} '
                         f"display={quoteattr(mark.cell)}/>")
    if unlisted:
        n += 1
        yield (f'<row r="{n}">' + _text_cell(f"F{n}", f"... and {unlisted:,} more problem(s), not listed here; every "
                                            "problem cell is marked in its sheet") + "</row>").encode()
    yield ("</sheetData>" + (f"<hyperlinks>{''.join(links)}</hyperlinks>" if links else "") + "</worksheet>").encode()
