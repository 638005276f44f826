"""One export benchmark case, run in its own process so that its peak RSS is its own.

``python -m sheetstream.tools.bench.case WRITER ROWS OUT`` writes the demo rows with WRITER to OUT and prints JSON:
wall seconds, seconds to the first byte written, peak RSS and file size.
Writers: ``source`` (rows only, no file), ``sheetstream:LIB:LEVEL``, ``xlsxwriter``, ``openpyxl``.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

from ...store.demo import ORDERS, demo_rows
from ..harness import peak_rss_mb


class TimedFile(io.FileIO):
    """A file that remembers when its first byte was written."""

    first_write: float | None = None

    def write(self, data) -> int:  # type: ignore[override]
        if self.first_write is None and len(data):
            self.first_write = time.perf_counter()
        return super().write(data)



def _source(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    for _ in demo_rows(rows):
        pass


def _sheetstream(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    from ...formats.xlsx import deflater, write_xlsx

    library, level = (option.split(":") + ["1"])[:2] if option else ("isal", "1")
    for chunk in write_xlsx(demo_rows(rows), header, sheet_name="orders", compress=deflater(library, int(level))):
        f.write(chunk)


def _xlsxwriter(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(f, {"constant_memory": True})
    ws = wb.add_worksheet("orders")
    date_fmt, datetime_fmt = wb.add_format({"num_format": "yyyy-mm-dd"}), wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    ws.write_row(0, 0, header)
    for r, row in enumerate(demo_rows(rows), 1):
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
    for row in demo_rows(rows):
        ws.append([ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v for v in row])
    wb.save(f)


def _pyexcelerate(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    from pyexcelerate import Workbook

    wb = Workbook()
    wb.new_sheet("orders", data=[header, *demo_rows(rows)])
    wb.save(f)


def _rustpy_xlsxwriter(f: TimedFile, out: Path, header: list[str], rows: int, option: str) -> None:
    import rustpy_xlsxwriter

    f.close()
    records = [dict(zip(header, row)) for row in demo_rows(rows)]
    rustpy_xlsxwriter.write_worksheet(records, str(out), sheet_name="orders")


#: Writer name (``sheetstream:LIB:LEVEL`` takes options after the first colon) -> what writes the file.
WRITERS = {"source": _source, "sheetstream": _sheetstream, "xlsxwriter": _xlsxwriter, "openpyxl": _openpyxl,
           "pyexcelerate": _pyexcelerate, "rustpy-xlsxwriter": _rustpy_xlsxwriter}


def run(writer: str, rows: int, out: Path) -> dict:
    name, _, option = writer.partition(":")
    if name not in WRITERS:
        raise SystemExit(f"unknown writer {writer!r}")
    baseline = peak_rss_mb()
    start = time.perf_counter()
    f = TimedFile(out, "w")
    try:
        WRITERS[name](f, out, [c.name for c in ORDERS], rows, option)
    finally:
        f.close()
    end = time.perf_counter()
    return {
        "writer": writer,
        "rows": rows,
        "seconds": round(end - start, 3),
        "first_byte_seconds": round((f.first_write or end) - start, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "baseline_rss_mb": round(baseline, 1),
        "bytes": os.path.getsize(out),
    }


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))))
