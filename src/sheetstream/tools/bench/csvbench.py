"""``sheetstream bench csv``: CSV both ways on PostgreSQL against the database's own floor and a peer, same run.

End to end (each against its floor, in the same repeat):

- **export**: the export task (``pipeline.exports.export_workbook`` with ``format="csv"``: server-side cursor,
  typed rows, the CSV writer) writing a file, against **export-copy**: ``COPY (SELECT ...) TO STDOUT (FORMAT csv)``
  written to a file (the floor: no Python per row).
- **import**: the import job (``run_import_job``: spooled file, reader, checks, staging, one transaction) of that
  file into an empty table, against **import-copy**: ``COPY ... FROM STDIN (FORMAT csv, HEADER)`` of the same file
  (the floor: no validation, no review), and **import-polars**: polars ``read_csv`` with the table's schema, then
  ``write_database(engine="adbc")`` (ADBC's PostgreSQL driver: binary COPY), as polars' docs show it.

The CSV code alone, in rows per second over the same rows (``--no-parts`` leaves these out):

- **writer** (the compiled writer), **writer-python** (its Python reference), **writer-stdlib** (a bare
  ``csv.writer`` loop over the same tuples, str() of every value, encoded in chunks: the floor of any Python
  writer), over the demo rows held in memory (a block of at most 100,000, cycled);
- **reader** (``open_csv(...).rows()``: the compiled reader), **reader-python** (its reference), **reader-stdlib**
  (a bare ``csv.reader`` loop over the file opened with ``newline=""``), over the exported file.

Each case runs in a process of its own (its peak RSS is its own); the cases are interleaved over the repeats and
ratios are taken pair by pair (``pairs.ratio_stats``), with the machine's load beside them. ``--quick``: 20,000
rows, 2 repeats (a smoke run).
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from ...store.demo import ORDERS, demo_rows, seed
from ..harness import POSTGRES_URL, peak_rss_mb
from . import load as machine_load
from .pairs import interleave, new_results, ratio_stats, save, shown

END_TO_END = ("export", "export-copy", "import", "import-copy", "import-polars")
PARTS = ("writer", "writer-python", "writer-stdlib", "reader", "reader-python", "reader-stdlib")
SOURCE, TARGET = "bench_csv_src", "bench_csv_dst"
#: (case, its floor or peer): the ratios the report gives, case time / floor time in the same repeat
PAIRS = (("export", "export-copy"), ("import", "import-copy"), ("import-polars", "import-copy"),
         ("import", "import-polars"))
#: (case, the bare stdlib loop): rows per second of the case / the loop's, in the same repeat
PART_PAIRS = (("writer", "writer-stdlib"), ("writer-python", "writer-stdlib"), ("reader", "reader-stdlib"),
              ("reader-python", "reader-stdlib"))


def _file(folder: Path, rows: int) -> Path:
    return folder / f"orders-{rows}.csv"


def run_case(case: str, rows: int, folder: Path) -> dict:
    """One case, in this process; the source table holds ``rows`` demo rows, and the export case has written
    the file the import cases read (the first case of each repeat)."""
    if case in PARTS:
        return _part(case, rows, folder)
    import psycopg

    from ...config import ExportOptions
    from ...pipeline.exports import export_workbook
    from ...pipeline.jobs import Job, run_import_job
    from ...pipeline.query import parse_export_query
    from ...store.postgres import PostgresStore

    store = PostgresStore(POSTGRES_URL)
    path = _file(folder, rows)
    names = ", ".join(f'"{c.name}"' for c in ORDERS)
    first = None
    if case.startswith("import"):
        store.create_table(TARGET, ORDERS, replace=True)
    if case == "import-polars":  # imported before the clock starts, as sheetstream's modules are (3 s under load)
        import adbc_driver_postgresql.dbapi  # noqa: F401
        import polars  # noqa: F401
    start = time.perf_counter()
    if case == "export":
        with open(path, "wb") as out:
            query = parse_export_query([], store.columns(SOURCE))
            for chunk in export_workbook(store, SOURCE, query, ExportOptions(), "csv"):
                first = first or time.perf_counter() - start
                out.write(chunk)
    elif case == "export-copy":
        with psycopg.connect(POSTGRES_URL) as conn, open(folder / "copy.csv", "wb") as out:
            with conn.cursor().copy(f'COPY (SELECT {names} FROM "{SOURCE}" ORDER BY id) TO STDOUT '
                                    "(FORMAT csv, HEADER)") as copy:
                for chunk in copy:
                    first = first or time.perf_counter() - start
                    out.write(chunk)
    elif case == "import":
        job = run_import_job(store, Job(table=TARGET, format="csv", mode="append"), path)
        assert job.state == "done", job.message
    elif case == "import-copy":
        with psycopg.connect(POSTGRES_URL) as conn, open(path, "rb") as f:
            with conn.cursor().copy(f'COPY "{TARGET}" ({names}) FROM STDIN (FORMAT csv, HEADER)') as copy:
                while block := f.read(1 << 20):
                    copy.write(block)
    elif case == "import-polars":
        _polars_import(path)
    else:
        raise ValueError(f"unknown case {case!r}")
    seconds = time.perf_counter() - start
    if case.startswith("import"):
        with psycopg.connect(POSTGRES_URL) as conn:
            count = conn.execute(f'SELECT count(*) FROM "{TARGET}"').fetchone()[0]
        assert count == rows, f"{case}: {count:,} rows in the table, not {rows:,}"
    return {"rows": rows, "seconds": round(seconds, 3), "cpu_seconds": round(time.process_time(), 3),
            "first_byte_ms": round(first * 1000, 1) if first else None, "peak_rss_mb": round(peak_rss_mb(), 1)}


def _polars_import(path: Path) -> None:
    """The file into the table the way polars' docs show: ``read_csv`` with the table's types given (no
    inference pass, decimals exact), then ``write_database`` through ADBC (a binary COPY)."""
    import polars as pl

    kinds = {"integer": pl.Int64, "float": pl.Float64, "text": pl.String, "date": pl.Date,
             "timestamp": pl.Datetime("us"), "boolean": pl.Boolean}
    schema = {c.name: pl.Decimal(c.precision, c.scale) if c.kind == "numeric" else kinds[c.kind] for c in ORDERS}
    frame = pl.read_csv(path, schema=schema)
    frame.write_database(TARGET, connection=POSTGRES_URL, engine="adbc", if_table_exists="append")


def _part(case: str, rows: int, folder: Path) -> dict:
    """The writer or the reader alone: seconds for ``rows`` rows (rows/s in the report)."""
    import csv

    from ...formats.csv import open_csv, write_csv

    header = [c.name for c in ORDERS]
    if case.startswith("writer"):
        block = list(demo_rows(min(rows, 100_000)))
        source = itertools.islice(itertools.cycle(block), rows)
        start = time.perf_counter()
        size = 0
        if case == "writer-stdlib":
            lines: list[str] = []
            sink = type("Sink", (), {"write": staticmethod(lines.append)})()
            out = csv.writer(sink, lineterminator="\r\n")
            out.writerow(header)
            while batch := list(itertools.islice(source, 1000)):
                out.writerows(batch)
                size += len("".join(lines).encode())
                lines.clear()
        else:
            for chunk in write_csv(source, header, compiled=case == "writer"):
                size += len(chunk)
    else:
        path = _file(folder, rows)
        start = time.perf_counter()
        if case == "reader-stdlib":
            with open(path, newline="", encoding="utf-8") as f:
                size = sum(1 for _ in csv.reader(f))
        else:
            with open_csv(path) as book:
                size = sum(1 for _ in book.rows(compiled=case == "reader"))
    seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": round(seconds, 3), "rows_per_second": round(rows / seconds),
            "size": size, "cpu_seconds": round(time.process_time(), 3), "peak_rss_mb": round(peak_rss_mb(), 1)}


def run(args: argparse.Namespace) -> int:
    from ...store.postgres import PostgresStore

    console = Console()
    sizes, repeats = ([20_000], 2) if args.quick else (args.rows, args.repeats)
    names = END_TO_END + (() if args.no_parts else PARTS)
    missing = [m for m in ("polars", "adbc_driver_postgresql", "pyarrow") if importlib.util.find_spec(m) is None]
    if missing:  # the peer is in the bench extra, not the test one: leave it out, and say so in the report
        names = tuple(n for n in names if n != "import-polars")
        console.log(f"import-polars left out: {', '.join(missing)} not installed (pip install -e '.[bench]')")
    results = new_results(repeats, ["psycopg", "polars", "adbc-driver-postgresql", "pyarrow"],
                          {"rows": sizes, "cases": list(names), "results": [],
                           "left_out": {"import-polars": f"{', '.join(missing)} not installed"} if missing else {}})
    with tempfile.TemporaryDirectory() as tmp, machine_load.LoadWatch() as watch:
        for rows in sizes:
            console.log(f"seeding {rows:,} rows into PostgreSQL ...")
            seed(PostgresStore(POSTGRES_URL), rows, SOURCE)

            def case(name: str, rows: int = rows) -> dict:
                with machine_load.LoadWatch(interval=0.5) as each:
                    done = subprocess.run([sys.executable, "-m", __name__, name, str(rows), tmp], check=True,
                                          capture_output=True, text=True)
                return {**json.loads(done.stdout), "others_cpu_percent": each.summary()["others_cpu_percent"]["mean"]}

            results["results"] += interleave([(name, lambda name=name: case(name)) for name in names], repeats,
                                             on_result=console.log)
        for table in (SOURCE, TARGET):
            PostgresStore(POSTGRES_URL).drop_table(table)
    results["load"] = watch.summary()
    save(args.out, results, report(results), console)
    return 0


def report(results: dict) -> str:
    runs = results["results"]
    seconds = ratio_stats(runs, "export-copy", key=lambda r: r["rows"])
    lines = [f"# bench csv: CSV on PostgreSQL against COPY ({results['started']})", "",
             f"{results['repeats']} interleaved repeats; medians with (min-max) of the ratios taken pair by pair in "
             "the same repeat. Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()), "",
             *machine_load.markdown(results.get("load", {})),
             *[f"Left out: {name} ({why})." for name, why in results.get("left_out", {}).items()], "",
             "## End to end", "", "| rows | case | seconds | against | ratio | first byte ms | peak RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for rows, cases in seconds.items():
        for name, floor in PAIRS:
            if name not in cases or floor not in cases:
                continue
            pairs = ratio_stats([r for r in runs if r["rows"] == rows], floor)[()]
            mine = [r for r in runs if r["rows"] == rows and r["case"] == name]
            first = sorted(r["first_byte_ms"] for r in mine if r.get("first_byte_ms"))
            lines.append(f"| {rows:,} | {name} | {shown(cases[name]['value'])} | {floor} "
                         f"({shown(cases[floor]['value'])} s) | {shown(pairs[name]['ratio'], suffix='x')} | "
                         f"{first[len(first) // 2] if first else ''} | {max(r['peak_rss_mb'] for r in mine)} |")
    parts = [r for r in runs if r["case"] in PARTS]
    if parts:
        lines += ["", "## The CSV code alone (rows per second; ratio to the bare stdlib loop, same repeat)", "",
                  "| rows | case | rows/s | against | ratio |", "|---|---|---|---|---|"]
        speed = ratio_stats(parts, "writer-stdlib", metric="rows_per_second", key=lambda r: r["rows"])
        for rows, cases in speed.items():
            for name, floor in PART_PAIRS:
                if name not in cases or floor not in cases:
                    continue
                pairs = ratio_stats([r for r in parts if r["rows"] == rows], floor, metric="rows_per_second")[()]
                lines.append(f"| {rows:,} | {name} | {shown(cases[name]['value'], 0)} | {floor} "
                             f"({shown(cases[floor]['value'], 0)}) | {shown(pairs[name]['ratio'], suffix='x')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(json.dumps(run_case(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))))
