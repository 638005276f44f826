"""Which encoding a CSV file is in, told from its first bytes and never guessed from its text.

UTF-8 (with or without a byte order mark) and UTF-16 with a byte order mark are read as they are; any other
encoding only when the caller names it (``encoding="cp1252"`` for the files of Windows programs). A file that
is not UTF-8 and was not named is still read, as UTF-8: each field with bytes UTF-8 cannot decode becomes an
:class:`~sheetstream.formats.values.Unreadable` value that says which bytes, where, and (when the bytes read well
as cp1252) to import it again with ``encoding=cp1252``.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

from .errors import NotCsv

UTF8 = "utf-8"
_BOMS = [  # longest first: the UTF-32 LE mark begins with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
]
_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls, and encrypted .xlsx
# Undecodable bytes become U+DC80..U+DCFF (Python's "surrogateescape" form) so that a field with them can be told
# and its bytes recovered; the UTF-8 encoder turns them back into those bytes when a file is transcoded.
ESCAPED = re.compile("[\udc80-\udcff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _escape(error: UnicodeError) -> tuple[str, int]:
    # Like "surrogateescape", which cannot escape bytes under 0x80 (UTF-16's odd byte, half a surrogate pair).
    if not isinstance(error, UnicodeDecodeError):
        raise error
    bad = error.object[error.start:error.end]
    return "".join(chr(0xDC00 | byte | 0x80) for byte in bad), error.end


ESCAPE = "sheetstream.csv.escape"
codecs.register_error(ESCAPE, _escape)


def from_bom(head: bytes) -> tuple[str | None, int]:
    """(the encoding named by the byte order mark at the start of ``head``, the mark's length), or (None, 0)."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    return None, 0


def choose(head: bytes, given: str | None) -> tuple[str, int]:
    """(the encoding to read with, as :attr:`CsvBook.encoding` shows it; the bytes of the byte order mark to skip).
    Decode what follows the mark with :func:`codec`."""
    if head.startswith((_ZIP, _OLE)):
        raise NotCsv("this is not a CSV file but a ZIP archive or an Office document (an .xlsx or .xls workbook?); "
                     "upload it as a workbook, or save it as CSV first", line=1)
    found, skip = from_bom(head)
    if found == "utf-32":
        raise NotCsv("the file is in UTF-32, which is not read; save it as UTF-8 (\"CSV UTF-8\")", line=1)
    if given is None:
        # UTF-16 text is half NUL bytes, binaries are full of them: refused as a whole. A stray NUL in a text
        # file is refused by the reader at its line.
        if found is None and b"\x00" in head and (head.count(b"\x00") > len(head) // 10
                                                 or not _printable(head.decode("latin-1"))):
            raise NotCsv("the file holds NUL bytes: it is a binary file, or UTF-16 without a byte order mark; "
                         "save it as UTF-8 (\"CSV UTF-8\") text", line=1)
        return found or UTF8, skip
    try:
        name = codecs.lookup(given).name
    except LookupError:
        raise NotCsv(f"unknown encoding {given!r}; use utf-8, utf-16 or cp1252", line=1)
    if name in ("utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"):
        raise NotCsv(f"encoding {given!r} is not read: UTF-16 files are read by their byte order mark "
                     "(encoding=utf-16), others should be saved as UTF-8", line=1)
    if found is not None:
        # A byte order mark names its encoding; one that contradicts the caller is a mistake worth saying.
        same = {"utf-8-sig": ("utf-8", "utf-8-sig"), "utf-16": ("utf-16",)}[found]
        if name not in same:
            raise NotCsv(f"the file begins with a {found.replace('-sig', '').upper()} byte order mark, but "
                         f"encoding={given} was given; leave encoding out to read it as {found.replace('-sig', '')}",
                         line=1)
        return found, skip
    if name == "utf-16":
        raise NotCsv("encoding=utf-16 was given but the file has no UTF-16 byte order mark; save it as UTF-8",
                     line=1)
    return name, 0


def codec(encoding: str, head: bytes) -> str:
    """The codec that decodes the bytes after the byte order mark (``utf-16`` wants the mark; they have none)."""
    if encoding == "utf-16":
        return "utf-16-le" if head.startswith(codecs.BOM_UTF16_LE) else "utf-16-be"
    return "utf-8" if encoding == "utf-8-sig" else encoding


def as_utf8(chunks: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    """The bytes of ``chunks`` (in ``encoding``) as UTF-8, with undecodable bytes escaped (see :data:`ESCAPED`)."""
    decoder = codecs.getincrementaldecoder(encoding)(ESCAPE)
    for chunk in chunks:
        yield decoder.decode(chunk).encode(UTF8, "surrogateescape")
    yield decoder.decode(b"", True).encode(UTF8, "surrogateescape")


def unreadable_message(field: str, encoding: str, line: int, column: int) -> str:
    """What a person should know of a field with undecodable bytes (escaped as :data:`ESCAPED`)."""
    where = f"line {line}, column {column} ({_letters(column)}{line})"
    raw = field.encode(UTF8, "surrogateescape")
    bad = bytes(ord(c) & 0xFF for c in ESCAPED.findall(field))
    shown = " ".join(f"{b:02X}" for b in bad[:8]) + (" ..." if len(bad) > 8 else "")
    if encoding not in (UTF8, "utf-8-sig"):
        return f"{where}: bytes that are not valid {encoding} ({shown}); the file is damaged or in another encoding"
    try:
        legacy = raw.decode("cp1252")
    except UnicodeDecodeError:
        legacy = None
    if legacy is not None and not _CONTROL.search(legacy):
        return (f"{where}: bytes that are not valid UTF-8 ({shown}); they read as {legacy[:60]!r} in cp1252 "
                "(Windows-1252): if a Windows program saved the file, import it again with encoding=cp1252, "
                "or save it as \"CSV UTF-8\"")
    return f"{where}: bytes that are not valid UTF-8 ({shown}); save the file as UTF-8 (\"CSV UTF-8\")"


def _letters(column: int) -> str:
    letters = ""
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def looks_like_csv(head: bytes) -> bool:
    """Whether the first bytes of a file look like text: UTF-16 with a byte order mark, or no NUL byte and UTF-8
    (a sequence cut at the end is fine) or at least 95% printable bytes. Empty is not text (there is nothing to
    read). Used to tell CSV from workbooks and other binaries."""
    if not head or head.startswith((_ZIP, _OLE)):
        return False
    found, skip = from_bom(head)
    if found == "utf-32":
        return False
    if found == "utf-16":
        body = head[skip:]
        text = body[: len(body) // 2 * 2].decode("utf-16-le" if head.startswith(codecs.BOM_UTF16_LE) else "utf-16-be",
                                                 "replace")
        return _printable(text)
    if b"\x00" in head:
        return False
    try:
        text = codecs.getincrementaldecoder(UTF8)().decode(head[skip:])
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    return _printable(text)


def _printable(text: str) -> bool:
    """At most 5% control characters (other than tab, CR, LF), and one more (a short text with a stray one)."""
    return len(_CONTROL.findall(text)) <= len(text) // 20 + 1
