"""The API description at /docs in real Chromium, signed in as an admin with authentication on, with the browser's
network limited to the server: every file of Swagger UI comes from the server itself, and the server's
Content-Security-Policy (no inline script, no other origin) lets it run."""

from __future__ import annotations

from pathlib import Path

from sheetstream.server import create_app
from sheetstream.store.demo import seed
from sheetstream.store.sqlite import SqliteStore

from ..helpers import add_token, make_settings


def test_docs_render_offline_within_the_policy(browser, tmp_path: Path, live_server) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 10)
    token = add_token(store, "root", "admin")
    with live_server(create_app(make_settings(auth=True, tables=("orders",), data_dir=tmp_path / "data"), store)) as server:
        context = browser.new_context()
        blocked: list[str] = []

        def only_the_server(route) -> None:  # no network but the server: a CDN would be unreachable
            if route.request.url.startswith(server.url + "/"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", only_the_server)
        try:
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{server.url}/?token={token}")
            page.get_by_test_id("signed-in").wait_for()
            page.goto(f"{server.url}/docs")
            operation = page.locator('.opblock-summary-path[data-path="/exports/{table}.xlsx"]')
            operation.wait_for(timeout=30_000)
            assert "/exports/{table}.xlsx" in operation.inner_text().replace("\u200b", "")
            assert page.locator(".opblock").count() >= 10 and "sheetstream" in page.locator(".title").inner_text()
        finally:
            context.close()
    assert blocked == []
    assert problems == [], problems  # among them any "Refused to ... Content Security Policy"
