"""Connections bounded before any route runs (uvicorn's h11 protocol, with three bounds of its own).

- **Header timeout**: a connection must send a whole request line and headers within ``header_seconds`` of its
  start (or of the end of its previous response); one that sends nothing, or half a request, is closed. uvicorn's
  ``timeout_keep_alive`` only starts after a first response, and any byte stops it.
- **A cap on open connections** below the process's descriptor limit: past ``cap`` a connection is served only
  for ``/healthz`` and ``/readyz`` (a load balancer still sees the instance alive), and past ``cap + PROBES`` it
  gets a 503 at once and is closed. uvicorn's ``limit_concurrency`` does not fit: it answers 503 to the probes
  too, and holds a connection that has sent no request yet as long as it likes.
- **The soft descriptor limit raised to the hard one** at start (:func:`raise_open_files`): the default 1,024 is
  less than a busy server's sockets, spool files and database connections.

Each connection also hands the routes a :class:`Connection` (``scope["extensions"][EXTENSION]``): how much of
what was written the client has not taken yet (for the stall guard), and ``abort()``, which frees the socket at
once even while the client reads nothing (uvicorn's ``close()`` waits for the write buffer to drain first).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import resource
import struct
import termios
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("sheetstream.connections")

#: Descriptors kept for everything but client sockets: database connections, spool and spill files, the worker
#: pool's pipes and channel sockets, logs.
RESERVED_DESCRIPTORS = 256
#: Connections past the cap still served for the health probes (and only for them).
PROBES = 16
PROBE_PATHS = ("/healthz", "/readyz")
EXTENSION = "sheetstream.connection"

_BUSY = json.dumps({"error": "busy", "message": "the server has as many connections open as it takes; try again "
                    "shortly"}).encode()
_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n"
            b"connection: close\r\ncontent-length: " + str(len(_BUSY)).encode() + b"\r\n\r\n" + _BUSY)


def raise_open_files() -> int:
    """Raise this process's soft limit on open files to its hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else soft
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard if hard else resource.RLIM_INFINITY))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %s to %s: %s", soft, hard, exc)
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_cap(wanted: int) -> int:
    """``wanted``, or fewer when the descriptor limit leaves less room beside the reserved descriptors."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return wanted
    room = max(1, soft - RESERVED_DESCRIPTORS - PROBES)
    if room < wanted:
        log.warning("at most %s connections (of SHEETSTREAM_MAX_CONNECTIONS=%s): the open-files limit is %s",
                    room, wanted, soft)
    return min(wanted, room)


def _unsent(sock: Any) -> int:
    """Bytes in the kernel's send queue the peer has not acknowledged (Linux ``SIOCOUTQ``); 0 where unknown."""
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, AttributeError, ValueError):
        return 0


class Connection:
    """What a route may know and do about its connection."""

    def __init__(self, transport: asyncio.Transport):
        self.transport = transport
        self._socket = transport.get_extra_info("socket")

    def untaken(self) -> int:
        """Bytes written to this connection that the client has not taken yet: those still in the transport's
        buffer and those in the kernel's send queue."""
        return self.transport.get_write_buffer_size() + _unsent(self._socket)

    def abort(self) -> None:
        """Close the socket now, dropping whatever the client has not taken."""
        self.transport.abort()


def _with_connection(app: Any, connection: Connection) -> Any:
    async def handle(scope: dict, receive: Any, send: Any) -> None:
        scope.setdefault("extensions", {})[EXTENSION] = connection
        await app(scope, receive, send)

    return handle


def _probes_only(app: Any) -> Any:
    """``app`` for the health probes; a 503 (closing the connection) for anything else."""

    async def handle(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": _BUSY})

    return handle


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the header timeout and the connection cap (set by :func:`bounded_protocol`)."""

    header_seconds: float = 20.0
    cap: int = 4096

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.header_timer: asyncio.TimerHandle | None = None
        count = len(self.connections)
        if count > self.cap + PROBES:  # refused at once: the descriptor goes back within microseconds
            transport.write(_REFUSED)
            transport.close()
            return
        self.app = _with_connection(self.app, Connection(transport))
        if count > self.cap:
            self.app = _probes_only(self.app)
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
        self.header_timer = self.loop.call_later(self.header_seconds, self._header_timeout)

    def _header_timeout(self) -> None:
        self.header_timer = None
        # h11 leaves IDLE once a whole request head is in: until then the client has sent nothing, or half of one.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()  # the next request's head gets the same time

    def connection_lost(self, exc: Exception | None) -> None:
        timer = getattr(self, "header_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)


def bounded_protocol(header_seconds: float, cap: int) -> type[BoundedH11Protocol]:
    """The protocol class for uvicorn's ``http=`` option, with these bounds."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"header_seconds": header_seconds, "cap": cap})


def uvicorn_options(settings: Any) -> dict[str, Any]:
    """The uvicorn ``Config`` options that bound connections for ``settings`` (a :class:`~..config.Settings`).
    Call :func:`raise_open_files` first: the cap depends on the descriptor limit in force."""
    options = settings.connections
    return {"http": bounded_protocol(options.header_seconds, connection_cap(options.max_connections)),
            "proxy_headers": False}  # which proxies to believe is the app's decision (--trusted-proxies)
