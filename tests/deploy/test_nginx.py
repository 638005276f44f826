"""Through a real nginx running the shipped deploy/nginx.conf (only its ports, paths and limit rewritten for
loopback): streaming both ways, both 413s, two instances sharing one database, the 5-user round trip, single
sign-on in Chromium, and no token in nginx's access log after a sign-in with a token in the URL."""

from __future__ import annotations

import io
import re
import shutil
import socket
import subprocess
import time
import zipfile
from pathlib import Path

import httpx

from sheetstream.access import Grants
from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store import open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore
from sheetstream.tools.harness import free_port
from sheetstream.tools.loadtest import parse_metrics
from sheetstream.tools.roundtrip import roundtrip

from ..helpers import (
    CHROMIUM_ARGS,
    XLSX,
    InstrumentedStore,
    add_token,
    chromium_executable,
    download_through_the_gate,
    make_settings,
    missing,
    raw_request,
)

SHIPPED = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"


def loopback_config(folder: Path, port: int, upstreams: list[str], body_limit: str) -> str:
    """The shipped config with loopback ports, private paths and a test body limit; each rewrite must apply."""
    text = SHIPPED.read_text()
    rewrites = [
        (r"pid /tmp/nginx\.pid;", f"pid {folder}/nginx.pid;"),
        (r"/tmp/nginx-", f"{folder}/nginx-"),
        (r"access_log /dev/stdout( \w+)?;", lambda m: f"access_log {folder}/access.log{m[1] or ''};"),
        (r"error_log /dev/stderr warn;", f"error_log {folder}/error.log warn;"),
        (r"(?:\s*server app\d:8000;)+", "".join(f"\n        server {u};" for u in upstreams)),
        (r"listen 8080;", f"listen 127.0.0.1:{port};"),
        (r"client_max_body_size 1g;", f"client_max_body_size {body_limit};"),
    ]
    for pattern, replacement in rewrites:
        text, count = re.subn(pattern, replacement, text)
        assert count, f"the shipped nginx.conf no longer has {pattern!r}"
    return text


class Nginx:
    def __init__(self, folder: Path, upstreams: list[str], body_limit: str = "1g"):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).exists():
            missing("nginx is not installed (Debian package nginx or nginx-light)")
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "nginx.conf").write_text(loopback_config(folder, self.port, upstreams, body_limit))
        self.command = [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> Nginx:
        self.process = subprocess.Popen(self.command, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not start: {self.process.stderr.read().decode()[-500:]}")
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(10)


def members(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        return {name: z.read(name) for name in z.namelist()}


def test_export_streams_through_nginx_and_matches_a_direct_download(tmp_path: Path, live_server) -> None:
    store = InstrumentedStore(tmp_path / "x.db", demo_rows(40_000), ORDERS, gate_at=20_000)
    with live_server(create_app(make_settings(tables=("orders",)), store)) as app:
        with Nginx(tmp_path / "nginx", [app.url.removeprefix("http://")]) as proxy:
            produced_at_first_byte, through_proxy, response = download_through_the_gate(
                f"{proxy.url}/exports/orders.xlsx", store)
            assert response.headers.get("transfer-encoding") == "chunked"
        store._rows, store.produced, store.gate_at = demo_rows(40_000), 0, None
        direct = httpx.get(f"{app.url}/exports/orders.xlsx", timeout=30).content
    assert produced_at_first_byte < 40_000  # bytes crossed nginx while rows were still being produced
    assert members(through_proxy) == members(direct)


def test_upload_reaches_the_application_while_the_client_is_still_sending(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    body = b"".join(write_xlsx(demo_rows(5_000), [c.name for c in ORDERS]))
    settings = make_settings(tables=("orders",), data_dir=tmp_path / "data")
    with live_server(create_app(settings, store)) as app, Nginx(tmp_path / "nginx", [app.url[7:]]) as proxy:
        received = lambda: parse_metrics(httpx.get(f"{app.url}/metrics").text)["sheetstream_bytes_in_total"]  # noqa: E731
        half = len(body) // 2
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
            sock.sendall(f"PUT /imports/orders?mode=replace&wait=true HTTP/1.1\r\nHost: x\r\nContent-Type: {XLSX}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body[:half])
            deadline = time.monotonic() + 10
            while received() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            arrived_before_the_end = received()
            sock.sendall(body[half:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    assert 0 < arrived_before_the_end <= half
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert store.count("orders") == 5_000


def test_each_limit_answers_with_its_own_413(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    settings = make_settings(tables=("orders",), data_dir=tmp_path / "data", max_upload_bytes=500_000)
    with live_server(create_app(settings, store)) as app, Nginx(tmp_path / "nginx", [app.url[7:]], "1m") as proxy:
        over_nginx = httpx.put(f"{proxy.url}/imports/orders", content=b"x" * 2_000_000, headers={"Content-Type": XLSX})
        over_app = raw_request(proxy.url, f"PUT /imports/orders HTTP/1.1\r\nHost: x\r\nContent-Type: {XLSX}\r\n"
                                          "Content-Length: 800000\r\nConnection: close\r\n\r\n", [b"x" * 800_000])
    assert over_nginx.status_code == 413 and "nginx" in over_nginx.text  # nginx's own page
    assert over_app.startswith(b"HTTP/1.1 413"), over_app[:200]
    assert b'"error":"payload_too_large"' in over_app and b"larger than this server accepts" in over_app
    assert store.count("orders") == 10


def test_two_instances_share_jobs_through_postgres(tmp_path: Path, live_server, pg_url: str, pg_table: str) -> None:
    seed(open_store(pg_url), 10, pg_table)
    settings = make_settings(tables=(pg_table,), data_dir=tmp_path / "data")
    body = b"".join(write_xlsx(demo_rows(300), [c.name for c in ORDERS]))
    with live_server(create_app(settings, open_store(pg_url))) as one, \
            live_server(create_app(settings, open_store(pg_url))) as two, \
            Nginx(tmp_path / "nginx", [one.url[7:], two.url[7:]]) as proxy:
        job = httpx.put(f"{proxy.url}/imports/{pg_table}", content=body, params={"mode": "replace", "wait": "true"},
                        headers={"Content-Type": XLSX}, timeout=60).json()
        seen = [httpx.get(f"{server.url}/jobs/{job['id']}").json() for server in (one, two, proxy, proxy)]
    assert job["state"] == "done"
    assert {(s["state"], s["rows_inserted"]) for s in seen} == {("done", 300)}
    assert open_store(pg_url).count(pg_table) == 300


def test_five_user_round_trip_through_nginx(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 3_000)
    copies = tuple(f"orders_roundtrip_{i}" for i in range(1, 6))
    settings = make_settings(tables=("orders", *copies), data_dir=tmp_path / "data")
    with live_server(create_app(settings, store)) as one, live_server(create_app(settings, SqliteStore(store.path))) as two, \
            Nginx(tmp_path / "nginx", [one.url[7:], two.url[7:]]) as proxy:
        runs = roundtrip(store, "orders", 5, proxy.url, tmp_path)
        log = (tmp_path / "nginx" / "access.log").read_text()
    assert [r.problems for r in runs] == [[]] * 5
    assert all(r.rows == 3_000 for r in runs)
    assert log.count("PUT /imports/orders_roundtrip_") == 5  # they did go through the proxy


def sign_on_config(text: str, auth_url: str) -> str:
    """The shipped config's commented single sign-on example, enabled and pointed at ``auth_url``; nginx connects
    to the upstreams from 127.0.0.2, so the application can tell it from a direct client on 127.0.0.1."""
    rewrites = [
        (r"# (auth_request /_auth;)", r"\1"),
        (r"# (auth_request_set \$auth_user \$upstream_http_x_auth_request_user;)", r"\1"),
        (r"\n *proxy_set_header X-Forwarded-User \"\";", ""),
        (r"# (proxy_set_header X-Forwarded-User \$auth_user;)", r"\1"),
        (r"# location = /_auth \{\n\s*#\s*internal;\n\s*#\s*proxy_pass http://oauth2-proxy:4180/oauth2/auth;\n"
         r"\s*#\s*proxy_pass_request_body off;\n\s*#\s*proxy_set_header Content-Length \"\";\n\s*# \}",
         f"location = /_auth {{ internal; proxy_pass {auth_url}/oauth2/auth; proxy_pass_request_body off; "
         'proxy_set_header Content-Length ""; }'),
        (r"(listen 127\.0\.0\.1:\d+;)", r"\1\n        proxy_bind 127.0.0.2;"),
    ]
    for pattern, replacement in rewrites:
        text, count = re.subn(pattern, replacement, text)
        assert count, f"the shipped nginx.conf no longer has {pattern!r}"
    return text


def auth_service():
    """A stand-in for oauth2-proxy: the user is whoever the browser says in X-Test-User; nobody without it."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    def check(request):
        user = request.headers.get("x-test-user")
        return Response(status_code=200 if user else 401, headers={"X-Auth-Request-User": user} if user else {})

    return Starlette(routes=[Route("/oauth2/auth", check)])


def test_single_sign_on_through_nginx_in_chromium(tmp_path: Path, live_server) -> None:
    from playwright.sync_api import sync_playwright

    executable = chromium_executable()
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 100)
    settings = make_settings(auth=True, tables=("orders",), data_dir=tmp_path / "data", user_header="X-Forwarded-User",
                             trusted_proxies=("127.0.0.2",),
                             user_grants={"alice": Grants.parse("orders:read,append"), "*": Grants.parse("orders:read")})
    upload = tmp_path / "more.xlsx"
    upload.write_bytes(b"".join(write_xlsx(((r[0] + 100, *r[1:]) for r in demo_rows(20)), [c.name for c in ORDERS])))
    with live_server(create_app(settings, store)) as app, live_server(auth_service()) as auth:
        nginx = Nginx(tmp_path / "nginx", [app.url[7:]])
        (nginx.folder / "nginx.conf").write_text(sign_on_config((nginx.folder / "nginx.conf").read_text(), auth.url))
        with nginx as proxy, sync_playwright() as playwright:
            spoofed = httpx.get(f"{app.url}/tables", headers={"X-Forwarded-User": "alice"})  # not from the proxy
            assert spoofed.status_code == 401
            assert httpx.get(f"{proxy.url}/tables").status_code == 401  # nginx: no sign-on, no entry
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            try:
                alice = browser.new_context(extra_http_headers={"X-Test-User": "alice"}).new_page()
                alice.goto(proxy.url)
                assert "Signed in as alice" in alice.get_by_test_id("signed-in").inner_text()
                alice.set_input_files("#file", str(upload))
                alice.get_by_label("Check only").uncheck()
                alice.get_by_role("button", name="Import").click()
                alice.get_by_test_id("success").wait_for(timeout=30_000)
                assert alice.get_by_label("Replace").count() == 0
                bob = browser.new_context(extra_http_headers={"X-Test-User": "bob"}).new_page()
                bob.goto(proxy.url)
                bob.get_by_role("link", name="orders.xlsx").wait_for()
                assert "Signed in as bob" in bob.get_by_test_id("signed-in").inner_text()
                assert bob.locator("#file").count() == 0
            finally:
                browser.close()
    assert store.count("orders") == 120
    [record] = store.audit.recent()
    assert (record["who"], record["via"], record["rows_written"]) == ("user:alice", "user", 20)
    assert record["client"] == "127.0.0.1"  # the browser, as nginx saw it (nginx itself connects from 127.0.0.2)


def test_a_sign_in_with_a_token_in_the_url_leaves_no_token_in_nginx_logs(tmp_path: Path, live_server, browser) -> None:
    """An old-style sign-in link (``/?token=...``) sends its token to the server in the query string; the shipped
    log format writes the path only. (The URL ``serve`` prints keeps the token in the fragment, never sent.)"""
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    token = add_token(store, "editor", "orders:read,append")
    settings = make_settings(auth=True, tables=("orders",), data_dir=tmp_path / "data")
    with live_server(create_app(settings, store)) as app, Nginx(tmp_path / "nginx", [app.url[7:]]) as proxy:
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(f"{proxy.url}/?token={token}")
            page.get_by_test_id("signed-in").wait_for()
            assert "Signed in as editor" in page.get_by_test_id("signed-in").inner_text()
            assert httpx.get(f"{proxy.url}/tables", params={"token": token},
                             headers={"Authorization": f"Bearer {token}"}).status_code == 200
        finally:
            context.close()
    logs = {name: (tmp_path / "nginx" / name).read_text() for name in ("access.log", "error.log")}
    for name, text in logs.items():
        assert token not in text and token[4:20] not in text, f"the token is in nginx's {name}"
    assert '"GET / HTTP/1.1" 200' in logs["access.log"] and '"GET /tables HTTP/1.1" 200' in logs["access.log"]
    assert "POST /session" in logs["access.log"]  # the sign-in did go through nginx
