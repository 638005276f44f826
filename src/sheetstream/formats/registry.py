"""The formats sheetstream reads and writes, by name: one :class:`Format` per module (tablib's registry, with
streams instead of whole files). The pipeline, routes, page and CLI take a format from here; a new format is a
module in ``formats/`` and a line in :data:`FORMATS`.

Telling an upload's format: the bytes decide (a ZIP local header is a workbook, text is CSV), and what the client
declared (a file name's extension, a content type) must agree with them, so that a mistake is refused with a
message instead of read as the wrong thing.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import csv, xlsx
from .errors import FormatError
from .xlsx.errors import NotAWorkbook

#: Media types any format may be sent as (a client that does not say).
UNDECLARED = ("", "application/octet-stream")


class UnknownFormat(FormatError, code="unsupported_format"):
    """The file is in no format this server reads, or not in the one it was declared as."""


@dataclass(frozen=True)
class Format:
    """One file format: how it is named and recognised, its writer (rows in, byte chunks out) and its reader
    (a file on disk -> a book of sheets of ``(row number, values)``).

    ``open(path, options, limits)`` opens a file with the import's options (``options``: the format's own, from
    ``import_options``; ``limits``: the server's read limits). ``export_options(settings, query)`` turns the server's export settings (duck-typed: ``deflate``,
    ``max_sheet_rows``...) and the request's format options into the writer's keyword arguments, raising
    ``ValueError`` with a message for a bad option; ``import_options(query)`` does the same for the reader."""

    name: str
    extensions: tuple[str, ...]
    media_type: str
    write: Callable[..., Iterator[bytes]]
    open: Callable[..., Any]
    sniff: Callable[[bytes], bool]
    export_options: Callable[[Any, Mapping[str, str]], dict[str, Any]]
    import_options: Callable[[Mapping[str, str]], dict[str, Any]] = lambda query: {}
    media_types: tuple[str, ...] = field(default=())  # other names clients use for it
    described: str = ""  # what it is, for a person: "an .xlsx workbook"

    @property
    def extension(self) -> str:
        return self.extensions[0]

    def accepts(self, media_type: str) -> bool:
        return media_type in (self.media_type, *self.media_types)


def _xlsx_export(settings: Any, query: Mapping[str, str]) -> dict[str, Any]:
    compress = xlsx.adaptive if getattr(settings, "deflate_adaptive", False) else xlsx.deflater
    return {"max_sheet_rows": settings.max_sheet_rows, "long_text": settings.long_text,
            "compress": compress(settings.deflate, settings.deflate_level)}


XLSX = Format(
    name="xlsx", extensions=("xlsx",), media_type=xlsx.MEDIA_TYPE, write=xlsx.write_xlsx,
    open=lambda path, options, limits: xlsx.open_workbook(path, limits),
    sniff=lambda head: head.startswith(b"PK\x03\x04"), export_options=_xlsx_export, described="an .xlsx workbook",
)

#: The delimiters a CSV may have, as they are named in a query (a tab is hard to type in one).
DELIMITERS = {",": ",", ";": ";", "tab": "\t", "\t": "\t", "|": "|"}
_YES, _NO = ("1", "true", "yes", "on", "t", "y"), ("0", "false", "no", "off", "f", "n", "")  # as pydantic reads


def _flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    if value is None:
        return default
    if value.lower() in _YES:
        return True
    if value.lower() in _NO:
        return False
    raise ValueError(f"{name} must be true or false (got {value!r})")


def _delimiter(query: Mapping[str, str], name: str = "delimiter") -> str | None:
    value = query.get(name)
    if value is None or value == "":
        return None
    if value not in DELIMITERS:
        raise ValueError(f"{name} must be one of , ; | or tab (got {value!r})")
    return DELIMITERS[value]


def _csv_export(settings: Any, query: Mapping[str, str]) -> dict[str, Any]:
    """``delimiter`` (``,`` ``;`` ``tab``), ``bom=true`` (Excel on Windows reads UTF-8 only with one),
    ``formulas=keep`` (for machine consumers: texts starting with = + - @ are not neutralised)."""
    formulas = query.get("formulas", "neutralise")
    if formulas not in ("neutralise", "keep"):
        raise ValueError(f"formulas must be neutralise or keep (got {formulas!r})")
    return {"delimiter": _delimiter(query) or ",", "bom": _flag(query, "bom", False), "neutralise": formulas != "keep"}


def _csv_import(query: Mapping[str, str]) -> dict[str, Any]:
    """``delimiter`` (else told from the first lines), ``encoding`` (else UTF-8, or UTF-16 by its BOM)."""
    found: dict[str, Any] = {}
    if delimiter := _delimiter(query):
        found["delimiter"] = delimiter
    if encoding := query.get("encoding"):
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {encoding!r}; for legacy single-byte files use cp1252") from None
        found["encoding"] = encoding
    return found


CSV = Format(
    name="csv", extensions=tuple(e.lstrip(".") for e in csv.EXTENSIONS), media_type=csv.MEDIA_TYPE,
    write=lambda rows, header, sheet_name=None, **options: csv.write_csv(rows, header, **options),
    open=lambda path, options, limits: csv.open_csv(path, encoding=options.get("encoding"),
                                                    delimiter=options.get("delimiter"),
                                                    sheet_name=options.get("sheet_name") or "Sheet1"),
    sniff=csv.looks_like_csv, export_options=_csv_export, import_options=_csv_import,
    media_types=("application/csv", "text/plain", "text/tab-separated-values"), described="CSV text",
)

FORMATS: dict[str, Format] = {f.name: f for f in (XLSX, CSV)}


def get(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise UnknownFormat(f"unknown format {name!r}; this server reads and writes: {', '.join(FORMATS)}") from None


def by_extension(filename: str | None) -> Format | None:
    suffix = (filename or "").rpartition(".")[2].lower() if "." in (filename or "") else ""
    return next((f for f in FORMATS.values() if suffix in f.extensions), None)


def by_media_type(media_type: str | None) -> Format | None:
    media = (media_type or "").split(";")[0].strip().lower()
    return next((f for f in FORMATS.values() if f.accepts(media)), None)


def accepted_media_types() -> Iterable[str]:
    for f in FORMATS.values():
        yield from (f.media_type, *f.media_types)


def detect(head: bytes, filename: str | None = None, media_type: str | None = None) -> Format:
    """The format of a file that starts with ``head``, as the client declared it (``filename``, ``media_type``:
    either may be missing). The bytes decide; a declaration that disagrees with them is refused, naming both."""
    found = next((f for f in FORMATS.values() if f.sniff(head)), None)
    declared = by_extension(filename) or by_media_type(media_type)
    if found is None:
        # Not one of ours: the workbook reader names what it is (an .xls, a password-protected file...).
        return declared or XLSX
    if declared is not None and declared is not found:
        said = f"named {filename!r}" if by_extension(filename) else f"sent as {media_type}"
        raise UnknownFormat(f"the file is {found.described} but was {said} ({declared.described}): send it as "
                            f"{found.media_type} (or named .{found.extension}), or send the {declared.name} file you "
                            "meant", found=found.name, declared=declared.name)
    return found


__all__ = ["CSV", "FORMATS", "Format", "FormatError", "NotAWorkbook", "UnknownFormat", "XLSX", "by_extension", "by_media_type", "detect",
           "get"]
