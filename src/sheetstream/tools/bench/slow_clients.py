"""``sheetstream bench slow-clients``: what slow readers cost the workers, with the spill on and off, same run.

One server per mode (the spill on, as configured by default; off: ``SHEETSTREAM_EXPORT_SPILL_BYTES=0``, the worker
waits for its client) serves a SQLite table of demo rows. For each reader rate (MB/s, and unthrottled),
``--readers`` clients download the whole export at once, each a plain socket with a 128 kB receive buffer that
reads a chunk and sleeps to keep to the rate. Measured per mode and rate:

- worker-seconds per export: the queue's running exports (``/status``, polled every 20 ms) integrated over
  time, divided by the exports: how long each held a worker;
- completed exports per minute, and the wall time;
- for the unthrottled case, the first byte of a lone export and the server's CPU per row (the spill must cost a
  fast client nothing).
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
from rich.console import Console

from ..harness import ServerProcess, machine
from . import load as machine_load
from .pairs import save, shown, summary
from .throttled import RECEIVE_BUFFER, _cpu, label

MODES = {"spill": None, "no spill": "0"}
POLL = 0.02


def run(args: argparse.Namespace) -> int:
    from ...store.demo import seed
    from ...store.sqlite import SqliteStore

    console = Console()
    rates = [None, *(rate * 1e6 for rate in args.rates)]
    results: dict = {"machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "rows": args.rows, "readers": args.readers, "workers": args.workers,
                     "receive_buffer": RECEIVE_BUFFER, "runs": []}
    with tempfile.TemporaryDirectory(prefix="sheetstream-slow-") as tmp, machine_load.LoadWatch() as whole:
        db = Path(tmp) / "orders.db"
        console.log(f"seeding {args.rows:,} demo rows ...")
        seed(SqliteStore(db), args.rows)
        servers = {mode: ServerProcess(f"sqlite:///{db}", workers=args.workers, data_dir=Path(tmp) / mode.replace(" ", "-"),
                                       env={"SHEETSTREAM_EXPORT_SPILL_BYTES": value} if value else None)
                   for mode, value in MODES.items()}
        try:
            for server in servers.values():
                server.__enter__()
                httpx.get(f"{server.url}/exports/orders.xlsx", params={"limit": 10}, headers=server.headers)  # warm up
            for repeat in range(args.repeats):
                for rate in rates:
                    for mode, server in servers.items():
                        r = {"mode": mode, "rate": rate, "repeat": repeat, **readers_at(server, rate, args.readers)}
                        if rate is None:
                            r.update(lone(server, args.rows))
                        results["runs"].append(r)
                        console.log(f"{mode:8} {label(rate):>11}: {r['worker_seconds_per_export']:.2f} worker-s per "
                                    f"export, {r['exports_per_minute']:.1f} exports/min, {r['seconds']:.2f} s")
        finally:
            for server in servers.values():
                if server.process is not None:
                    server.__exit__()
    results["load"] = whole.summary()
    save(args.out, results, markdown(results), console)
    return 0


def readers_at(server: ServerProcess, rate: float | None, readers: int) -> dict:
    """``readers`` whole downloads at once, each at most ``rate`` bytes a second."""
    busy = [0.0]  # worker-seconds: running exports integrated over time
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(headers=server.headers, timeout=5) as client:
            last = time.perf_counter()
            while not stop.is_set():
                active = client.get(f"{server.url}/status").json()["active"].get("export", 0)
                now = time.perf_counter()
                busy[0] += active * (now - last)
                last = now
                stop.wait(POLL)

    outcomes: list[dict] = []
    threads = [threading.Thread(target=lambda: outcomes.append(download(server, rate))) for _ in range(readers)]
    poller = threading.Thread(target=poll)
    start = time.perf_counter()
    poller.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    time.sleep(POLL * 3)  # the last exports leave the queue
    stop.set()
    poller.join()
    whole = [o for o in outcomes if o["whole"]]
    return {"seconds": round(seconds, 3), "completed": len(whole), "bytes": sum(o["bytes"] for o in outcomes),
            "worker_seconds_per_export": round(busy[0] / readers, 3),
            "exports_per_minute": round(len(whole) / seconds * 60, 1)}


def download(server: ServerProcess, rate: float | None) -> dict:
    address = urlsplit(server.url)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # before connect: no autotuning
        sock.settimeout(120)
        sock.connect((address.hostname, address.port))
        start = time.perf_counter()
        sock.sendall(f"GET /exports/orders.xlsx HTTP/1.1\r\nHost: {address.netloc}\r\nConnection: close\r\n"
                     f"Authorization: {server.headers['Authorization']}\r\n\r\n".encode())
        received = bytearray()
        while chunk := sock.recv(65_536):
            received += chunk
            if rate and (ahead := len(received) / rate - (time.perf_counter() - start)) > 0:
                time.sleep(ahead)
    return {"bytes": len(received), "whole": received.startswith(b"HTTP/1.1 200") and received.endswith(b"\r\n0\r\n\r\n")}


def lone(server: ServerProcess, rows: int) -> dict:
    """A lone unthrottled export: its first byte, and the server's CPU per row."""
    tree = psutil.Process(server.process.pid)
    cpu = _cpu(tree)
    start = time.perf_counter()
    with httpx.stream("GET", f"{server.url}/exports/orders.xlsx", headers=server.headers, timeout=120) as response:
        chunks = response.iter_raw()
        next(chunks)
        first = time.perf_counter() - start
        for _ in chunks:
            pass
    return {"first_byte_ms": round(first * 1000, 1), "cpu_us_per_row": round((_cpu(tree) - cpu) / rows * 1e6, 2)}


def markdown(results: dict) -> str:
    lines = [f"# Slow clients: {results['readers']} readers of {results['rows']:,} demo rows on "
             f"{results['workers']} workers, spill on vs off", "",
             f"Started {results['started']}. Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()),
             "", f"Readers: sockets with a {results['receive_buffer'] >> 10} kB receive buffer, throttled to the rate "
             "(10^6 bytes a second) or unthrottled, all at once. Worker-seconds: running exports integrated over "
             "time, per export. Medians (min-max) of the repeats.", ""]
    lines += machine_load.markdown(results.get("load", {}))
    lines += ["", "| readers at | mode | worker-s per export | exports per minute | wall s | lone export: first byte "
              "ms | CPU µs per row | runs |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for rate in dict.fromkeys(r["rate"] for r in results["runs"]):
        for mode in MODES:
            runs = [r for r in results["runs"] if r["rate"] == rate and r["mode"] == mode]
            if not runs:
                continue
            lone_cells = [shown(summary([r[k] for r in runs])) if k in runs[0] else ""
                          for k in ("first_byte_ms", "cpu_us_per_row")]
            lines.append(f"| {label(rate)} | {mode} | {shown(summary([r['worker_seconds_per_export'] for r in runs]))} "
                         f"| {shown(summary([r['exports_per_minute'] for r in runs]))} "
                         f"| {shown(summary([r['seconds'] for r in runs]))} | {' | '.join(lone_cells)} | {len(runs)} |")
    incomplete = sum(results["readers"] - r["completed"] for r in results["runs"])
    lines += ["", f"Downloads that did not complete: {incomplete}.", ""]
    return "\n".join(lines)
