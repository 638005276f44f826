"""Access through the page in real Chromium: signing in with the printed URL (the token leaves the address bar)
and with the form, a download through the plain link carried by the session cookie, an upload, grants that
hide the upload area and the replace option, and a real cross-site attack from a page on another loopback
port: the same *site* as the server (two ports of one host), so the SameSite=Strict cookie IS sent, and only
the CSRF header and the Origin / Sec-Fetch-Site checks stand in the way."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore

from ..helpers import add_token, make_settings


@pytest.fixture
def site(tmp_path: Path, live_server):
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 500)
    tokens = {name: add_token(store, name, grants) for name, grants in (
        ("editor", "orders:read,append,replace"), ("viewer", "orders:read"), ("appender", "orders:read,append"))}
    settings = make_settings(auth=True, tables=("orders",), data_dir=tmp_path / "data")
    with live_server(create_app(settings, store)) as server:
        yield server, store, tokens


@pytest.fixture
def context(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 900, "height": 900})
    yield context
    context.close()


def workbook(path: Path, rows: list) -> Path:
    path.write_bytes(b"".join(write_xlsx(rows, [c.name for c in ORDERS], sheet_name="orders")))
    return path


def test_sign_in_with_the_printed_url_then_download_and_upload(site, context, tmp_path: Path) -> None:
    server, store, tokens = site
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    page.goto(f"{server.url}/?token={tokens['editor']}")
    page.get_by_test_id("signed-in").wait_for()
    assert "Signed in as editor" in page.get_by_test_id("signed-in").inner_text()
    assert "content-security-policy" in page.request.get(server.url).headers
    assert not [m for m in console if "Content Security Policy" in m], console  # the build satisfies the policy
    assert page.url == f"{server.url}/" and tokens["editor"] not in page.evaluate("location.href")
    [cookie] = context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("sheetstream_session", True, "Strict")
    assert tokens["editor"] not in cookie["value"] and page.evaluate("document.cookie") == ""
    with page.expect_download() as pending:
        page.get_by_role("link", name="orders.xlsx").click()  # the plain link, signed by the cookie
    saved = tmp_path / "orders.xlsx"
    pending.value.save_as(saved)
    assert openpyxl.load_workbook(saved).active.max_row == 501
    rows = [(r[0], f"Page {r[0]}", *r[2:]) for r in demo_rows(40)]
    page.set_input_files("#file", str(workbook(tmp_path / "good.xlsx", rows)))
    page.get_by_label("Replace the whole table").check()
    page.get_by_label("Check only").uncheck()
    page.get_by_role("button", name="Import").click()
    page.get_by_test_id("success").wait_for(timeout=30_000)
    assert store.count("orders") == 40
    [record] = store.audit.recent()
    assert (record["who"], record["via"], record["mode"], record["rows_written"]) == ("token:editor", "session",
                                                                                    "replace", 40)


def test_sign_in_form_and_grants_that_hide_what_they_do_not_allow(site, context) -> None:
    server, _, tokens = site
    page = context.new_page()
    page.goto(server.url)
    page.get_by_label("Token").wait_for()
    assert page.get_by_test_id("sign-in-problem").count() == 0  # nothing is wrong before the person acts
    page.get_by_label("Token").fill("sst_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    # The page shows the first visit's "sign in" message until the answer to this sign-in arrives: wait for it.
    expect(page.get_by_test_id("sign-in-problem")).to_contain_text("not known to the server")
    page.get_by_label("Token").fill(tokens["viewer"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="orders.xlsx").wait_for()
    assert "Signed in as viewer" in page.get_by_test_id("signed-in").inner_text()
    assert page.locator("#file").count() == 0 and page.get_by_role("heading", name="Upload").count() == 0
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Token").fill(tokens["appender"])
    page.get_by_role("button", name="Sign in").click()
    page.locator("#file").wait_for()
    assert page.get_by_label("Add new rows").is_visible() and page.get_by_label("Replace").count() == 0


ATTACK = """<!doctype html><title>a page of another site</title><body><script>
const target = %(target)r;
const bytes = Uint8Array.from(atob(%(workbook)r), (c) => c.charCodeAt(0));
const file = new File([bytes], "orders.xlsx");
window.results = {};
async function attack() {
  const form = new FormData();
  form.append("mode", "replace");
  form.append("file", file);
  try {
    await fetch(target + "/imports/orders?mode=replace&wait=true",
                {method: "POST", mode: "no-cors", credentials: "include", body: form});
    results.fetch = "sent";
  } catch (e) { results.fetch = "error: " + e; }
  try {
    const put = await fetch(target + "/imports/orders?mode=replace&wait=true",
                            {method: "PUT", mode: "cors", credentials: "include", body: bytes,
                             headers: {"Content-Type": "application/octet-stream"}});
    results.put = "status " + put.status;
  } catch (e) { results.put = "error: " + e; }
  const frame = document.createElement("iframe");
  frame.name = "sink";
  document.body.append(frame);
  const html = document.createElement("form");
  html.method = "POST"; html.enctype = "multipart/form-data"; html.target = "sink";
  html.action = target + "/imports/orders?mode=replace&wait=true";
  const input = document.createElement("input");
  input.type = "file"; input.name = "file";
  const chosen = new DataTransfer(); chosen.items.add(file); input.files = chosen.files;
  html.append(input);
  document.body.append(html);
  frame.onload = () => { results.form = "submitted"; };
  html.submit();
}
attack();
</script></body>"""


def test_a_cross_site_page_cannot_import_through_a_signed_in_session(site, context, tmp_path: Path, live_server,
                                                                      caplog) -> None:
    server, store, tokens = site
    page = context.new_page()
    page.goto(f"{server.url}/?token={tokens['editor']}")
    page.get_by_test_id("signed-in").wait_for()
    body = workbook(tmp_path / "evil.xlsx", list(demo_rows(3))).read_bytes()
    html = ATTACK % {"target": server.url, "workbook": base64.b64encode(body).decode()}
    evil = Starlette(routes=[Route("/", lambda request: HTMLResponse(html))])
    caplog.set_level(logging.WARNING, logger="sheetstream.access")
    with live_server(evil) as other:
        assert other.url.split(":")[1] == server.url.split(":")[1]  # same host, another port: the same site
        attacker = context.new_page()
        attacker.goto(other.url)
        attacker.wait_for_function("window.results && results.fetch && results.put && results.form", timeout=20_000)
        results = attacker.evaluate("results")
    assert results["put"].startswith("error")  # the preflight finds no CORS: the PUT is never sent
    refused = [r.getMessage() for r in caplog.records if r.name == "sheetstream.access"]
    # The session cookie went with both POSTs (the log names the signed-in token), and the checks refused them.
    assert sum("refused POST /imports/orders for token:editor" in m for m in refused) == 2, refused
    assert all("another site (same-site)" in m for m in refused), refused
    assert not any("PUT" in m for m in refused)
    assert store.count("orders") == 500 and store.audit.recent() == []
