"""``sheetstream bench import``: the whole import (upload + parse + validate + insert) through the server, against
the usual ways to do it on the same file and database in the same run, and parse-only references.

Peers (each in its own process, so its peak RSS is its own; see ``import_case``): python-calamine + COPY, pandas
(``read_excel(engine="calamine")``) + COPY, polars (``read_excel(engine="calamine")``) + ADBC, openpyxl
``read_only`` + ``executemany``; on MySQL/MariaDB, pandas + SQLAlchemy ``to_sql``, and ``LOAD DATA LOCAL`` of the
same rows as a CSV (the floor). A peer whose package is missing is skipped, the reason kept in the JSON.

The cases of one size and database run interleaved (A B C, A B C, ..., ``--repeats`` times), and each peer's time
is divided by sheetstream's of the same repeat: the report gives the median and range of those ratios, and the
machine's load (load average, other processes' CPU) beside them. The JSON keeps every run.
"""

from __future__ import annotations

import argparse
import csv
import functools
import multiprocessing
import tempfile
import threading
import time
from datetime import date, datetime
from pathlib import Path

import httpx
import psutil
from rich.console import Console

from ...formats.xlsx import MEDIA_TYPE, write_xlsx
from ...store import open_store
from ...store.demo import ORDERS, demo_rows
from ...store.postgres import _text_encoder
from ..harness import MYSQL_URL, POSTGRES_URL, ServerProcess, mysql_problem, peak_rss, postgres_problem, run_case
from . import load as machine_load
from .import_case import MYSQL_ONLY, NEEDS, POSTGRES_ONLY, missing
from .pairs import chosen_peers, interleave, new_results, ratio_stats, save, shown

PARSERS = ["sheetstream-parse", "calamine-parse", "openpyxl-parse"]
BASELINE = "sheetstream"
#: sheetstream with the sheet read by two processes (SHEETSTREAM_SPLIT_IMPORTS=on): what the split gains.
SPLIT = "sheetstream-split"
PEERS = [SPLIT, "copy-floor", "calamine-copy", "pandas-copy", "polars-adbc", "openpyxl-executemany", "pandas-to_sql",
         "csv-load-data"]
TABLE = "bench_orders"


def run(args: argparse.Namespace) -> int:
    console = Console()
    try:
        peers = chosen_peers(args.peers, PEERS)
    except ValueError as exc:
        console.print(str(exc))
        return 2
    packages = ["openpyxl", "psycopg", *(p for needs in NEEDS.values() for p in needs)]
    results = new_results(args.repeats, packages, {"baseline": BASELINE, "writer": args.writer, "parse": [],
                                                   "import": [], "skipped": []})
    databases = [d for d in args.databases.split(",") if d]
    states = [t for t in args.tables.split(",") if t]
    with tempfile.TemporaryDirectory(prefix="sheetstream-bench-import-") as tmp, \
            machine_load.LoadWatch() as whole:
        work = Path(tmp)
        for rows in args.rows:
            path = work / f"orders-{rows}.xlsx"
            WRITERS[args.writer](path, rows)
            size = path.stat().st_size
            console.log(f"{rows:,} rows: file of {size / 1e6:.1f} MB")
            parsers = [p for p in PARSERS if (p != "openpyxl-parse" or rows <= args.openpyxl_max) and not args.no_parse]
            cases = []
            for case in parsers:
                if why := missing(case):
                    results["skipped"].append({"case": case, "rows": rows, "reason": why})
                else:
                    cases.append((case, functools.partial(subprocess_case, case, path)))
            for r in interleave(cases, args.repeats, on_result=_logger(console, "parse")):
                results["parse"].append({**_renamed(r, rows), "file_mb": round(size / 1e6, 1)})
            for database in databases:
                url = {"postgres": POSTGRES_URL, "mysql": MYSQL_URL}.get(database, f"sqlite:///{work / 'bench.db'}")
                problem = {"postgres": postgres_problem, "mysql": mysql_problem}.get(database, lambda url: None)(url)
                if problem:
                    console.log(f"{problem}: skipped")
                    results["skipped"].append({"case": "*", "database": database, "rows": rows, "reason": problem})
                    continue
                store = open_store(url)
                for state in states:
                    _import_cases(args, results, console, peers, database, state, url, store, path, rows, work)
                store.drop_table(TABLE)
    results["load"] = whole.summary()
    results["ratios"] = {
        "parse": ratio_stats(results["parse"], "sheetstream-parse", key=_group),
        "parse_cpu": ratio_stats(results["parse"], "sheetstream-parse", metric="cpu_seconds", key=_group),
        "import": ratio_stats(results["import"], BASELINE, key=_group),
        "import_cpu": ratio_stats(results["import"], BASELINE, metric="cpu_seconds", key=_group),
    }
    save(args.out, results, markdown(results), console)
    return 0


def _import_cases(args: argparse.Namespace, results: dict, console: Console, peers: list[str], database: str,
                  state: str, url: str, store, path: Path, rows: int, work: Path) -> None:
    """One database's whole imports of one size, interleaved, into an empty table or (``state`` full) into one
    holding the same rows, which every case replaces."""
    label = database if state == "empty" else f"{database} full"
    fill = functools.partial(_fill, url, store, rows, work) if state == "full" else None
    if database == "postgres":
        _copy_file(path.with_suffix(".copy"), rows)  # the floor's rows, and the full table's
    cases = [(BASELINE, functools.partial(server_import, url, path, store, BASELINE, fill))]
    if database in ("postgres", "mysql") and SPLIT in peers:
        cases.append((SPLIT, functools.partial(server_import, url, path, store, SPLIT, fill)))
    for peer in peers:
        if peer == SPLIT:
            continue  # above: a server of ours, not a script
        why = missing(peer)
        if not why and peer in POSTGRES_ONLY and database != "postgres":
            why = "PostgreSQL only (COPY or ADBC's PostgreSQL driver)"
        if not why and peer in MYSQL_ONLY and database != "mysql":
            why = "MySQL/MariaDB only"
        if not why and peer == "openpyxl-executemany" and rows > args.openpyxl_max:
            why = f"over --openpyxl-max ({args.openpyxl_max:,} rows)"
        if why:
            results["skipped"].append({"case": peer, "database": label, "rows": rows, "reason": why})
        else:
            source = _csv_file(work / f"orders-{rows}.csv", rows) if peer == "csv-load-data" else path
            cases.append((peer, functools.partial(peer_import, peer, url, source, store, fill)))
    for r in interleave(cases, args.repeats, on_result=_logger(console, label)):
        results["import"].append({"database": label, **_renamed(r, rows)})


def _copy_file(path: Path, rows: int) -> Path:
    """The demo rows in COPY's text format (once per size): the floor's input, and how a full table is filled."""
    if not path.exists():
        encode = _text_encoder(ORDERS, numbered=False)
        with open(path, "wb") as f:
            batch: list = []
            for row in demo_rows(rows):
                batch.append((0, list(row)))
                if len(batch) == 10_000:
                    f.write(encode(batch))
                    batch = []
            f.write(encode(batch))
    return path


def _fill(url: str, store, rows: int, work: Path) -> None:
    """The table made again, holding the demo rows (not timed): what a replace of the full table deletes."""
    store.create_table(TABLE, ORDERS, replace=True)
    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url) as conn, open(work / f"orders-{rows}.copy", "rb") as data:
            with conn.cursor().copy(f'COPY "{TABLE}" FROM STDIN') as copy:
                while chunk := data.read(1 << 20):
                    copy.write(chunk)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'VACUUM ANALYZE "{TABLE}"')
    else:
        store.write_rows(TABLE, ORDERS, demo_rows(rows))


def _csv_file(path: Path, rows: int) -> Path:
    """The demo rows as a CSV for LOAD DATA: a header line, ``\\N`` for NULL, booleans as 1 and 0 (once per size)."""
    if not path.exists():
        with open(path, "w", newline="", encoding="utf-8") as f:
            out = csv.writer(f, lineterminator="\n")
            out.writerow([c.name for c in ORDERS])
            for row in demo_rows(rows):
                out.writerow(["\\N" if v is None else int(v) if isinstance(v, bool) else v for v in row])
    return path


def _sheetstream_file(path: Path, rows: int) -> None:
    with open(path, "wb") as f:
        for chunk in write_xlsx(demo_rows(rows), [c.name for c in ORDERS], sheet_name="orders"):
            f.write(chunk)


def _xlsxwriter_file(path: Path, rows: int) -> None:
    """The demo rows as Excel writes a sheet: shared strings, a reference on every cell, dates in date styles.
    XlsxWriter holds the whole workbook until it closes (1.7 GB for 1,000,000 rows), so it writes in a process of
    its own: a case started from a process that large reports that size as its own peak RSS."""
    writer = multiprocessing.get_context("spawn").Process(target=_write_with_xlsxwriter, args=(path, rows))
    writer.start()
    writer.join()
    if writer.exitcode != 0:
        raise RuntimeError(f"XlsxWriter could not write the workbook (exit code {writer.exitcode})")


def _write_with_xlsxwriter(path: Path, rows: int) -> None:
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("orders")
    styles = {datetime: book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
              date: book.add_format({"num_format": "yyyy-mm-dd"})}
    sheet.write_row(0, 0, [c.name for c in ORDERS])
    for r, row in enumerate(demo_rows(rows), 1):
        for c, value in enumerate(row):
            if type(value) in styles:
                sheet.write_datetime(r, c, value, styles[type(value)])
            elif isinstance(value, str):
                sheet.write_string(r, c, value)  # never a formula or a URL, whatever the text
            elif value is not None:
                sheet.write(r, c, value)
    book.close()


_WRITTEN = {"sheetstream": "written by sheetstream (inline strings, no cell references)",
            "xlsxwriter": "written by XlsxWriter, as Excel writes one (shared strings, a reference on every cell)"}
#: ``--writer``: who writes the workbook the cases read.
WRITERS = {"sheetstream": _sheetstream_file, "xlsxwriter": _xlsxwriter_file}


def _group(r: dict) -> str:
    return f"{r['database']} {r['rows']}" if "database" in r else str(r["rows"])


def _renamed(r: dict, rows: int) -> dict:
    """The case's own row count is ``rows_done``; ``rows`` is the size asked for (the group)."""
    out = {k: v for k, v in r.items() if k != "rows"}
    return {**out, "rows": rows, "rows_done": r.get("rows")}


def _logger(console: Console, what: str):
    def log(r: dict) -> None:
        shown_ = r.get("error") or r.get("skipped") or f"{r.get('seconds')} s, {r.get('cpu_seconds')} CPU s"
        console.log(f"  [{what}] repeat {r['repeat'] + 1} {r['case']}: {shown_}")
    return log


def watched(function):
    """Run ``function`` with the machine watched: its result gets the other processes' mean CPU share."""
    with machine_load.LoadWatch(interval=0.5) as watch:
        result = function()
    summary = watch.summary()
    return {**result, "others_cpu_percent": summary["others_cpu_percent"]["mean"],
            "loadavg_before": summary["loadavg_before"][0]}


def subprocess_case(case: str, path: Path, *extra: str) -> dict:
    return watched(lambda: {"case": case, **run_case("sheetstream.tools.bench.import_case", case, str(path), *extra)})


def peer_import(peer: str, url: str, path: Path, store, fill=None) -> dict:
    if fill is not None:
        fill()
    else:
        store.create_table(TABLE, ORDERS, replace=True)
    return subprocess_case(peer, path, url, TABLE)


def _tree_cpu(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            t = p.cpu_times()  # children_*: processes already reaped, such as an import's helper
            total += t.user + t.system + t.children_user + t.children_system
        return total
    except psutil.Error:
        return float("nan")


def _worker_peaks(pid: int) -> float:
    try:
        return max((peak_rss(c.pid) for c in psutil.Process(pid).children(recursive=True)), default=0.0)
    except (psutil.Error, OSError):
        return float("nan")


class TreeMemory:
    """The peak of the proportional set size (PSS) summed over a process and all its descendants: the whole
    server's memory (main process, fork server, workers, an import's helper), with the pages a forked helper
    shares with its worker counted once, not twice as a sum of RSS would. Sampled every 0.25 s: a sample costs
    about 2 ms of CPU per process, which at 20 per second slowed the import it measured by a tenth."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            try:
                root = psutil.Process(self.pid)
                total = 0
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_full_info().pss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total / 2**20)
            except psutil.Error:
                return


def server_import(url: str, path: Path, store, case: str = BASELINE, fill=None) -> dict:
    """PUT the file to a fresh server and wait for the job: the whole import as a user sees it. CPU seconds are
    the server's (main process, its workers and their helpers). ``case`` :data:`SPLIT`: the sheet read by the
    worker and a helper process. ``fill``: makes the table full (after the warm-up) for a replace of its rows."""
    store.create_table(TABLE, ORDERS, replace=True)
    env = {"SHEETSTREAM_SPLIT_IMPORTS": "on" if case == SPLIT else "off"}
    with ServerProcess(url, tables=[TABLE], env=env) as server:
        base, pid = server.url, server.process.pid
        warm = path.with_name("warm-up.xlsx")  # start the workers and import everything before measuring
        with open(warm, "wb") as f:
            for chunk in write_xlsx(demo_rows(10), [c.name for c in ORDERS], sheet_name="orders"):
                f.write(chunk)
        with open(warm, "rb") as f:
            httpx.put(f"{base}/imports/{TABLE}", params={"mode": "replace", "wait": "true"}, content=f,
                      headers={"Content-Type": MEDIA_TYPE, **server.headers}, timeout=120)
        warm.unlink()
        if fill is not None:
            fill()

        def upload() -> dict:
            before, cpu = peak_rss(pid), _tree_cpu(pid)
            start = time.perf_counter()
            with open(path, "rb") as f, TreeMemory(pid) as tree:
                response = httpx.put(f"{base}/imports/{TABLE}", params={"mode": "replace", "wait": "true"},
                                     content=f, headers={"Content-Type": MEDIA_TYPE, **server.headers}, timeout=3600)
            seconds = time.perf_counter() - start
            job = response.json()
            result = {"case": case, "status": response.status_code, "rows": job.get("rows_inserted"),
                      "seconds": round(seconds, 3), "cpu_seconds": round(_tree_cpu(pid) - cpu, 3),
                      "server_peak_rss_mb_before": before, "server_peak_rss_mb": peak_rss(pid),
                      "worker_peak_rss_mb": _worker_peaks(pid), "tree_peak_pss_mb": round(tree.peak, 1)}
            if response.status_code != 200:
                result["error"] = f"HTTP {response.status_code}: {job.get('message')}"
            return result

        return watched(upload)


def _rows_table(runs: list[dict], ratios: dict, cpu_ratios: dict | None, group_of, baseline: str) -> list[str]:
    """One line per (group, case): medians with ranges, and the pairwise ratio to the baseline."""
    lines = []
    seen: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        seen.setdefault((group_of(r), r["case"]), []).append(r)
    for (group, case), rs in seen.items():
        ok = [r for r in rs if "error" not in r]
        errors = [r["error"] for r in rs if "error" in r]
        stats = ratios.get(group, {}).get(case)
        if not ok or not stats:
            lines.append(f"| {group} | {case} | error: {errors[0] if errors else '?'} | | | | | |")
            continue
        rss = [r.get("worker_peak_rss_mb") or r.get("peak_rss_mb") for r in ok]
        rss_text = f"{max(rss):.1f}" if all(isinstance(x, (int, float)) for x in rss) else ""
        if "server_peak_rss_mb" in ok[0]:
            rss_text = f"{max(r['server_peak_rss_mb'] for r in ok):.1f} main / {rss_text} worker"
            if all(r.get("tree_peak_pss_mb") for r in ok):
                rss_text += f" / {max(r['tree_peak_pss_mb'] for r in ok):.1f} all (PSS)"
        rows = ok[0]["rows"]
        rate = rows / stats["value"]["median"] if stats["value"]["median"] else 0
        cpu = (cpu_ratios or {}).get(group, {}).get(case)
        ratio = shown(stats["ratio"], 2, "x") if case != baseline else "1 (baseline)"
        cpu_ratio = shown(cpu["ratio"], 2, "x") if cpu and case != baseline else ""
        cpu_value = shown(cpu["value"], 2) if cpu else ""
        others = [r.get("others_cpu_percent") for r in ok if r.get("others_cpu_percent") is not None]
        others_text = f"{min(others):.0f}-{max(others):.0f}%" if others else ""
        lines.append(f"| {group} | {case} | {shown(stats['value'], 2)} | {cpu_value} | {rate:,.0f} | {rss_text} | "
                     f"{ratio} | {cpu_ratio} | {others_text} |" + (f" {len(errors)} error(s)" if errors else ""))
    return lines


def markdown(results: dict) -> str:
    n = results["repeats"]
    lines = [f"# Import benchmark ({results['started']})", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()), "",
             "Versions: " + ", ".join(f"{k} {v or 'not installed'}" for k, v in results["versions"].items()), ""]
    lines += machine_load.markdown(results.get("load", {}))
    lines += [f"The workbook: {_WRITTEN[results.get('writer', 'sheetstream')]}.", ""]
    lines += [f"Each size's cases ran interleaved, {n} time(s) each; figures are medians with the (min-max) range. "
              "A ratio is the case's time divided by the baseline's in the same repeat, then summarised: on a busy "
              "machine the ratio is the figure to read, not the seconds.", ""]
    header = ("| {} | case | seconds | CPU seconds | rows/s (median) | peak RSS (MB) | time / {} | CPU / {} | "
              "others' CPU during the runs |")
    sep = "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    lines += ["## Parse only (each in its own process)", "", header.format("rows", "sheetstream-parse", "sheetstream-parse"), sep]
    lines += _rows_table(results["parse"], results["ratios"]["parse"], results["ratios"]["parse_cpu"], _group,
                         "sheetstream-parse")
    lines += ["", "## Whole import (parse + validate + insert, one transaction; sheetstream through the server)", "",
              "sheetstream's figures are the whole service path: the HTTP upload to a spool file, the job and its "
              "progress records, parse, validate and insert, in a server warmed by a 10-row import; its CPU "
              "seconds are the server's (main process, workers and an import's helper process). Its memory: the "
              "main process's and the worker's peak RSS, and the peak of the whole process tree's PSS (sampled every "
              "0.25 s; main, fork server, workers, helper; pages a forked helper shares with its worker counted "
              "once). A peer's are one process reading the file and inserting, with no upload and no job record. "
              "PostgreSQL's own CPU is in neither. Modules are imported before every clock starts.", "",
              header.format("database rows", BASELINE, BASELINE), sep]
    lines += _rows_table(results["import"], results["ratios"]["import"], results["ratios"]["import_cpu"], _group,
                         BASELINE)
    if results["skipped"]:
        lines += ["", "## Skipped", "", "| case | database | rows | why |", "|---|---|---:|---|"]
        lines += [f"| {s['case']} | {s.get('database', '')} | {s['rows']:,} | {s['reason']} |" for s in results["skipped"]]
    return "\n".join(lines) + "\n"
