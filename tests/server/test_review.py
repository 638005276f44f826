"""Imports that help people fix their files, over HTTP: every problem at once, warnings, the preview and its
commit without a second upload, the marked-up workbook, and kept uploads that expire without a trace."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from sheetstream.formats.xlsx import write_xlsx
from sheetstream.server import create_app
from sheetstream.store import open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed

from ..helpers import XLSX, make_settings, rows_of

HEADER = [c.name for c in ORDERS]


@pytest.fixture
def target(store_url: str, request: pytest.FixtureRequest, tmp_path: Path):
    """(store, table, settings) with the demo table (10 rows) in SQLite or PostgreSQL."""
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("db_table")
    seed(store, 10, table)
    return store, table, make_settings(tables=(table,), data_dir=tmp_path / "data")


def edited_export(server, table: str, tmp_path: Path) -> bytes:
    """The table downloaded, four cells edited by hand and a helper column added (saved by openpyxl)."""
    book = openpyxl.load_workbook(io.BytesIO(httpx.get(f"{server.url}/exports/{table}.xlsx").content))
    sheet = book.active
    sheet["D3"], sheet["E4"], sheet["B5"], sheet["G6"] = "lots", "2024-13-45", None, 3.5
    sheet["L1"], sheet["L2"] = "helper", "my notes"
    path = tmp_path / "edited.xlsx"
    book.save(path)
    return path.read_bytes()


def put(server, table: str, body: bytes, **params: Any) -> httpx.Response:
    return httpx.put(f"{server.url}/imports/{table}", content=body, params={"wait": "true", **params},
                     headers={"Content-Type": XLSX}, timeout=60)


def kept_files(settings) -> list[Path]:
    folder = settings.spool_dir / "kept"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_the_edited_download_shows_every_problem_then_comes_back_marked_up(target, live_server, tmp_path) -> None:
    store, table, settings = target
    before = rows_of(store, table)
    with live_server(create_app(settings, store)) as server:
        job = put(server, table, edited_export(server, table, tmp_path), mode="append").json()
        marked = httpx.get(f"{server.url}/jobs/{job['id']}/problems.xlsx", timeout=30)
    assert job["state"] == "failed" and job["status"] == 422 and job["error_total"] == 14
    found = {e["cell"]: e["kind"] for e in job["errors"]}
    assert {c: found[c] for c in ("D3", "E4", "B5", "G6")} == dict.fromkeys(("D3", "E4", "B5", "G6"), "cell")
    assert [c for c, k in found.items() if k == "existing"] == [f"A{r}" for r in range(2, 12)]
    assert [w["cell"] for w in job["warnings"]] == ["L1"]
    assert job["kept_until"] > time.time()
    assert marked.status_code == 200 and marked.headers["content-type"] == XLSX
    assert f'filename="{table}-problems.xlsx"' in marked.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(marked.content))
    sheet = book[book.sheetnames[0]]
    assert sheet["D3"].comment.text == "'lots' is not a number"
    assert "already exists" in sheet["A2"].comment.text and sheet["L1"].comment.text.startswith("Warning: ")
    listing = [[c.value for c in row] for row in book["Problems"].iter_rows()]
    # The summary first: one row per group (the ten existing keys are one), a blank row, then every problem.
    assert len(listing) == 1 + 5 + 1 + 1 + 14 + 1
    existing = next(row for row in listing[1:6] if row[1] == "existing")
    assert existing[0] == 10 and existing[3] == "A2, A3, A4, A5, A6" and existing[5] == f"10 rows: id already exists in {table}"
    assert {g["kind"]: g["count"] for g in job["problem_groups"]} == {"existing": 10, "cell": 1}
    assert len(job["problem_groups"]) == 5
    assert rows_of(store, table) == before


def test_extra_columns_error_in_the_query_and_the_form(target, live_server) -> None:
    store, table, settings = target
    body = b"".join(write_xlsx([(11, "x", None, 1, *next(demo_rows(1))[4:], "extra")], [*HEADER, "helper"]))
    with live_server(create_app(settings, store)) as server:
        query = put(server, table, body, extra_columns="error")
        form = httpx.post(f"{server.url}/imports/{table}", params={"wait": "true"}, data={"extra_columns": "error"},
                          files={"file": ("x.xlsx", body, XLSX)})
        bad = put(server, table, body, extra_columns="maybe")
        ignored = put(server, table, body)
    for refused in (query, form):
        assert refused.status_code == 422 and refused.json()["errors"][0]["cell"] == "L1"
    assert bad.status_code == 400
    assert ignored.status_code == 200 and ignored.json()["warnings"][0]["column"] == "helper"


def test_preview_then_import_now_without_sending_the_file_again(target, live_server) -> None:
    store, table, settings = target
    rows = [(r[0], f"New {r[0]}" if r[0] % 2 else r[1], *r[2:]) for r in demo_rows(13)]
    with live_server(create_app(settings, store)) as server:
        dry = put(server, table, b"".join(write_xlsx(rows, HEADER)), mode="upsert", dry_run="true").json()
        assert rows_of(store, table) == list(demo_rows(10)) and len(kept_files(settings)) == 1
        committed = httpx.post(f"{server.url}/jobs/{dry['id']}/commit", params={"wait": "true"}, timeout=60)
        again = httpx.post(f"{server.url}/jobs/{dry['id']}/commit", params={"wait": "true"})
        record = httpx.get(f"{server.url}/jobs/{dry['id']}").json()
        not_a_dry_run = httpx.post(f"{server.url}/jobs/{committed.json()['id']}/commit")
    assert {k: dry["preview"][k] for k in ("inserted", "updated", "unchanged", "deleted")} == \
        {"inserted": 3, "updated": 5, "unchanged": 5, "deleted": 0}
    assert dry["preview"]["changes"][0] == {"row": 2, "sheet": "Sheet1", "cell": "B2", "column": "customer",
                                            "old": next(demo_rows(1))[1], "new": "New 1"}
    assert committed.status_code == 200, committed.text
    job = committed.json()
    assert job["state"] == "done" and job["preview_of"] == dry["id"] and job["rows_inserted"] == 13
    assert job["mode"] == "upsert" and not job["dry_run"]
    assert rows_of(store, table) == rows
    assert again.status_code == 409 and job["id"] in again.json()["message"]
    assert record["committed_as"] == job["id"]
    assert not_a_dry_run.status_code == 409
    assert kept_files(settings) == [] and list(settings.spool_dir.glob("*.xlsx")) == []


def test_kept_uploads_expire_and_leave_nothing_behind(target, live_server) -> None:
    store, table, settings = target
    settings = settings.with_(keep_upload_seconds=1)
    body = b"".join(write_xlsx(list(demo_rows(12))[10:], HEADER))
    with live_server(create_app(settings, store)) as server:
        dry = put(server, table, body, dry_run="true").json()
        assert len(kept_files(settings)) == 1
        deadline = time.monotonic() + 10
        while kept_files(settings) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert kept_files(settings) == []  # the sweeper removed it
        late = httpx.post(f"{server.url}/jobs/{dry['id']}/commit", params={"wait": "true"})
        marked = httpx.get(f"{server.url}/jobs/{dry['id']}/problems.xlsx")
    assert late.status_code == 410 and "no longer kept" in late.json()["message"]
    assert marked.status_code == 404  # a dry run without problems or warnings has nothing to mark
    assert store.count(table) == 10 and list(settings.spool_dir.glob("*.xlsx")) == []


def test_good_imports_and_unreadable_files_keep_nothing(target, live_server) -> None:
    store, table, settings = target
    with live_server(create_app(settings, store)) as server:
        good = put(server, table, b"".join(write_xlsx(list(demo_rows(12))[10:], HEADER))).json()
        broken = put(server, table, b"PK\x03\x04 not really").json()
        missing = httpx.get(f"{server.url}/jobs/{broken['id']}/problems.xlsx")
    assert good["state"] == "done" and good["kept_until"] is None
    assert broken["state"] == "failed" and broken["kept_until"] is None
    assert missing.status_code == 404 and kept_files(settings) == []


def test_commit_and_marked_up_workbook_on_worker_processes(tmp_path: Path, live_server) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed(store, 10)
    settings = make_settings(data_dir=tmp_path / "data", strategy="process", workers=1)
    body = b"".join(write_xlsx([(*r, "x") for r in list(demo_rows(12))[10:]], [*HEADER, "helper"]))
    with live_server(create_app(settings, store)) as server:
        dry = put(server, "orders", body, dry_run="true").json()
        marked = httpx.get(f"{server.url}/jobs/{dry['id']}/problems.xlsx", timeout=30)
        committed = httpx.post(f"{server.url}/jobs/{dry['id']}/commit", params={"wait": "true"}, timeout=60)
    assert dry["state"] == "done" and dry["preview"]["inserted"] == 2
    assert openpyxl.load_workbook(io.BytesIO(marked.content))["Sheet1"]["L1"].comment.text.startswith("Warning: ")
    assert committed.json()["state"] == "done" and store.count("orders") == 12


def test_every_problem_cell_is_marked_not_only_the_listed_ones(tmp_path: Path, live_server) -> None:
    """3,000 existing keys and 1,500 bad amounts: the record lists 100, the groups count all, and the marked-up
    workbook fills all 4,500 cells (comments on the first ones only)."""
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed(store, 3_000)
    rows = [(r[0], r[1], r[2], "lots" if r[0] % 2 else r[3], *r[4:]) for r in demo_rows(3_000)]
    settings = make_settings(tables=("orders",), data_dir=tmp_path / "data")
    with live_server(create_app(settings, store)) as server:
        job = put(server, "orders", b"".join(write_xlsx(rows, HEADER, sheet_name="orders")), mode="append").json()
        marked = httpx.get(f"{server.url}/jobs/{job['id']}/problems.xlsx", timeout=60)
    assert job["error_total"] == 4_500 and len(job["errors"]) == 100
    assert [(g["kind"], g["column"], g["count"]) for g in job["problem_groups"]] == [("existing", "id", 3_000),
                                                                                     ("cell", "amount", 1_500)]
    book = openpyxl.load_workbook(io.BytesIO(marked.content))
    sheet = book["orders"]
    red = {(c.row, c.column_letter) for row in sheet.iter_rows(min_row=2) for c in row
           if c.fill is not None and c.fill.fgColor is not None and c.fill.fgColor.rgb == "FFFFC7CE"}
    assert red == {(n, "A") for n in range(2, 3_002)} | {(n, "D") for n in range(2, 3_002, 2)}
    assert sheet["D3000"].comment.text == "'lots' is not a number"  # 4,500 cells: under the comment limit
    summary = [[c.value for c in row] for row in book["Problems"].iter_rows(max_row=3)]
    assert summary[1][:3] == [3_000, "existing", "id"] and summary[1][5] == "3,000 rows: id already exists in orders"
    assert summary[2][:3] == [1_500, "cell", "amount"] and summary[2][3] == "D2, D4, D6, D8, D10"
