"""What the tests share: hand-made workbooks, instrumented stores, raw HTTP, and comparisons."""

from __future__ import annotations

import io
import os
import socket
import struct
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from sheetstream.access import Grants, new_token, token_hash
from sheetstream.config import Settings
from sheetstream.formats.xlsx import MEDIA_TYPE, ReadLimits, open_workbook, write_xlsx
from sheetstream.formats.xlsx.cells import unescape_text
from sheetstream.store import Column, Store, TokenRecord
from sheetstream.store.sqlite import SqliteStore

IN_CI = os.environ.get("CI") == "true"


def make_settings(**options: Any) -> Settings:
    """Settings by option name. The tests run on the thread strategy unless they name one: it is what most of
    them were written for (their instrumented stores live in the test's process); the runtime tests cover each.
    Authentication is off unless a test turns it on (``auth=True``): the access tests are about it, the others
    are not (``sheetstream serve`` has it on unless told otherwise)."""
    return Settings().with_(**{"strategy": "thread", "auth": False, **options})


CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_executable() -> str:
    """Debian's Chromium (Playwright drives it through ``executable_path``; no browser download)."""
    import shutil

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        missing("Chromium is not installed (Debian package chromium)")
    return executable


def add_token(store: Store, name: str, grants: str, expires_in: float | None = None) -> str:
    """A new API token in ``store`` (``grants`` as text: ``"orders:read,append"``, ``"admin"``); returns it."""
    token = new_token()
    store.tokens.add(TokenRecord.new(name, token_hash(token), Grants.parse(grants), expires_in))
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


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

    def read_rows(self, table, columns, limit=None, where=(), order=()):
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


def write(tmp_path: Path, rows: list, header: list[str], name: str = "book", **kwargs: Any) -> Path:
    path = tmp_path / f"{name}.xlsx"
    with open(path, "wb") as f:
        for chunk in write_xlsx(rows, header, **kwargs):
            f.write(chunk)
    return path


def openpyxl_sheets(path: Path) -> dict[str, list[tuple]]:
    wb = openpyxl.load_workbook(path, read_only=False)
    try:
        return {ws.title: [tuple(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}
    finally:
        wb.close()


def as_csv(v: Any) -> str:
    """How LibreOffice writes a value we wrote, in CSV."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, time_of_day):
        return v.strftime("%H:%M:%S")
    if isinstance(v, str):
        return v.replace("\r", "\n")  # LibreOffice keeps line breaks in a cell as LF only
    return str(v)


def assert_same_as_libreoffice(expected_rows: list, actual_rows: list[list[str]]) -> None:
    assert len(actual_rows) == len(expected_rows)
    for r, (want, got) in enumerate(zip(expected_rows, actual_rows), 1):
        got = list(got) + [""] * (len(want) - len(got))
        for c, (w, g) in enumerate(zip(want, got)):
            if isinstance(w, float) or (isinstance(w, Decimal) and g):
                assert float(g) == pytest.approx(float(w), rel=1e-14), (r, c, w, g)
            elif isinstance(w, int) and not isinstance(w, bool) and abs(w) > 10**11:
                assert float(g) == float(w), (r, c, w, g)
            else:
                assert g == as_csv(w), (r, c, w, g)


# Hand-made workbooks for the reader's tests: Small workbooks built part by part for the reader's tests: any XML, any part names, any zip quirk.

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
STRICT_MAIN = "http://purl.oclc.org/ooxml/spreadsheetml/main"
STRICT_REL = "http://purl.oclc.org/ooxml/officeDocument/relationships"


def sheet(rows: str, ns: str = MAIN) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{ns}"><sheetData>{rows}</sheetData></worksheet>'


def styles(*formats: str | int) -> str:
    """A styles part whose cell style ``i + 1`` shows ``formats[i]`` (a custom code or a built-in id)."""
    custom = {164 + i: f for i, f in enumerate(formats) if isinstance(f, str)}
    ids = [164 + i if isinstance(f, str) else f for i, f in enumerate(formats)]
    fmts = "".join(f'<numFmt numFmtId="{i}" formatCode="{_xml_attr(code)}"/>' for i, code in custom.items())
    xfs = '<xf numFmtId="0"/>' + "".join(f'<xf numFmtId="{i}"/>' for i in ids)
    return f'<styleSheet xmlns="{MAIN}"><numFmts>{fmts}</numFmts><cellXfs>{xfs}</cellXfs></styleSheet>'


def _xml_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def parts(sheet_xml: str | bytes, *, shared: str | bytes | None = None, style: str | None = None,
          extra_sheets: Iterable[tuple[str, str, str, str | bytes]] = (), main: str = MAIN, rel: str = REL,
          names: dict[str, str] | None = None) -> dict[str, str | bytes]:
    """The parts of a one-sheet workbook (sheet "Data"); ``extra_sheets`` adds (name, relationship type suffix,
    target, xml); ``names`` renames zip entries (the relationships keep the standard names)."""
    rels = [f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>']
    found: dict[str, str | bytes] = {"xl/worksheets/sheet1.xml": sheet_xml}
    entries = ['<sheet name="Data" sheetId="1" r:id="rId1"/>']
    if shared is not None:
        rels.append(f'<Relationship Id="rId2" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>')
        found["xl/sharedStrings.xml"] = shared
    if style is not None:
        rels.append(f'<Relationship Id="rId3" Type="{rel}/styles" Target="styles.xml"/>')
        found["xl/styles.xml"] = style
    for i, (name, kind, target, xml) in enumerate(extra_sheets, 10):
        kind_uri = kind if "://" in kind else f"{rel}/{kind}"
        rels.append(f'<Relationship Id="rId{i}" Type="{kind_uri}" Target="{target}"/>')
        entries.append(f'<sheet name="{name}" sheetId="{i}" r:id="rId{i}"/>')
        found["xl/" + target] = xml
    found["[Content_Types].xml"] = '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
    found["_rels/.rels"] = (f'<Relationships xmlns="{PKG}"><Relationship Id="rId1" Type="{rel}/officeDocument" '
                            'Target="xl/workbook.xml"/></Relationships>')
    found["xl/workbook.xml"] = (f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>{"".join(entries)}</sheets></workbook>')
    found["xl/_rels/workbook.xml.rels"] = f'<Relationships xmlns="{PKG}">{"".join(rels)}</Relationships>'
    for old, new in (names or {}).items():
        found[new] = found.pop(old)
    return found


def build(path: Path, contents: dict[str, Any], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A zip of ``contents``: str or bytes, or an iterable of byte chunks (streamed, for large parts)."""
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in contents.items():
            if isinstance(data, (str, bytes)):
                z.writestr(name, data)
            else:
                with z.open(name, "w", force_zip64=True) as f:
                    for chunk in data:
                        f.write(chunk)
    return path


def patch_central_directory(path: Path, name: str, *, compress_size: int | None = None,
                            file_size: int | None = None) -> None:
    """Make the central directory lie about the sizes of entry ``name``."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46:at + 46 + name_len] == name.encode():
            if compress_size is not None:
                struct.pack_into("<L", data, at + 20, compress_size)
            if file_size is not None:
                struct.pack_into("<L", data, at + 24, file_size)
            path.write_bytes(bytes(data))
            return
        at = data.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"no entry {name}")


def read_all(path: Path, limits: ReadLimits = ReadLimits()) -> dict[str, list]:
    with open_workbook(path, limits) as book:
        return {name: list(book.rows(name)) for name in book.sheet_names}


def read(path: Path, sheet: str | None = None, limits: ReadLimits = ReadLimits()) -> list:
    with open_workbook(path, limits) as book:
        return list(book.rows(sheet))


def measured(func, *args, **kwargs) -> tuple[Any, float, int]:
    """(result or the exception raised, seconds, peak bytes allocated by Python meanwhile)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        result: Any = func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - returned to the test, which checks its type
        result = exc
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, elapsed, peak


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


class OwnedPostgres:
    """A throwaway PostgreSQL cluster that the test owns (``initdb`` into a temporary folder, ``pg_ctl`` on a free
    loopback port), so that it can restart it under a running server: ``with OwnedPostgres() as pg: pg.url``.
    PostgreSQL refuses to run as root: when the tests run as root, the cluster runs as the ``postgres`` user."""

    name = "PostgreSQL"  # as the job's message names it

    def __init__(self) -> None:
        import glob
        import pwd
        import tempfile

        from sheetstream.tools.harness import free_port

        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
        if not binaries:
            missing("PostgreSQL's server binaries are not installed (Debian package postgresql)")
        self.bin = Path(binaries[-1]).parent
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                missing("running as root, and there is no postgres user to run a cluster as")
            self.user = "postgres"
        self.dir = Path(tempfile.mkdtemp(prefix="sheetstream-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, timeout: float = 60) -> None:
        import subprocess

        as_user = ["runuser", "-u", self.user, "--"] if self.user else []
        done = subprocess.run([*as_user, *command], capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    def pg_ctl(self, action: str, *args: str) -> None:
        self._run(str(self.bin / "pg_ctl"), action, "-D", str(self.data), "-w", "-t", "30", *args)

    def restart(self, down: float = 0.0) -> None:
        """A fast restart (``-m fast``): every connection is cut, the cluster is back when this returns, after
        ``down`` seconds stopped."""
        if down:
            self.pg_ctl("stop", "-m", "fast")
            time.sleep(down)
            self.start()
        else:
            self.pg_ctl("restart", "-m", "fast", "-l", str(self.dir / "log"))  # a log file, or pg_ctl keeps our pipe

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("start", "-o", options, "-l", str(self.dir / "log"))

    def __enter__(self) -> OwnedPostgres:
        import shutil

        if self.user:
            shutil.chown(self.dir, self.user)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import shutil

        try:
            self.pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class OwnedMariadb:
    """A throwaway MariaDB server that the test owns (``mariadb-install-db`` into a temporary folder, ``mariadbd``
    on a free loopback port), so that it can restart it under a running server: ``with OwnedMariadb() as db:
    db.url``. Run as root, the server runs as the ``mysql`` user (mariadbd refuses root without ``--user``)."""

    name = "MySQL"  # as the job's message names it (the store says MySQL for both)

    def __init__(self) -> None:
        import shutil
        import tempfile

        from sheetstream.tools.harness import free_port

        self.install, self.server = shutil.which("mariadb-install-db"), shutil.which("mariadbd", path=_SBIN)
        if not self.install or not self.server:
            missing("MariaDB's server is not installed (Debian package mariadb-server)")
        self.user = "mysql" if os.geteuid() == 0 else None
        if self.user:
            import pwd

            try:
                pwd.getpwnam(self.user)
            except KeyError:
                missing("running as root, and there is no mysql user to run MariaDB as")
        self.dir = Path(tempfile.mkdtemp(prefix="sheetstream-mariadb-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"mysql://root@127.0.0.1:{self.port}/test"
        self.process: Any = None

    def _options(self) -> list[str]:
        # Speed over durability (a test database), loopback only, LOAD DATA LOCAL allowed as on a default server.
        return ["--no-defaults", f"--datadir={self.data}", *([f"--user={self.user}"] if self.user else []),
                "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M", "--innodb-flush-log-at-trx-commit=0",
                "--skip-log-bin"]

    def start(self, timeout: float = 30) -> None:
        import subprocess

        log = open(self.dir / "log", "ab")
        self.process = subprocess.Popen(
            [self.server, *self._options(), f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.dir / 'sock'}", f"--pid-file={self.dir / 'pid'}", "--local-infile=1"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mariadbd did not start: {(self.dir / 'log').read_text()[-2000:]}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        from sheetstream.store.mysql_connect import connect

        try:
            with connect(self.url.rsplit("/", 1)[0] + "/mysql", autocommit=True):
                return True
        except Exception:
            return False

    def stop(self, timeout: float = 30) -> None:
        """A normal shutdown (SIGTERM): every connection is cut, open transactions are rolled back."""
        import subprocess

        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def restart(self, down: float = 0.0) -> None:
        """Stopped, ``down`` seconds later started again on the same port; back when this returns."""
        self.stop()
        time.sleep(down)
        self.start()

    def __enter__(self) -> OwnedMariadb:
        import shutil
        import subprocess

        if self.user:
            shutil.chown(self.dir, self.user)
        done = subprocess.run([self.install, *self._options(), "--auth-root-authentication-method=normal",
                               "--skip-test-db"], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise RuntimeError(f"mariadb-install-db failed: {done.stdout}{done.stderr}")
        try:
            self.start()
            from sheetstream.store.mysql_connect import connect

            with connect(self.url.rsplit("/", 1)[0] + "/mysql", autocommit=True) as conn:
                conn.execute("CREATE DATABASE test")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        import shutil

        try:
            if self.process is not None and self.process.poll() is None:
                self.process.kill()  # no need for a clean shutdown: the data goes
                self.process.wait(10)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


_SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
