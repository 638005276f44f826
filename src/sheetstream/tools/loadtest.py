"""``sheetstream loadtest``: N users run R rounds each, concurrently, of download / upload / roundtrip, against a
server on loopback; per-operation latency percentiles, throughput, errors by kind, and the server's lag and
memory read from ``/metrics`` and ``/status`` while it runs, and the memory at rest: before the load and ``settle``
seconds after it. Bounded in count and time.

Without ``--url`` it starts its own server in a subprocess (so that the load generator does not share the
server's event loop or memory), on a temporary SQLite database or ``--database-url``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from rich.console import Console
from rich.table import Table

from ..client import client_for, download, upload
from .harness import ServerProcess, scratch_tables

OPERATIONS = ("download", "upload", "roundtrip")


BUSY_RETRIES = 100  # a client under load waits out 429s (Retry-After) rather than failing


@dataclass
class Sample:
    op: str
    seconds: float
    bytes: int = 0
    rows: int = 0
    error: str | None = None
    busy_retries: int = 0


@dataclass
class ServerReadings:
    """The server's own view, sampled while the load runs."""

    rss_main_max: float = 0.0
    rss_workers_max: float = 0.0
    lag_p99_max: float = 0.0
    samples: list[dict[str, float]] = field(default_factory=list)
    before: dict[str, float] | None = None  # the reading before the load
    rest: dict[str, float] | None = None  # the reading ``settle`` seconds after it


def parse_metrics(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                values[name] = float(value)
            except ValueError:
                pass
    return values


async def sample_once(client: httpx.AsyncClient, base: str, readings: ServerReadings,
                      start: float) -> dict[str, float] | None:
    try:
        values = parse_metrics((await client.get(f"{base}/metrics", timeout=30)).text)
    except httpx.HTTPError:
        return None
    point = {
        "t": round(time.perf_counter() - start, 2),
        "rss_main_mb": values.get('sheetstream_rss_bytes{process="main"}', 0) / 2**20,
        "rss_workers_mb": values.get('sheetstream_rss_bytes{process="workers"}', 0) / 2**20,
        "lag_p99_ms": values.get('sheetstream_event_loop_lag_window_ms{stat="p99"}', 0),
        "lag_max_ms": values.get('sheetstream_event_loop_lag_window_ms{stat="max"}', 0),
        "lag_recent_max_ms": values.get("sheetstream_event_loop_lag_recent_max_ms", 0),
    }
    readings.samples.append(point)
    readings.rss_main_max = max(readings.rss_main_max, point["rss_main_mb"])
    readings.rss_workers_max = max(readings.rss_workers_max, point["rss_workers_mb"])
    return point


async def sample_server(client: httpx.AsyncClient, base: str, readings: ServerReadings, start: float,
                        every: float = 0.25) -> None:
    while True:
        await sample_once(client, base, readings, start)
        await asyncio.sleep(every)


async def run_load(base: str, users: int, rounds: int, mix: list[str], table: str, upload_tables: list[str],
                   work: Path, max_seconds: float = 600.0, token: str | None = None,
                   settle: float = 0.0) -> dict[str, Any]:
    """The load itself; ``upload_tables[i]`` is user i's scratch table (allow-listed on the server). With ``settle``,
    the server's memory is read once more that many seconds after the load: what a burst leaves behind."""
    base = base.rstrip("/")
    if urlparse(base).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the load test only targets loopback addresses")
    samples: list[Sample] = []
    limits = httpx.Limits(max_connections=4 * users + 4)
    async with client_for(token, timeout=httpx.Timeout(60.0, read=900.0, write=900.0), limits=limits) as client:
        seed_file = work / "load-seed.xlsx"
        got = await download(client, f"{base}/exports/{table}.xlsx", seed_file)
        if not got.ok:
            raise SystemExit(f"cannot download the table to upload: {got.error}")

        async def one(op: str, user: int) -> Sample:
            start = time.perf_counter()
            path = work / f"user-{user}.xlsx"
            size = rows = waits = 0
            if op in ("download", "roundtrip"):
                got = await download(client, f"{base}/exports/{table}.xlsx", path if op == "roundtrip" else None,
                                     retries=BUSY_RETRIES)
                waits += got.busy_retries
                if not got.ok:
                    return Sample(op, time.perf_counter() - start, got.bytes, error=f"download: {got.error}"[:120],
                                  busy_retries=waits)
                size = got.bytes
            if op in ("upload", "roundtrip"):
                sent = await upload(client, base, upload_tables[user], path if op == "roundtrip" else seed_file,
                                    mode="replace", retries=BUSY_RETRIES)
                waits += sent.busy_retries
                if not sent.ok:
                    return Sample(op, time.perf_counter() - start, sent.bytes, error=f"upload: {sent.error}"[:120],
                                  busy_retries=waits)
                size += sent.bytes
                rows = sent.job["rows_inserted"]
            return Sample(op, time.perf_counter() - start, size, rows, busy_retries=waits)

        async def user(i: int) -> None:
            for r in range(rounds):
                samples.append(await one(mix[(i + r) % len(mix)], i))

        readings = ServerReadings()
        start = time.perf_counter()
        readings.before = await sample_once(client, base, readings, start)  # after the seed's download: one worker
        sampler = asyncio.create_task(sample_server(client, base, readings, start))
        try:
            await asyncio.wait_for(asyncio.gather(*(user(i) for i in range(users))), max_seconds)
            timed_out = False
        except asyncio.TimeoutError:
            timed_out = True
        wall = time.perf_counter() - start
        sampler.cancel()
        # One reading after the load, so that a short run (or a server whose loop was blocked throughout, as
        # with the inline strategy) still has one.
        await sample_once(client, base, readings, start)
        status = (await client.get(f"{base}/status", params={"since_seconds": wall})).json()
        if settle:
            await asyncio.sleep(settle)
            readings.rest = await sample_once(client, base, readings, start)
    return summarize(samples, wall, readings, status, timed_out, users, rounds, mix)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def summarize(samples: list[Sample], wall: float, readings: ServerReadings, status: dict, timed_out: bool,
              users: int, rounds: int, mix: list[str]) -> dict[str, Any]:
    operations = {}
    for op in sorted({s.op for s in samples}):
        ok = [s for s in samples if s.op == op and s.error is None]
        latencies = [s.seconds for s in ok]
        operations[op] = {
            "count": len([s for s in samples if s.op == op]),
            "ok": len(ok),
            "p50_s": round(percentile(latencies, 0.50), 3),
            "p95_s": round(percentile(latencies, 0.95), 3),
            "p99_s": round(percentile(latencies, 0.99), 3),
            "mean_s": round(statistics.fmean(latencies), 3) if latencies else 0.0,
        }
    moved = sum(s.bytes for s in samples if s.error is None)
    rows = sum(s.rows for s in samples if s.error is None)
    return {
        "users": users,
        "rounds": rounds,
        "mix": mix,
        "wall_s": round(wall, 3),
        "timed_out": timed_out,
        "operations": operations,
        "throughput_mb_s": round(moved / 1e6 / wall, 2) if wall else 0.0,
        "rows_per_s": round(rows / wall) if wall else 0,
        "errors": dict(Counter(s.error for s in samples if s.error)),
        "busy_retries": sum(s.busy_retries for s in samples),
        "server": {
            "strategy": status.get("strategy"),
            "lag": status.get("lag"),
            "lag_p99_ms_max_sampled": max((p["lag_p99_ms"] for p in readings.samples), default=0.0),
            "rss_main_mb_max": round(readings.rss_main_max, 1),
            "rss_workers_mb_max": round(readings.rss_workers_max, 1),
            "rss_all_mb_max": round(max((p["rss_main_mb"] + p["rss_workers_mb"] for p in readings.samples),
                                        default=0.0), 1),
            "rss_before_mb": _rss(readings.before),
            "rss_rest_mb": _rss(readings.rest),
            "timeline": readings.samples,
        },
    }


def _rss(point: dict[str, float] | None) -> dict[str, float] | None:
    if point is None:
        return None
    main, workers = point["rss_main_mb"], point["rss_workers_mb"]
    return {"main": round(main, 1), "workers": round(workers, 1), "all": round(main + workers, 1), "t": point["t"]}


def prepare(database_url: str, table: str, rows: int | None, users: int) -> list[str]:
    """Seed the source table if asked (or missing) and (re)create each user's scratch table."""
    from ..store import open_store
    from ..store.demo import seed

    store = open_store(database_url)
    if rows or table not in store.tables():
        seed(store, rows or 20_000, table)
    columns = store.columns(table)
    scratch = scratch_tables(table, "load", users)
    for name in scratch:
        store.create_table(name, columns, replace=True)
    return scratch


def drop(database_url: str, tables: list[str]) -> None:
    from ..store import open_store

    store = open_store(database_url)
    for name in tables:
        store.drop_table(name)


def run(args: argparse.Namespace) -> int:
    mix = [m.strip() for m in args.mix.split(",") if m.strip()]
    unknown = [m for m in mix if m not in OPERATIONS]
    if unknown or not mix:
        raise SystemExit(f"--mix takes {', '.join(OPERATIONS)} (got {args.mix!r})")
    with tempfile.TemporaryDirectory(prefix="sheetstream-load-") as tmp:
        work = Path(tmp)
        database_url = args.database_url or f"sqlite:///{work / 'load.db'}"
        scratch = prepare(database_url, args.table, args.rows, args.users) if (args.database_url or not args.url) \
            else scratch_tables(args.table, "load", args.users)
        try:
            if args.url:
                result = asyncio.run(run_load(args.url, args.users, args.rounds, mix, args.table, scratch, work,
                                              args.max_seconds, args.token, args.settle))
            else:
                with ServerProcess(database_url, [args.table, *scratch], args.executor, args.workers,
                                   args.start_method, work) as server:
                    result = asyncio.run(run_load(server.url, args.users, args.rounds, mix, args.table, scratch, work,
                                                  args.max_seconds, server.token, args.settle))
        finally:
            if args.database_url or not args.url:
                drop(database_url, scratch)
    show(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if not result["errors"] and not result["timed_out"] else 1


def show(result: dict[str, Any]) -> None:
    console = Console()
    table = Table(title=f"load: {result['users']} users x {result['rounds']} rounds of {','.join(result['mix'])} "
                        f"in {result['wall_s']:.2f} s ({result['server']['strategy']})")
    for name in ("operation", "ok / count", "p50 (s)", "p95 (s)", "p99 (s)"):
        table.add_column(name)
    for op, o in result["operations"].items():
        table.add_row(op, f"{o['ok']} / {o['count']}", f"{o['p50_s']:.2f}", f"{o['p95_s']:.2f}", f"{o['p99_s']:.2f}")
    console.print(table)
    server = result["server"]
    lag = server["lag"] or {}
    console.print(f"throughput {result['throughput_mb_s']} MB/s, {result['rows_per_s']:,} rows/s; "
                  f"event-loop lag p50 {lag.get('p50_ms')} ms, p99 {lag.get('p99_ms')} ms, max {lag.get('max_ms')} ms; "
                  f"RSS main {server['rss_main_mb_max']} MB, workers {server['rss_workers_mb_max']} MB")
    before, rest = server["rss_before_mb"], server["rss_rest_mb"]
    if before and rest:
        console.print(f"RSS main + workers (MB): before {before['main']} + {before['workers']} = {before['all']}, "
                      f"peak {server['rss_all_mb_max']}, {rest['t'] - result['wall_s']:.0f} s after "
                      f"{rest['main']} + {rest['workers']} = {rest['all']}")
    for error, count in result["errors"].items():
        console.print(f"[red]{count} x {error}[/red]")
