"""Who may do what, against a real server: 401 without credentials, 403 without the grant, expired and revoked
tokens refused, jobs private to their owner, the audit trail, the fair share, sessions and their CSRF defence,
security headers, CORS only when configured, the proxy's user header only from the proxy."""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from sheetstream.access import Grants
from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.server.routes import books, exports, imports, jobs, meta, session
from sheetstream.store import open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore

from ..helpers import XLSX, InstrumentedStore, add_token, bearer, make_settings

OPEN = {"/healthz", "/readyz", "/"}  # liveness and readiness are for load balancers, which hold no token


@pytest.fixture
def served(tmp_path: Path, live_server):
    """A server with auth on, the orders table, and tokens for: a reader, an appender, a replacer, an admin."""
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 20)
    tokens = {name: add_token(store, name, grants) for name, grants in (
        ("reader", "orders:read"), ("appender", "orders:read,append"), ("replacer", "orders:read,replace"),
        ("admin", "admin"))}
    settings = make_settings(auth=True, tables=("orders",), data_dir=tmp_path / "data")
    app = create_app(settings, store)
    with live_server(app) as server:
        yield server, store, tokens, app


def workbook(rows: int = 5, first_id: int = 1) -> bytes:
    shifted = ((r[0] + first_id - 1, *r[1:]) for r in demo_rows(rows))
    return b"".join(write_xlsx(shifted, [c.name for c in ORDERS]))


def test_every_route_but_health_and_the_page_needs_credentials(served) -> None:
    server, _, _, _ = served
    seen = 0
    for route in [r for module in (meta, session, books, exports, imports, jobs) for r in module.router.routes]:
        if not isinstance(route, APIRoute) or route.path in OPEN:
            continue
        path = route.path.replace("{table}", "orders").replace("{job_id}", "x")
        for method in route.methods - ({"POST"} if route.path == "/session" else set()):  # signing in itself
            answer = httpx.request(method, server.url + path)
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert method == "HEAD" or "sign in" in answer.json()["message"]  # a HEAD answer has no body
            seen += 1
    assert seen >= 12
    assert httpx.get(f"{server.url}/healthz").status_code == 200 and httpx.get(server.url).status_code == 200
    assert httpx.get(f"{server.url}/exports/orders.xlsx", headers=bearer("sst_nope")).status_code == 401
    assert httpx.post(f"{server.url}/session", json={"token": ""}).status_code == 401


def test_grants_decide_and_replace_is_its_own(served) -> None:
    server, store, tokens, _ = served
    put = lambda who, mode: httpx.put(f"{server.url}/imports/orders", params={"mode": mode, "wait": "true"},  # noqa: E731
                                      content=workbook(), headers={**bearer(tokens[who]), "Content-Type": XLSX})
    assert httpx.get(f"{server.url}/exports/orders.xlsx", headers=bearer(tokens["reader"])).status_code == 200
    refused = put("reader", "append")
    assert refused.status_code == 403 and refused.json()["message"] == (
        "reader may not append table 'orders' (its grants allow: read)")
    assert put("appender", "replace").status_code == 403 and store.count("orders") == 20
    assert put("replacer", "append").status_code == 403
    assert put("replacer", "replace").status_code == 200 and store.count("orders") == 5
    for path in ("/metrics", "/status", "/audit", "/docs", "/openapi.json", "/jobs?all=true"):
        answer = httpx.get(server.url + path, headers=bearer(tokens["reader"]))
        assert answer.status_code == (200 if path == "/jobs?all=true" else 403), path  # all=true is ignored
    for path in ("/metrics", "/status", "/audit", "/docs", "/openapi.json"):
        assert httpx.get(server.url + path, headers=bearer(tokens["admin"])).status_code == 200, path
    # a form that asks for another mode than its query is checked once the form is read
    form = httpx.post(f"{server.url}/imports/orders", params={"wait": "true"}, data={"mode": "replace"},
                      files={"file": ("x.xlsx", workbook(3), XLSX)}, headers=bearer(tokens["appender"]))
    assert form.status_code == 403 and store.count("orders") == 5


def test_tables_list_only_what_the_grants_allow(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 3)
    seed(store, 3, "customers")
    token = add_token(store, "one", "customers:read,upsert")
    with live_server(create_app(make_settings(auth=True, tables=("orders", "customers")), store)) as server:
        listed = httpx.get(f"{server.url}/tables", headers=bearer(token)).json()
        session = httpx.get(f"{server.url}/session", headers=bearer(token)).json()
    assert [(t["name"], t["permissions"]) for t in listed] == [("customers", ["read", "upsert"])]
    assert session == {"name": "one", "kind": "token", "admin": False, "auth": True,
                       "grants": {"customers": ["read", "upsert"]}, "csrf": None}


def test_expired_and_revoked_tokens_are_refused_and_only_hashes_are_stored(served) -> None:
    server, store, tokens, _ = served
    short = add_token(store, "short", "orders:read", expires_in=0.3)
    assert httpx.get(f"{server.url}/tables", headers=bearer(short)).status_code == 200
    time.sleep(0.4)
    expired = httpx.get(f"{server.url}/tables", headers=bearer(short))
    assert expired.status_code == 401 and expired.json()["message"] == "the token 'short' has expired"
    assert store.tokens.revoke("reader")
    revoked = httpx.get(f"{server.url}/tables", headers=bearer(tokens["reader"]))
    assert revoked.status_code == 401 and revoked.json()["message"] == "the token 'reader' has been revoked"
    with sqlite3.connect(store.control_path) as conn:
        dump = "\n".join(conn.iterdump())
    for token in (*tokens.values(), short):
        assert token not in dump and hashlib.sha256(token.encode()).hexdigest() in dump
        assert token not in expired.text + revoked.text


def test_jobs_belong_to_their_creator_and_imports_are_audited(served) -> None:
    server, store, tokens, _ = served
    body = workbook(4, first_id=101)
    job = httpx.put(f"{server.url}/imports/orders", params={"mode": "append", "dry_run": "true"}, content=body,
                    headers={**bearer(tokens["appender"]), "Content-Type": XLSX}).json()
    for _ in range(100):
        if httpx.get(f"{server.url}/jobs/{job['id']}", headers=bearer(tokens["appender"])).json()["state"] == "done":
            break
        time.sleep(0.1)
    assert job["owner"] == "token:appender"
    assert httpx.get(f"{server.url}/jobs/{job['id']}", headers=bearer(tokens["reader"])).status_code == 404
    assert httpx.delete(f"{server.url}/jobs/{job['id']}", headers=bearer(tokens["reader"])).status_code == 404
    assert httpx.get(f"{server.url}/jobs/{job['id']}", headers=bearer(tokens["admin"])).status_code == 200
    mine = httpx.get(f"{server.url}/jobs", headers=bearer(tokens["appender"])).json()
    assert [j["id"] for j in mine] == [job["id"]] and httpx.get(f"{server.url}/jobs", headers=bearer(
        tokens["reader"])).json() == []
    refused = httpx.put(f"{server.url}/imports/orders", params={"mode": "replace"}, content=body,
                        headers={**bearer(tokens["appender"]), "Content-Type": XLSX})
    assert refused.status_code == 403
    [record] = httpx.get(f"{server.url}/audit", headers=bearer(tokens["admin"])).json()
    assert record["who"] == "token:appender" and record["via"] == "token" and record["table"] == "orders"
    assert (record["mode"], record["dry_run"], record["outcome"], record["rows_written"]) == ("append", True, "done", 0)
    assert record["bytes"] == len(body) and record["sha256"] == hashlib.sha256(body).hexdigest()
    assert record["at"] > time.time() - 60 and record["job_id"] == job["id"]
    httpx.put(f"{server.url}/imports/orders", params={"mode": "replace", "wait": "true"}, content=body,
              headers={**bearer(tokens["replacer"]), "Content-Type": XLSX})
    newest = store.audit.recent(1)[0]
    assert (newest["who"], newest["mode"], newest["rows_written"], newest["outcome"]) == ("token:replacer", "replace",
                                                                                          4, "done")


def test_one_identity_cannot_fill_the_queue(tmp_path: Path, live_server) -> None:
    store = InstrumentedStore(tmp_path / "x.db", demo_rows(5_000), ORDERS, gate_at=2_000)
    token, other = add_token(store, "greedy", "orders:read"), add_token(store, "other", "orders:read")
    settings = make_settings(auth=True, tables=("orders",), workers=2, max_waiting=4, max_per_identity=1)
    with live_server(create_app(settings, store)) as server:
        with httpx.stream("GET", f"{server.url}/exports/orders.xlsx", headers=bearer(token), timeout=30) as first:
            chunks = first.iter_raw()
            next(chunks)  # running, held at the gate
            second = httpx.get(f"{server.url}/exports/orders.xlsx", headers=bearer(token))
            assert second.status_code == 429 and int(second.headers["retry-after"]) >= 1
            assert "greedy already has 1 export(s) or import(s) running or waiting" in second.json()["message"]
            store.gate.set()
            b"".join(chunks)
        store._rows, store.produced, store.gate_at = demo_rows(100), 0, None
        assert httpx.get(f"{server.url}/exports/orders.xlsx", headers=bearer(other)).status_code == 200
        store._rows = demo_rows(100)
        assert httpx.get(f"{server.url}/exports/orders.xlsx", headers=bearer(token)).status_code == 200  # given back


def test_a_session_cookie_needs_the_csrf_header_and_this_origin(served) -> None:
    server, store, tokens, _ = served
    signed_in = httpx.post(f"{server.url}/session", json={"token": tokens["replacer"]})
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie and "Path=/" in cookie
    assert tokens["replacer"] not in cookie and signed_in.json()["name"] == "replacer"
    csrf = signed_in.json()["csrf"]
    jar = {"sheetstream_session": signed_in.cookies["sheetstream_session"]}
    host = server.url.removeprefix("http://")
    files = {"file": ("x.xlsx", workbook(2), XLSX)}

    def post(**headers: str) -> httpx.Response:
        return httpx.post(f"{server.url}/imports/orders", params={"mode": "replace", "wait": "true"}, files=files,
                          cookies=jar, headers=headers)

    assert httpx.get(f"{server.url}/tables", cookies=jar).status_code == 200  # reads need no header
    assert post(Origin="http://127.0.0.1:1").status_code == 403
    assert post(Origin=f"http://{host}").status_code == 403  # no CSRF header
    assert post(**{"Origin": f"http://{host}", "X-Sheetstream-CSRF": "guess"}).status_code == 403
    assert post(**{"Origin": "http://evil.example", "X-Sheetstream-CSRF": csrf}).status_code == 403
    assert post(**{"Sec-Fetch-Site": "same-site", "X-Sheetstream-CSRF": csrf}).status_code == 403
    assert store.count("orders") == 20 and store.audit.recent() == []
    done = post(**{"Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin", "X-Sheetstream-CSRF": csrf})
    assert done.status_code == 200 and store.count("orders") == 2
    assert httpx.post(f"{server.url}/session", json={"token": "sst_wrong"}).status_code == 401
    assert httpx.post(f"{server.url}/session", json={"token": tokens["admin"]},
                      headers={"Origin": "http://evil.example"}).status_code == 403
    store.tokens.revoke("replacer")  # ends its sessions too
    assert httpx.get(f"{server.url}/tables", cookies=jar).status_code == 401
    tampered = {"sheetstream_session": jar["sheetstream_session"][:-2] + "xx"}
    assert httpx.get(f"{server.url}/tables", cookies=tampered).status_code == 401


def test_signing_out_ends_the_session_on_every_instance(store_url: str, tmp_path: Path, live_server) -> None:
    """``DELETE /session`` revokes the session on the server, where tokens live: the cookie captured before it is
    refused afterwards, by this instance and by another sharing the database, while other sessions of the same
    token go on."""
    store = open_store(store_url)
    name = f"out_{uuid.uuid4().hex[:8]}"
    token = add_token(store, name, "admin")
    settings = make_settings(auth=True, tables=(), session_secret="shared by both instances", data_dir=tmp_path)
    with live_server(create_app(settings, store)) as one, live_server(create_app(settings, store)) as two:
        def sign_in() -> tuple[dict[str, str], str]:
            answer = httpx.post(f"{one.url}/session", json={"token": token})
            assert answer.status_code == 200, answer.text
            return {"sheetstream_session": answer.cookies["sheetstream_session"]}, answer.json()["csrf"]

        jar, csrf = sign_in()
        other, _ = sign_in()
        for server in (one, two):
            assert httpx.get(f"{server.url}/session", cookies=jar).status_code == 200
        host = one.url.removeprefix("http://")
        out = httpx.delete(f"{one.url}/session", cookies=jar,
                           headers={"Origin": f"http://{host}", "X-Sheetstream-CSRF": csrf})
        assert out.status_code == 200, out.text
        for server in (one, two):
            refused = httpx.get(f"{server.url}/session", cookies=jar)
            assert refused.status_code == 401 and "signed out" in refused.json()["message"], refused.text
            assert httpx.get(f"{server.url}/session", cookies=other).status_code == 200
    store.tokens.revoke(name)


def test_security_headers_everywhere_and_no_cors_unless_configured(served, tmp_path: Path, live_server) -> None:
    server, store, tokens, _ = served
    for path in ("/", "/healthz", "/tables", "/exports/orders.xlsx"):
        answer = httpx.get(server.url + path, headers={**bearer(tokens["admin"]), "Origin": "http://other.example"})
        assert answer.headers["x-content-type-options"] == "nosniff" and answer.headers["referrer-policy"] == "no-referrer"
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy, path
        assert "access-control-allow-origin" not in answer.headers
    docs = httpx.get(f"{server.url}/docs", headers=bearer(tokens["admin"]))  # the same policy: no CDN, no inline
    assert docs.headers["content-security-policy"] == policy and "<script>" not in docs.text and "http" not in docs.text
    settings = make_settings(auth=True, tables=("orders",), cors_origins=("http://app.example",),
                             public=("metrics", "status"))
    with live_server(create_app(settings, store)) as other:
        allowed = httpx.get(f"{other.url}/tables", headers={**bearer(tokens["admin"]), "Origin": "http://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "http://app.example"
        assert "access-control-allow-credentials" not in allowed.headers
        assert "access-control-allow-origin" not in httpx.get(f"{other.url}/tables", headers={
            **bearer(tokens["admin"]), "Origin": "http://evil.example"}).headers
        assert httpx.get(f"{other.url}/metrics").status_code == 200 and httpx.get(f"{other.url}/status").status_code == 200
        assert httpx.get(f"{other.url}/openapi.json").status_code == 401


def test_the_proxy_user_header_only_from_the_proxy(tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 3)
    grants = {"alice": Grants.parse("orders:read")}
    for proxies, expected in ((("127.0.0.2",), 401), (("127.0.0.1",), 200)):
        settings = make_settings(auth=True, tables=("orders",), user_header="X-Forwarded-User",
                                 trusted_proxies=proxies, user_grants=grants)
        with live_server(create_app(settings, store)) as server:
            answer = httpx.get(f"{server.url}/tables", headers={"X-Forwarded-User": "alice",
                                                                 "X-Forwarded-For": "127.0.0.2"})
            assert answer.status_code == expected, proxies
            if expected == 200:
                who = httpx.get(f"{server.url}/session", headers={"X-Forwarded-User": "alice",
                                                                  "Authorization": "Basic YWxpY2U6cHc="}).json()
                assert (who["name"], who["kind"], who["grants"]) == ("alice", "user", {"orders": ["read"]})
                nobody = httpx.get(f"{server.url}/exports/orders.xlsx", headers={"X-Forwarded-User": "mallory"})
                assert nobody.status_code == 403  # a user without grants


def test_tokens_jobs_and_audit_on_each_database(store_url: str, tmp_path: Path, live_server) -> None:
    from sheetstream.store import open_store

    store = open_store(store_url)
    table = f"t_{uuid.uuid4().hex[:8]}"
    seed(store, 5, table)
    try:
        name = f"writer-{uuid.uuid4().hex[:6]}"
        token = add_token(store, name, f"{table}:read,append")
        settings = make_settings(auth=True, tables=(table,), data_dir=tmp_path / "data")
        with live_server(create_app(settings, store)) as server:
            body = workbook(3, first_id=50)
            done = httpx.put(f"{server.url}/imports/{table}", params={"mode": "append", "wait": "true"}, content=body,
                             headers={**bearer(token), "Content-Type": XLSX}, timeout=60).json()
            listed = httpx.get(f"{server.url}/jobs", headers=bearer(token)).json()
            store.tokens.revoke(name)
            revoked = httpx.get(f"{server.url}/jobs", headers=bearer(token))
        assert done["state"] == "done" and [j["id"] for j in listed] == [done["id"]]
        assert revoked.status_code == 401 and store.count(table) == 8
        [record] = store.audit.recent(5, who=f"token:{name}")
        assert (record["rows_written"], record["sha256"]) == (3, hashlib.sha256(body).hexdigest())
    finally:
        store.drop_table(table)


def test_the_cookie_is_secure_behind_https_and_browsers_need_loopback_without_auth(tmp_path: Path,
                                                                                  live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 3)
    token = add_token(store, "x", "orders:read")
    settings = make_settings(auth=True, tables=("orders",), trusted_proxies=("127.0.0.1",))
    with live_server(create_app(settings, store)) as server:
        cookie = httpx.post(f"{server.url}/session", json={"token": token},
                            headers={"X-Forwarded-Proto": "https"}).headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
    with live_server(create_app(make_settings(auth=False, tables=("orders",)), store)) as server:
        rebound = httpx.get(f"{server.url}/tables", headers={"Host": "evil.example", "Sec-Fetch-Site": "same-origin"})
        assert rebound.status_code == 403 and "loopback" in rebound.json()["message"]
        assert httpx.get(f"{server.url}/tables", headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
        assert httpx.get(f"{server.url}/tables", headers={"Host": "anything"}).status_code == 200  # not a browser
