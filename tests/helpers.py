"""What the tests share: hand-made workbooks, instrumented stores, raw HTTP, and comparisons."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from sheetstream.config import Settings
from sheetstream.formats.xlsx import MEDIA_TYPE
from sheetstream.formats.xlsx.cells import unescape_text
from sheetstream.store import Column
from sheetstream.store.sqlite import SqliteStore

IN_CI = os.environ.get("CI") == "true"


def make_settings(**options: Any) -> Settings:
    """Settings by option name. The tests run on the thread strategy unless they name one: it is what most of
    them were written for (their instrumented stores live in the test's process); the runtime tests cover each."""
    return Settings().with_(**{"strategy": "thread", **options})


def as_openpyxl(v: Any) -> Any:
    """What openpyxl gives back for a value we wrote (it does not undo _xHHHH_ escapes in inline strings)."""
    if isinstance(v, Decimal):
        return float(v)
    if type(v) is date:
        return datetime(v.year, v.month, v.day)
    return v


def openpyxl_text(v: Any) -> Any:
    return unescape_text(v) if isinstance(v, str) else v


def missing(reason: str) -> None:
    """Skip locally; under CI=true a missing dependency is a failure, not a skip."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must be available)")
    pytest.skip(reason)


XLSX = MEDIA_TYPE


def rows_of(store, table: str) -> list[tuple]:
    return list(store.read_rows(table, store.columns(table)))


def raw_request(url: str, head: str, body_parts: list[bytes] = (), pause: float = 0.0) -> bytes:
    """Send a request by hand on a socket (so the test controls what is and is not sent); return the response."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(pause)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return data


def read_workbook(body: bytes) -> dict[str, list[tuple]]:
    wb = openpyxl.load_workbook(io.BytesIO(body))
    return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}


class InstrumentedStore(SqliteStore):
    """A store whose row stream reports progress and can be held at a gate."""

    def __init__(self, path: Path, rows: Iterator[tuple], columns: list[Column], gate_at: int | None = None):
        super().__init__(path)
        self._rows, self._columns = rows, columns
        self.gate_at = gate_at
        self.gate = threading.Event()
        self.produced = 0
        self.closed = threading.Event()

    def columns(self, table: str) -> list[Column]:
        return self._columns

    def read_rows(self, table, columns, limit=None):
        try:
            for row in self._rows:
                if self.produced == self.gate_at and not self.gate.wait(10):
                    raise AssertionError("the client saw no bytes while rows were still being produced")
                self.produced += 1
                yield row
        finally:
            self.closed.set()


def download_through_the_gate(url: str, store: InstrumentedStore) -> tuple[int, bytes, httpx.Response]:
    """GET ``url`` while ``store`` holds its producer at the gate; open the gate once the first bytes are in.

    Returns the rows produced when the first chunk arrived, the whole body, and the response.
    """
    with httpx.stream("GET", url, timeout=30) as response:
        chunks = response.iter_raw()
        first = next(chunks)
        produced_at_first_byte = store.produced
        store.gate.set()
        return produced_at_first_byte, first + b"".join(chunks), response


def assert_same_as_openpyxl(expected_rows: list, actual_rows: list[tuple]) -> None:
    assert len(actual_rows) == len(expected_rows)
    for r, (want, got) in enumerate(zip(expected_rows, actual_rows), 1):
        got = tuple(got) + (None,) * (len(want) - len(got))
        for c, (w, g) in enumerate(zip(want, got)):
            w, g = as_openpyxl(w), openpyxl_text(g)
            if isinstance(w, float) and isinstance(g, float):
                assert g == pytest.approx(w, rel=1e-15), (r, c)
            elif isinstance(w, datetime) and isinstance(g, datetime):
                assert abs(g - w) <= timedelta(milliseconds=1), (r, c, w, g)
            else:
                assert g == w, (r, c, w, g)


NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def make_xlsx(path: Path, sheet_data: str, *, shared: list[str] | None = None, styles: str | None = None,
              date1904: bool = False, raw_sheet: str | None = None, shared_xml: str | None = None) -> Path:
    """A minimal workbook around hand-written sheet XML."""
    rels = [f'<Relationship Id="rId1" Type="{REL_NS}/worksheet" Target="worksheets/sheet1.xml"/>']
    if shared is not None or shared_xml is not None:
        rels.append(f'<Relationship Id="rId2" Type="{REL_NS}/sharedStrings" Target="sharedStrings.xml"/>')
    if styles:
        rels.append(f'<Relationship Id="rId3" Type="{REL_NS}/styles" Target="styles.xml"/>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_rels/.rels", '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                   f'<Relationship Id="rId1" Type="{REL_NS}/officeDocument" Target="xl/workbook.xml"/></Relationships>')
        z.writestr("xl/workbook.xml", f'<workbook {NS} xmlns:r="{REL_NS}"><workbookPr date1904="{int(date1904)}"/>'
                   '<sheets><sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>')
        z.writestr("xl/_rels/workbook.xml.rels",
                   '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                   + "".join(rels) + "</Relationships>")
        z.writestr("xl/worksheets/sheet1.xml", raw_sheet or f"<worksheet {NS}><sheetData>{sheet_data}</sheetData></worksheet>")
        if shared_xml is not None:
            z.writestr("xl/sharedStrings.xml", shared_xml)
        elif shared is not None:
            z.writestr("xl/sharedStrings.xml", f"<sst {NS}>" + "".join(f"<si><t>{s}</t></si>" for s in shared) + "</sst>")
        if styles:
            z.writestr("xl/styles.xml", f"<styleSheet {NS}>{styles}</styleSheet>")
    return path


def wait_for(predicate, seconds: float = 10.0, step: float = 0.02) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def pool_workers(pid: int | None = None) -> list:
    """The process pool's worker processes under ``pid`` (default: this process): with ``forkserver`` the
    forkserver's children, with ``spawn`` the children started by ``spawn_main``."""
    import psutil

    root = psutil.Process(pid)
    found = []
    for p in root.children(recursive=True):
        try:
            if p.ppid() != root.pid or "spawn_main" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            pass
    return found


def kill_busiest_worker(pid: int | None = None) -> int:
    """SIGKILL the pool worker that has used the most CPU (the one running the task); returns its pid."""
    import psutil

    def cpu(p) -> float:
        try:
            return sum(p.cpu_times()[:2])
        except psutil.Error:
            return -1.0

    victim = max(pool_workers(pid), key=cpu)
    victim.kill()
    return victim.pid
