"""The page in real headless Chromium (Debian's, driven by Playwright), signed in with authentication on, as a
user gets it: download through the link, uploads that succeed, fail with problems, and are too large, the round
trip of an edited export, and the recent jobs. Screenshots of each state go to tests' output folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import expect

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore

from ..helpers import add_token, make_settings

# Screenshots of each state; `SHEETSTREAM_SCREENSHOTS=docs/screenshots scripts/test tests/web` refreshes the README's.
SCREENSHOTS = Path(os.environ.get("SHEETSTREAM_SCREENSHOTS", Path(tempfile.gettempdir()) / "sheetstream-screenshots"))
class Site:
    def __init__(self, server, store, tokens: dict[str, str]):
        self.server, self.store, self.tokens = server, store, tokens
        self.url = server.url

    def __iter__(self):  # server, store = site
        return iter((self.server, self.store))


@pytest.fixture
def site(tmp_path: Path, live_server):
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 2_000)
    tokens = {name: add_token(store, name, grants) for name, grants in (
        ("editor", "orders:read,append,upsert,replace"), ("viewer", "orders:read"), ("appender", "orders:read,append"))}
    settings = make_settings(auth=True, tables=("orders",), data_dir=tmp_path / "data", max_upload_bytes=400_000)
    with live_server(create_app(settings, store)) as server:
        yield Site(server, store, tokens)


def sign_in(page, site: Site, name: str = "editor") -> None:
    """Open the page the way the server prints its URL: the token in the fragment, exchanged for a cookie."""
    page.goto(f"{site.url}/#token={site.tokens[name]}")
    page.get_by_test_id("signed-in").wait_for()
    assert site.tokens[name] not in page.url


@pytest.fixture
def page(browser, site: Site):
    context = browser.new_context(accept_downloads=True, viewport={"width": 900, "height": 900})
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text) if message.type == "error" else None)
    sign_in(page, site)
    yield page
    context.close()
    assert not [m for m in console if "Content Security Policy" in m], console


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def xlsx(path: Path, rows: list, header: list[str] | None = None) -> Path:
    path.write_bytes(b"".join(write_xlsx(rows, header or [c.name for c in ORDERS], sheet_name="orders")))
    return path


def test_download_through_the_plain_link(site, page, tmp_path: Path) -> None:
    server, _ = site
    page.goto(server.url)
    link = page.get_by_role("link", name="orders.xlsx")
    assert link.get_attribute("href") == "/exports/orders.xlsx" and link.get_attribute("download") is not None
    assert page.get_by_test_id("rows-orders").inner_text() == "2,000 rows, 11 columns"
    shot(page, "page")
    with page.expect_download() as pending:
        link.click()
    saved = tmp_path / "downloaded.xlsx"
    pending.value.save_as(saved)
    assert pending.value.suggested_filename == "orders.xlsx"
    sheet = openpyxl.load_workbook(saved).active
    assert sheet.max_row == 2_001
    first = next(demo_rows(1))
    assert sheet["A2"].value == 1 and sheet["B2"].value == first[1] and sheet["K1"].value == "note"


def test_upload_succeeds_and_the_table_changes(site, page, tmp_path: Path) -> None:
    server, store = site
    rows = [(r[0], f"Browser {r[0]}", *r[2:]) for r in demo_rows(300)]
    page.goto(server.url)
    page.set_input_files("#file", str(xlsx(tmp_path / "good.xlsx", rows)))
    page.get_by_label("Replace the whole table").check()
    page.get_by_label("Check only").uncheck()
    page.get_by_role("button", name="Import", exact=True).click()
    success = page.get_by_test_id("success")
    success.wait_for(timeout=30_000)
    assert "300 rows written to 'orders' (replace the whole table)" in success.inner_text()
    assert page.get_by_test_id("job-state").inner_text().startswith("Imported: 300 rows read, 300 written")
    assert page.locator("#sent").get_attribute("value") == "100"
    shot(page, "upload-success")
    assert list(store.read_rows("orders", store.columns("orders"))) == rows
    page.wait_for_function("document.querySelector('[data-testid=rows-orders]').innerText.startsWith('300 rows')")


def test_upload_with_bad_cells_shows_the_problems(site, page, tmp_path: Path) -> None:
    server, store = site
    rows = list(demo_rows(5))
    rows[2] = ("three", *rows[2][1:])
    page.goto(server.url)
    page.set_input_files("#file", str(xlsx(tmp_path / "bad.xlsx", rows)))
    page.get_by_label("Replace the whole table").check()
    page.get_by_role("button", name="Check", exact=True).click()  # "Check only" is the default
    groups = page.get_by_test_id("problem-groups")
    groups.wait_for(timeout=30_000)
    assert groups.inner_text().startswith("1 cell in column id: 'three' is not a whole number (A4)")
    assert page.get_by_test_id("failure").inner_text() == "1 problem found; nothing was written."
    assert page.get_by_test_id("job-state").inner_text().startswith("1 problem found: ")
    page.get_by_text("The first 1 problem, cell by cell").click()
    table = page.get_by_test_id("problems")
    cells = table.locator("tbody tr").first.locator("td").all_inner_texts()
    assert cells == ["orders", "A4", "id", "three", "'three' is not a whole number"]
    with page.expect_download() as pending:
        page.get_by_role("link", name="Download these problems as CSV").click()
    csv_path = tmp_path / "problems.csv"
    pending.value.save_as(csv_path)
    assert csv_path.read_text().splitlines()[1] == "orders,A4,id,three,'three' is not a whole number"
    shot(page, "upload-problems")
    assert store.count("orders") == 2_000


def test_upload_over_the_limit_says_so(site, page, tmp_path: Path) -> None:
    server, store = site
    page.goto(server.url)
    page.set_input_files("#file", str(xlsx(tmp_path / "big.xlsx", list(demo_rows(20_000)))))  # about 1.9 MB
    page.get_by_role("button", name="Check", exact=True).click()
    failure = page.get_by_test_id("failure")
    failure.wait_for(timeout=30_000)
    text = failure.inner_text()
    assert "larger than this server accepts (0.38 MB)" in text and "413" in text
    shot(page, "upload-too-large")
    assert store.count("orders") == 2_000


def test_narrow_screen_and_keyboard(site, browser) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 800})
    page = context.new_page()
    try:
        sign_in(page, site)
        page.get_by_role("link", name="orders.xlsx").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Sign out"
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "orders.xlsx"
        assert page.get_by_label("Table", exact=True).is_visible() and page.get_by_label("Check only").is_visible()
        shot(page, "narrow")
    finally:
        context.close()


def test_preview_then_import_now(site, page, tmp_path: Path) -> None:
    server, store = site
    rows = [(r[0], f"Previewed {r[0]}" if r[0] <= 3 else r[1], *r[2:]) for r in demo_rows(2_005)]
    page.goto(server.url)
    page.set_input_files("#file", str(xlsx(tmp_path / "preview.xlsx", rows)))
    # The defaults: update existing rows and add new ones (a primary key and the grant), check only.
    assert page.get_by_label("Update existing rows and add new ones").is_checked()
    assert page.get_by_label("Check only").is_checked()
    page.get_by_role("button", name="Check", exact=True).click()
    preview = page.get_by_test_id("preview")
    preview.wait_for(timeout=30_000)
    assert page.get_by_test_id("preview-inserted").inner_text() == "5 added"
    assert page.get_by_test_id("preview-updated").inner_text() == "3 updated"
    assert page.get_by_test_id("preview-unchanged").inner_text() == "1,997 unchanged"
    assert page.get_by_test_id("job-state").inner_text().startswith("Ready to import: 2,005 rows read")
    first = page.get_by_test_id("changes").locator("tbody tr").first.locator("td").all_inner_texts()
    assert first == ["B2", "customer", next(demo_rows(1))[1], "Previewed 1"]
    shot(page, "upload-preview")
    assert store.count("orders") == 2_000
    page.get_by_role("button", name="Import now").click()
    page.get_by_text("2,005 rows written to 'orders' (update existing rows and add new ones)").wait_for(timeout=30_000)
    assert list(store.read_rows("orders", store.columns("orders"))) == rows
    assert page.get_by_test_id("preview").count() == 0


def test_problems_and_warnings_come_back_in_the_workbook(site, page, tmp_path: Path) -> None:
    server, store = site
    rows = [(*r, "my note") for r in demo_rows(5)]
    rows[1] = (rows[1][0], rows[1][1], rows[1][2], "lots", *rows[1][4:])  # D3: a word for an amount
    page.goto(server.url)
    page.set_input_files("#file", str(xlsx(tmp_path / "edited.xlsx", rows, [c.name for c in ORDERS] + ["helper"])))
    page.get_by_label("Add new rows").check()  # ids 1-5 exist
    page.get_by_role("button", name="Check", exact=True).click()
    groups = page.get_by_test_id("problem-groups")
    groups.wait_for(timeout=30_000)
    assert groups.locator("li").all_inner_texts() == [
        "5 rows: id already exists in orders — choose Update existing rows and add new ones (mode upsert), or Replace "
        "the whole table (mode replace) (first: A2, A3, A4, A5, A6)",
        "1 cell in column amount: 'lots' is not a number (D3) — fix these cells; the marked-up workbook highlights "
        "each one (first: D3)"]
    warnings = page.get_by_test_id("warnings").inner_text()
    assert "orders!L1" in warnings and "'helper' is not in the table and was ignored" in warnings
    page.get_by_text("The first 6 problems, cell by cell").click()
    messages = page.get_by_test_id("problems").locator("tbody tr td:last-child").all_inner_texts()
    assert messages[0] == "'lots' is not a number" and len(messages) == 6
    assert messages[1] == "id 1 already exists in orders: choose Update existing rows and add new ones (mode upsert), or Replace the whole table (mode replace)"
    shot(page, "upload-marked-up")
    with page.expect_download() as pending:
        page.get_by_test_id("marked-up").click()
    saved = tmp_path / "marked.xlsx"
    pending.value.save_as(saved)
    assert pending.value.suggested_filename == "orders-problems.xlsx"
    book = openpyxl.load_workbook(saved)
    assert book.sheetnames == ["orders", "Problems"]
    assert book["orders"]["D3"].comment.text == "'lots' is not a number"
    assert book["orders"]["L1"].comment.text.startswith("Warning: ")
    assert store.count("orders") == 2_000


def test_round_trip_of_an_edited_export_with_the_defaults(site, page, tmp_path: Path) -> None:
    """The person's own path: download, change three cells and add a row in a spreadsheet program (openpyxl here),
    upload with every default, read the preview, import, and find exactly those changes in the table."""
    store = site.store
    before = list(store.read_rows("orders", store.columns("orders")))
    with page.expect_download() as pending:
        page.get_by_role("link", name="orders.xlsx").click()
    exported = tmp_path / "orders.xlsx"
    pending.value.save_as(exported)
    book = openpyxl.load_workbook(exported)
    sheet = book.active
    sheet["B3"] = "Edited customer"  # row 2 of the table
    sheet["K10"] = "edited note"  # row 9
    sheet["D2001"] = 12.5  # row 2,000
    new = (2_001, "New customer", "new@example.com", 7.25, *before[0][4:10], "added")
    sheet.append(list(new))
    edited = tmp_path / "edited.xlsx"
    book.save(edited)

    page.set_input_files("#file", str(edited))
    page.get_by_role("button", name="Check", exact=True).click()
    page.get_by_test_id("preview").wait_for(timeout=60_000)
    assert page.get_by_test_id("preview-updated").inner_text() == "3 updated"
    assert page.get_by_test_id("preview-inserted").inner_text() == "1 added"
    assert page.get_by_test_id("preview-unchanged").inner_text() == "1,997 unchanged"
    changes = [row.locator("td").all_inner_texts() for row in page.get_by_test_id("changes").locator("tbody tr").all()]
    assert changes == [["B3", "customer", before[1][1], "Edited customer"],
                       ["K10", "note", before[8][10] or "", "edited note"],
                       ["D2001", "amount", str(before[1999][3]), "12.50"]]
    assert store.count("orders") == 2_000  # a check writes nothing
    shot(page, "round-trip-preview")
    page.get_by_role("button", name="Import now").click()  # a POST with the session's CSRF header
    page.get_by_text("2,001 rows written to 'orders' (update existing rows and add new ones)").wait_for(timeout=60_000)

    after = list(store.read_rows("orders", store.columns("orders")))
    expected = list(before)
    expected[1] = (*before[1][:1], "Edited customer", *before[1][2:])
    expected[8] = (*before[8][:10], "edited note")
    expected[1999] = (*before[1999][:3], Decimal("12.50"), *before[1999][4:])
    assert after[:2000] == expected and len(after) == 2_001 and after[2000][:4] == new[:4]
    jobs = page.get_by_test_id("jobs")
    jobs.get_by_text("import: update existing rows and add new ones").wait_for(timeout=10_000)
    rows = [r.locator("td").all_inner_texts() for r in jobs.locator("tbody tr").all()]
    assert [(r[2], r[3], r[5]) for r in rows] == [("import: update existing rows and add new ones", "imported", "editor"),
                                                  ("check: update existing rows and add new ones", "ready to import",
                                                   "editor")]
    shot(page, "round-trip-done")


def test_grants_shape_the_upload_area(site, browser) -> None:
    context = browser.new_context()
    try:
        viewer = context.new_page()
        sign_in(viewer, site, "viewer")
        viewer.get_by_role("link", name="orders.xlsx").wait_for()
        assert viewer.locator("#file").count() == 0 and viewer.get_by_role("heading", name="Upload").count() == 0
        appender = context.new_page()
        sign_in(appender, site, "appender")
        appender.locator("#file").wait_for()
        assert appender.get_by_label("Add new rows").is_checked()  # no upsert grant: adding is the default
        assert appender.get_by_label("Replace the whole table").count() == 0
        assert appender.get_by_test_id("grants-note").inner_text() == (
            "Your grants on orders allow: add new rows. To update existing rows and add new ones or replace the whole "
            "table, ask an admin for that grant.")
    finally:
        context.close()


def test_without_authentication_the_page_still_works(tmp_path: Path, live_server, browser) -> None:
    """The one page test with authentication off (``--no-auth``): everyone is an admin, no sign-in, no CSRF."""
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 20)
    settings = make_settings(tables=("orders",), data_dir=tmp_path / "data")
    context = browser.new_context()
    try:
        with live_server(create_app(settings, store)) as server:
            page = context.new_page()
            page.goto(server.url)
            page.get_by_role("link", name="orders.xlsx").wait_for()
            assert page.get_by_test_id("signed-in").count() == 0
            page.set_input_files("#file", str(xlsx(tmp_path / "same.xlsx", list(demo_rows(20)))))
            page.get_by_role("button", name="Check", exact=True).click()
            page.get_by_role("button", name="Import now").click()
            page.get_by_text("20 rows written to 'orders' (update existing rows and add new ones)").wait_for(timeout=30_000)
    finally:
        context.close()


def test_csv_both_ways_on_the_page(site, page, tmp_path: Path) -> None:
    """Download the CSV through its plain link, upload a CSV with problems, read the grouped review and take the
    marked-up copy back as a workbook."""
    with page.expect_download() as pending:
        page.get_by_role("link", name="orders.csv").click()
    exported = tmp_path / "orders.csv"
    pending.value.save_as(exported)
    assert pending.value.suggested_filename == "orders.csv"
    lines = exported.read_bytes().decode().split("\r\n")
    assert lines[0] == ",".join(c.name for c in ORDERS) and len(lines) == 2_002
    for n in (2, 4, 6):  # D3, D5, D7: words for amounts
        fields = lines[n].split(",")
        fields[3] = "lots"
        lines[n] = ",".join(fields)
    edited = tmp_path / "edited.csv"
    edited.write_bytes("\r\n".join(lines).encode())
    page.set_input_files("#file", str(edited))
    page.get_by_role("button", name="Check", exact=True).click()
    groups = page.get_by_test_id("problem-groups")
    groups.wait_for(timeout=30_000)
    assert groups.inner_text().startswith("3 cells in column amount do not fit it, e.g. 'lots' is not a number (D3)")
    shot(page, "csv-problems")
    with page.expect_download() as pending:
        page.get_by_test_id("marked-up").click()
    marked = tmp_path / "marked.xlsx"
    pending.value.save_as(marked)
    sheet = openpyxl.load_workbook(marked)["orders"]
    assert [sheet[f"D{n}"].fill.fgColor.rgb for n in (3, 5, 7)] == ["FFFFC7CE"] * 3
    assert sheet["D3"].value == "lots" and sheet["A2"].value == "1"
    assert site.store.count("orders") == 2_000


def test_build_a_filtered_export_and_download_it_through_its_link(site, page, tmp_path: Path, capsys) -> None:
    """Two columns, two conditions and an order chosen on the page; the link holds the choice, the file holds
    exactly those rows (read with openpyxl), and the CLI downloads the same rows from the same query string."""
    builder = page.locator("section", has=page.get_by_role("heading", name="Build an export"))
    builder.get_by_label("id", exact=True).check()
    builder.get_by_label("amount", exact=True).check()
    builder.get_by_role("button", name="Add a condition").click()
    first = page.get_by_test_id("filter-0")
    first.get_by_label("column").select_option("amount")
    first.get_by_label("operator").select_option("gte")
    first.get_by_label("value").fill("50000")
    builder.get_by_role("button", name="Add a condition").click()
    second = page.get_by_test_id("filter-1")
    second.get_by_label("column").select_option("paid")
    second.get_by_label("value").select_option("true")
    builder.get_by_label("Sorted by").select_option("amount")
    builder.get_by_label("newest / largest first").check()
    url = page.get_by_test_id("built-url").inner_text()
    assert url == "/exports/orders.xlsx?select=id%2Camount&amount=gte.50000&paid=eq.true&order=amount.desc"
    shot(page, "export-builder")
    with page.expect_download() as pending:
        page.get_by_test_id("built-export").click()
    saved = tmp_path / "built.xlsx"
    pending.value.save_as(saved)
    rows = list(openpyxl.load_workbook(saved).active.iter_rows(values_only=True))
    expected = sorted(((r[0], float(r[3])) for r in demo_rows(2_000) if r[3] >= 50000 and r[7] is True),
                      key=lambda r: -r[1])
    assert rows[0] == ("id", "amount") and [(i, float(a)) for i, a in rows[1:]] == expected and len(expected) > 100

    out = tmp_path / "cli.xlsx"
    command = Path(sys.executable).parent / "sheetstream"  # the installed command, in a process of its own
    subprocess.run([str(command), "download", "--url", site.url, "--token", site.tokens["viewer"], "--query",
                    url.split("?", 1)[1], "-o", str(out), "--quiet"], check=True, timeout=60)
    assert list(openpyxl.load_workbook(out).active.iter_rows(values_only=True)) == rows


def test_the_builder_shows_the_databases_estimate(pg_url: str, pg_table: str, tmp_path: Path, live_server,
                                                  browser) -> None:
    from sheetstream.store import open_store

    store = open_store(pg_url)
    seed(store, 3_000, pg_table)
    with store.connect() as conn:
        conn.execute(f'ANALYZE "{pg_table}"')
    token = add_token(store, f"reader-{pg_table}", f"{pg_table}:read")
    settings = make_settings(auth=True, tables=(pg_table,), data_dir=tmp_path / "data")
    context = browser.new_context()
    try:
        with live_server(create_app(settings, store)) as server:
            page = context.new_page()
            page.goto(f"{server.url}/#token={token}")
            page.get_by_test_id("estimate").wait_for(timeout=10_000)
            assert page.get_by_test_id("estimate").inner_text() == "About 3,000 rows (the database's estimate)"
            page.get_by_role("button", name="Add a condition").click()
            page.get_by_test_id("filter-0").get_by_label("column").select_option("paid")
            page.get_by_test_id("filter-0").get_by_label("value").select_option("true")
            expect(page.get_by_test_id("estimate")).not_to_contain_text("3,000")  # the page's CSP allows no eval
            shown = int(page.get_by_test_id("estimate").inner_text().split()[1].replace(",", ""))
            paid = sum(1 for r in demo_rows(3_000) if r[7] is True)
            assert paid / 2 < shown < paid * 2
    finally:
        context.close()
