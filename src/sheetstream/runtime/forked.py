"""Two processes on one task: an ordered ``map`` whose every other item runs in a forked helper process.

A worker process gives it to an import, which then reads a sheet's blocks on two cores (items: blocks of XML;
results: the rows, checked and encoded for the database). Why fork: the helper inherits the task's state (the
open workbook, its styles and shared strings, the header's plan, the encoder) without any of it being pickled;
only the items and the results cross, over a socket pair, one at a time each way, so memory stays bounded and
neither side ever blocks on a full buffer while the other does.

Only for worker processes: they run one task at a time with no thread but the lifeline watcher, which a fork
leaves behind (forking the server, with its event loop and thread pool, would not be safe). The helper dies with
its worker (``PR_SET_PDEATHSIG``), exits when the socket closes, and is killed and reaped when the map ends, in
every outcome: a result consumed, an error (raised in item order), or the consumer stopping early.
"""

from __future__ import annotations

import ctypes
import gc
import os
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from ..errors import WorkerLost

T = TypeVar("T")
R = TypeVar("R")

PR_SET_PDEATHSIG = 1
_LENGTH = struct.Struct("<Q")
_END = object()


def forked_map(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """``map(fn, items)``, in order, with items 1, 3, 5, ... computed by a forked helper while this process
    computes 0, 2, 4, ...; an exception ``fn`` raises in either process is raised here, in its item's turn."""
    ours, theirs = socket.socketpair()
    gc.freeze()  # the helper must not collect (and finalize) what it inherits; it also keeps pages shared
    try:
        pid = os.fork()
    except OSError:  # no process to be had (a process limit, no memory): this one does it all
        pid = -1
    if pid != 0:
        gc.unfreeze()
    if pid < 0:
        ours.close()
        theirs.close()
        yield from map(fn, items)
        return
    if pid == 0:  # the helper
        try:
            ours.close()
            _die_with_parent()
            _serve(fn, theirs)
        finally:
            os._exit(0)  # no cleanup of inherited state (the parent's connections, files) may run here
    theirs.close()
    try:
        yield from _ordered(fn, iter(items), ours)
    finally:
        ours.close()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def _ordered(fn: Callable[[T], R], items: Iterator[T], sock: socket.socket) -> Iterator[R]:
    while True:
        local = next(items, _END)
        if local is _END:
            return
        remote = next(items, _END)
        if remote is not _END:
            _send(sock, remote)  # the helper works on it while we work on ours
        yield fn(local)  # type: ignore[arg-type]
        if remote is _END:
            return
        try:
            ok, result = _receive(sock)
        except EOFError:  # killed (the out-of-memory killer, or by hand): the task fails as a lost worker would
            raise WorkerLost("a process reading the file stopped; nothing was written") from None
        if not ok:
            raise result
        yield result


def _serve(fn: Callable[[Any], Any], sock: socket.socket) -> None:
    while True:
        try:
            item = _receive(sock)
        except EOFError:
            return
        try:
            answer = (True, fn(item))
        except BaseException as exc:  # handed to the parent, which raises it in the item's turn
            answer = (False, exc)
        try:
            _send(sock, answer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # an error that does not pickle
            _send(sock, (False, RuntimeError(f"{type(answer[1]).__name__}: {answer[1]} ({exc})")))


def _send(sock: socket.socket, obj: Any) -> None:
    data = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)))
    sock.sendall(data)


def _receive(sock: socket.socket) -> Any:
    return pickle.loads(_exactly(sock, _LENGTH.unpack(_exactly(sock, _LENGTH.size))[0]))


def _exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if not n:
            raise EOFError("the other process has gone")
        got += n
    return buffer


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before the line above took effect
        os._exit(0)
