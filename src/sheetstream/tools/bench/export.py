"""``sheetstream bench export``: writers side by side, deflate choices, PostgreSQL read paths, and HTTP time to
first byte and server memory, all in one run on the same deterministic rows. Writes JSON and a Markdown report."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
from rich.console import Console

from ..harness import POSTGRES_URL, ServerProcess, machine, peak_rss, postgres_problem, run_case

DEFLATE_CHOICES = ["sheetstream:isal:1", "sheetstream:isal:2", "sheetstream:zlib:1", "sheetstream:zlib:6", "sheetstream:zlib-ng:1"]


def run(args: argparse.Namespace) -> int:
    console = Console()
    peers = [p for p in args.peers.split(",") if p and p != "none"]
    results: dict = {"machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="sheetstream-bench-") as tmp:
        work = Path(tmp)
        results["writers"] = [
            case(writer, rows, work, console)
            for rows in args.rows
            for writer in ["source", *DEFLATE_CHOICES, *peers]
        ]
        results["postgres_read"] = postgres_read(max(args.rows), console)
        results["http"] = [http_export(rows, work, console) for rows in args.http_rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    report = markdown(results)
    args.out.with_suffix(".md").write_text(report)
    console.print(report)
    console.print(f"results: {args.out} and {args.out.with_suffix('.md')}")
    return 0


def case(writer: str, rows: int, work: Path, console: Console) -> dict:
    out = work / f"{writer.replace(':', '-')}-{rows}.xlsx"
    console.log(f"writer {writer} on {rows:,} rows ...")
    result = run_case("sheetstream.tools.bench.case", writer, str(rows), str(out))
    out.unlink(missing_ok=True)
    return {"writer": writer, "rows": rows, **result}


def postgres_read(rows: int, console: Console) -> list[dict]:
    """COPY (binary) against a server-side cursor, reading the same table; empty when PostgreSQL is absent."""
    from ...store.demo import seed
    from ...store.postgres import PostgresStore

    url = POSTGRES_URL
    if postgres_problem(url):
        console.log("PostgreSQL not reachable: read-path comparison skipped")
        return []
    table = "sheetstream_bench_orders"
    seed(PostgresStore(url), rows, table)
    found = []
    try:
        for method in ("copy", "cursor"):
            store = PostgresStore(url, read=method)
            columns = store.columns(table)
            start = time.perf_counter()
            count = sum(1 for _ in store.read_rows(table, columns))
            found.append({"method": method, "rows": count, "seconds": round(time.perf_counter() - start, 3)})
            console.log(f"postgres read {method}: {found[-1]['seconds']} s")
    finally:
        PostgresStore(url).drop_table(table)
    return found


def http_export(rows: int, work: Path, console: Console) -> dict:
    """Seed a SQLite table, serve it, GET the export: time to first byte, total, the server's peak RSS."""
    from ...store.demo import seed
    from ...store.sqlite import SqliteStore

    db = work / f"http-{rows}.db"
    console.log(f"http: seeding {rows:,} rows ...")
    seed(SqliteStore(db), rows)
    with ServerProcess(f"sqlite:///{db}") as server:
        url, pid = server.url, server.process.pid
        httpx.get(f"{url}/exports/orders.xlsx", params={"limit": 10}, headers=server.headers)  # warm imports and connections
        rss_before = peak_rss(pid)
        start = time.perf_counter()
        first = None
        size = 0
        with httpx.stream("GET", f"{url}/exports/orders.xlsx", timeout=600, headers=server.headers) as response:
            for chunk in response.iter_raw():
                if first is None:
                    first = time.perf_counter() - start
                size += len(chunk)
        total = time.perf_counter() - start
        result = {
            "rows": rows,
            "status": response.status_code,
            "bytes": size,
            "first_byte_ms": round((first or total) * 1000, 2),
            "seconds": round(total, 3),
            "server_peak_rss_mb_before": rss_before,
            "server_peak_rss_mb": peak_rss(pid),
        }
        console.log(f"http {rows:,} rows: first byte {result['first_byte_ms']} ms, {total:.2f} s")
        return result


def markdown(results: dict) -> str:
    lines = [f"# Export benchmark ({results['started']})", "", "Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()), ""]
    lines += ["## Writers (same demo rows, each in its own process)", "",
              "| writer | rows | seconds | first byte (s) | peak RSS (MB) | size (MB) | vs XlsxWriter |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    baseline = {w["rows"]: w["seconds"] for w in results["writers"] if w.get("writer") == "xlsxwriter" and "seconds" in w}
    for w in results["writers"]:
        if "error" in w:
            lines.append(f"| {w['writer']} | {w['rows']:,} | error: {w['error']} | | | | |")
            continue
        ratio = (f"{baseline[w['rows']] / w['seconds']:.1f}x faster"
                 if w["rows"] in baseline and w["writer"].startswith("sheetstream") else "")
        lines.append(f"| {w['writer']} | {w['rows']:,} | {w['seconds']:.2f} | {w['first_byte_seconds']:.3f} | "
                     f"{w['peak_rss_mb']:.1f} | {w['bytes'] / 1e6:.1f} | {ratio} |")
    if results["postgres_read"]:
        lines += ["", "## PostgreSQL read path", "", "| method | rows | seconds |", "|---|---:|---:|"]
        lines += [f"| {p['method']} | {p['rows']:,} | {p['seconds']:.2f} |" for p in results["postgres_read"]]
    lines += ["", "## HTTP export from SQLite (GET /exports/orders.xlsx)", "",
              "| rows | first byte (ms) | seconds | size (MB) | server peak RSS before / after (MB) |",
              "|---:|---:|---:|---:|---:|"]
    lines += [f"| {h['rows']:,} | {h['first_byte_ms']:.1f} | {h['seconds']:.2f} | {h['bytes'] / 1e6:.1f} | "
              f"{h['server_peak_rss_mb_before']:.1f} / {h['server_peak_rss_mb']:.1f} |" for h in results["http"]]
    return "\n".join(lines) + "\n"
