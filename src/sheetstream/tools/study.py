"""``sheetstream study``: the whole question, measured in one command.

Starts its own server per strategy on loopback, runs the load matrix (strategies x users x operations), runs
the peer libraries on the same rows, and writes ``results.json`` and ``study.md`` with PNG plots. Every
finding in the report is computed from the numbers of the run that wrote it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console

from .harness import ServerProcess, installed, machine, run_case
from .loadtest import drop, prepare, run_load


@dataclass(frozen=True)
class Plan:
    rows: int
    users: tuple[int, ...]
    strategies: tuple[str, ...]
    operations: tuple[str, ...]  # run at every user count
    single_ops_users: int  # download-only and upload-only runs at this user count
    peer_rows: int
    timeout: float


QUICK = Plan(rows=3_000, users=(1, 5), strategies=("inline", "thread", "process"), operations=("roundtrip",),
             single_ops_users=5, peer_rows=3_000, timeout=60)
FULL = Plan(rows=200_000, users=(1, 5, 20), strategies=("inline", "thread", "process"), operations=("roundtrip",),
            single_ops_users=5, peer_rows=200_000, timeout=900)

WRITERS = ["sheetstream", "xlsxwriter", "openpyxl", "pyexcelerate", "rustpy-xlsxwriter"]
READERS = ["sheetstream-parse", "calamine-parse", "openpyxl-parse"]
CANNOT = {
    "sheetstream": "",
    "xlsxwriter": "constant_memory streams rows to temp files, but the file is only written at close: no bytes "
                  "before the end",
    "openpyxl": "write_only: file written at save; refuses control characters (stripped for this run)",
    "pyexcelerate": "builds the whole workbook in memory, writes at save",
    "rustpy-xlsxwriter": "takes all records at once (whole table in memory), writes at the end",
    "sheetstream-parse": "",
    "calamine-parse": "loads the whole sheet into memory",
    "openpyxl-parse": "read_only streams, slowly",
}


def run(args: argparse.Namespace) -> int:
    plan = QUICK if args.quick else FULL
    console = Console()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "command": "sheetstream study" + (" --quick" if args.quick else "") + f" --out {shlex.quote(str(out))}",
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine(), "processor": platform.processor() or platform.machine(),
                    "libraries": {n: installed(n) for n in ("fastapi", "uvicorn", "psycopg", "xlsxwriter", "openpyxl",
                                                            "pyexcelerate", "rustpy-xlsxwriter", "python-calamine")}},
        "plan": plan.__dict__,
        "cells": [],
        "writers": [],
        "readers": [],
    }
    with tempfile.TemporaryDirectory(prefix="sheetstream-study-") as tmp:
        work = Path(tmp)
        database_url = args.database_url or f"sqlite:///{work / 'study.db'}"
        max_users = max(plan.users)
        scratch = prepare(database_url, "orders", plan.rows, max_users)
        try:
            for strategy in plan.strategies:
                with ServerProcess(database_url, ["orders", *scratch], strategy, None, "forkserver", work) as server:
                    runs = [(op, users) for users in plan.users for op in plan.operations]
                    runs += [(op, users) for users in (1, plan.single_ops_users) for op in ("download", "upload")]
                    for op, users in runs:
                        console.log(f"{strategy}: {users} user(s), {op}")
                        results["cells"].append(cell(server, strategy, op, users, plan, scratch, work))
            console.log("where the time goes")
            results["breakdown"] = breakdown(database_url, "orders", scratch[0], work)
        finally:
            drop(database_url, scratch)
        for writer in WRITERS:
            console.log(f"writer {writer}")
            results["writers"].append(peer("sheetstream.tools.bench.case", writer, plan.peer_rows, work))
        sample = work / "peer.xlsx"
        subprocess.run([sys.executable, "-m", "sheetstream.tools.bench.case", "sheetstream", str(plan.peer_rows), str(sample)],
                       check=True, capture_output=True)
        for reader in READERS:
            console.log(f"reader {reader}")
            results["readers"].append(peer("sheetstream.tools.bench.import_case", reader, plan.peer_rows, work, sample))
    results["seconds"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plots(results, out)
    (out / "study.md").write_text(report(results))
    console.log(f"study written to {out / 'study.md'} in {results['seconds']} s")
    return 0


def cell(server: ServerProcess, strategy: str, op: str, users: int, plan: Plan, scratch: list[str], work: Path) -> dict:
    main = psutil.Process(server.process.pid)  # type: ignore[union-attr]

    def cpu() -> float:
        total = sum(main.cpu_times()[:2])
        for child in main.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.Error:
                pass
        return total

    before = cpu()
    result = asyncio.run(run_load(server.url, users, 1, [op], "orders", scratch, work, plan.timeout, server.token))
    timeline = result["server"].pop("timeline")
    return {
        "strategy": strategy,
        "operation": op,
        "users": users,
        "rows": plan.rows,
        "wall_s": result["wall_s"],
        "throughput_mb_s": result["throughput_mb_s"],
        "rows_per_s": result["rows_per_s"],
        "latency": result["operations"].get(op, {}),
        "lag": result["server"]["lag"],
        "rss_main_mb_max": result["server"]["rss_main_mb_max"],
        "rss_all_mb_max": round(max((p["rss_main_mb"] + p["rss_workers_mb"] for p in timeline), default=0.0), 1),
        "cpu_s": round(cpu() - before, 2),
        "errors": result["errors"],
        "busy_retries": result["busy_retries"],
        "timed_out": result["timed_out"],
        "timeline": timeline,
    }


def breakdown(database_url: str, table: str, scratch: str, work: Path) -> dict[str, float]:
    """One export and one import taken apart, stage by stage, in this process (thread strategy's code path)."""
    import zlib

    from ..formats.xlsx import deflater, open_workbook, write_xlsx
    from ..pipeline.imports import run_import
    from ..pipeline.jobs import Job
    from ..pipeline.validate import Problems, convert_rows, map_header
    from ..store import open_store

    store = open_store(database_url)
    columns = store.columns(table)
    names = [c.name for c in columns]

    def timed(work_fn) -> float:
        start = time.perf_counter()
        work_fn()
        return time.perf_counter() - start

    def drain(iterable) -> None:
        for _ in iterable:
            pass

    stored = lambda: zlib.compressobj(0, zlib.DEFLATED, -15)  # noqa: E731 (no compression: XML alone)
    read = timed(lambda: drain(store.read_rows(table, columns)))
    xml = timed(lambda: drain(write_xlsx(store.read_rows(table, columns), names, compress=stored)))
    path = work / "breakdown.xlsx"
    with open(path, "wb") as f:
        full = timed(lambda: [f.write(c) for c in write_xlsx(store.read_rows(table, columns), names,
                                                              compress=deflater())])

    def parse_and_validate(validate: bool) -> None:
        with open_workbook(path) as book:
            rows = book.rows()
            plan = map_header(next(rows)[1], columns, "orders")
            drain(convert_rows(rows, plan, "orders", Problems(), {"rows_read": 0}) if validate else rows)

    parse = timed(lambda: parse_and_validate(False))
    validate = timed(lambda: parse_and_validate(True))
    whole = timed(lambda: run_import(store, Job(table=scratch, mode="replace"), path, lambda job: None))
    return {
        "export_database_read_s": round(read, 2),
        "export_xml_s": round(xml - read, 2),
        "export_deflate_s": round(full - xml, 2),
        "export_total_s": round(full, 2),
        "import_parse_s": round(parse, 2),
        "import_validate_s": round(validate - parse, 2),
        "import_insert_s": round(whole - validate, 2),
        "import_total_s": round(whole, 2),
    }


def peer(module: str, name: str, rows: int, work: Path, sample: Path | None = None) -> dict:
    args = [str(sample)] if sample else [str(rows), str(work / f"{name}.xlsx")]
    return {"name": name, "rows": rows, "cannot": CANNOT.get(name, ""), **run_case(module, name, *args)}


def plots(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in results["cells"] if c["operation"] == "roundtrip"]
    users = sorted({c["users"] for c in cells})
    strategies = list(dict.fromkeys(c["strategy"] for c in cells))
    for metric, label, name in (("throughput_mb_s", "throughput (MB/s)", "throughput.png"),
                                ("lag_p99", "event-loop lag p99 (ms)", "lag_p99.png"),
                                ("rss_main_mb_max", "peak RSS, main process (MB)", "rss_main.png")):
        fig, ax = plt.subplots(figsize=(7, 4))
        width = 0.8 / len(strategies)
        for i, strategy in enumerate(strategies):
            values = [next((value(c, metric) for c in cells if c["strategy"] == strategy and c["users"] == u), 0)
                      for u in users]
            ax.bar([x + i * width for x in range(len(users))], values, width, label=strategy)
        ax.set_xticks([x + width * (len(strategies) - 1) / 2 for x in range(len(users))], [f"{u} users" for u in users])
        ax.set_ylabel(label)
        ax.set_title(f"round trip of {results['plan']['rows']:,} rows: {label}")
        if metric == "lag_p99":
            ax.set_yscale("log")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
    focus = results["plan"]["single_ops_users"]
    for metric, label, name in (("lag_recent_max_ms", "largest lag in the last second (ms)", "lag_over_time.png"),
                                ("rss", "RSS (MB): solid main, dashed workers", "memory_over_time.png")):
        fig, ax = plt.subplots(figsize=(7, 4))
        for strategy in strategies:
            run = next((c for c in cells if c["strategy"] == strategy and c["users"] == focus), None)
            if not run or not run["timeline"]:
                continue
            t = [p["t"] for p in run["timeline"]]
            if metric == "rss":
                line, = ax.plot(t, [p["rss_main_mb"] for p in run["timeline"]], label=f"{strategy} main")
                ax.plot(t, [p["rss_workers_mb"] for p in run["timeline"]], "--", color=line.get_color(),
                        label=f"{strategy} workers")
            else:
                ax.plot(t, [max(p.get(metric, 0), 0.01) for p in run["timeline"]], label=strategy)
        if metric != "rss":
            ax.set_yscale("log")
        ax.set_xlabel("seconds into the run")
        ax.set_ylabel(label)
        ax.set_title(f"{focus} users, round trip, over time")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)


def value(c: dict, metric: str) -> float:
    if metric == "lag_p99":
        return max((c["lag"] or {}).get("p99_ms", 0.0), 0.01)
    return c[metric]


def report(results: dict) -> str:
    plan, cells = results["plan"], results["cells"]
    m = results["machine"]
    lines = [
        "# sheetstream study: streaming large spreadsheets through a Python server", "",
        f"Command: `{results['command']}` — ran {results['started']}, {results['seconds']} s.", "",
        f"Machine: {m['cpus']} CPUs ({m['processor']}), {m['memory_gb']} GB, Python {m['python']}, {m['platform']}. "
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v) + ".", "",
        f"Table: the demo `orders` table, {plan['rows']:,} rows x 11 columns, SQLite. Each user does one operation; "
        "a round trip is a download of the export followed by an upload of it into the user's own copy of the table.",
        "", "## Round trips by strategy and users", "",
        "| strategy | users | wall (s) | MB/s | rows/s | latency p50 / p99 (s) | lag p50 / p99 / max (ms) | "
        "RSS main / all (MB) | CPU (s) | 429s waited out | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        lat, lag = c["latency"], c["lag"] or {}
        lines.append(
            f"| {c['strategy']} | {c['users']} {c['operation'] if c['operation'] != 'roundtrip' else ''} | "
            f"{c['wall_s']:.2f} | {c['throughput_mb_s']:.2f} | {c['rows_per_s']:,} | "
            f"{lat.get('p50_s', 0):.2f} / {lat.get('p99_s', 0):.2f} | "
            f"{lag.get('p50_ms', 0):.1f} / {lag.get('p99_ms', 0):.1f} / {lag.get('max_ms', 0):.1f} | "
            f"{c['rss_main_mb_max']:.0f} / {c['rss_all_mb_max']:.0f} | {c['cpu_s']:.1f} | {c['busy_retries']} | "
            f"{sum(c['errors'].values()) + (1 if c['timed_out'] else 0)} |")
    lines += ["", "![throughput](throughput.png) ![lag p99](lag_p99.png)", "",
              "![lag over time](lag_over_time.png) ![memory over time](memory_over_time.png)", "",
              "![main-process memory](rss_main.png)", ""]
    lines += where_the_time_goes(results)
    lines += ["## Peers on the same rows", "", "| writer | rows | seconds | first byte (s) | peak RSS (MB) | size (MB) | "
              "what it cannot do |", "|---|---:|---:|---:|---:|---:|---|"]
    for w in results["writers"]:
        if "error" in w:
            lines.append(f"| {w['name']} | {w['rows']:,} | not run: {w['error']} | | | | {w['cannot']} |")
        else:
            lines.append(f"| {w['name']} | {w['rows']:,} | {w['seconds']:.2f} | {w['first_byte_seconds']:.3f} | "
                         f"{w['peak_rss_mb']:.0f} | {w['bytes'] / 1e6:.1f} | {w['cannot']} |")
    lines += ["", "| reader | rows | seconds | peak RSS (MB) | what it cannot do |", "|---|---:|---:|---:|---|"]
    for r in results["readers"]:
        if "error" in r:
            lines.append(f"| {r['name']} | {r['rows']:,} | not run: {r['error']} | | {r['cannot']} |")
        else:
            lines.append(f"| {r['name']} | {r['rows']:,} | {r['seconds']:.2f} | {r['peak_rss_mb']:.0f} | {r['cannot']} |")
    lines += ["", "## Findings (computed from this run)", ""] + findings(results)
    return "\n".join(lines) + "\n"


def where_the_time_goes(results: dict) -> list[str]:
    b = results.get("breakdown")
    if not b:
        return []
    by = {(c["strategy"], c["operation"], c["users"]): c for c in results["cells"]}
    download = by.get(("thread", "download", 1))
    upload = by.get(("thread", "upload", 1))
    lines = ["## Where the time goes (one export and one import of the table, taken apart)", "",
             "| stage | seconds |", "|---|---:|",
             f"| export: database read (SQLite, typed rows) | {b['export_database_read_s']:.2f} |",
             f"| export: rows to sheet XML | {b['export_xml_s']:.2f} |",
             f"| export: deflate (isal level 1) and ZIP | {b['export_deflate_s']:.2f} |"]
    if download:
        lines.append(f"| export: HTTP and client (1-user download, thread strategy, minus the above) | "
                     f"{max(download['wall_s'] - b['export_total_s'], 0):.2f} |")
    lines += [f"| import: parse (unzip and tokenize) | {b['import_parse_s']:.2f} |",
              f"| import: validate against the column types | {b['import_validate_s']:.2f} |",
              f"| import: insert in one transaction | {b['import_insert_s']:.2f} |"]
    if upload:
        lines.append(f"| import: HTTP upload to the spool file and job (1-user upload, thread strategy, minus the above) | "
                     f"{max(upload['wall_s'] - b['import_total_s'], 0):.2f} |")
    return lines + [""]


def findings(results: dict) -> list[str]:
    cells = [c for c in results["cells"] if c["operation"] == "roundtrip" and not c["errors"] and not c["timed_out"]]
    out = []
    if not cells:
        return ["- No round trip finished without errors: no finding."]
    by = {(c["strategy"], c["users"]): c for c in cells}
    for users in sorted({c["users"] for c in cells}):
        row = {s: by[(s, users)] for s in ("inline", "thread", "process") if (s, users) in by}
        lags = ", ".join(f"{s} {c['lag']['p99_ms']:.1f} ms" for s, c in row.items())
        speed = ", ".join(f"{s} {c['throughput_mb_s']:.2f} MB/s" for s, c in row.items())
        best_lag = min(row, key=lambda s: row[s]["lag"]["p99_ms"])
        best_speed = max(row, key=lambda s: row[s]["throughput_mb_s"])
        out.append(f"- {users} user(s): event-loop lag p99 {lags} (lowest: **{best_lag}**); throughput {speed} "
                   f"(highest: **{best_speed}**).")
    for strategy in ("inline", "thread", "process"):
        one, many = by.get((strategy, 1)), [by[k] for k in by if k[0] == strategy and k[1] > 1]
        if one and many:
            top = max(many, key=lambda c: c["users"])
            out.append(f"- {strategy}: {top['users']} users move {top['throughput_mb_s'] / max(one['throughput_mb_s'], 1e-9):.2f}x "
                       f"the throughput of 1 user; main-process RSS {one['rss_main_mb_max']:.0f} MB at 1 user, "
                       f"{top['rss_main_mb_max']:.0f} MB at {top['users']} ({top['rss_main_mb_max'] - one['rss_main_mb_max']:+.0f} MB); "
                       f"all processes {top['rss_all_mb_max']:.0f} MB; {top['cpu_s']:.1f} CPU-seconds.")
    ours = next((w for w in results["writers"] if w["name"] == "sheetstream" and "seconds" in w), None)
    for w in results["writers"]:
        if ours and w["name"] != "sheetstream" and "seconds" in w:
            ratio = w["seconds"] / ours["seconds"]
            versus = f"sheetstream {ratio:.1f}x faster" if ratio >= 1 else f"sheetstream {1 / ratio:.1f}x slower"
            out.append(f"- Writing {w['rows']:,} rows: sheetstream {ours['seconds']:.2f} s (first byte after "
                       f"{ours['first_byte_seconds']:.3f} s) vs {w['name']} {w['seconds']:.2f} s ({versus}; its first "
                       f"byte after {w['first_byte_seconds']:.2f} s).")
    reader = next((r for r in results["readers"] if r["name"] == "sheetstream-parse" and "seconds" in r), None)
    for r in results["readers"]:
        if reader and r["name"] != "sheetstream-parse" and "seconds" in r:
            out.append(f"- Reading {r['rows']:,} rows: sheetstream {reader['seconds']:.2f} s / {reader['peak_rss_mb']:.0f} MB "
                       f"vs {r['name']} {r['seconds']:.2f} s / {r['peak_rss_mb']:.0f} MB.")
    b = results.get("breakdown")
    if b:
        for side, stages in (("export", ("database_read", "xml", "deflate")), ("import", ("parse", "validate", "insert"))):
            times = {stage: b[f"{side}_{stage}_s"] for stage in stages}
            top = max(times, key=times.get)
            out.append(f"- Of one {side}'s {b[f'{side}_total_s']:.2f} s of work, {top.replace('_', ' ')} takes the most: "
                       f"{times[top]:.2f} s ({100 * times[top] / max(b[f'{side}_total_s'], 1e-9):.0f}%).")
    out += ["", "## Recommended configuration (from this run)", "", recommendation(by)]
    return out


def recommendation(by: dict) -> str:
    strategies = {s for s, _ in by}
    complete = [u for u in {u for _, u in by} if all((s, u) in by for s in strategies)]
    if not complete:
        return "No user count finished without errors for every strategy: no recommendation from this run."
    users = max(complete)
    row = {s: by[(s, u)] for (s, u) in by if u == users}
    best = max(c["throughput_mb_s"] for c in row.values())
    fit = [s for s, c in row.items() if c["throughput_mb_s"] >= 0.9 * best]
    choice = min(fit, key=lambda s: row[s]["lag"]["p99_ms"])
    c = row[choice]
    return (f"At {users} concurrent users (the most at which every strategy finished without errors), "
            f"`--executor {choice}` gave the lowest event-loop lag p99 "
            f"({c['lag']['p99_ms']:.1f} ms) among the strategies within 10% of the best throughput "
            f"({c['throughput_mb_s']:.2f} MB/s), with {c['rss_main_mb_max']:.0f} MB in the main process and "
            f"{c['rss_all_mb_max']:.0f} MB in all processes.")
