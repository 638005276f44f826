"""One import benchmark case in its own process (so its peak RSS is its own); prints JSON.

``python -m sheetstream.tools.bench.import_case CASE FILE [DATABASE_URL TABLE]``, CASE one of:

- parse only: ``sheetstream-parse``, ``calamine-parse``, ``openpyxl-parse``;
- whole imports (parse + insert in one transaction, the table's rows replaced), the usual ways to do it:
  ``openpyxl-executemany`` (``read_only`` rows into ``executemany``), ``calamine-copy`` (python-calamine's
  ``iter_rows()`` straight into psycopg's ``copy.write_row`` in COPY's text format, written tightly: the only
  Python per cell is what the column's type needs, a whole-number float made an int and an empty cell NULL; into
  SQLite, ``executemany`` of the rows converted to the table's types), ``pandas-copy`` (``pandas.read_excel(engine="calamine")``, then the same conversion and
  COPY), ``polars-adbc`` (``polars.read_excel(engine="calamine")``, columns cast to the table's types, then
  ``write_database(engine="adbc")`` through ``adbc-driver-postgresql``);
- the floor, ``copy-floor``: what no import of this file can avoid, inflating the sheet's XML (``zipfile``, read and
  dropped) and ``COPY ... FROM STDIN`` of the same rows already in COPY's text format (FILE with the suffix
  ``.copy``, written before the clock), 1 MB per ``copy.write``;
- on MySQL/MariaDB: ``pandas-to_sql`` (``pandas.read_excel(engine="calamine")``, then ``DataFrame.to_sql`` through
  SQLAlchemy and MariaDB Connector/Python, 10,000 rows a chunk), and ``csv-load-data``, the floor: the same rows as
  a CSV file (FILE is that CSV), loaded with ``LOAD DATA LOCAL INFILE``: no spreadsheet at all, the database's own
  bulk load.

A case whose package is missing prints ``{"skipped": reason}``. The conversion to the table's types is the
obvious one: an empty cell (None, "", NaN, NaT) is NULL, integers ``int()``, numerics ``Decimal(str())``, dates
``.date()`` of a datetime, timestamps as they come, booleans ``bool()``, texts ``str()``.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..harness import installed, peak_rss_mb

#: Case -> the packages it needs (a missing one skips the case with that reason).
NEEDS = {
    "calamine-parse": ["python-calamine"],
    "openpyxl-parse": ["openpyxl"],
    "openpyxl-executemany": ["openpyxl"],
    "calamine-copy": ["python-calamine"],
    "copy-floor": [],
    "pandas-copy": ["pandas", "python-calamine"],
    "polars-adbc": ["polars", "fastexcel", "adbc-driver-postgresql", "pyarrow"],
    "pandas-to_sql": ["pandas", "python-calamine", "sqlalchemy", "mariadb"],
    "csv-load-data": ["mariadb"],
}

#: Modules imported before the clock starts.
PRELOAD = {
    "sheetstream-parse": ["sheetstream.formats.xlsx"],
    "calamine-parse": ["python_calamine"],
    "openpyxl-parse": ["openpyxl"],
    "openpyxl-executemany": ["openpyxl", "psycopg", "sheetstream.store"],
    "calamine-copy": ["python_calamine", "psycopg", "sheetstream.store"],
    "copy-floor": ["psycopg", "zipfile"],
    "pandas-copy": ["pandas", "python_calamine", "psycopg", "sheetstream.store"],
    "polars-adbc": ["polars", "fastexcel", "pyarrow", "adbc_driver_postgresql.dbapi", "sheetstream.store"],
    "pandas-to_sql": ["pandas", "python_calamine", "sqlalchemy", "mariadb", "sheetstream.store"],
    "csv-load-data": ["mariadb", "sheetstream.store"],
}

#: Cases that only make sense with PostgreSQL (COPY, ADBC's PostgreSQL driver).
POSTGRES_ONLY = {"pandas-copy", "polars-adbc", "copy-floor"}
#: Cases that only make sense with MySQL/MariaDB.
MYSQL_ONLY = {"pandas-to_sql", "csv-load-data"}


def missing(case: str) -> str | None:
    """Why ``case`` cannot run here (a package is not installed), or None."""
    absent = [p for p in NEEDS.get(case, []) if not installed(p)]
    return f"not installed: {', '.join(absent)} (pip install -e '.[bench]')" if absent else None


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


def _empty(v: Any) -> bool:
    return v is None or v == "" or (isinstance(v, float) and v != v) or type(v).__name__ == "NaTType"


def to_kind(kind: str) -> Callable[[Any], Any]:
    """The obvious conversion of a reader's value to a column kind (None for an empty cell)."""
    if kind == "integer":
        convert: Callable[[Any], Any] = int
    elif kind == "float":
        convert = float
    elif kind == "numeric":
        def convert(v): return Decimal(str(v))
    elif kind == "date":
        def convert(v): return v.date() if isinstance(v, datetime) else v
    elif kind == "timestamp":
        def convert(v):
            if hasattr(v, "to_pydatetime"):
                return v.to_pydatetime()
            # calamine gives a midnight timestamp as a date: COPY's timestamp dumper needs a datetime
            return datetime(v.year, v.month, v.day) if isinstance(v, date) and not isinstance(v, datetime) else v
    elif kind == "boolean":
        convert = bool
    elif kind == "text":
        convert = str
    else:
        def convert(v): return v

    def converted(v: Any) -> Any:
        return None if _empty(v) else convert(v)

    return converted


def typed(rows: Iterable[Iterable[Any]], kinds: list[str]) -> Iterator[tuple[Any, ...]]:
    converters = [to_kind(k) for k in kinds]
    for row in rows:
        yield tuple(c(v) for c, v in zip(converters, row))


def calamine_rows(path: Path) -> Iterator[list[Any]]:
    from python_calamine import CalamineWorkbook

    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).iter_rows()
    next(rows, None)  # the header
    return rows


def pandas_rows(path: Path) -> Iterator[tuple[Any, ...]]:
    import pandas as pd

    frame = pd.read_excel(path, engine="calamine")
    return frame.itertuples(index=False, name=None)


def _columns(url: str, table: str):
    from ...store import open_store

    return open_store(url).columns(table)


def executemany(url: str, table: str, rows) -> int:
    columns = _columns(url, table)
    names = ", ".join(f'"{c.name}"' for c in columns)
    count = 0

    def counted():
        nonlocal count
        for row in rows:
            count += 1
            yield tuple(row)

    if url.startswith(("mysql", "mariadb")):
        from ...store.mysql_connect import connect

        with connect(url) as conn:
            conn.execute(f'DELETE FROM "{table}"')
            statement = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(["?"] * len(columns))})'
            batch: list[tuple] = []
            for row in counted():
                batch.append(row)
                if len(batch) == 1_000:
                    conn.raw.cursor().executemany(statement, batch)
                    batch = []
            if batch:
                conn.raw.cursor().executemany(statement, batch)
            conn.commit()
    elif url.startswith("postgres"):
        import psycopg

        with psycopg.connect(url) as conn, conn.cursor() as cur:
            cur.execute(f'DELETE FROM "{table}"')
            cur.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(["%s"] * len(columns))})', counted())
    else:
        import sqlite3

        sqlite3.register_adapter(Decimal, str)  # numerics are stored as text, as sheetstream's SQLite store does
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            conn.execute(f'DELETE FROM "{table}"')
            conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(["?"] * len(columns))})', counted())
        conn.close()
    return count


def copy_rows(url: str, table: str, rows: Iterable[tuple[Any, ...]]) -> int:
    """``DELETE`` then ``COPY ... FROM STDIN (FORMAT BINARY)`` with ``write_row``, in one transaction."""
    import psycopg
    from psycopg import sql

    if not url.startswith("postgres"):
        return executemany(url, table, rows)
    columns = _columns(url, table)
    count = 0
    with psycopg.connect(url) as conn:
        target = sql.Identifier(table)
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        types = dict(conn.execute("SELECT attname, atttypid::regtype::text FROM pg_attribute WHERE attrelid = "
                                  "%s::regclass AND attnum > 0 AND NOT attisdropped", (f'"{table}"',)).fetchall())
        conn.execute(sql.SQL("DELETE FROM {}").format(target))
        with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(target, names)) as copy:
            copy.set_types([types[c.name] for c in columns])
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


def calamine_copy(path: Path, url: str, table: str) -> int:
    """python-calamine's rows into ``COPY ... FROM STDIN`` (text format) with ``write_row``, in one transaction with
    the DELETE. calamine gives every number as a float (1.0): a whole-number column gets ``int()``, which COPY's
    text format needs ("1.0" is not a bigint); an empty cell is "" there, NULL here (but in a required text
    column); floats, numerics (repr is exact to the column's scale), dates, timestamps and booleans pass as they
    come (psycopg's text dumpers). Nothing else is done per cell."""
    import psycopg
    from psycopg import sql

    if not url.startswith("postgres"):
        return executemany(url, table, typed(calamine_rows(path), [c.kind for c in _columns(url, table)]))
    columns = _columns(url, table)
    ints = [j for j, c in enumerate(columns) if c.kind == "integer"]
    nullable = [j for j, c in enumerate(columns) if c.nullable and c.kind not in ("integer",)]
    count = 0
    with psycopg.connect(url) as conn:
        target = sql.Identifier(table)
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        conn.execute(sql.SQL("DELETE FROM {}").format(target))
        with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)) as copy:
            write = copy.write_row
            for row in calamine_rows(path):
                for j in ints:
                    v = row[j]
                    row[j] = int(v) if v != "" else None
                for j in nullable:
                    if row[j] == "":
                        row[j] = None
                write(row)
                count += 1
    return count


def copy_floor(path: Path, url: str, table: str) -> int:
    """The floor: the sheet's XML inflated (read through ``zipfile`` and dropped), then the same rows, already in
    COPY's text format (``path`` with the suffix ``.copy``), sent with ``COPY ... FROM STDIN`` 1 MB at a time, in
    one transaction with the DELETE."""
    import zipfile

    import psycopg
    from psycopg import sql

    with zipfile.ZipFile(path) as book:
        name = next(n for n in book.namelist() if n.startswith("xl/worksheets/") and n.endswith(".xml"))
        with book.open(name) as part:
            while part.read(1 << 20):
                pass
    columns = _columns(url, table)
    with psycopg.connect(url) as conn, conn.cursor() as cursor, open(path.with_suffix(".copy"), "rb") as data:
        target = sql.Identifier(table)
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        cursor.execute(sql.SQL("DELETE FROM {}").format(target))
        with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(target, names)) as copy:
            while chunk := data.read(1 << 20):
                copy.write(chunk)
        return cursor.rowcount


_POLARS_TYPES = {"integer": "Int64", "float": "Float64", "text": "String", "date": "Date", "boolean": "Boolean",
                 "timestamp": "Datetime", "time": "Time"}


def polars_adbc(path: Path, url: str, table: str) -> int:
    """polars reads the sheet (calamine), casts each column to the table's type, and ADBC ingests it: the DELETE
    and the ingest in one transaction on one ADBC connection."""
    import adbc_driver_postgresql.dbapi
    import polars as pl

    columns = _columns(url, table)
    frame = pl.read_excel(path, engine="calamine")
    casts = []
    for c in columns:
        if c.kind == "numeric":
            dtype = pl.Decimal(c.precision or 38, c.scale or 0)
        elif c.kind == "date":
            casts.append(pl.col(c.name).cast(pl.Datetime).dt.date() if frame.schema[c.name] != pl.Date
                         else pl.col(c.name))
            continue
        else:
            dtype = getattr(pl, _POLARS_TYPES.get(c.kind, "String"))
        casts.append(pl.col(c.name).cast(dtype))
    frame = frame.select(casts)
    with adbc_driver_postgresql.dbapi.connect(url) as conn:
        with conn.cursor() as cur:
            cur.execute(f'DELETE FROM "{table}"')
        frame.write_database(table, connection=conn, if_table_exists="append", engine="adbc")
        conn.commit()
    return frame.height


def pandas_to_sql(path: Path, url: str, table: str) -> int:
    """pandas reads the sheet (calamine) and writes it with ``to_sql`` through SQLAlchemy: the DELETE and the
    inserts in one transaction."""
    import pandas as pd
    import sqlalchemy

    frame = pd.read_excel(path, engine="calamine")
    engine = sqlalchemy.create_engine("mariadb+mariadbconnector://" + url.split("://", 1)[1])
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DELETE FROM `{table}`")
        frame.to_sql(table, conn, if_exists="append", index=False, chunksize=10_000)
    engine.dispose()
    return len(frame)


def csv_load_data(path: Path, url: str, table: str) -> int:
    """``DELETE`` then ``LOAD DATA LOCAL INFILE`` of the CSV (a header line, ``\\N`` for NULL), in one transaction."""
    from ...store.mysql_connect import connect

    with connect(url, local_infile=True) as conn:
        conn.execute(f'DELETE FROM "{table}"')
        cursor = conn.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE \"{table}\" CHARACTER SET utf8mb4 "
                              "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' "
                              "IGNORE 1 LINES")
        rows = cursor.rowcount
        conn.commit()
    return rows


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(case: str, path: Path, url: str | None, table: str | None) -> dict:
    if why := missing(case):
        return {"case": case, "skipped": why}
    if case in POSTGRES_ONLY and not (url or "").startswith("postgres"):
        return {"case": case, "skipped": "PostgreSQL only (COPY or ADBC's PostgreSQL driver)"}
    if case in MYSQL_ONLY and not (url or "").startswith(("mysql", "mariadb")):
        return {"case": case, "skipped": "MySQL/MariaDB only"}
    for module in PRELOAD.get(case, []):  # an import's own time is not the case's
        importlib.import_module(module)
    start, cpu = time.perf_counter(), cpu_seconds()
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
    elif case == "calamine-copy":
        rows = calamine_copy(path, url or "", table or "")
    elif case == "copy-floor":
        rows = copy_floor(path, url or "", table or "")
    elif case == "pandas-copy":
        kinds = [c.kind for c in _columns(url or "", table or "")]
        rows = copy_rows(url or "", table or "", typed(pandas_rows(path), kinds))
    elif case == "polars-adbc":
        rows = polars_adbc(path, url or "", table or "")
    elif case == "pandas-to_sql":
        rows = pandas_to_sql(path, url or "", table or "")
    elif case == "csv-load-data":
        rows = csv_load_data(path, url or "", table or "")
    else:
        raise SystemExit(f"unknown case {case!r}")
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    return {"case": case, "rows": rows, "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1)}


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], Path(sys.argv[2]), *(sys.argv[3:5] + [None, None])[:2])))
