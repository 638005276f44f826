"""Shared fixtures: real PostgreSQL and MariaDB, real LibreOffice, a real uvicorn server on a loopback port."""

from __future__ import annotations

import csv
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import psycopg
import pytest

from sheetstream.store import open_store
from sheetstream.tools.harness import MYSQL_URL, POSTGRES_URL, ThreadedServer, mysql_problem, postgres_problem

from .helpers import CHROMIUM_ARGS, chromium_executable, missing


@pytest.fixture(scope="session")
def pg_url() -> str:
    problem = postgres_problem(POSTGRES_URL)
    if problem:
        missing(problem)
    return POSTGRES_URL


@pytest.fixture
def pg_table(pg_url: str) -> Iterator[str]:
    """A unique table name in the test database, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{name}"')


@pytest.fixture(scope="session")
def mysql_url() -> str:
    problem = mysql_problem(MYSQL_URL)
    if problem:
        missing(problem)
    return MYSQL_URL


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("pg_url" if request.param == "postgres" else "mysql_url")


@pytest.fixture
def db_table(store_url: str) -> Iterator[str]:
    """A unique table name in the test database of ``store_url`` (shared by several runs), dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    open_store(store_url).drop_table(name)


class LibreOffice:
    def __init__(self, binary: str, profile: Path):
        self.binary = binary
        self.profile = profile

    def convert(self, source: Path, to: str) -> Path:
        """``source`` converted by LibreOffice to format ``to`` (``xlsx``), in a folder of its own."""
        out = source.parent / f"{source.stem}-{to}"
        out.mkdir(exist_ok=True)
        infilter = ["--infilter=CSV:44,34,76,1"] if source.suffix == ".csv" else []  # comma, quote, UTF-8
        subprocess.run([self.binary, f"-env:UserInstallation=file://{self.profile}", "--headless", *infilter,
                        "--convert-to", to, "--outdir", str(out), str(source)], check=True, capture_output=True, timeout=120)
        converted = out / f"{source.stem}.{to}"
        if not converted.exists():
            raise AssertionError(f"LibreOffice did not convert {source} to {to}")
        return converted

    def to_csv(self, xlsx: Path) -> dict[str, list[list[str]]]:
        """Every sheet of ``xlsx`` as LibreOffice reads it, converted to CSV: ``{sheet name: rows}``."""
        out = xlsx.parent / f"{xlsx.stem}-lo"
        out.mkdir(exist_ok=True)
        subprocess.run(
            [self.binary, f"-env:UserInstallation=file://{self.profile}", "--headless", "--convert-to",
             "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1",
             "--outdir", str(out), str(xlsx)],
            check=True, capture_output=True, timeout=120,
        )
        found = {}
        for path in out.glob(f"{xlsx.stem}-*.csv"):
            with open(path, newline="", encoding="utf-8") as f:
                found[path.stem.removeprefix(f"{xlsx.stem}-")] = list(csv.reader(f))
        if not found:
            raise AssertionError(f"LibreOffice wrote no CSV for {xlsx}")
        order = openpyxl.load_workbook(xlsx, read_only=True).sheetnames  # in the workbook's order
        return {name: found[name] for name in order if name in found} | found


@pytest.fixture(scope="session")
def libreoffice(tmp_path_factory: pytest.TempPathFactory) -> LibreOffice:
    binary = shutil.which("soffice") or shutil.which("libreoffice")
    if not binary:
        missing("LibreOffice is not installed (Debian package libreoffice-calc-nogui)")
    return LibreOffice(binary, tmp_path_factory.mktemp("lo-profile"))


@pytest.fixture
def live_server():
    """A real uvicorn server for an app on a free loopback port: ``with live_server(app) as server: server.url``."""
    return ThreadedServer


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (``executable_path``: no browser download), one per test module."""
    executable = chromium_executable()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
