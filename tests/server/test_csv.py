"""CSV over a real socket, both ways, on SQLite and PostgreSQL: streamed exports with their options, imports with
the same review as workbooks (cell problems, groups, preview, the marked-up copy as an .xlsx), and refusals."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pytest

from sheetstream.formats.csv import write_csv
from sheetstream.server import create_app
from sheetstream.store import open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed

from ..helpers import make_settings, rows_of

HEADER = [c.name for c in ORDERS]
CSV = "text/csv"


@pytest.fixture
def target(store_url: str, request: pytest.FixtureRequest, tmp_path: Path):
    """(store, table, settings) with the demo table (300 rows) in SQLite or PostgreSQL."""
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("pg_table")
    seed(store, 300, table)
    return store, table, make_settings(tables=(table,), data_dir=tmp_path / "data")


def put(server, table: str, body: bytes, content_type: str = CSV, **params: Any) -> httpx.Response:
    return httpx.put(f"{server.url}/imports/{table}", content=body, params={"wait": "true", **params},
                     headers={"Content-Type": content_type}, timeout=60)


def as_csv_reads(rows: list[tuple]) -> list[tuple]:
    """What a CSV round trip keeps: an empty text and NULL are both an empty field, read back as NULL."""
    return [tuple(None if v == "" else v for v in row) for row in rows]


def test_export_streams_csv_with_its_options(target, live_server) -> None:
    store, table, settings = target
    with live_server(create_app(settings, store)) as server:
        with httpx.stream("GET", f"{server.url}/exports/{table}.csv") as plain:
            body = b"".join(plain.iter_raw())
            headers = plain.headers
        semicolons = httpx.get(f"{server.url}/exports/{table}.csv", params={"delimiter": ";", "bom": "true",
                                                                            "limit": 2})
        bad = httpx.get(f"{server.url}/exports/{table}.csv", params={"delimiter": "x"})
        head = httpx.head(f"{server.url}/exports/{table}.csv")
        head_xlsx = httpx.head(f"{server.url}/exports/{table}.xlsx", params={"columns": "id,bogus"})
        head_filter = httpx.head(f"{server.url}/exports/{table}.csv", params={"amount": "lt.lots"})
        head_option = httpx.head(f"{server.url}/exports/{table}.csv", params={"delimiter": "x"})
    assert headers["content-type"].startswith("text/csv") and "content-length" not in headers
    assert f'filename="{table}.csv"' in headers["content-disposition"]
    lines = body.decode().split("\r\n")
    assert lines[0] == ",".join(HEADER) and len(lines) == 302 and lines[-1] == ""
    assert semicolons.content.startswith(b"\xef\xbb\xbfid;customer;") and semicolons.content.count(b"\r\n") == 3
    assert bad.status_code == 400 and "delimiter must be one of" in bad.json()["message"]
    assert head.status_code == 200 and head.content == b"" and head.headers["content-type"].startswith("text/csv")
    assert f'filename="{table}.csv"' in head.headers["content-disposition"]
    assert head_xlsx.status_code == 400  # checked as for GET, without starting an export
    assert head_filter.status_code == 400 and head_option.status_code == 400


def test_formulas_are_neutralised_unless_asked_to_keep_them(target, live_server) -> None:
    store, table, settings = target
    with live_server(create_app(settings, store)) as server:
        put(server, table, (",".join(HEADER) + "\r\n" + "1,'=HYPERLINK(\"http://x\"),a@b.c,1.00,2024-01-01,"
                            "2024-01-01 00:00:00,1,true,,1.5,\r\n").encode(), mode="upsert")
        safe = httpx.get(f"{server.url}/exports/{table}.csv", params={"limit": 1}).text
        kept = httpx.get(f"{server.url}/exports/{table}.csv", params={"limit": 1, "formulas": "keep"}).text
    assert rows_of(store, table)[0][1] == '=HYPERLINK("http://x")'  # the mark came off on the way in
    assert "\r\n1,\"'=HYPERLINK(\"\"http://x\"\")\"," in safe
    assert "\r\n1,\"=HYPERLINK(\"\"http://x\"\")\"," in kept


def test_an_exported_csv_comes_back_identical(target, live_server) -> None:
    store, table, settings = target
    before = rows_of(store, table)
    with live_server(create_app(settings, store)) as server:
        exported = httpx.get(f"{server.url}/exports/{table}.csv").content
        check = put(server, table, exported, dry_run="true").json()
        done = put(server, table, exported, mode="replace").json()
    assert check["format"] == "csv" and check["mode"] == "upsert"
    empty_notes = sum(1 for r in before if r[10] == "")
    assert check["preview"]["updated"] == empty_notes  # '' comes back NULL: the only change a CSV makes
    assert done["state"] == "done" and done["rows_inserted"] == 300
    assert rows_of(store, table) == as_csv_reads(before)


def test_problems_are_named_by_cell_and_come_back_in_a_workbook(target, live_server, tmp_path: Path) -> None:
    store, table, settings = target
    before = rows_of(store, table)
    with live_server(create_app(settings, store)) as server:
        lines = httpx.get(f"{server.url}/exports/{table}.csv", params={"limit": 5}).text.split("\r\n")
        fields = lines[2].split(",")
        fields[3] = "lots"  # D3: a word for an amount
        lines[2] = ",".join(fields)
        lines[4] += ",extra"  # row 5: a field too many
        raw = [line.encode() for line in lines]
        cells = raw[3].split(b",")
        raw[3] = b",".join([cells[0], b"Caf\xe9", *cells[2:]])  # B4: cp1252 bytes in a UTF-8 file
        body = b"\r\n".join(raw)
        job = put(server, table, body).json()
        marked = httpx.get(f"{server.url}/jobs/{job['id']}/problems.xlsx", timeout=60)
    assert job["status"] == 422 and job["format"] == "csv"
    found = {e["cell"]: e["message"] for e in job["errors"]}
    assert found["D3"] == "'lots' is not a number"
    assert found["L5"].startswith("row 5 has 12 field(s) and the header has 11")
    assert "B4" in found and "cp1252" in found["B4"]
    assert {g["column"] for g in job["problem_groups"]} >= {"amount", None}
    book = openpyxl.load_workbook(io.BytesIO(marked.content))
    sheet = book[table]
    assert sheet["A1"].value == "id" and sheet["D3"].value == "lots"
    assert sheet["D3"].fill.fgColor.rgb == "FFFFC7CE" and sheet["D3"].comment.text == "'lots' is not a number"
    assert rows_of(store, table) == before


def test_reading_options_and_a_form_upload(target, live_server) -> None:
    store, table, settings = target
    rows = [(r[0], f"Zoë {r[0]}", f"zoe.{r[0]}@example.com", *r[3:10], "plain") for r in demo_rows(3)]
    text = b"".join(write_csv(rows, HEADER, delimiter="\t")).decode()
    with live_server(create_app(settings, store)) as server:
        legacy = put(server, table, text.encode("cp1252"), encoding="cp1252", delimiter="tab", dry_run="true")
        unknown = put(server, table, b"id\r\n1\r\n", encoding="klingon")
        form = httpx.post(f"{server.url}/imports/{table}", params={"wait": "true", "dry_run": "true"},
                          files={"file": ("orders.csv", text.encode(), "text/csv")}, timeout=60)
        misnamed = httpx.post(f"{server.url}/imports/{table}", params={"wait": "true"},
                              files={"file": ("orders.xlsx", text.encode(), "application/octet-stream")}, timeout=60)
    assert legacy.status_code == 200, legacy.text
    assert legacy.json()["preview"]["changes"][0]["new"] == "Zoë 1"
    assert unknown.status_code == 400 and "unknown encoding 'klingon'" in unknown.json()["message"]
    assert form.status_code == 200 and form.json()["format"] == "csv"
    assert misnamed.status_code == 415 and "named 'orders.xlsx'" in misnamed.json()["message"]
