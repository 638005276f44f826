"""Small workbooks built part by part for the reader's tests: any XML, any part names, any zip quirk."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sheetstream.xlsx import ReadLimits, open_workbook

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
STRICT_MAIN = "http://purl.oclc.org/ooxml/spreadsheetml/main"
STRICT_REL = "http://purl.oclc.org/ooxml/officeDocument/relationships"


def sheet(rows: str, ns: str = MAIN) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{ns}"><sheetData>{rows}</sheetData></worksheet>'


def styles(*formats: str | int) -> str:
    """A styles part whose cell style ``i + 1`` shows ``formats[i]`` (a custom code or a built-in id)."""
    custom = {164 + i: f for i, f in enumerate(formats) if isinstance(f, str)}
    ids = [164 + i if isinstance(f, str) else f for i, f in enumerate(formats)]
    fmts = "".join(f'<numFmt numFmtId="{i}" formatCode="{_attr(code)}"/>' for i, code in custom.items())
    xfs = '<xf numFmtId="0"/>' + "".join(f'<xf numFmtId="{i}"/>' for i in ids)
    return f'<styleSheet xmlns="{MAIN}"><numFmts>{fmts}</numFmts><cellXfs>{xfs}</cellXfs></styleSheet>'


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def parts(sheet_xml: str | bytes, *, shared: str | bytes | None = None, style: str | None = None,
          extra_sheets: Iterable[tuple[str, str, str, str | bytes]] = (), main: str = MAIN, rel: str = REL,
          names: dict[str, str] | None = None) -> dict[str, str | bytes]:
    """The parts of a one-sheet workbook (sheet "Data"); ``extra_sheets`` adds (name, relationship type suffix,
    target, xml); ``names`` renames zip entries (the relationships keep the standard names)."""
    rels = [f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>']
    found: dict[str, str | bytes] = {"xl/worksheets/sheet1.xml": sheet_xml}
    entries = ['<sheet name="Data" sheetId="1" r:id="rId1"/>']
    if shared is not None:
        rels.append(f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>')
        found["xl/sharedStrings.xml"] = shared
    if style is not None:
        rels.append(f'<Relationship Id="rId3" Type="{rel}/styles" Target="styles.xml"/>')
        found["xl/styles.xml"] = style
    for i, (name, kind, target, xml) in enumerate(extra_sheets, 10):
        kind_uri = kind if "://" in kind else f"{rel}/{kind}"
        rels.append(f'<Relationship Id="rId{i}" Type="{kind_uri}" Target="{target}"/>')
        entries.append(f'<sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>')
        found["xl/" + target] = xml
    found["[Content_Types].xml"] = '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
    found["_rels/.rels"] = (f'<Relationships xmlns="{PKG}"><Relationship Id="rId1" Type="{rel}/officeDocument" '
                            'Target="xl/workbook.xml"/></Relationships>')
    found["xl/workbook.xml"] = (f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>{"".join(entries)}</sheets></workbook>')
    found["xl/_rels/workbook.xml.rels"] = f'<Relationships xmlns="{PKG}">{"".join(rels)}</Relationships>'
    for old, new in (names or {}).items():
        found[new] = found.pop(old)
    return found


def build(path: Path, contents: dict[str, Any], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip of ``contents``: str or bytes, or an iterable of byte chunks (streamed, for large parts)."""
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in contents.items():
            if isinstance(data, (str, bytes)):
                z.writestr(name, data)
            else:
                with z.open(name, "w", force_zip64=True) as f:
                    for chunk in data:
                        f.write(chunk)
    return path


def patch_central_directory(path: Path, name: str, *, compress_size: int | None = None,
                            file_size: int | None = None) -> None:
    """Make the central directory lie about the sizes of entry ``name``."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_len] == name.encode():
            if compress_size is not None:
                struct.pack_into("<L", data, at + 20, compress_size)
            if file_size is not None:
                struct.pack_into("<L", data, at + 24, file_size)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"no entry {name}")


def read_all(path: Path, limits: ReadLimits = ReadLimits()) -> dict[str, list]:
    with open_workbook(path, limits) as book:
        return {name: list(book.rows(name)) for name in book.sheet_names}


def read(path: Path, sheet: str | None = None, limits: ReadLimits = ReadLimits()) -> list:
    with open_workbook(path, limits) as book:
        return list(book.rows(sheet))


def measured(func, *args, **kwargs) -> tuple[Any, float, int]:
    """(result or the exception raised, seconds, peak bytes allocated by Python meanwhile)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result: Any = func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - returned to the test, which checks its type
        result = exc
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, elapsed, peak
