"""The page in real headless Chromium (Debian's, driven by Playwright): download through the link, uploads
that succeed, fail with problems, and are too large. Screenshots of each state go to tests' output folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import openpyxl
import pytest

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store.demo import ORDERS, demo_rows, seed
from sheetstream.store.sqlite import SqliteStore

from ..helpers import make_settings

# Screenshots of each state; `SHEETSTREAM_SCREENSHOTS=docs/screenshots scripts/test tests/web` refreshes the README's.
SCREENSHOTS = Path(os.environ.get("SHEETSTREAM_SCREENSHOTS", Path(tempfile.gettempdir()) / "sheetstream-screenshots"))
@pytest.fixture
def site(tmp_path: Path, live_server):
    store = SqliteStore(tmp_path / "db.sqlite")
    seed(store, 2_000)
    settings = make_settings(tables=("orders",), data_dir=tmp_path / "data", max_upload_bytes=400_000)
    with live_server(create_app(settings, store)) as server:
        yield server, store


@pytest.fixture
def page(browser, tmp_path: Path):
    context = browser.new_context(accept_downloads=True, viewport={"width": 900, "height": 900})
    page = context.new_page()
    yield page
    context.close()


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
    page.get_by_label("Replace").check()
    page.get_by_role("button", name="Import", exact=True).click()
    success = page.get_by_test_id("success")
    success.wait_for(timeout=30_000)
    assert "300 rows written to 'orders' (replace)" in success.inner_text()
    assert page.get_by_test_id("job-state").inner_text().startswith("Import done: 300 rows read, 300 written")
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
    page.get_by_label("Replace").check()
    page.get_by_role("button", name="Import", exact=True).click()
    table = page.get_by_test_id("problems")
    table.wait_for(timeout=30_000)
    cells = table.locator("tbody tr").first.locator("td").all_inner_texts()
    assert cells == ["orders", "A4", "id", "three", "'three' is not a whole number"]
    assert "nothing was written" in page.get_by_test_id("failure").inner_text()
    with page.expect_download() as pending:
        page.get_by_role("link", name="Download the problems as CSV").click()
    csv_path = tmp_path / "problems.csv"
    pending.value.save_as(csv_path)
    assert csv_path.read_text().splitlines()[1] == "orders,A4,id,three,'three' is not a whole number"
    shot(page, "upload-problems")
    assert store.count("orders") == 2_000


def test_upload_over_the_limit_says_so(site, page, tmp_path: Path) -> None:
    server, store = site
    page.goto(server.url)
    page.set_input_files("#file", str(xlsx(tmp_path / "big.xlsx", list(demo_rows(20_000)))))  # about 1.9 MB
    page.get_by_role("button", name="Import", exact=True).click()
    failure = page.get_by_test_id("failure")
    failure.wait_for(timeout=30_000)
    text = failure.inner_text()
    assert "larger than this server accepts (0.38 MB)" in text and "413" in text
    shot(page, "upload-too-large")
    assert store.count("orders") == 2_000


def test_narrow_screen_and_keyboard(site, browser) -> None:
    server, _ = site
    context = browser.new_context(viewport={"width": 360, "height": 800})
    page = context.new_page()
    try:
        page.goto(server.url)
        page.get_by_role("link", name="orders.xlsx").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "orders.xlsx"
        assert page.get_by_label("Table", exact=True).is_visible() and page.get_by_label("Dry run").is_visible()
        shot(page, "narrow")
    finally:
        context.close()


def test_preview_then_import_now(site, page, tmp_path: Path) -> None:
    server, store = site
    rows = [(r[0], f"Previewed {r[0]}" if r[0] <= 3 else r[1], *r[2:]) for r in demo_rows(2_005)]
    page.goto(server.url)
    page.set_input_files("#file", str(xlsx(tmp_path / "preview.xlsx", rows)))
    page.get_by_label("Upsert").check()
    page.get_by_label("Dry run").check()
    page.get_by_role("button", name="Import", exact=True).click()
    preview = page.get_by_test_id("preview")
    preview.wait_for(timeout=30_000)
    assert page.get_by_test_id("preview-inserted").inner_text() == "5 rows would be inserted"
    assert page.get_by_test_id("preview-updated").inner_text() == "3 rows would be updated"
    assert page.get_by_test_id("preview-unchanged").inner_text() == "1,997 rows would stay unchanged"
    first = page.get_by_test_id("changes").locator("tbody tr").first.locator("td").all_inner_texts()
    assert first == ["B2", "customer", next(demo_rows(1))[1], "Previewed 1"]
    shot(page, "upload-preview")
    assert store.count("orders") == 2_000
    page.get_by_role("button", name="Import now").click()
    page.get_by_text("2,005 rows written to 'orders' (upsert)").wait_for(timeout=30_000)
    assert list(store.read_rows("orders", store.columns("orders"))) == rows
    assert page.get_by_test_id("preview").count() == 0


def test_problems_and_warnings_come_back_in_the_workbook(site, page, tmp_path: Path) -> None:
    server, store = site
    rows = [(*r, "my note") for r in demo_rows(5)]
    rows[1] = (rows[1][0], rows[1][1], rows[1][2], "lots", *rows[1][4:])  # D3: a word for an amount
    page.goto(server.url)
    page.set_input_files("#file", str(xlsx(tmp_path / "edited.xlsx", rows, [c.name for c in ORDERS] + ["helper"])))
    page.get_by_role("button", name="Import", exact=True).click()  # append, the default: ids 1-5 exist
    page.get_by_test_id("problems").wait_for(timeout=30_000)
    warnings = page.get_by_test_id("warnings").inner_text()
    assert "orders!L1" in warnings and "'helper' is not in the table and was ignored" in warnings
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
