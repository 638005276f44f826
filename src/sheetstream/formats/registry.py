"""The formats sheetstream reads and writes, by name: one :class:`Format` per module (tablib's registry, with
streams instead of whole files). The pipeline, routes, page and CLI take a format from here; a new format is a
module in ``formats/`` and a line in :data:`FORMATS`.

Telling an upload's format: the bytes decide (a ZIP local header is a workbook, text is CSV), and what the client
declared (a file name's extension, a content type) must agree with them, so that a mistake is refused with a
message instead of read as the wrong thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import xlsx
from .xlsx.errors import NotAWorkbook, XlsxError

#: Media types any format may be sent as (a client that does not say).
UNDECLARED = ("", "application/octet-stream")


class UnknownFormat(XlsxError, code="unsupported_format"):
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
    sniff=lambda head: head.startswith(b"PK\x03\x04"), export_options=_xlsx_export,
)

FORMATS: dict[str, Format] = {f.name: f for f in (XLSX,)}


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
        raise UnknownFormat(f"the file is {_article(found)} file but was {said}: send it with the name or type of "
                            f"{_article(found)} file, or send the {declared.name} file you meant",
                            found=found.name, declared=declared.name)
    return found


def _article(fmt: Format) -> str:
    return f"an {fmt.name}" if fmt.name[0] in "aeioux" else f"a {fmt.name}"


__all__ = ["FORMATS", "Format", "NotAWorkbook", "UnknownFormat", "XLSX", "by_extension", "by_media_type", "detect",
           "get"]
