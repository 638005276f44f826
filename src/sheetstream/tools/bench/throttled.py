"""``sheetstream bench throttled``: the adaptive deflate level against the fixed one, for a client throttled to a
given rate and for one that reads as fast as it can. Bytes on the wire, wall time and the server's CPU seconds.

One server per mode (``SHEETSTREAM_DEFLATE_ADAPTIVE=off`` / ``on``) serves a SQLite table of demo rows; the client
is a plain socket that reads a chunk and sleeps to keep to the rate. Its receive buffer is fixed at 128 kB: on
loopback the kernel would otherwise grow it to megabytes, and a large part of the file would sit in it before
the server ever waited (the server's own send buffer still grows as the kernel decides). The modes run in turn,
``--repeats`` times.
"""

from __future__ import annotations

import argparse
import io
import socket
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
from rich.console import Console

from ..harness import ServerProcess, machine
from . import load as machine_load
from .pairs import save, shown, summary

MODES = {"fixed": "off", "adaptive": "on"}
RECEIVE_BUFFER = 128 << 10


def run(args: argparse.Namespace) -> int:
    from ...store.demo import seed
    from ...store.sqlite import SqliteStore

    console = Console()
    rates = [None, args.rate * 1e6]
    results: dict = {"machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "rows": args.rows, "rate_mb_per_s": args.rate, "receive_buffer": RECEIVE_BUFFER, "runs": []}
    with tempfile.TemporaryDirectory(prefix="sheetstream-throttled-") as tmp, machine_load.LoadWatch() as whole:
        db = Path(tmp) / "orders.db"
        console.log(f"seeding {args.rows:,} demo rows ...")
        seed(SqliteStore(db), args.rows)
        servers = {mode: ServerProcess(f"sqlite:///{db}", env={"SHEETSTREAM_DEFLATE_ADAPTIVE": value,
                                                               # the adaptive level follows back-pressure, which
                                                               # the spill takes away (docs/design.md)
                                                               "SHEETSTREAM_EXPORT_SPILL_BYTES": "0"})
                   for mode, value in MODES.items()}
        try:
            for server in servers.values():
                server.__enter__()
                httpx.get(f"{server.url}/exports/orders.xlsx", params={"limit": 10}, headers=server.headers)  # warm up
            for repeat in range(args.repeats):
                for rate in rates:
                    for mode, server in servers.items():
                        r = {"mode": mode, "rate": rate, "repeat": repeat, **download(server, rate)}
                        results["runs"].append(r)
                        console.log(f"{mode:8} {label(rate):>10}: {r['wire_bytes'] / 1e6:.2f} MB, {r['seconds']:.2f} s, "
                                    f"server CPU {r['server_cpu_seconds']:.2f} s")
        finally:
            for server in servers.values():
                if server.process is not None:
                    server.__exit__()
    results["load"] = whole.summary()
    save(args.out, results, markdown(results), console)
    return 0


def label(rate: float | None) -> str:
    return "unthrottled" if rate is None else f"{rate / 1e6:g} MB/s"


def download(server: ServerProcess, rate: float | None) -> dict:
    """GET the whole export through a socket, at most ``rate`` bytes a second; what the wire and the server saw."""
    address = urlsplit(server.url)
    tree = psutil.Process(server.process.pid)
    cpu_before = _cpu(tree)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # before connect: no autotuning
        sock.connect((address.hostname, address.port))
        start = time.perf_counter()
        sock.sendall(f"GET /exports/orders.xlsx HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n"
                     f"Authorization: {server.headers['Authorization']}\r\n\r\n".encode())
        received = bytearray()
        while chunk := sock.recv(65_536):
            received += chunk
            if rate and (ahead := len(received) / rate - (time.perf_counter() - start)) > 0:
                time.sleep(ahead)
        seconds = time.perf_counter() - start
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    workbook = _unchunk(body) if b"transfer-encoding: chunked" in head.lower() else body
    with zipfile.ZipFile(io.BytesIO(workbook)) as archive:
        ok = archive.testzip() is None
    return {"status": int(head.split()[1]), "wire_bytes": len(received), "file_bytes": len(workbook), "zip_ok": ok,
            "seconds": round(seconds, 3), "server_cpu_seconds": round(_cpu(tree) - cpu_before, 3)}


def _cpu(process: psutil.Process) -> float:
    """CPU seconds of the server and its descendants (the queue's worker processes)."""
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        try:
            times = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _unchunk(body: bytes) -> bytes:
    out, at = bytearray(), 0
    while True:
        end = body.index(b"\r\n", at)
        size = int(body[at:end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += body[end + 2:end + 2 + size]
        at = end + 2 + size + 2


def markdown(results: dict) -> str:
    lines = [f"# Adaptive deflate level: {results['rows']:,} demo rows, fixed vs adaptive", "",
             f"Started {results['started']}. Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()),
             "", f"Client: a socket with a {results['receive_buffer'] >> 10} kB receive buffer, throttled to "
             f"{results['rate_mb_per_s']:g} MB/s (10^6 bytes) or unthrottled. Medians (min-max) of the repeats.", ""]
    lines += machine_load.markdown(results.get("load", {}))
    lines += ["", "| client | mode | bytes on the wire (MB) | wall s | server CPU s | runs |", "|---|---|---:|---:|---:|---:|"]
    for rate in dict.fromkeys(r["rate"] for r in results["runs"]):
        for mode in MODES:
            runs = [r for r in results["runs"] if r["rate"] == rate and r["mode"] == mode]
            if not runs:
                continue
            wire = summary([r["wire_bytes"] / 1e6 for r in runs])
            lines.append(f"| {label(rate)} | {mode} | {shown(wire)} | {shown(summary([r['seconds'] for r in runs]))} "
                         f"| {shown(summary([r['server_cpu_seconds'] for r in runs]))} | {len(runs)} |")
    bad = [r for r in results["runs"] if r["status"] != 200 or not r["zip_ok"]]
    lines += ["", f"Every download a whole, valid archive (status 200, zipfile testzip): {'no' if bad else 'yes'}.", ""]
    return "\n".join(lines)
