"""The container: the zip on disk, checked before it is opened (other formats told apart, its directory's size),
its parts inflated with every byte counted (zip bombs), and the small XML parts parsed as they stream with any
DTD refused, keeping only what is asked of them."""

from __future__ import annotations

import posixpath
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import unquote
from xml.parsers import expat

from .errors import BadWorkbook, NotAWorkbook, PasswordProtected, UnsafeXml, WorkbookTooLarge

if TYPE_CHECKING:
    from .reader import ReadLimits

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


#: What one element kept from a small part becomes (a few strings), by the path of names from the root below it
#: (``sheets/sheet``; ``*``: any child of the root), with the most that may be kept and what is said past it.
Wanted = dict[str, tuple[int, str, Callable[[dict[str, str]], Any]]]

#: A workbook's relationships are one per sheet (4,096 at most, workbook.MAX_SHEETS) and a few more.
MAX_RELATIONSHIPS = 4 * 4_096 + 1_024


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
