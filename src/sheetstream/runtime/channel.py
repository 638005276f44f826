"""Streams from worker processes to the event loop: length-prefixed frames over a Unix socket.

One listener per server; each task connects with a random token. The socket's buffer is the bounded
channel: a slow client blocks the worker's ``send`` (back-pressure), and a consumer that leaves closes the
socket, so the worker gets a broken pipe and stops. Measured against a bounded ``multiprocessing.Queue``
(``sheetstream bench channel``): 875 vs 387 MB/s, 0.55 vs 1.97 main-process CPU-seconds per GB.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import shutil
import socket
import struct
import tempfile
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import psutil

_FRAME = struct.Struct(">I")
_END = 0xFFFFFFFF  # frame length meaning: the task ended; its pickled return value follows
_FAILED = 0xFFFFFFFE  # frame length meaning: the task raised; the pickled exception follows
_TOKEN = 16
_ACCEPT_SECONDS = 30  # a worker that connected and ended: how long its accept may lag behind
_PREFIX = "sheetstream-channel-"


def remove_dead(folder: Path) -> list[Path]:
    """Remove the channel folders in ``folder`` left by servers that are gone (killed: they could not)."""
    removed = []
    for path in folder.glob(f"{_PREFIX}*-*"):
        pid = path.name.removeprefix(_PREFIX).split("-")[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed

#: Runs ``fn(*args)`` on a worker process: ``submit(fn, *args) -> future``.
Submit = Callable[..., asyncio.Future]


class Channel:
    def __init__(self) -> None:
        # The server's pid in the name: a killed server's folder is found and removed by the next one (remove_dead).
        self.folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
        self.path = str(self.folder / "chunks.sock")
        self._expected: dict[bytes, asyncio.Future] = {}
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        remove_dead(self.folder.parent)
        self._server = await asyncio.start_unix_server(self._accept, path=self.path)

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        Path(self.path).unlink(missing_ok=True)
        self.folder.rmdir()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            token = await reader.readexactly(_TOKEN)
        except asyncio.IncompleteReadError:
            writer.close()
            return
        future = self._expected.pop(token, None)
        if future is None or future.done():
            writer.close()
        else:
            future.set_result((reader, writer))

    async def stream(self, submit: Submit, fn: Callable[..., Generator[bytes, None, Any]], args: tuple,
                     returned: list[Any]) -> AsyncIterator[bytes]:
        """The chunks ``fn(*args)`` yields in the worker process ``submit`` runs it on; its return value goes to
        ``returned``. A worker that dies mid-stream raises the pool's error (``BrokenProcessPool``), never a
        clean end."""
        loop = asyncio.get_running_loop()
        token = os.urandom(_TOKEN)
        connected: asyncio.Future = loop.create_future()
        self._expected[token] = connected
        task = submit(_produce, self.path, token, fn, args)
        writer = None
        try:
            done, _ = await asyncio.wait({connected, task}, return_when=asyncio.FIRST_COMPLETED)
            if connected not in done:
                task.result()  # the worker failed before it could connect: raise its error
                # It ended without failing, so it did connect (its first step), and a small task's frames all fit
                # in the socket's buffer: the accept just has not run yet on a busy event loop. Wait for it.
                await asyncio.wait_for(asyncio.shield(connected), timeout=_ACCEPT_SECONDS)
            reader, writer = connected.result()
            try:
                async with aclosing(_frames(reader, returned)) as frames:
                    async for chunk in frames:
                        yield chunk
            except asyncio.IncompleteReadError:  # the worker's end closed mid-frame: say why when the pool knows
                await asyncio.wait({task}, timeout=5)
                if task.done():
                    task.result()
                raise RuntimeError("the worker process stopped in the middle of the stream") from None
        finally:
            self._expected.pop(token, None)
            if writer is not None:
                writer.close()  # a worker still sending gets a broken pipe and stops
            await asyncio.shield(asyncio.wait({task}))
            if not task.cancelled():
                task.exception()  # retrieved: a pool broken under a finished stream is the strategy's to see


async def _frames(reader: asyncio.StreamReader, returned: list[Any]) -> AsyncIterator[bytes]:
    """The chunk frames up to the end frame (its value appended to ``returned``) or the failure frame (raised)."""
    while True:
        (size,) = _FRAME.unpack(await reader.readexactly(_FRAME.size))
        if size == _END or size == _FAILED:
            (length,) = _FRAME.unpack(await reader.readexactly(_FRAME.size))
            payload = pickle.loads(await reader.readexactly(length))
            if size == _FAILED:
                raise payload
            returned.append(payload)
            return
        yield await reader.readexactly(size)


def _produce(path: str, token: bytes, fn: Callable[..., Generator[bytes, None, Any]], args: tuple) -> None:
    """In the worker process: run the generator, send its chunks as frames; stop when the reader is gone."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(token)
        iterator = fn(*args)
        try:
            while True:
                try:
                    chunk = next(iterator)
                except StopIteration as stop:
                    returned = stop.value
                    break
                sock.sendall(_FRAME.pack(len(chunk)))
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return  # the consumer went away: stop here
        except BaseException as exc:
            payload = pickle.dumps(exc)
            try:
                sock.sendall(_FRAME.pack(_FAILED) + _FRAME.pack(len(payload)) + payload)
            except OSError:
                pass
            return
        finally:
            iterator.close()
        payload = pickle.dumps(returned)
        try:
            sock.sendall(_FRAME.pack(_END) + _FRAME.pack(len(payload)) + payload)
        except OSError:
            pass
