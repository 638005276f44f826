"""Request bodies -> a spool file on disk, as they arrive: raw bodies and ``multipart/form-data``.

Chunks are gathered up to 1 MB and written from a worker thread, so the event loop never waits on the disk
and memory holds at most one such buffer per upload. The size limit is enforced before reading when
``Content-Length`` is known, and as soon as it is passed otherwise; a failed upload leaves no file behind.
The spool as a whole is bounded (:class:`SpoolBudget`: files and bytes, kept uploads included, 429 past them),
a full disk is a 507, a client that sends nothing for ``idle`` seconds, or less than a minimum rate
(:class:`Pace`), is dropped (408), and one client address sends at most a few uploads at once (:class:`Senders`,
429 past them).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from .. import formats
from ..errors import BadRequest, Busy, ClientGone, PayloadTooLarge, StorageFull, TimedOut, UnsupportedMediaType
from ..pipeline.review import marks_path

_FLUSH = 1 << 20
#: The content types an upload may be sent as: each format's, or none in particular (the bytes tell).
ACCEPTED_TYPES = (*formats.registry.accepted_media_types(), *formats.registry.UNDECLARED)


def too_large(limit: int) -> PayloadTooLarge:
    megabytes = limit / 2**20
    shown = f"{megabytes:,.0f}" if megabytes >= 10 or megabytes.is_integer() else f"{megabytes:.2g}"
    return PayloadTooLarge(
        f"the upload is larger than this server accepts ({shown} MB); split the workbook or ask for "
        "a higher SHEETSTREAM_MAX_UPLOAD_MB",
        limit_bytes=limit,
    )


def declared_size(request: Request) -> int:
    """The body's size as ``Content-Length`` says it (0 when chunked or absent)."""
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


def check_declared_size(request: Request, limit: int) -> None:
    """413 before reading a byte, when ``Content-Length`` already says the body is too large."""
    if declared_size(request) > limit:
        raise too_large(limit)


#: What a write to a full disk (or past a file-size limit, or a quota) raises.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class Kept(Protocol):
    """The kept uploads as the budget sees them (:class:`~.kept.KeptUploads`): counted, and made room from."""

    @property
    def files(self) -> int: ...

    @property
    def bytes(self) -> int: ...

    def holding(self, path: Path | None) -> tuple[int, int]: ...

    def evict(self, files: int, size: int, spare: Path | None = None) -> None: ...


class SpoolBudget:
    """The spool's bounds: at most ``max_files`` files on disk at once and ``max_bytes`` in all, for uploads
    (arriving, or waiting for a worker) and kept uploads (``kept``: dry runs' files) together. Uploads still
    arriving are counted here, not in the queue's waiting list, so a slow sender holds a spool place, never a
    queue place. An upload that needs room takes it from the oldest kept files first: kept files never refuse
    an upload."""

    def __init__(self, folder: Path, max_files: int, max_bytes: int, kept: Kept | None = None):
        self.folder, self.max_files, self.max_bytes = folder, max_files, max_bytes
        self.kept = kept
        self.files = 0  # uploads' files and the bytes set aside for them (kept files not included)
        self.bytes = 0

    def busy(self, message: str) -> Busy:
        return Busy(f"the server is busy: {message}; try again shortly", retry_after=5, spool_files=self.files,
                    spool_bytes=self.bytes)

    def room(self, files: int, size: int, spare: Path | None = None) -> bool:
        """Whether ``files`` more files and ``size`` more bytes fit, after removing kept files (oldest first) when
        they are what is in the way. ``spare``: the kept file a commit is about to move into the spool, so it is
        neither counted twice nor removed."""
        def over() -> tuple[int, int]:
            if self.kept is None:
                return self.files + files - self.max_files, self.bytes + size - self.max_bytes
            moving_files, moving_bytes = self.kept.holding(spare)
            return (self.files + self.kept.files - moving_files + files - self.max_files,
                    self.bytes + self.kept.bytes - moving_bytes + size - self.max_bytes)

        over_files, over_bytes = over()
        if over_files <= 0 and over_bytes <= 0:
            return True
        fits_without_kept = self.files + files <= self.max_files and self.bytes + size <= self.max_bytes
        if self.kept is None or not fits_without_kept:  # uploads alone fill it: removing kept files would not help
            return False
        self.kept.evict(over_files, over_bytes, spare)
        over_files, over_bytes = over()
        return over_files <= 0 and over_bytes <= 0

    def open(self, declared: int = 0, prefix: str = "upload-", spare: Path | None = None) -> Spool:
        """A new spool file with ``declared`` bytes set aside (429 at once when the bounds do not allow it)."""
        if declared > self.max_bytes:
            raise StorageFull(f"the upload ({declared / 2**20:,.1f} MB) is larger than the room this server sets aside "
                              f"for uploads ({self.max_bytes / 2**20:,.1f} MB, SHEETSTREAM_MAX_SPOOL_MB)",
                              limit_bytes=self.max_bytes)
        if not self.room(1, 0, spare):
            raise self.busy(f"{self.files} uploads are already being received or waiting, the most it holds")
        if not self.room(1, declared, spare):
            raise self.busy("the uploads it holds leave too little room for this one")
        spool = Spool(self, prefix)
        self.files += 1
        spool.reserve(declared, spare)
        return spool


class Spool:
    """A file in the budget's folder that receives the upload; removed on failure (and by its owner when done),
    giving its room back."""

    def __init__(self, budget: SpoolBudget, prefix: str = "upload-"):
        self.budget = budget
        budget.folder.mkdir(parents=True, exist_ok=True)
        try:
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=".xlsx", dir=budget.folder)
        except OSError as exc:
            raise _storage_error(exc) from exc
        self.path = Path(name)
        self.file = os.fdopen(fd, "wb")
        self.size = 0
        self.reserved = 0  # bytes counted in the budget for this file
        self.buffer = bytearray()
        self.removed = False
        self.digest = hashlib.sha256()  # computed as the body arrives, for the audit trail
        self.declared: tuple[str, str] = ("", "")  # a form's file name and content type, for telling its format

    def reserve(self, total: int, spare: Path | None = None) -> None:
        extra = total - self.reserved
        if extra > 0:
            if not self.budget.room(0, extra, spare):
                raise self.budget.busy("the uploads it holds have filled the room set aside for them")
            self.budget.bytes += extra
            self.reserved = total

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()

    async def write(self, data: bytes) -> None:
        self.reserve(self.size + len(data))
        self.buffer += data
        self.size += len(data)
        if len(self.buffer) >= _FLUSH:
            await self.flush()

    async def flush(self) -> None:
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            await self._disk(self._write, data)

    def _write(self, data: bytes) -> None:
        self.digest.update(data)  # in the worker thread too: hashlib lets go of the GIL for large blocks
        self.file.write(data)

    async def close(self) -> None:
        await self.flush()
        await self._disk(self.file.close)

    async def _disk(self, fn: Callable, *args: object) -> None:
        try:
            await run_in_threadpool(fn, *args)
        except OSError as exc:
            raise _storage_error(exc) from exc

    def remove(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # a full disk refuses the last buffered bytes: the file goes anyway
        self.path.unlink(missing_ok=True)
        marks_path(self.path).unlink(missing_ok=True)  # the import's problems, if its worker died writing them
        if not self.removed:
            self.removed = True
            self.budget.files -= 1
            self.budget.bytes -= self.reserved


def _storage_error(exc: OSError) -> Exception:
    if exc.errno in _NO_SPACE:
        return StorageFull(f"the server has no room left to receive the upload ({os.strerror(exc.errno)}); "
                           "nothing was imported: try again later, or ask for more space for SHEETSTREAM_DATA_DIR")
    return exc


class Pace:
    """Apache ``mod_reqtimeout``'s ``MinRate``: after ``grace`` seconds, the bytes of the last ``grace`` seconds must
    average ``min_rate`` a second (0: no minimum). A client dripping a byte now and then, never idle long enough
    to be dropped, would otherwise hold its spool place for as long as it likes."""

    def __init__(self, min_rate: float, grace: float):
        self.min_rate, self.grace = min_rate, grace
        self.started = time.monotonic()
        self.received = 0
        self.samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    def add(self, size: int) -> None:
        self.received += size
        now = time.monotonic()
        self.samples.append((now, self.received))
        while len(self.samples) > 1 and self.samples[1][0] <= now - self.grace:
            self.samples.popleft()  # the first one left is the window's start

    def check(self) -> None:
        """408 when the upload has fallen under the minimum rate."""
        now = time.monotonic()
        if not self.min_rate or now - self.started < self.grace:
            return
        while len(self.samples) > 1 and self.samples[1][0] <= now - self.grace:
            self.samples.popleft()
        taken = self.received - self.samples[0][1]
        if taken < self.min_rate * self.grace:
            raise TimedOut(f"the upload is too slow: {taken / self.grace:,.0f} bytes a second over the last "
                           f"{self.grace:g} s, under the {self.min_rate:,.0f} this server requires "
                           "(SHEETSTREAM_UPLOAD_MIN_RATE); send the file again over a faster connection")


async def body_chunks(request: Request, idle: float, pace: Pace | None = None) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive; 408 when none comes for ``idle`` seconds, or when they come slower than
    ``pace`` allows (a stalled or dripping client's spool place is given back instead of held forever)."""
    chunks = request.stream()
    pace = pace or Pace(0, idle)
    while True:
        # The next chunk is awaited in a task of its own: cancelling the stream's own await would end it.
        waiting = asyncio.ensure_future(anext(chunks))
        last = time.monotonic()
        try:
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=min(1.0, idle))
                if not waiting.done():
                    pace.check()
                    if time.monotonic() - last >= idle:
                        raise TimedOut(f"the upload stopped: nothing arrived for {idle:g} seconds; send the file "
                                       "again")
            chunk = waiting.result()
        except StopAsyncIteration:
            return
        finally:
            if not waiting.done():
                waiting.cancel()
        pace.add(len(chunk))
        pace.check()
        yield chunk


class Senders:
    """Uploads being received, per client address: at most ``limit`` from one address at once, whoever sends
    them (admins and ``--no-auth`` included: the spool's places are for everyone)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.held: Counter[str] = Counter()

    def hold(self, address: str) -> Callable[[], None]:
        """Count one more upload from ``address`` (429 at its limit); returns what gives it back, once."""
        if self.held[address] >= self.limit:
            raise Busy(f"{address} is already sending {self.held[address]} uploads, the most one address may send "
                       "at once (SHEETSTREAM_UPLOADS_PER_ADDRESS); send this one when one of them has arrived",
                       retry_after=5, per_address=self.limit)
        self.held[address] += 1
        given = False

        def release() -> None:
            nonlocal given
            if not given:
                given = True
                self.held[address] -= 1
                if not self.held[address]:
                    del self.held[address]

        return release


async def receive_raw(request: Request, spool: Spool, limit: int, progress: Callable[[int], None],
                      idle: float = 30.0, pace: Pace | None = None) -> None:
    """The whole body into ``spool``. Raises 415 for a content type that is no format's."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ACCEPTED_TYPES:
        kinds = ", ".join(f"{f.media_type} (.{f.extension})" for f in formats.FORMATS.values())
        raise UnsupportedMediaType(f"send the file itself as the body with the Content-Type of its format: {kinds} "
                                   f"(got {media}), or use POST with multipart/form-data")
    try:
        async for chunk in body_chunks(request, idle, pace):
            if spool.size + len(chunk) > limit:
                raise too_large(limit)
            await spool.write(chunk)
            progress(spool.size)
    except ClientDisconnect:
        raise ClientGone(f"the client went away after {spool.size:,} bytes") from None
    await spool.close()


async def receive_multipart(request: Request, spool: Spool, limit: int, progress: Callable[[int], None],
                            idle: float = 30.0, field_name: str = "file", pace: Pace | None = None) -> dict[str, str]:
    """The ``file`` field of a form into ``spool``; returns the other (small) fields."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UnsupportedMediaType("POST a multipart/form-data form with the workbook in a field named 'file', "
                                   "or PUT the file itself as the body")
    form = _Form(field_name)
    parser = MultipartParser(params[b"boundary"], form.callbacks())
    received = 0
    try:
        async for chunk in body_chunks(request, idle, pace):
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
        raise BadRequest(f"the form has no field named {field_name!r} with the file in it")
    spool.declared = (form.filename, form.file_type)
    return form.fields


class _Form:
    """python-multipart's callbacks: the file field's bytes go to ``pending`` (for the spool), the other fields
    (at most 4 kB each) to ``fields``."""

    def __init__(self, file_field: str):
        self.file_field = file_field
        self.fields: dict[str, str] = {}
        self.pending: list[bytes] = []
        self.has_file = False
        self.filename = self.file_type = ""
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
        if self.is_file:  # what the browser says the file is, for telling its format (the bytes decide)
            self.filename = disposition.get(b"filename", b"").decode("utf-8", "replace")[:255]
            self.file_type = self.headers.get(b"content-type", b"").decode("latin-1")[:255]

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
