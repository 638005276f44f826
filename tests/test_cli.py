"""The console script: seed, download (single, parallel, to a folder), exit codes, tokens, serve's access."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openpyxl
import psycopg
import pytest

from sheetstream.cli import _settings, main
from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store import open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore
from sheetstream.tools.harness import free_port, wait_until_up

from .helpers import add_token, make_settings, rows_of


@pytest.fixture
def served(tmp_path: Path, live_server):
    data = tmp_path / "data"
    assert main(["seed", "--rows", "500", "--data-dir", str(data)]) == 0
    store = open_store(f"sqlite:///{data / 'sheetstream.db'}")
    with live_server(create_app(make_settings(data_dir=data), store)) as server:
        yield server


def test_seed_is_deterministic(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["seed", "--rows", "50", "--database-url", f"sqlite:///{tmp_path / name}.db"]) == 0
    a, b = (open_store(f"sqlite:///{tmp_path / n}.db") for n in ("a", "b"))
    assert list(a.read_rows("orders", a.columns("orders"))) == list(b.read_rows("orders", b.columns("orders")))


def test_download_one_file(served, tmp_path: Path, capsys) -> None:
    out = tmp_path / "one.xlsx"
    assert main(["download", "--url", served.url, "-o", str(out), "--quiet"]) == 0
    assert openpyxl.load_workbook(out).active.max_row == 501
    assert "first byte" in capsys.readouterr().out


def test_download_parallel_to_a_folder(served, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "many"
    assert main(["download", "--url", served.url, "--parallel", "3", "--to-dir", str(folder), "--limit", "7", "--quiet"]) == 0
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == ["orders-1.xlsx", "orders-2.xlsx", "orders-3.xlsx"]
    for f in files:
        assert openpyxl.load_workbook(f).active.max_row == 8
    table = capsys.readouterr().out
    assert table.count(" ok ") == 3


def test_download_failure_exits_non_zero(served, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.xlsx"
    assert main(["download", "--url", served.url, "--table", "nope", "-o", str(out), "--quiet"]) == 1
    assert not out.exists() and not (tmp_path / "x.xlsx.part").exists()
    assert "404" in capsys.readouterr().err


def test_download_from_a_dead_server_exits_non_zero(tmp_path: Path) -> None:
    assert main(["download", "--url", "http://127.0.0.1:9", "-o", str(tmp_path / "x.xlsx"), "--quiet"]) == 1


def test_upload_prints_problems_and_exits_non_zero(served, tmp_path: Path, capsys) -> None:
    from sheetstream.formats.xlsx import write_xlsx
    from sheetstream.store.demo import ORDERS, demo_rows

    good, bad = tmp_path / "good.xlsx", tmp_path / "bad.xlsx"
    good.write_bytes(b"".join(write_xlsx(demo_rows(20), [c.name for c in ORDERS])))
    rows = [("x", *r[1:]) if r[0] == 3 else r for r in demo_rows(5)]
    bad.write_bytes(b"".join(write_xlsx(rows, [c.name for c in ORDERS], sheet_name="orders")))
    assert main(["upload", str(good), "--url", served.url, "--mode", "replace", "--quiet"]) == 0
    assert "20 rows written to 'orders' (replace the whole table)" in capsys.readouterr().out
    assert main(["upload", str(bad), "--url", served.url, "--mode", "replace", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "import failed" in out and "A4" in out and "is not a whole" in out


def test_upload_shows_warnings_the_preview_and_saves_the_marked_up_workbook(served, tmp_path: Path, capsys) -> None:
    from sheetstream.formats.xlsx import write_xlsx
    from sheetstream.store.demo import ORDERS, demo_rows

    header = [c.name for c in ORDERS] + ["helper"]
    changed = tmp_path / "changed.xlsx"
    changed.write_bytes(b"".join(write_xlsx([(*r[:1], "Renamed", *r[2:], "x") for r in demo_rows(502)], header)))
    assert main(["upload", str(changed), "--url", served.url, "--mode", "upsert", "--dry-run", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "warning: Sheet1!L1: column 'helper' is not in the table and was ignored" in out
    assert "preview: 2 inserted, 500 updated, 0 unchanged" in out and "Renamed" in out
    marked = tmp_path / "marked.xlsx"
    assert main(["upload", str(changed), "--url", served.url, "--mode", "append", "--problems-xlsx", str(marked),
                 "--quiet"]) == 1
    out = capsys.readouterr().out.replace("\n", "")  # the console wraps long lines
    assert "already exists" in out and "mode upsert" in out and str(marked) in out
    book = openpyxl.load_workbook(marked)
    assert book["Sheet1"]["A2"].comment.text.startswith("id 1 already exists") and "Problems" in book.sheetnames


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0 and capsys.readouterr().out.strip() == "sheetstream 0.1.0"


@pytest.fixture
def guarded(tmp_path: Path, live_server, monkeypatch):
    """A server with authentication on (the default of ``serve``), a reader's and an appender's tokens; no
    SHEETSTREAM_TOKEN in the environment."""
    monkeypatch.delenv("SHEETSTREAM_TOKEN", raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # rich's output on one line
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 30)
    tokens = {name: add_token(store, name, grants) for name, grants in (("reader", "orders:read"),
                                                                        ("appender", "orders:read,append"))}
    with live_server(create_app(make_settings(auth=True, data_dir=tmp_path / "data"), store)) as server:
        yield server, store, tokens


def one_line(capsys) -> str:
    """What a failed command said: one line on stderr, nothing on stdout."""
    said = capsys.readouterr()
    assert said.out == "" and len(said.err.splitlines()) == 1, said
    assert said.err.startswith("sheetstream: ") and "Traceback" not in said.err
    return said.err


def test_errors_are_one_line_that_says_what_to_do(guarded, tmp_path: Path, capsys) -> None:
    server, store, tokens = guarded
    out, url = str(tmp_path / "o.xlsx"), ["--url", server.url, "--quiet"]
    book = tmp_path / "more.xlsx"
    book.write_bytes(b"".join(write_xlsx([(r[0] + 100, *r[1:]) for r in demo_rows(5)], [c.name for c in ORDERS])))

    assert main(["upload", str(tmp_path / "missing.xlsx"), *url]) == 2
    assert "missing.xlsx: no such file" in one_line(capsys)
    assert main(["download", "-o", out, *url]) == 1  # no token
    said = one_line(capsys)
    assert "HTTP 401" in said and "--token" in said and "SHEETSTREAM_TOKEN" in said
    assert main(["upload", str(book), *url]) == 1
    assert "--token" in one_line(capsys)
    assert main(["download", "-o", out, "--token", "sst_" + "x" * 43, *url]) == 1
    assert "HTTP 401: this token is not known to the server" in one_line(capsys)
    assert main(["upload", str(book), "--token", tokens["reader"], *url]) == 1
    said = one_line(capsys)
    assert "HTTP 403: reader may not append table 'orders'" in said and "the grant orders:append" in said
    assert main(["upload", str(book), "--mode", "replace", "--token", tokens["appender"], *url]) == 1
    assert "needs a token with the grant orders:replace" in one_line(capsys)
    for command in (["download", "-o", out], ["upload", str(book)]):
        assert main([*command, "--table", "nope", "--token", tokens["appender"], *url]) == 1
        assert "HTTP 404: table 'nope' is not served by this server; exported tables: orders" in one_line(capsys)
    assert main(["download", "-o", str(tmp_path / "no" / "o.xlsx"), "--token", tokens["reader"], *url]) == 1
    assert "No such file or directory" in one_line(capsys)
    assert main(["commit", "0" * 32, "--token", tokens["appender"], *url]) == 1
    assert "HTTP 404: there is no job" in one_line(capsys)
    assert store.count("orders") == 30 and not (tmp_path / "o.xlsx").exists()


def test_a_refusal_is_one_line_from_the_installed_command_too(guarded, tmp_path: Path) -> None:
    """The console script itself, as a person runs it: exit code 1, one line on stderr, no traceback."""
    server, _, _ = guarded
    env = {k: v for k, v in os.environ.items() if k != "SHEETSTREAM_TOKEN"}
    ran = subprocess.run([sys.executable, "-m", "sheetstream.cli", "download", "--url", server.url, "--quiet",
                          "-o", str(tmp_path / "o.xlsx")], capture_output=True, text=True, env=env, timeout=60)
    assert ran.returncode == 1 and ran.stdout == ""
    assert ran.stderr.startswith("sheetstream: HTTP 401: this server wants an API token: give it with --token")
    assert len(ran.stderr.splitlines()) == 1


def test_commit_imports_what_a_dry_run_checked(guarded, tmp_path: Path, capsys) -> None:
    server, store, tokens = guarded
    book = tmp_path / "more.xlsx"
    book.write_bytes(b"".join(write_xlsx([(r[0] + 100, *r[1:]) for r in demo_rows(5)], [c.name for c in ORDERS])))
    common = ["--url", server.url, "--token", tokens["appender"], "--quiet"]
    assert main(["upload", str(book), "--dry-run", *common]) == 0
    said = capsys.readouterr().out
    checked = said.split("sheetstream commit ")[1].split()[0]
    assert "nothing written" in said and store.count("orders") == 30
    assert main(["commit", checked, "--wait", *common]) == 0
    said = capsys.readouterr().out
    assert "5 rows written to 'orders'" in said and store.count("orders") == 35
    assert main(["commit", checked, "--wait", *common]) == 1  # once per dry run
    assert f"HTTP 409: job {checked} was already committed as job" in one_line(capsys)
    book.write_bytes(b"".join(write_xlsx([(r[0] + 200, *r[1:]) for r in demo_rows(3)], [c.name for c in ORDERS])))
    assert main(["upload", str(book), "--dry-run", *common]) == 0
    checked = capsys.readouterr().out.split("sheetstream commit ")[1].split()[0]
    assert main(["commit", checked, *common]) == 0  # without --wait: started, and where to see its outcome
    said = capsys.readouterr().out
    started = said.split("job ")[1].split()[0]
    assert f"imports what job {checked} checked" in said and f"{server.url}/jobs/{started}" in said
    headers = {"Authorization": f"Bearer {tokens['appender']}"}
    deadline = time.monotonic() + 30
    while (job := httpx.get(f"{server.url}/jobs/{started}", headers=headers).json())["state"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["state"] == "done" and store.count("orders") == 38


def test_roundtrip_command_sqlite(capsys) -> None:
    assert main(["roundtrip", "--users", "3", "--rows", "400"]) == 0
    assert capsys.readouterr().out.count("identical") == 3


@pytest.mark.parametrize("database", ["pg_url", "mysql_url"])
def test_roundtrip_command_on_a_database_server(database: str, request: pytest.FixtureRequest, capsys) -> None:
    url = request.getfixturevalue(database)
    assert main(["roundtrip", "--users", "5", "--rows", "400", "--table", "rt_orders", "--database-url", url]) == 0
    assert capsys.readouterr().out.count("identical") == 5


def test_loadtest_runs_every_operation_and_reports_the_server(tmp_path: Path, capsys) -> None:
    import json

    out = tmp_path / "load.json"
    assert main(["loadtest", "--users", "2", "--rounds", "3", "--rows", "300", "--mix", "download,upload,roundtrip",
                 "--executor", "process", "--workers", "2", "--settle", "4", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["operations"]) == {"download", "upload", "roundtrip"}
    assert sum(o["ok"] for o in result["operations"].values()) == 6 and result["errors"] == {}
    server = result["server"]
    assert server["strategy"] == "process" and server["rss_main_mb_max"] > 10
    assert server["lag"]["samples"] > 0 and result["rows_per_s"] > 0
    # At rest (the queue rests after 3 idle seconds) the workers are gone: only the fork server and the tracker.
    assert server["rss_before_mb"]["workers"] > 0 and server["rss_rest_mb"]["workers"] < server["rss_workers_mb_max"]
    printed = capsys.readouterr().out
    assert "event-loop lag" in printed and "s after" in printed


def test_loadtest_refuses_other_hosts(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="loopback"):
        main(["loadtest", "--url", "http://10.0.0.1:8000", "--database-url", f"sqlite:///{tmp_path / 'x.db'}",
              "--rows", "10", "--users", "1", "--rounds", "1"])


def test_bench_channel_moves_every_byte(tmp_path: Path) -> None:
    import json

    out = tmp_path / "channel.json"
    assert main(["bench", "channel", "--megabytes", "4", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r["bytes"] for r in results] == [4 << 20] * 3
    assert all(r["mb_per_s"] > 0 for r in results)


def test_tokens_from_the_command_line_drive_access(tmp_path: Path, live_server, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # the summary table on one line
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 30)
    assert main(["token", "create", "alice", "--grant", "orders:read,append", "--expires", "30d",
                 "--database-url", db]) == 0
    token = capsys.readouterr().out.splitlines()[-1]
    assert token.startswith("sst_") and len(token) > 40
    with pytest.raises(SystemExit):  # one live token per name
        main(["token", "create", "alice", "--grant", "orders:read", "--database-url", db])
    main(["token", "list", "--database-url", db])
    listed = capsys.readouterr().out
    assert "alice" in listed and "orders:read,append" in listed and "expires" in listed and token not in listed
    settings = make_settings(auth=True, data_dir=tmp_path / "data")
    with live_server(create_app(settings, store)) as server:
        out = tmp_path / "o.xlsx"
        assert main(["download", "--url", server.url, "-o", str(out), "--quiet"]) == 1  # no token
        assert main(["download", "--url", server.url, "-o", str(out), "--quiet", "--token", token]) == 0
        assert main(["token", "revoke", "alice", "--database-url", db]) == 0
        capsys.readouterr()
        assert main(["download", "--url", server.url, "-o", str(out), "--quiet", "--token", token]) == 1
    assert "HTTP 401: the token 'alice' has been revoked" in capsys.readouterr().err


def test_serve_prints_a_start_token_until_an_admin_token_exists_and_refuses_no_auth_off_loopback(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "sheetstream.cli", "serve", "--data-dir", str(tmp_path), "--demo-rows", "50",
               "--port", str(port), "--executor", "thread"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEETSTREAM_")}
    # A read-only token for a colleague does not take the way in from the one who runs the server.
    assert main(["token", "create", "colleague", "--grant", "orders:read", "--data-dir", str(tmp_path)]) == 0

    def banner() -> str:
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        try:
            wait_until_up(f"http://127.0.0.1:{port}")
            page = next(line for line in server.stdout if "page:" in line)
            token = page.split("#token=")[1].split()[0] if "#token=" in page else None
            if token:  # the start token is an admin's, for this run; what it is follows the URL
                page += next(server.stdout)
                assert httpx.get(f"http://127.0.0.1:{port}/tables").status_code == 401
                assert httpx.get(f"http://127.0.0.1:{port}/status", headers={"Authorization": f"Bearer {token}"}
                                 ).status_code == 200
        finally:
            server.terminate()
            server.wait(15)
        return page

    first = banner()
    assert f"page:   http://127.0.0.1:{port}/#token=sst_" in first and "?token=" not in first  # never sent to a server
    assert "valid for this run only" in first
    assert main(["token", "create", "ops", "--admin", "--data-dir", str(tmp_path)]) == 0
    second = banner()
    assert "#token=" not in second and "sheetstream token create NAME --admin" in second
    refused = subprocess.run([*command, "--no-auth", "--host", "0.0.0.0"], capture_output=True, text=True, env=env,
                             timeout=60)
    assert refused.returncode == 2 and "--no-auth is refused on 0.0.0.0" in refused.stderr


def test_the_printed_url_answers_as_soon_as_it_is_printed(tmp_path: Path) -> None:
    """The banner comes once the server listens (after its first worker is ready), not before: a person or a
    script that opens the URL the moment it appears is answered, never refused."""
    port = free_port()
    command = [sys.executable, "-m", "sheetstream.cli", "serve", "--data-dir", str(tmp_path), "--demo-rows", "50",
               "--port", str(port), "--no-auth", "--executor", "process"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHEETSTREAM_")}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = next(line for line in server.stdout if "page:" in line)
        page = httpx.get(line.split("page:")[1].split()[0], timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
    finally:
        server.terminate()
        server.wait(15)


@pytest.mark.parametrize("url", ["postgresql://app:s3cret@127.0.0.1:5432/test",
                                 "postgresql://app@127.0.0.1:5432/test?sslmode=disable&password=s3cret",
                                 "postgresql://app:s3/cr@t@127.0.0.1:5432/test"])
def test_the_startup_banner_hides_the_database_password(url: str, monkeypatch, capsys) -> None:
    import uvicorn

    async def listening(self, sockets=None) -> None:  # the banner, not the serving
        self.started = True

    # serve configures the process's logging: put it back afterwards (the variable, the loggers)
    monkeypatch.setenv("SHEETSTREAM_LOG_FORMAT", "json")
    for name in ("sheetstream", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        for attribute in ("handlers", "level", "propagate", "disabled"):
            monkeypatch.setattr(logger, attribute, getattr(logger, attribute))
    monkeypatch.setattr(uvicorn.Server, "startup", listening)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *args, **kwargs: asyncio.run(self.startup()))
    monkeypatch.setenv("SHEETSTREAM_ADMIN_TOKEN", "sst_x")  # no token lookup: that database does not exist
    monkeypatch.setenv("SHEETSTREAM_DATABASE_WAIT_SECONDS", "0")  # nor a wait for it
    assert main(["serve", "--no-seed", "--database-url", url, "--port", "0"]) == 0
    out = capsys.readouterr().out
    assert "sheetstream serving postgresql://app" in out and "127.0.0.1:5432/test" in out
    assert "s3" not in out and "***" in out


def test_on_off_flags_become_settings_and_absent_ones_leave_the_default(monkeypatch) -> None:
    monkeypatch.delenv("SHEETSTREAM_SPLIT_IMPORTS", raising=False)
    monkeypatch.delenv("SHEETSTREAM_DEFLATE_ADAPTIVE", raising=False)
    given = _settings(argparse.Namespace(split_imports="on", deflate_adaptive="off"))
    assert given.queue.split_imports is True and given.export.deflate_adaptive is False
    absent = _settings(argparse.Namespace())
    assert absent.queue.split_imports is False and absent.export.deflate_adaptive is True


def test_seed_if_empty_keeps_the_rows_already_there(pg_url: str, pg_table: str, capsys) -> None:
    """What the compose stack runs at every start: the first run seeds, the next ones find rows and leave them."""
    seed_it = ["seed", "--database-url", pg_url, "--table", pg_table, "--rows", "30", "--if-empty"]
    assert main(seed_it) == 0
    store = open_store(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # what an operator's real data would be
        conn.execute(f'DELETE FROM "{pg_table}" WHERE id > 5')
        conn.execute(f"""UPDATE "{pg_table}" SET customer = 'kept' WHERE id = 1""")
    capsys.readouterr()
    assert main(seed_it) == 0
    assert "left as it is" in capsys.readouterr().out
    rows = rows_of(store, pg_table)
    assert len(rows) == 5 and rows[0][1] == "kept"
    with psycopg.connect(pg_url, autocommit=True) as conn:  # an empty table is seeded again
        conn.execute(f'DELETE FROM "{pg_table}"')
    assert main(seed_it) == 0
    assert len(rows_of(store, pg_table)) == 30


def test_seed_waits_for_the_database_and_says_why(tmp_path: Path) -> None:
    """Nothing listens on the port: seed retries for --database-wait seconds, says what it waits for, then exits 1
    with the reason (bounded: 2 s here)."""
    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/none"
    done = subprocess.run([sys.executable, "-m", "sheetstream.cli", "seed", "--rows", "1", "--if-empty",
                           "--database-url", url, "--database-wait", "2"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "waiting up to 2 s for the database at postgresql://nobody:***@" in done.stderr
    assert "cannot connect to PostgreSQL" in done.stderr and "waited 2 s" in done.stderr
    assert "secret" not in done.stderr and "Traceback" not in done.stderr
