"""One import benchmark case in its own process (so its peak RSS is its own); prints JSON.

``python -m sheetstream.tools.bench.import_case CASE FILE [DATABASE_URL TABLE]``, CASE one of:
``sheetstream-parse``, ``calamine-parse``, ``openpyxl-parse``, ``openpyxl-executemany`` (the usual Python way:
``read_only`` rows into ``executemany`` in one transaction).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..harness import peak_rss_mb


def openpyxl_rows(path: Path):
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        rows = wb.worksheets[0].iter_rows(values_only=True)
        width = len(next(rows))  # the header
        for row in rows:
            yield row + (None,) * (width - len(row))  # read_only rows stop at their last value
    finally:
        wb.close()


def executemany(url: str, table: str, rows) -> int:
    from ...store import open_store

    store = open_store(url)
    columns = store.columns(table)
    names = ", ".join(f'"{c.name}"' for c in columns)
    count = 0

    def counted():
        nonlocal count
        for row in rows:
            count += 1
            yield tuple(row)

    if url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url) as conn, conn.cursor() as cur:
            cur.execute(f'DELETE FROM "{table}"')
            cur.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(["%s"] * len(columns))})', counted())
    else:
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(f'DELETE FROM "{table}"')
            conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(["?"] * len(columns))})', counted())
        conn.close()
    return count


def run(case: str, path: Path, url: str | None, table: str | None) -> dict:
    start = time.perf_counter()
    if case == "sheetstream-parse":
        from ...formats.xlsx import open_workbook

        with open_workbook(path) as wb:
            rows = sum(1 for _ in wb.rows()) - 1
    elif case == "calamine-parse":
        from python_calamine import CalamineWorkbook

        rows = len(CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()) - 1
    elif case == "openpyxl-parse":
        rows = sum(1 for _ in openpyxl_rows(path))
    elif case == "openpyxl-executemany":
        rows = executemany(url or "", table or "", openpyxl_rows(path))
    else:
        raise SystemExit(f"unknown case {case!r}")
    return {"case": case, "rows": rows, "seconds": round(time.perf_counter() - start, 3), "peak_rss_mb": round(peak_rss_mb(), 1)}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], Path(sys.argv[2]), *(sys.argv[3:5] + [None, None])[:2])))
