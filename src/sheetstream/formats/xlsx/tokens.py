"""The tokenizer: a worksheet or shared strings part in blocks of whole elements, bounded in memory and linear in
time, and the text of XML decoded as Excel reads it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .cells import MAX_CELL_CHARS, excel_length, unescape_text
from .errors import BadCell, BadWorkbook, UnsafeXml, WorkbookTooLarge

if TYPE_CHECKING:
    from .reader import Workbook


class _CellProblem(ValueError):
    """What is wrong with the value of the cell being read; the sheet reader adds the cell's name."""


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


_PREFIX = re.compile(rb"<(/?)[A-Za-z_][\w.-]*:(?!space)")
_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
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


def _refuse_dtd(part: str, head: bytes) -> None:
    if _DTD.search(head):
        raise UnsafeXml(f"part {part} declares a DTD; workbooks never need one, and DTDs enable entity attacks")
