"""``sheetstream bench csv``: CSV both ways on PostgreSQL against the database's own floor, same run.

- **Export**: the export task (``pipeline.exports.export_workbook`` with ``format="csv"``: server-side cursor,
  typed rows, the CSV writer) writing a file, against ``COPY (SELECT ...) TO STDOUT (FORMAT csv)`` written to a
  file (the floor: no Python per row).
- **Import**: the import job (``run_import_job``: spooled file, reader, checks, staging, one transaction) of that
  file into an empty table, against ``COPY ... FROM STDIN (FORMAT csv, HEADER)`` of the same file into an empty
  table (the floor: no validation, no review).

Each case runs in a process of its own, so its peak RSS is its own; cases are interleaved over the repeats, and
ratios are taken pair by pair.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ...store.demo import ORDERS, seed
from ..harness import POSTGRES_URL, machine, peak_rss_mb

CASES = ("export", "export-copy", "import", "import-copy")


def run_case(case: str, rows: int, folder: Path) -> dict:
    """One case, in this process; the source table ``bench_csv_src`` holds ``rows`` demo rows."""
    import psycopg

    from ...config import ExportOptions
    from ...pipeline.exports import export_workbook
    from ...pipeline.jobs import Job, run_import_job
    from ...pipeline.query import parse_export_query
    from ...store.postgres import PostgresStore

    store = PostgresStore(POSTGRES_URL)
    source, target, path = "bench_csv_src", "bench_csv_dst", folder / f"orders-{rows}.csv"
    names = ", ".join(f'"{c.name}"' for c in ORDERS)
    start = time.perf_counter()
    first = None
    if case == "export":
        with open(path, "wb") as out:
            query = parse_export_query([], store.columns(source))
            for chunk in export_workbook(store, source, query, ExportOptions(), "csv"):
                first = first or time.perf_counter() - start
                out.write(chunk)
    elif case == "export-copy":
        with psycopg.connect(POSTGRES_URL) as conn, open(folder / "copy.csv", "wb") as out:
            with conn.cursor().copy(f'COPY (SELECT {names} FROM "{source}" ORDER BY id) TO STDOUT '
                                    "(FORMAT csv, HEADER)") as copy:
                for chunk in copy:
                    first = first or time.perf_counter() - start
                    out.write(chunk)
    elif case in ("import", "import-copy"):
        store.create_table(target, ORDERS, replace=True)
        start = time.perf_counter()
        if case == "import":
            job = run_import_job(store, Job(table=target, format="csv", mode="append"), path)
            assert job.state == "done", job.message
        else:
            with psycopg.connect(POSTGRES_URL) as conn, open(path, "rb") as f:
                with conn.cursor().copy(f'COPY "{target}" ({names}) FROM STDIN (FORMAT csv, HEADER)') as copy:
                    while block := f.read(1 << 20):
                        copy.write(block)
    seconds = time.perf_counter() - start
    return {"case": case, "rows": rows, "seconds": round(seconds, 3), "cpu_seconds": round(time.process_time(), 3),
            "first_byte_ms": round(first * 1000, 1) if first else None, "peak_rss_mb": round(peak_rss_mb(), 1)}


def run(args: argparse.Namespace) -> int:
    from ...store.postgres import PostgresStore

    console = Console()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            console.log(f"seeding {rows:,} rows into PostgreSQL ...")
            seed(PostgresStore(POSTGRES_URL), rows, "bench_csv_src")
            for repeat in range(args.repeats):
                for case in CASES:
                    done = subprocess.run([sys.executable, "-m", __name__, case, str(rows), tmp], check=True,
                                          capture_output=True, text=True)
                    results.append({"repeat": repeat, **json.loads(done.stdout)})
                    console.log(results[-1])
        for table in ("bench_csv_src", "bench_csv_dst"):
            PostgresStore(POSTGRES_URL).drop_table(table)
    report = summary(results)
    table = Table(title="CSV on PostgreSQL: sheetstream / the COPY floor (median and range of same-run ratios)")
    for name in ("rows", "direction", "sheetstream s", "COPY s", "ratio", "first byte ms", "peak RSS MB"):
        table.add_column(name, justify="right")
    for r in report:
        table.add_row(f"{r['rows']:,}", r["direction"], str(r["seconds"]), str(r["floor_seconds"]),
                      f"{r['ratio']} [{r['ratio_min']}–{r['ratio_max']}]", str(r.get("first_byte_ms")),
                      str(r["peak_rss_mb"]))
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "results": results, "summary": report}, indent=1))
    console.print(f"written to {args.out}")
    return 0


def summary(results: list[dict]) -> list[dict]:
    found = []
    for rows in sorted({r["rows"] for r in results}):
        for direction in ("export", "import"):
            ours = [r for r in results if r["rows"] == rows and r["case"] == direction]
            floor = {r["repeat"]: r for r in results if r["rows"] == rows and r["case"] == f"{direction}-copy"}
            ratios = [r["seconds"] / floor[r["repeat"]]["seconds"] for r in ours if r["repeat"] in floor]
            found.append({"rows": rows, "direction": direction,
                          "seconds": statistics.median(r["seconds"] for r in ours),
                          "floor_seconds": statistics.median(r["seconds"] for r in floor.values()),
                          "ratio": round(statistics.median(ratios), 2), "ratio_min": round(min(ratios), 2),
                          "ratio_max": round(max(ratios), 2),
                          "first_byte_ms": statistics.median(r["first_byte_ms"] or 0 for r in ours),
                          "peak_rss_mb": max(r["peak_rss_mb"] for r in ours)})
    return found


if __name__ == "__main__":
    print(json.dumps(run_case(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))))
