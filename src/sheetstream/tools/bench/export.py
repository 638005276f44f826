"""``sheetstream bench export``: writers side by side, deflate choices, PostgreSQL read paths, and HTTP time to
first byte and server memory, all in one run on the same deterministic rows. Writes JSON and a Markdown report.

Every writer runs in its own process, fed the same rows: by default from a PostgreSQL table through a
server-side cursor, as the service reads them (``--source demo`` generates them in the process instead). The
writers of one size run interleaved (A B C, A B C, ..., ``--repeats`` times); each one's time is compared with the
baseline's (XlsxWriter ``constant_memory``) in the same repeat, and the report gives the median and range of
those ratios beside the machine's load. Peers: XlsxWriter, openpyxl, pyexcelerate, rustpy-xlsxwriter, pandas,
polars, and ExcelJS's streaming writer (Node; ``exceljs`` is installed with npm into a work folder beside the
results when first needed).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from rich.console import Console

from ..harness import MYSQL_URL, POSTGRES_URL, ServerProcess, mysql_problem, peak_rss, postgres_problem, run_case
from . import load as machine_load
from .case import NEEDS, WHOLE_TABLE, missing
from .pairs import chosen_peers, interleave, new_results, ratio_stats, save, shown

DEFLATE_CHOICES = ["sheetstream:isal:1", "sheetstream:isal:2", "sheetstream:zlib:1", "sheetstream:zlib:6", "sheetstream:zlib-ng:1"]
PEERS = ["xlsxwriter", "openpyxl", "pyexcelerate", "rustpy-xlsxwriter", "pandas", "polars", "exceljs",
         "pandas-read_sql", "copy-floor"]
EXCELJS = "4.4.0"
SOURCE_TABLE = "sheetstream_bench_source"

#: What a reader of the report needs to know about how a writer was fed or what it holds.
NOTES = {
    **{w: f"holds {what} before writing" for w, what in WHOLE_TABLE.items()},
    "rustpy-xlsxwriter": "API takes records (dicts): fed a generator of dicts built from the cursor's rows; "
                         "writes the file at save()",
    "exceljs": "Node; the rows reach it as JSON lines on a pipe (their encoding is in the CPU seconds)",
    "openpyxl": "control characters stripped (it refuses them)",
    "source": "reading the rows only: every writer's time includes this",
    "copy-floor": "the floor: PostgreSQL's COPY TO STDOUT of the rows, then isal deflating sheetstream's sheet XML "
                  "of them (made before the clock)",
}


def run(args: argparse.Namespace) -> int:
    console = Console()
    try:
        peers = chosen_peers(args.peers, PEERS)
    except ValueError as exc:
        console.print(str(exc))
        return 2
    packages = ["xlsxwriter", "openpyxl", "psycopg", *(p for needs in NEEDS.values() for p in needs)]
    results = new_results(args.repeats, packages, {"writers": [], "skipped": []})
    source = "demo"
    if args.source in ("postgres", "mysql"):
        url = POSTGRES_URL if args.source == "postgres" else MYSQL_URL
        if problem := (postgres_problem if args.source == "postgres" else mysql_problem)(url):
            results["skipped"].append({"case": f"source {args.source}", "reason": f"{problem}; rows generated instead"})
        else:
            source = f"{args.source}:{SOURCE_TABLE}"
    results["source"] = source
    choices = DEFLATE_CHOICES if args.deflate_choices == "all" else DEFLATE_CHOICES[:1]
    writers = ["source", *choices, *peers]
    results["baseline"] = baseline = "xlsxwriter" if "xlsxwriter" in writers else choices[0]
    if "exceljs" in peers and (why := setup_exceljs(args.out.parent / "node", console)):
        results["skipped"].append({"case": "exceljs", "reason": why})
        writers.remove("exceljs")
    results["versions"]["exceljs"] = EXCELJS if "exceljs" in writers else None
    for writer in list(writers):
        if why := missing(writer):
            results["skipped"].append({"case": writer, "reason": why})
            writers.remove(writer)
    with tempfile.TemporaryDirectory(prefix="sheetstream-bench-") as tmp, machine_load.LoadWatch() as whole:
        work = Path(tmp)
        if source != "demo":
            seed_source(max(args.rows), console, _url(source))
        for rows in args.rows:
            cases = [(w, functools.partial(case, w, rows, work, source)) for w in writers]
            for r in interleave(cases, args.repeats, on_result=_logger(console)):
                results["writers"].append({**r, "writer": r["case"], "rows": rows})
        if source != "demo":
            from ...store import open_store

            open_store(_url(source)).drop_table(SOURCE_TABLE)
        results["postgres_read"] = postgres_read(max(args.rows), console) if args.postgres_read else []
        served = _url(source) if source.startswith("mysql") else None  # else SQLite, as always
        results["http"] = [http_export(rows, work, console, served) for rows in args.http_rows]
    results["load"] = whole.summary()
    key = _group
    results["ratios"] = {"seconds": ratio_stats(results["writers"], baseline, key=key),
                         "cpu_seconds": ratio_stats(results["writers"], baseline, metric="cpu_seconds", key=key)}
    save(args.out, results, markdown(results), console)
    return 0


def _group(r: dict) -> str:
    return str(r["rows"])


def _logger(console: Console):
    def log(r: dict) -> None:
        what = r.get("error") or r.get("skipped") or f"{r.get('seconds')} s, {r.get('cpu_seconds')} CPU s"
        console.log(f"  repeat {r['repeat'] + 1} {r['case']} ({r.get('rows', '')} rows): {what}")
    return log


def setup_exceljs(folder: Path, console: Console) -> str | None:
    """Install the pinned ExcelJS into ``folder`` (once); None when ready, else why it cannot run."""
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    package = folder / "node_modules" / "exceljs" / "package.json"
    if not (package.exists() and json.loads(package.read_text()).get("version") == EXCELJS):
        console.log(f"installing exceljs {EXCELJS} into {folder} ...")
        folder.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(["npm", "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                                   "--no-save", f"exceljs@{EXCELJS}"], capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return "npm install exceljs timed out"
        if done.returncode != 0 or not package.exists():
            return f"npm install exceljs@{EXCELJS} failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:200]}"
    os.environ["SHEETSTREAM_EXCELJS_DIR"] = str(folder.resolve())
    return None


def _url(source: str) -> str:
    return MYSQL_URL if source.startswith("mysql") else POSTGRES_URL


def seed_source(rows: int, console: Console, url: str = POSTGRES_URL) -> None:
    from ...store import open_store
    from ...store.demo import seed

    console.log(f"seeding {rows:,} demo rows into table {SOURCE_TABLE} of {url.partition(':')[0]} ...")
    seed(open_store(url), rows, SOURCE_TABLE)


def case(writer: str, rows: int, work: Path, source: str = "demo") -> dict:
    out = work / f"{writer.replace(':', '-')}-{rows}.xlsx"
    with machine_load.LoadWatch(interval=0.5) as watch:
        result = run_case("sheetstream.tools.bench.case", writer, str(rows), str(out), source)
    out.unlink(missing_ok=True)
    summary = watch.summary()
    return {**result, "others_cpu_percent": summary["others_cpu_percent"]["mean"],
            "loadavg_before": summary["loadavg_before"][0]}


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
        found += postgres_queries(url, table, console)
    finally:
        PostgresStore(url).drop_table(table)
    return found


#: Filtered and sorted exports measured beside the plain one (same server, same table): an index on created_at
#: only, so that "indexed" and "no index" differ in nothing else.
HTTP_QUERIES = {
    "filter, indexed (created_at=gte.2024-01-01)": {"created_at": "gte.2024-01-01"},
    "filter, no index (paid=is.true&amount=lt.50000)": {"paid": "is.true", "amount": "lt.50000"},
    "order, indexed (order=created_at.desc)": {"order": "created_at.desc"},
    "order, no index (order=weight)": {"order": "weight"},
}


def postgres_queries(url: str, table: str, console: Console) -> list[dict]:
    """The cursor's time to the first row and to the last for :data:`HTTP_QUERIES`, an index on created_at."""
    import psycopg
    from psycopg import sql

    from ...pipeline.query import parse_export_query
    from ...store.postgres import PostgresStore

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE INDEX ON {} (created_at)").format(sql.Identifier(table)))
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    store = PostgresStore(url)
    found = []
    for name, params in HTTP_QUERIES.items():
        q = parse_export_query(list(params.items()), store.columns(table))
        start = time.perf_counter()
        first, count = None, 0
        for _ in store.read_rows(table, q.columns, where=q.where, order=q.order):
            if first is None:
                first = time.perf_counter() - start
            count += 1
        seconds = time.perf_counter() - start
        found.append({"method": f"cursor, {name}", "rows": count, "seconds": round(seconds, 3),
                      "first_row_ms": round((first or seconds) * 1000, 1)})
        console.log(f"postgres read {name}: first row {found[-1]['first_row_ms']} ms, {seconds:.2f} s")
    return found


def http_export(rows: int, work: Path, console: Console, database_url: str | None = None) -> dict:
    """Seed a table (SQLite, or ``orders`` in ``database_url``), serve it, GET the export: time to first byte, total,
    the server's peak RSS; on SQLite, then the same for each of :data:`HTTP_QUERIES` and a two-sheet workbook
    (``queries``)."""
    import sqlite3

    from ...store import open_store
    from ...store.demo import seed

    url_ = database_url or f"sqlite:///{work / f'http-{rows}.db'}"
    console.log(f"http: seeding {rows:,} rows into {url_.partition(':')[0]} ...")
    seed(open_store(url_), rows)
    tables = ["orders"]
    if database_url is None:  # an index on created_at, and a view for the second sheet of a two-sheet book
        with sqlite3.connect(work / f"http-{rows}.db") as conn:
            conn.execute("CREATE INDEX orders_created_at ON orders (created_at)")
            conn.execute("CREATE VIEW orders_view AS SELECT * FROM orders")
        tables.append("orders_view")
    try:
        return _http_get(url_, rows, console, tables)
    finally:
        if database_url:
            open_store(database_url).drop_table("orders")


def _http_get(url_: str, rows: int, console: Console, tables: list[str]) -> dict:
    with ServerProcess(url_, tables=tables) as server:
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
            "database": url_.partition(":")[0],
            "status": response.status_code,
            "bytes": size,
            "first_byte_ms": round((first or total) * 1000, 2),
            "seconds": round(total, 3),
            "server_peak_rss_mb_before": rss_before,
            "server_peak_rss_mb": peak_rss(pid),
        }
        console.log(f"http {rows:,} rows: first byte {result['first_byte_ms']} ms, {total:.2f} s")
        if "orders_view" not in tables:
            return result
        result["queries"] = [timed_get(f"{url}/exports/orders.xlsx", server.headers, name, params, console)
                             for name, params in HTTP_QUERIES.items()]
        # Two sheets, each the whole table: the server's peak memory should not grow past the plain export's.
        book = timed_get(f"{url}/exports/book.xlsx", server.headers, "two sheets (sheets=orders,orders_view)",
                         {"sheets": "orders,orders_view"}, console)
        result["queries"].append({**book, "server_peak_rss_mb": peak_rss(pid)})
        return result


def timed_get(url: str, headers: dict, name: str, params: dict, console: Console) -> dict:
    """One export: time to first byte and in all."""
    start = time.perf_counter()
    first = None
    size = 0
    with httpx.stream("GET", url, params=params, timeout=600, headers=headers) as response:
        for chunk in response.iter_raw():
            if first is None:
                first = time.perf_counter() - start
            size += len(chunk)
    total = time.perf_counter() - start
    console.log(f"http {name}: first byte {(first or total) * 1000:.1f} ms, {total:.2f} s")
    return {"query": name, "status": response.status_code, "bytes": size,
            "first_byte_ms": round((first or total) * 1000, 2), "seconds": round(total, 3)}


def _median(values: list[float]) -> float | None:
    values = sorted(v for v in values if isinstance(v, (int, float)))
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def writers_table(results: dict) -> list[str]:
    baseline = results["baseline"]
    lines = ["| writer | rows | seconds | CPU seconds | CPU us/row | first byte (s) | peak RSS (MB) | size (MB) | "
             f"speed-up vs {baseline} (time) | (CPU) | others' CPU | notes |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    groups: dict[tuple[str, int], list[dict]] = {}
    for w in results["writers"]:
        groups.setdefault((w["writer"], w["rows"]), []).append(w)
    for (writer, rows), runs in groups.items():
        ok = [r for r in runs if "error" not in r and "skipped" not in r]
        name = writer.partition(":")[0]
        note = NOTES.get(name, "")
        if not ok:
            why = runs[0].get("error") or runs[0].get("skipped")
            lines.append(f"| {writer} | {rows:,} | {why} | | | | | | | | | {note} |")
            continue
        stats = results["ratios"]["seconds"].get(str(rows), {}).get(writer, {})
        cpu = results["ratios"]["cpu_seconds"].get(str(rows), {}).get(writer, {})
        cpu_median = cpu.get("value", {}).get("median")
        first = _median([r.get("first_byte_seconds") for r in ok])
        how = ok[0].get("first_byte_how") or ""
        first_text = "" if first is None else f"{first:.3f}" + (" (at close)" if first > 0.5 * stats["value"]["median"] and name != "sheetstream" else "")
        if how and how != "written":
            first_text += f" [{how}]"
        rss = max(max(r["peak_rss_mb"], r.get("node_peak_rss_mb", 0)) for r in ok)
        speed = shown(stats.get("speedup", {}), 2, "x") if writer != baseline else "1 (baseline)"
        speed_cpu = shown(cpu.get("speedup", {}), 2, "x") if writer != baseline and cpu else ""
        others = [r.get("others_cpu_percent") for r in ok if r.get("others_cpu_percent") is not None]
        others_text = f"{min(others):.0f}-{max(others):.0f}%" if others else ""
        errors = len(runs) - len(ok)
        lines.append(
            f"| {writer} | {rows:,} | {shown(stats['value'], 2)} | {shown(cpu.get('value', {}), 2)} | "
            f"{cpu_median / rows * 1e6:.1f} | {first_text} | {rss:.1f} | {ok[0]['bytes'] / 1e6:.1f} | {speed} | "
            f"{speed_cpu} | {others_text} | {note}{f'; {errors} failed run(s)' if errors else ''} |")
    return lines


def markdown(results: dict) -> str:
    n = results["repeats"]
    lines = [f"# Export benchmark ({results['started']})", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()), "",
             "Versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in results["versions"].items()), ""]
    lines += machine_load.markdown(results.get("load", {}))
    source = results.get("source", "demo")
    kind, _, table = source.partition(":")
    fed = {"postgres": f"read from PostgreSQL table `{table}` through a server-side cursor",
           "mysql": f"read from MySQL/MariaDB table `{table}` through an unbuffered cursor"}.get(
        kind, "generated in the writer's process (deterministic demo rows)")
    lines += ["## Writers (same rows, each run in its own process)", "",
              f"Rows {fed}. The writers of a size ran interleaved, {n} time(s) each: figures are medians with the "
              "(min-max) range; a speed-up is the baseline's time divided by the writer's in the same repeat, then "
              "summarised. CPU seconds are the writer's process and its children (Node for ExcelJS). First byte: "
              "when the writer first wrote to its file (polled on disk for writers given a path).", ""]
    lines += writers_table(results)
    if results.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{s['case']}: {s['reason']}" for s in results["skipped"])]
    if results.get("postgres_read"):
        lines += ["", "## PostgreSQL read path", "", "| method | rows | seconds | first row (ms) | rows/s |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {p['method']} | {p['rows']:,} | {p['seconds']:.2f} | {p.get('first_row_ms', '')} | "
                  f"{p['rows'] / p['seconds']:,.0f} |" for p in results["postgres_read"] if p["seconds"]]
    if results.get("http"):
        served = {"mysql": "MySQL/MariaDB"}.get(results["http"][0].get("database", ""), "SQLite")
        lines += ["", f"## HTTP export from {served} (GET /exports/orders.xlsx; one run each)", "",
                  "| rows | first byte (ms) | seconds | size (MB) | server peak RSS before / after (MB) |",
                  "|---:|---:|---:|---:|---:|"]
        lines += [f"| {h['rows']:,} | {h['first_byte_ms']:.1f} | {h['seconds']:.2f} | {h['bytes'] / 1e6:.1f} | "
                  f"{h['server_peak_rss_mb_before']:.1f} / {h['server_peak_rss_mb']:.1f} |" for h in results["http"]]
        lines += ["", "Filtered and sorted, same server and table (an index on created_at only):", "",
                  "| table rows | query | first byte (ms) | seconds | size (MB) |", "|---:|---|---:|---:|---:|"]
        lines += [f"| {h['rows']:,} | {q['query']} | {q['first_byte_ms']:.1f} | {q['seconds']:.2f} | "
                  f"{q['bytes'] / 1e6:.1f} |" for h in results["http"] for q in h.get("queries", [])]
        lines += [f"\nServer peak RSS after the two-sheet workbook of {h['rows']:,} rows a sheet: "
                  f"{q['server_peak_rss_mb']:.1f} MB (after the plain export: {h['server_peak_rss_mb']:.1f} MB)"
                  for h in results["http"] for q in h.get("queries", []) if "server_peak_rss_mb" in q]
    return "\n".join(lines) + "\n"
