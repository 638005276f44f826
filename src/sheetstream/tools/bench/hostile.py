"""``sheetstream bench hostile``: files made to hurt, uploaded to a real server (the ``process`` strategy, SQLite):
the answer, the time until it, and the peak memory of the whole server tree (main process and workers, PSS), for
each shape beside a plain workbook of the same upload size.

The shapes are the attack run's (issue notes in ``docs/design.md``): row heads that never end (a scan that once
rescanned the rest of its block for each), millions of tiny shared strings, thousands of sheets, tens of
thousands of cell formats, and a zip whose directory alone is large.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import string
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from ...formats.xlsx import write_xlsx
from ...store.demo import ORDERS, demo_rows
from ...store.sqlite import SqliteStore
from ..harness import ServerProcess, machine
from .imports import TreeMemory

NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"


def package(sheet: bytes, *, shared: bytes | None = None, styles: bytes | None = None, sheets: int = 1,
            extra_parts: int = 0) -> bytes:
    """A workbook around hand-made parts: ``sheets`` entries in the workbook all pointing at one sheet part."""
    out = io.BytesIO()
    rels = [f'<Relationship Id="rId{n}" Type="{REL}/worksheet" Target="worksheets/sheet1.xml"/>'
            for n in range(1, sheets + 1)]
    if shared is not None:
        rels.append(f'<Relationship Id="rIdS" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>')
    if styles is not None:
        rels.append(f'<Relationship Id="rIdT" Type="{REL}/styles" Target="styles.xml"/>')
    listed = "".join(f'<sheet name="S{n}" sheetId="{n}" r:id="rId{n}"/>' for n in range(1, sheets + 1))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_rels/.rels", f'<Relationships xmlns="{PKG}"><Relationship Id="rId1" Type="{REL}/officeDocument" '
                   'Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", f'<workbook {NS} xmlns:r="{REL}"><sheets>{listed}</sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels", f'<Relationships xmlns="{PKG}">' + "".join(rels) + "</Relationships>")
        z.writestr("xl/worksheets/sheet1.xml", sheet)
        if shared is not None:
            z.writestr("xl/sharedStrings.xml", shared)
        if styles is not None:
            z.writestr("xl/styles.xml", styles)
        for n in range(extra_parts):
            z.writestr(f"xl/media/p{n}.bin", b"")
    return out.getvalue()


def _header_sheet(rows: str = "") -> bytes:
    header = "".join(f'<c t="inlineStr"><is><t>{c.name}</t></is></c>' for c in ORDERS)
    return f"<worksheet {NS}><sheetData><row>{header}</row>{rows}</sheetData></worksheet>".encode()


def _strings(count: int) -> bytes:
    """``count`` different four-letter strings: random enough that the part does not pass for a zip bomb."""
    rng = random.Random(7)
    letters = string.ascii_lowercase.encode()
    texts = (bytes(rng.choices(letters, k=4)) for _ in range(count))
    return f"<sst {NS}>".encode() + b"".join(b"<si><t>" + t + b"</t></si>" for t in texts) + b"</sst>"


def _formats(count: int) -> bytes:
    """``count`` cell formats (Excel allows 64,000), varied like a real styles part."""
    rng = random.Random(7)
    xfs = b"".join(b'<xf numFmtId="%d" fontId="%d" fillId="%d" borderId="%d" xfId="0"/>'
                   % (rng.randrange(200), rng.randrange(50), rng.randrange(20), rng.randrange(20)) for _ in range(count))
    return f"<styleSheet {NS}><cellXfs>".encode() + xfs + b"</cellXfs></styleSheet>"


SHAPES: dict[str, Callable[[], bytes]] = {
    "plain (50,000 rows)": lambda: b"".join(write_xlsx(demo_rows(50_000), [c.name for c in ORDERS])),
    "row heads that never end (1 MB of '<row')": lambda: package(
        f"<worksheet {NS}><sheetData>".encode() + b"<row" * 250_000 + b"</sheetData></worksheet>"),
    "2,000,000 four-letter shared strings": lambda: package(_header_sheet(), shared=_strings(2_000_000)),
    "20,000 sheets": lambda: package(_header_sheet(), sheets=20_000),
    "100,000 cell formats": lambda: package(_header_sheet(), styles=_formats(100_000)),
    "a zip of 60,000 parts": lambda: package(_header_sheet(), extra_parts=60_000),
}


def run(args: argparse.Namespace) -> int:
    console = Console()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = SqliteStore(folder / "db.sqlite")
        store.create_table("orders", ORDERS, replace=True)
        with ServerProcess(f"sqlite:///{folder / 'db.sqlite'}", tables=["orders"], executor="process") as server:
            for name, make in SHAPES.items():
                body = make()
                with TreeMemory(server.process.pid) as memory:
                    start = time.perf_counter()
                    answer = httpx.put(f"{server.url}/imports/orders", content=body, timeout=600,
                                       params={"wait": "true", "dry_run": "true"},
                                       headers={**server.headers, "Content-Type": "application/octet-stream"})
                    seconds = time.perf_counter() - start
                    time.sleep(0.3)  # one more memory sample after the answer
                message = answer.json().get("message", "") if answer.headers.get("content-type", "").endswith("json") else ""
                results.append({"shape": name, "bytes": len(body), "status": answer.status_code,
                                "seconds": round(seconds, 3), "server_tree_peak_pss_mb": round(memory.peak, 1),
                                "message": message[:160]})
                console.log(results[-1])
    table = Table(title="hostile uploads: the answer, its time, the whole server's peak memory (PSS)")
    for column in ("shape", "upload bytes", "status", "seconds", "server peak MB"):
        table.add_column(column, justify="left" if column == "shape" else "right")
    for r in results:
        table.add_row(r["shape"], f"{r['bytes']:,}", str(r["status"]), str(r["seconds"]),
                      str(r["server_tree_peak_pss_mb"]))
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    console.print(f"written to {args.out}")
    return 0
