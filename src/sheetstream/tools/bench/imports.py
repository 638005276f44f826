"""``sheetstream bench import``: the whole import (upload + parse + validate + insert) through the server,
against openpyxl ``read_only`` + ``executemany`` on the same file and database in the same run, for SQLite and
PostgreSQL; parse-only references (python-calamine, openpyxl, our reader). Writes JSON and a Markdown report."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
from rich.console import Console

from ...formats.xlsx import MEDIA_TYPE, write_xlsx
from ...store import open_store
from ...store.demo import ORDERS, demo_rows
from ..harness import POSTGRES_URL, ServerProcess, installed, machine, peak_rss, postgres_problem, run_case


def run(args: argparse.Namespace) -> int:
    console = Console()
    results: dict = {"machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "parse": [], "import": []}
    databases = [d for d in args.databases.split(",") if d]
    with tempfile.TemporaryDirectory(prefix="sheetstream-bench-import-") as tmp:
        work = Path(tmp)
        for rows in args.rows:
            path = work / f"orders-{rows}.xlsx"
            with open(path, "wb") as f:
                for chunk in write_xlsx(demo_rows(rows), [c.name for c in ORDERS], sheet_name="orders"):
                    f.write(chunk)
            size = path.stat().st_size
            console.log(f"{rows:,} rows: file of {size / 1e6:.1f} MB")
            parsers = ["sheetstream-parse", "calamine-parse"] + (["openpyxl-parse"] if rows <= args.openpyxl_max else [])
            for case in parsers:
                if case == "calamine-parse" and not installed("python-calamine"):
                    continue
                results["parse"].append({**subprocess_case(case, path), "file_mb": round(size / 1e6, 1)})
                console.log(f"  {case}: {results['parse'][-1]}")
            for database in databases:
                url = POSTGRES_URL if database == "postgres" else f"sqlite:///{work / 'bench.db'}"
                if database == "postgres" and postgres_problem(url):
                    console.log("PostgreSQL not reachable: skipped")
                    continue
                store = open_store(url)
                store.create_table("bench_orders", ORDERS, replace=True)
                results["import"].append(server_import(database, url, path, rows))
                console.log(f"  sheetstream import into {database}: {results['import'][-1]}")
                if rows <= args.openpyxl_max:
                    store.create_table("bench_orders", ORDERS, replace=True)
                    case = subprocess_case("openpyxl-executemany", path, url, "bench_orders")
                    results["import"].append({"database": database, "rows": rows, **case})
                    console.log(f"  openpyxl + executemany into {database}: {case}")
                store.drop_table("bench_orders")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    report = markdown(results)
    args.out.with_suffix(".md").write_text(report)
    console.print(report)
    return 0


def subprocess_case(case: str, path: Path, *extra: str) -> dict:
    return {"case": case, **run_case("sheetstream.tools.bench.import_case", case, str(path), *extra)}


def server_import(database: str, url: str, path: Path, rows: int) -> dict:
    """PUT the file to a fresh server and wait for the job: the whole import as a user sees it."""
    with ServerProcess(url, tables=["bench_orders"]) as server:
        base, pid = server.url, server.process.pid
        before = peak_rss(pid)
        start = time.perf_counter()
        with open(path, "rb") as f:
            response = httpx.put(f"{base}/imports/bench_orders", params={"mode": "replace", "wait": "true"},
                                 content=f, headers={"Content-Type": MEDIA_TYPE, **server.headers}, timeout=3600)
        seconds = time.perf_counter() - start
        job = response.json()
        return {"database": database, "rows": rows, "case": "sheetstream", "status": response.status_code,
                "rows_inserted": job.get("rows_inserted"), "seconds": round(seconds, 3),
                "rows_per_s": round(rows / seconds), "server_peak_rss_mb_before": before,
                "server_peak_rss_mb": peak_rss(pid)}


def markdown(results: dict) -> str:
    lines = [f"# Import benchmark ({results['started']})", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()), "",
             "## Parse only (each in its own process)", "", "| parser | rows | file (MB) | seconds | peak RSS (MB) |",
             "|---|---:|---:|---:|---:|"]
    for p in results["parse"]:
        if "error" in p:
            lines.append(f"| {p['case']} | | | error: {p['error']} | |")
        else:
            lines.append(f"| {p['case']} | {p['rows']:,} | {p['file_mb']} | {p['seconds']:.2f} | {p['peak_rss_mb']:.1f} |")
    lines += ["", "## Whole import (upload + parse + validate + insert, one transaction)", "",
              "| database | rows | how | seconds | rows/s | peak RSS (MB) | speed-up |", "|---|---:|---|---:|---:|---:|---:|"]
    base = {(i["database"], i["rows"]): i["seconds"] for i in results["import"] if i.get("case") == "openpyxl-executemany" and "seconds" in i}
    for i in results["import"]:
        if "error" in i:
            lines.append(f"| {i['database']} | {i['rows']:,} | {i['case']} | error: {i['error']} | | | |")
            continue
        rss = (f"{i['server_peak_rss_mb']:.1f} (server; {i['server_peak_rss_mb_before']:.1f} before)"
               if "server_peak_rss_mb" in i else f"{i['peak_rss_mb']:.1f}")
        ratio = base.get((i["database"], i["rows"]))
        speedup = f"{ratio / i['seconds']:.1f}x" if ratio and i["case"] == "sheetstream" else ""
        lines.append(f"| {i['database']} | {i['rows']:,} | {i['case']} | {i['seconds']:.2f} | "
                     f"{i.get('rows_per_s') or round(i['rows'] / i['seconds']):,} | {rss} | {speedup} |")
    return "\n".join(lines) + "\n"
