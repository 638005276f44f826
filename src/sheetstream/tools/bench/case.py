"""One export benchmark case, run in its own process so that its peak RSS is its own.

``python -m sheetstream.tools.bench.case WRITER ROWS OUT [SOURCE]`` writes ROWS rows with WRITER to OUT and prints
JSON: wall seconds, CPU seconds (this process and its children), seconds to the first byte written, peak RSS and
file size. SOURCE is ``demo`` (the deterministic demo rows generated in this process, the default) or
``postgres:TABLE`` (the same rows read from that table of the test PostgreSQL through a server-side cursor, as the
service reads them) or ``mysql:TABLE`` (from the test MySQL/MariaDB, through an unbuffered cursor).
Writers: ``source`` (rows only, no file), ``sheetstream:LIB:LEVEL``, ``xlsxwriter`` (``constant_memory``),
``openpyxl`` (``write_only``), ``pyexcelerate``, ``rustpy-xlsxwriter`` (fed a generator of dicts), ``pandas``
(``to_excel``, through a DataFrame of all the rows), ``pandas-read_sql`` (``read_sql`` of the source table through
SQLAlchemy, then ``to_excel``; a database source only), ``polars`` (``write_excel``, through a DataFrame of all the
rows), ``exceljs`` (Node, ``stream.xlsx.WorkbookWriter``, fed the rows as JSON lines on a pipe; needs
``SHEETSTREAM_EXCELJS_DIR``, a folder where ``exceljs`` is installed), ``copy-floor`` (a PostgreSQL source only:
what no export of these rows can beat, PostgreSQL's own ``COPY (SELECT ...) TO STDOUT`` read to the end, then
the sheet XML sheetstream writes for the same rows deflated with isal at level 1 into OUT; the XML is made before
the clock starts, so only its deflate is timed).
"""

from __future__ import annotations

import importlib
import io
import json
import os
import resource
import subprocess
import sys
import threading
import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from ...store.demo import ORDERS, demo_rows
from ..harness import MYSQL_URL, POSTGRES_URL, peak_rss_mb

#: Where the rows come from (set by :func:`run`): ``demo``, ``postgres:TABLE`` or ``mysql:TABLE``.
SOURCE = "demo"


def source_rows(rows: int):
    """The rows to write, from :data:`SOURCE`."""
    if SOURCE == "demo":
        return demo_rows(rows)
    from ...store import open_store

    kind, _, table = SOURCE.partition(":")
    # PostgreSQL: a named (server-side) cursor; MySQL: an unbuffered cursor in a snapshot
    return open_store(MYSQL_URL if kind == "mysql" else POSTGRES_URL).read_rows(table, ORDERS, limit=rows)


class TimedFile(io.FileIO):
    """A file that remembers when its first byte was written."""

    first_write: float | None = None

    def write(self, data) -> int:  # type: ignore[override]
        if self.first_write is None and len(data):
            self.first_write = time.perf_counter()
        return super().write(data)



def _source(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    for _ in source_rows(rows):
        pass


def _sheetstream(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    from ...formats.xlsx import deflater, write_xlsx

    library, level = (option.split(":") + ["1"])[:2] if option else ("isal", "1")
    for chunk in write_xlsx(source_rows(rows), header, sheet_name="orders", compress=deflater(library, int(level))):
        f.write(chunk)


def _floor_xml(rows: int, out: Path) -> None:
    """Before the clock: the sheet XML of sheetstream's workbook of these rows, beside ``out``."""
    import zipfile

    from ...formats.xlsx import write_xlsx

    book = out.with_suffix(".floor.xlsx")
    with open(book, "wb") as f:
        for chunk in write_xlsx(demo_rows(rows), [c.name for c in ORDERS], sheet_name="orders"):
            f.write(chunk)
    with zipfile.ZipFile(book) as z, z.open("xl/worksheets/sheet1.xml") as sheet, \
            open(out.with_suffix(".sheet.xml"), "wb") as xml:
        while block := sheet.read(1 << 20):
            xml.write(block)
    book.unlink()


def _copy_floor(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    import psycopg
    from isal import isal_zlib

    _, _, table = SOURCE.partition(":")
    names = ", ".join(f'"{c.name}"' for c in ORDERS)
    with psycopg.connect(POSTGRES_URL) as conn:
        with conn.cursor().copy(f'COPY (SELECT {names} FROM "{table}" LIMIT {int(rows)}) TO STDOUT') as copy:
            for _ in copy:
                pass
    xml = out.with_suffix(".sheet.xml")
    deflate = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)
    with open(xml, "rb") as source:
        while block := source.read(1 << 16):
            f.write(deflate.compress(block))
    f.write(deflate.flush())
    xml.unlink()


def _xlsxwriter(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(f, {"constant_memory": True})
    ws = wb.add_worksheet("orders")
    date_fmt, datetime_fmt = wb.add_format({"num_format": "yyyy-mm-dd"}), wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    ws.write_row(0, 0, header)
    for r, row in enumerate(source_rows(rows), 1):
        for c, v in enumerate(row):
            if v is None:
                continue
            if c == 4:
                ws.write_datetime(r, c, v, date_fmt)
            elif c == 5:
                ws.write_datetime(r, c, v, datetime_fmt)
            elif c in (1, 2, 8, 10):
                ws.write_string(r, c, v)
            else:
                ws.write(r, c, v)
    wb.close()


def _openpyxl(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    import openpyxl
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    # openpyxl refuses control characters (IllegalCharacterError): strip them, or it cannot run at all.
    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("orders")
    ws.append(header)
    for row in source_rows(rows):
        ws.append([ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in row])
    wb.save(f)


def _pyexcelerate(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    from pyexcelerate import Workbook

    wb = Workbook()
    wb.new_sheet("orders", data=[header, *source_rows(rows)])
    wb.save(f)


def _rustpy_xlsxwriter(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    from rustpy_xlsxwriter import FastExcel

    f.close()
    # its API takes records (dicts); a generator of them is accepted, so no list of all the rows is built here
    records = (dict(zip(header, row)) for row in source_rows(rows))
    FastExcel(str(out)).sheet("orders", records).save()


def _pandas(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    import pandas as pd

    frame = pd.DataFrame.from_records(list(source_rows(rows)), columns=header)  # the whole table in memory
    with pd.ExcelWriter(f, engine="xlsxwriter") as writer:
        frame.to_excel(writer, sheet_name="orders", index=False)


def _pandas_read_sql(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    """What pandas users write: ``read_sql`` of the table through SQLAlchemy, then ``to_excel``."""
    import pandas as pd
    import sqlalchemy

    kind, _, table = SOURCE.partition(":")
    if kind == "mysql":
        engine = sqlalchemy.create_engine("mariadb+mariadbconnector://" + MYSQL_URL.split("://", 1)[1])
        query = f"SELECT * FROM `{table}` ORDER BY id LIMIT {rows}"
    else:
        engine = sqlalchemy.create_engine("postgresql+psycopg://" + POSTGRES_URL.split("://", 1)[1])
        query = f'SELECT * FROM "{table}" ORDER BY id LIMIT {rows}'
    frame = pd.read_sql(query, engine)  # the whole table in memory
    engine.dispose()
    with pd.ExcelWriter(f, engine="xlsxwriter") as writer:
        frame.to_excel(writer, sheet_name="orders", index=False)


def _polars(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    import polars as pl

    f.close()
    frame = pl.DataFrame(list(source_rows(rows)), schema=header, orient="row", infer_schema_length=None)
    frame.write_excel(str(out), worksheet="orders")


def _json_cell(v):
    if isinstance(v, datetime):
        return {"t": v.isoformat()}
    if isinstance(v, date):
        return {"d": v.isoformat()}
    if isinstance(v, Decimal):
        return float(v)
    return v


def _exceljs(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> dict:
    folder = os.environ.get("SHEETSTREAM_EXCELJS_DIR")
    if not folder:
        raise SystemExit("SHEETSTREAM_EXCELJS_DIR is not set (bench export installs exceljs there)")
    f.close()
    script = Path(__file__).with_name("exceljs_writer.js")
    env = {**os.environ, "NODE_PATH": str(Path(folder) / "node_modules")}
    node = subprocess.Popen(["node", str(script), str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    assert node.stdin is not None
    stdin = io.TextIOWrapper(node.stdin, encoding="utf-8", write_through=False)
    dumps = json.JSONEncoder(ensure_ascii=False, default=_json_cell).encode
    stdin.write(dumps(header) + "\n")
    for row in source_rows(rows):
        stdin.write(dumps([_json_cell(v) for v in row]) + "\n")
    stdin.close()
    assert node.stdout is not None
    output = node.stdout.read()
    if node.wait() != 0:
        raise SystemExit(f"node exited with {node.returncode}")
    done = json.loads(output)
    first = done.get("first_write_epoch_ms")
    node_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"first_write_epoch": first / 1000 if first else None, "node_peak_rss_mb": round(node_rss, 1)}


#: Writer name (``sheetstream:LIB:LEVEL`` takes options after the first colon) -> what writes the file.
WRITERS = {"source": _source, "sheetstream": _sheetstream, "xlsxwriter": _xlsxwriter, "openpyxl": _openpyxl,
           "pyexcelerate": _pyexcelerate, "rustpy-xlsxwriter": _rustpy_xlsxwriter, "pandas": _pandas,
           "polars": _polars, "exceljs": _exceljs, "pandas-read_sql": _pandas_read_sql, "copy-floor": _copy_floor}

#: Writer -> the packages it needs (a missing one skips it, the reason recorded).
NEEDS = {"xlsxwriter": ["xlsxwriter"], "openpyxl": ["openpyxl"], "pyexcelerate": ["pyexcelerate"],
         "rustpy-xlsxwriter": ["rustpy-xlsxwriter"], "pandas": ["pandas", "xlsxwriter"],
         "polars": ["polars", "xlsxwriter"], "pandas-read_sql": ["pandas", "xlsxwriter", "sqlalchemy"]}

#: Modules imported before the clock starts (an import's own time is not the writer's).
PRELOAD = {"sheetstream": ["sheetstream.formats.xlsx"], "xlsxwriter": ["xlsxwriter"], "openpyxl": ["openpyxl"],
           "pyexcelerate": ["pyexcelerate"], "rustpy-xlsxwriter": ["rustpy_xlsxwriter"],
           "pandas": ["pandas", "xlsxwriter"], "polars": ["polars", "xlsxwriter"],
           "pandas-read_sql": ["pandas", "xlsxwriter", "sqlalchemy"]}

#: Writers that hold every row before writing (their memory grows with the table), for the report.
WHOLE_TABLE = {"pandas": "a DataFrame of all the rows", "polars": "a DataFrame of all the rows",
               "pandas-read_sql": "a DataFrame of all the rows",
               "pyexcelerate": "a list of all the rows"}


class FirstBytes:
    """Polls a file's size from a thread: when its first byte reached the disk (for writers given a path)."""

    def __init__(self, path: Path):
        self.path, self.seen = path, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            try:
                if os.path.getsize(self.path) > 0:
                    self.seen = time.perf_counter()
                    return
            except OSError:
                pass

    def __enter__(self) -> FirstBytes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(1)


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def missing(writer: str) -> str | None:
    """Why ``writer`` cannot run here, or None."""
    from ..harness import installed

    name = writer.partition(":")[0]
    absent = [p for p in NEEDS.get(name, []) if not installed(p)]
    return f"not installed: {', '.join(absent)} (pip install -e '.[bench]')" if absent else None


def run(writer: str, rows: int, out: Path, source: str = "demo") -> dict:
    global SOURCE
    name, _, option = writer.partition(":")
    if name not in WRITERS:
        raise SystemExit(f"unknown writer {writer!r}")
    if why := missing(writer):
        return {"writer": writer, "rows": rows, "skipped": why}
    SOURCE = source
    for module in PRELOAD.get(name, []):
        importlib.import_module(module)
    if name == "pandas-read_sql" and source == "demo":
        return {"writer": writer, "rows": rows, "skipped": "reads a database: --source postgres or mysql"}
    if name == "copy-floor":
        if not source.startswith("postgres:"):
            return {"writer": writer, "rows": rows, "skipped": "PostgreSQL's COPY: --source postgres"}
        _floor_xml(rows, out)
    if source.startswith("mysql:"):
        import mariadb  # noqa: F401  (the source's own import, the same for every writer)
    elif source != "demo":
        import psycopg  # noqa: F401
    baseline = peak_rss_mb()
    start, cpu, epoch = time.perf_counter(), cpu_seconds(), time.time()
    f = TimedFile(out, "w")
    try:
        with FirstBytes(out) as polled:
            extra = WRITERS[name](f, out, [c.name for c in ORDERS], rows, option) or {}
    finally:
        f.close()
    end, cpu = time.perf_counter(), cpu_seconds() - cpu
    if f.first_write:
        first, how = f.first_write - start, "written"
    elif extra.get("first_write_epoch"):
        first, how = extra.pop("first_write_epoch") - epoch, "written (node)"
    elif polled.seen:
        first, how = polled.seen - start, "on disk (polled)"
    elif os.path.getsize(out):
        first, how = end - start, "on disk at the end (polled)"  # written between two polls
    else:
        first, how = None, None
    extra.pop("first_write_epoch", None)
    return {
        "writer": writer,
        "rows": rows,
        "source": source,
        "seconds": round(end - start, 3),
        "cpu_seconds": round(cpu, 3),
        "first_byte_seconds": round(first, 4) if first is not None and name != "source" else None,
        "first_byte_how": how,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "baseline_rss_mb": round(baseline, 1),
        "bytes": os.path.getsize(out),
        **extra,
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:5])))
