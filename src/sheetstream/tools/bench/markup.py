"""``sheetstream bench markup``: the marked-up workbook of an import with many problems, every problem cell
marked: wall time, CPU and peak RSS per size, each size in a process of its own (so its peak is its own).

The case is an edited export uploaded to add rows to the table it came from: every key already exists, one
problem per row (``existing``, column A), as the record of a real import writes them beside its upload
(:class:`~sheetstream.pipeline.review.MarkFile`). Flat memory means the peak does not grow with the problems.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ...config import ExportOptions
from ...formats.xlsx import write_xlsx
from ...pipeline.review import MarkFile, marked_workbook, marks_path
from ...store.demo import ORDERS, demo_rows
from ..harness import machine, peak_rss_mb


def prepare(rows: int, folder: Path) -> Path:
    """The upload and its marks, written by another process than the one measured."""
    upload = folder / f"upload-{rows}.xlsx"
    upload.write_bytes(b"".join(write_xlsx(demo_rows(rows), [c.name for c in ORDERS], sheet_name="orders")))
    marks = MarkFile(marks_path(upload))
    for n in range(2, rows + 2):
        marks("existing", "orders", f"A{n}", f"id {n - 1} already exists in orders")
    marks.close()
    return upload


def case(rows: int, folder: Path) -> dict:
    """One size, in this process: the upload prepared (:func:`prepare`), marked up."""
    upload = folder / f"upload-{rows}.xlsx"
    job = {"errors": [], "error_total": rows, "warnings": [],
           "problem_groups": [{"kind": "existing", "column": "id", "count": rows, "cells": [], "summary": "", "advice": ""}]}
    before = peak_rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    size = sum(len(chunk) for chunk in marked_workbook(str(upload), job, ExportOptions()))
    return {"problems": rows, "seconds": round(time.perf_counter() - start, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3), "bytes": size,
            "peak_rss_mb_before": round(before, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def run(args: argparse.Namespace) -> int:
    console = Console()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for rows in args.problems:
            subprocess.run([sys.executable, "-m", __name__, "prepare", str(rows), folder], check=True)
        for repeat in range(args.repeats):
            for rows in args.problems:
                done = subprocess.run([sys.executable, "-m", __name__, "case", str(rows), folder], capture_output=True,
                                      text=True, check=True)
                results.append({"repeat": repeat, **json.loads(done.stdout)})
    table = Table(title="marked-up workbook: every problem cell filled")
    for name in ("problems", "seconds", "cpu_seconds", "bytes", "peak_rss_mb_before", "peak_rss_mb"):
        table.add_column(name, justify="right")
    for r in results:
        table.add_row(*(f"{r[k]:,}" if isinstance(r[k], int) else str(r[k]) for k in
                        ("problems", "seconds", "cpu_seconds", "bytes", "peak_rss_mb_before", "peak_rss_mb")))
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    console.print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        print(json.dumps(case(int(sys.argv[2]), Path(sys.argv[3]))))
