"""Request bodies -> a spool file on disk, as they arrive: raw bodies and ``multipart/form-data``.

Chunks are gathered up to 1 MB and written from a worker thread, so the event loop never waits on the disk
and memory holds at most one such buffer per upload. The size limit is enforced before reading when
``Content-Length`` is known, and as soon as it is passed otherwise; a failed upload leaves no file behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from ..errors import BadRequest, ClientGone, PayloadTooLarge, UnsupportedMediaType
from ..formats.xlsx import MEDIA_TYPE

_FLUSH = 1 << 20
XLSX_TYPES = (MEDIA_TYPE, "application/octet-stream", "")


def too_large(limit: int) -> PayloadTooLarge:
    megabytes = limit / 2**20
    shown = f"{megabytes:,.0f}" if megabytes >= 10 or megabytes.is_integer() else f"{megabytes:.2g}"
    return PayloadTooLarge(
        f"the upload is larger than this server accepts ({shown} MB); split the workbook or ask for "
        "a higher SHEETSTREAM_MAX_UPLOAD_MB",
        limit_bytes=limit,
    )


def check_declared_size(request: Request, limit: int) -> None:
    """413 before reading a byte, when ``Content-Length`` already says the body is too large."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


class Spool:
    """A file in ``folder`` that receives the upload; removed on failure (and by its owner when done)."""

    def __init__(self, folder: Path, prefix: str = "upload-"):
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".xlsx", dir=folder)
        self.path = Path(name)
        self.file = os.fdopen(fd, "wb")
        self.size = 0
        self.buffer = bytearray()
        self.digest = hashlib.sha256()  # computed as the body arrives, for the audit trail

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    async def write(self, data: bytes) -> None:
        self.buffer += data
        self.size += len(data)
        if len(self.buffer) >= _FLUSH:
            await self.flush()

    async def flush(self) -> None:
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            await run_in_threadpool(self._write, data)

    def _write(self, data: bytes) -> None:
        self.digest.update(data)  # in the worker thread too: hashlib lets go of the GIL for large blocks
        self.file.write(data)

    async def close(self) -> None:
        await self.flush()
        await run_in_threadpool(self.file.close)

    def remove(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.path.unlink(missing_ok=True)


async def receive_raw(request: Request, spool: Spool, limit: int, progress: Callable[[int], None]) -> None:
    """The whole body into ``spool``. Raises 415 for a content type that is not a workbook's."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in XLSX_TYPES:
        raise UnsupportedMediaType(
            f"send the .xlsx file itself as the body with Content-Type {XLSX_TYPES[0]} (got {media}), "
            "or use POST with multipart/form-data"
        )
    try:
        async for chunk in request.stream():
            if spool.size + len(chunk) > limit:
                raise too_large(limit)
            await spool.write(chunk)
            progress(spool.size)
    except ClientDisconnect:
        raise ClientGone(f"the client went away after {spool.size:,} bytes") from None
    await spool.close()


async def receive_multipart(request: Request, spool: Spool, limit: int, progress: Callable[[int], None],
                            field_name: str = "file") -> dict[str, str]:
    """The ``file`` field of a form into ``spool``; returns the other (small) fields."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UnsupportedMediaType("POST a multipart/form-data form with the workbook in a field named 'file', "
                                   "or PUT the file itself as the body")
    form = _Form(field_name)
    parser = MultipartParser(params[b"boundary"], form.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise too_large(limit)
            parser.write(chunk)
            for piece in form.pending:
                await spool.write(piece)
            form.pending.clear()
            progress(received)
    except ClientDisconnect:
        raise ClientGone(f"the client went away after {received:,} bytes") from None
    except MultipartParseError as exc:
        raise BadRequest(f"the multipart/form-data body is malformed: {exc}") from exc
    parser.finalize()
    await spool.close()
    if not form.has_file:
        raise BadRequest(f"the form has no field named {field_name!r} with the workbook in it")
    return form.fields


class _Form:
    """python-multipart's callbacks: the file field's bytes go to ``pending`` (for the spool), the other fields
    (at most 4 kB each) to ``fields``."""

    def __init__(self, file_field: str):
        self.file_field = file_field
        self.fields: dict[str, str] = {}
        self.pending: list[bytes] = []
        self.has_file = False
        self._reset()

    def _reset(self) -> None:
        self.name: str | None = None
        self.headers: dict[bytes, bytes] = {}
        self.header = b""
        self.value = bytearray()
        self.is_file = False

    def callbacks(self) -> dict:
        return {"on_header_field": self.on_header_field, "on_header_value": self.on_header_value,
                "on_header_end": self.on_header_end, "on_headers_finished": self.on_headers_finished,
                "on_part_data": self.on_part_data, "on_part_end": self.on_part_end}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        key = self.header.lower()
        self.headers[key] = self.headers.get(key, b"") + data[start:end]

    def on_header_end(self) -> None:
        self.header = b""

    def on_headers_finished(self) -> None:
        _, disposition = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = disposition.get(b"name", b"").decode()
        self.is_file = self.name == self.file_field

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.is_file:
            self.pending.append(data[start:end])
        elif len(self.value) < 4096:
            self.value += data[start:end]

    def on_part_end(self) -> None:
        if self.is_file:
            self.has_file = True
        elif self.name:
            self.fields[self.name] = self.value.decode("utf-8", "replace")
        self._reset()
