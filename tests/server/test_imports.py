"""Imports over a real socket: streamed uploads, jobs, all-or-nothing writes, and every kind of bad input."""

from __future__ import annotations

import socket
import threading
import time
import zipfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sheetstream.config import Settings
from sheetstream.formats.xlsx import write_xlsx
from sheetstream.formats.xlsx.writer import deflater
from sheetstream.server import create_app
from sheetstream.store import Column, open_store
from sheetstream.store.demo import ORDERS, demo_rows, seed

from ..helpers import NS, XLSX, make_settings, make_xlsx, raw_request, rows_of

HEADER = [c.name for c in ORDERS]


def workbook(rows: list, header: list = HEADER, **kwargs: Any) -> bytes:
    return b"".join(write_xlsx(rows, header, sheet_name="orders", **kwargs))


@pytest.fixture
def target(store_url: str, request: pytest.FixtureRequest, tmp_path: Path):
    """(store, table, settings) with the demo table (10 rows) in SQLite or PostgreSQL."""
    store = open_store(store_url)
    table = "orders" if store_url.startswith("sqlite") else request.getfixturevalue("db_table")
    seed(store, 10, table)
    settings = make_settings(tables=(table,), data_dir=tmp_path / "data", max_upload_bytes=5 << 20)
    return store, table, settings




def put(server, table: str, body: bytes, **params: Any) -> httpx.Response:
    return httpx.put(f"{server.url}/imports/{table}", content=body, params={"wait": "true", **params},
                     headers={"Content-Type": XLSX}, timeout=60)


def spool_files(settings: Settings) -> list[Path]:
    return list(settings.spool_dir.glob("*")) if settings.spool_dir.exists() else []


def test_import_replaces_the_table_and_the_job_says_so(target, live_server) -> None:
    store, table, settings = target
    new_rows = list(demo_rows(2_500))
    with live_server(create_app(settings, store)) as server:
        response = put(server, table, workbook(new_rows), mode="replace")
        job = httpx.get(f"{server.url}/jobs/{response.json()['id']}").json()
    assert response.status_code == 200, response.text
    assert job["state"] == "done" and job["rows_read"] == 2_500 and job["rows_inserted"] == 2_500
    assert job["bytes_received"] > 100_000 and job["message"] == f"2,500 rows written to {table!r} (replace the whole table)"
    assert rows_of(store, table) == new_rows
    assert spool_files(settings) == []


def test_multipart_post_with_form_fields(target, live_server) -> None:
    store, table, settings = target
    changed = [(r[0], "Changed Name", *r[2:]) for r in demo_rows(10)]
    with live_server(create_app(settings, store)) as server:
        response = httpx.post(f"{server.url}/imports/{table}", params={"wait": "true"},
                              data={"mode": "upsert"}, files={"file": ("orders.xlsx", workbook(changed[:4]), XLSX)})
    assert response.status_code == 200, response.text
    assert response.json()["mode"] == "upsert"
    assert rows_of(store, table) == changed[:4] + list(demo_rows(10))[4:]


def test_accepted_upload_is_a_job_to_follow(target, live_server) -> None:
    store, table, settings = target
    with live_server(create_app(settings, store)) as server:
        response = httpx.put(f"{server.url}/imports/{table}", content=workbook(list(demo_rows(50))),
                             params={"mode": "replace"}, headers={"Content-Type": XLSX})
        assert response.status_code == 202
        assert response.headers["location"] == f"/jobs/{response.json()['id']}"
        deadline = time.monotonic() + 30
        while (job := httpx.get(server.url + response.headers["location"]).json())["state"] not in ("done", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert job["state"] == "done" and store.count(table) == 50


def test_job_state_survives_a_restart(target, live_server) -> None:
    store, table, settings = target
    with live_server(create_app(settings, store)) as server:
        job_id = put(server, table, workbook(list(demo_rows(5))), mode="replace").json()["id"]
    with live_server(create_app(settings, open_store(store.url))) as server:  # a new instance, same database
        job = httpx.get(f"{server.url}/jobs/{job_id}").json()
        missing = httpx.get(f"{server.url}/jobs/nope")
    assert job["state"] == "done" and job["rows_inserted"] == 5
    assert missing.status_code == 404


def test_append_conflict_and_dry_run_leave_the_table_unchanged(target, live_server) -> None:
    store, table, settings = target
    before = rows_of(store, table)
    with live_server(create_app(settings, store)) as server:
        conflict = put(server, table, workbook(list(demo_rows(12))), mode="append")
        dry = put(server, table, workbook(list(demo_rows(3))), mode="replace", dry_run="true")
        default = put(server, table, workbook([(r[0], "Changed", *r[2:]) for r in demo_rows(12)]), dry_run="true")
    # No mode asked for, a primary key and an upsert grant: existing rows are updated and new ones added.
    assert default.status_code == 200 and default.json()["mode"] == "upsert"
    assert {k: default.json()["preview"][k] for k in ("inserted", "updated", "unchanged")} == \
        {"inserted": 2, "updated": 10, "unchanged": 0}
    assert conflict.status_code == 422 and conflict.json()["error_total"] == 10
    assert "10 key(s) that already exist in the table (choose Update existing rows and add new ones: mode upsert" in conflict.json()["message"]
    assert dry.status_code == 200 and dry.json()["message"] == ("checked 3 rows: ready to import; nothing was written yet; it "
                                                                "would add 0, update 0, leave 3 unchanged and delete 7")
    assert rows_of(store, table) == before


def test_bad_cells_are_reported_by_cell_and_nothing_is_written(target, live_server) -> None:
    store, table, settings = target
    before = rows_of(store, table)
    good = list(demo_rows(3))
    bad = [
        good[0],
        ("seven", *good[1][1:]),                                   # A3: text in an integer column
        (103, None, *good[2][2:]),                                  # B4: a required value is missing
        (104, "x", None, Decimal("1.234"), *good[2][4:]),           # D5: three decimals in numeric(12,2)
        (105, "x", None, Decimal("1"), datetime(2024, 1, 1, 10), *good[2][5:]),  # E6: a time in a date column
        (106, "x", None, Decimal("10000000000"), *good[2][4:]),     # D7: too large for numeric(12,2)
        (107, "x", None, Decimal("1"), good[0][4], good[0][5], 1, "maybe", *good[2][8:]),  # H8: not a boolean
    ]
    with live_server(create_app(settings, store)) as server:
        response = put(server, table, workbook(bad), mode="replace")
    assert response.status_code == 422
    body = response.json()
    assert body["state"] == "failed" and body["error_total"] == 6 and body["rows_read"] == 7
    found = {(e["cell"], e["column"]): e for e in body["errors"]}
    assert set(found) == {("A3", "id"), ("B4", "customer"), ("D5", "amount"), ("E6", "ordered_on"),
                          ("D7", "amount"), ("H8", "paid")}
    assert found["A3", "id"]["message"] == "'seven' is not a whole number" and found["A3", "id"]["value"] == "seven"
    assert found["B4", "customer"]["message"] == "is empty; the column requires a value"
    assert "more than 2 decimal place(s)" in found["D5", "amount"]["message"]
    assert "has a time of day" in found["E6", "ordered_on"]["message"]
    assert "too large for numeric(12,2)" in found["D7", "amount"]["message"]
    assert all(e["sheet"] == "orders" for e in body["errors"])
    assert rows_of(store, table) == before


def test_error_cells_and_the_hundred_error_cap(target, live_server, tmp_path: Path) -> None:
    store, table, settings = target
    store.create_table(table, [Column("id", "integer", nullable=False, primary_key=True),
                               Column("customer", "text", nullable=False)], replace=True)
    cells = "".join(f'<row r="{i}"><c r="A{i}"><v>{i}</v></c><c r="B{i}" t="e"><v>#N/A</v></c></row>'
                    for i in range(2, 152))
    path = make_xlsx(tmp_path / "errors.xlsx", '<row r="1"><c r="A1" t="inlineStr"><is><t>id</t></is></c>'
                     '<c r="B1" t="inlineStr"><is><t>customer</t></is></c></row>' + cells)
    with live_server(create_app(settings, store)) as server:
        response = httpx.put(f"{server.url}/imports/{table}", content=path.read_bytes(), params={"wait": "true"},
                             headers={"Content-Type": XLSX})
    body = response.json()
    assert response.status_code == 422
    assert body["error_total"] == 150 and len(body["errors"]) == 100
    assert body["errors"][0] == {"sheet": "Data", "cell": "B2", "column": "customer", "value": "#N/A",
                                 "message": "holds the error #N/A; enter a value", "kind": "cell"}
    assert "the first 100 are listed" in body["message"]


def test_wrong_headers_are_named(target, live_server) -> None:
    store, table, settings = target
    with live_server(create_app(settings, store)) as server:
        unknown = put(server, table, workbook([(1, "x", "y")], header=["ID", "Customer", "colour"]))
        missing = put(server, table, workbook([(1,)], header=["id"]))
        twice = put(server, table, workbook([(1, 2)], header=["id", "ID"]))
    assert unknown.status_code == 422
    messages = [e["message"] for e in unknown.json()["errors"]]
    assert unknown.json()["warnings"][0]["message"].startswith("column 'colour' is not in the table and was ignored; "
                                                               "the table has: id, customer")
    assert "required column 'amount' is missing from the header" in messages
    assert "required column 'customer' is missing from the header" in [e["message"] for e in missing.json()["errors"]]
    assert twice.json()["errors"][0]["message"] == "column 'id' appears twice (also in A1); remove one"


def test_header_case_and_order_do_not_matter_and_missing_nullable_columns_are_null(target, live_server) -> None:
    store, table, settings = target
    source = list(demo_rows(3))
    header = ["NOTE", "Paid", "quantity", "created_at", "ordered_on", "amount", "customer", "Id"]
    shuffled = [(r[10], r[7], r[6], r[5], r[4], r[3], r[1], r[0]) for r in source]
    with live_server(create_app(settings, store)) as server:
        response = put(server, table, workbook(shuffled, header=header), mode="replace")
    assert response.status_code == 200, response.text
    assert rows_of(store, table) == [(*r[:2], None, *r[3:8], None, None, r[10]) for r in source]


@pytest.mark.parametrize("body,status,code,text", [
    (b"", 400, "bad_request", "the upload is empty"),
    # Text sent as a workbook: the bytes say CSV, the type says xlsx; refused, naming both.
    (b"id,customer\n1,x\n", 415, "unsupported_format", "the file is CSV text but was sent as application/vnd"),
    (b"\x00\x01\x02binary" * 20, 422, "not_xlsx", "not an .xlsx workbook"),
])
def test_empty_and_non_xlsx_bodies(target, live_server, body: bytes, status: int, code: str, text: str) -> None:
    store, table, settings = target
    with live_server(create_app(settings, store)) as server:
        response = put(server, table, body)
    assert response.status_code == status and response.json()["error"] == code and text in response.json()["message"]
    assert store.count(table) == 10 and spool_files(settings) == []


def hostile_files(tmp_path: Path) -> dict[str, bytes]:
    whole = workbook(list(demo_rows(500)))
    bomb = make_xlsx(tmp_path / "bomb.xlsx", "", raw_sheet=f"<worksheet {NS}><sheetData>" + " " * (30 << 20)
                     + "</sheetData></worksheet>")
    dtd = make_xlsx(tmp_path / "dtd.xlsx", "", raw_sheet='<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">'
                    '<!ENTITY b "&a;&a;&a;&a;">]>' f'<worksheet {NS}><sheetData><row r="1"><c r="A1" t="inlineStr">'
                    "<is><t>&b;</t></is></c></row></sheetData></worksheet>")
    not_book = tmp_path / "zip.xlsx"
    with zipfile.ZipFile(not_book, "w") as z:
        z.writestr("readme.txt", "hello")
    empty_sheet = make_xlsx(tmp_path / "empty.xlsx", "")
    return {
        "truncated": whole[: len(whole) * 2 // 3],
        "zip bomb": bomb.read_bytes(),
        "entity expansion": dtd.read_bytes(),
        "zip without workbook": not_book.read_bytes(),
        "empty sheet": empty_sheet.read_bytes(),
        "header only": workbook([]),
    }


EXPECTED = {
    "truncated": ("not_xlsx", "cut short"),
    "zip bomb": ("workbook_too_large", "zip bomb"),
    "entity expansion": ("unsafe_xml", "declares a DTD"),
    "zip without workbook": ("not_xlsx", "no workbook part"),
    "empty sheet": ("invalid", "is empty: the first row must name the columns"),
    "header only": ("invalid", "has a header but no rows"),
}


def test_hostile_and_broken_files_are_refused(target, live_server, tmp_path: Path) -> None:
    store, table, settings = target
    before = rows_of(store, table)
    with live_server(create_app(settings, store)) as server:
        for name, body in hostile_files(tmp_path).items():
            response = put(server, table, body, mode="replace")
            assert response.status_code == 422, (name, response.text)
            code, text = EXPECTED[name]
            job = response.json()
            assert job["error"] == code and text in job["message"], (name, job["message"])
    assert rows_of(store, table) == before
    assert spool_files(settings) == []


def test_wrong_content_type_unknown_table_and_sheet(target, live_server) -> None:
    store, table, settings = target
    with live_server(create_app(settings, store)) as server:
        pdf = httpx.put(f"{server.url}/imports/{table}", content=b"a,b", headers={"Content-Type": "application/pdf"})
        form = httpx.post(f"{server.url}/imports/{table}", content=b"x", headers={"Content-Type": "text/plain"})
        no_field = httpx.post(f"{server.url}/imports/{table}", files={"other": ("a.xlsx", b"x")})
        unknown = httpx.put(f"{server.url}/imports/nope", content=b"x", headers={"Content-Type": XLSX})
        sheet = put(server, table, workbook(list(demo_rows(1))), sheet="Missing")
    assert pdf.status_code == 415 and "got application/pdf" in pdf.json()["message"]
    assert "text/csv (.csv)" in pdf.json()["message"]  # the types it could have been sent as
    assert form.status_code == 415 and "multipart/form-data" in form.json()["message"]
    assert no_field.status_code == 400 and "no field named 'file'" in no_field.json()["message"]
    assert unknown.status_code == 404
    assert sheet.status_code == 422 and "there is no sheet 'Missing'; the workbook has: orders" in sheet.json()["message"]
    assert spool_files(settings) == []




def test_oversized_body_is_refused_before_it_is_read(target, live_server) -> None:
    store, table, settings = target
    with live_server(create_app(settings, store)) as server:
        start = time.monotonic()
        answer = raw_request(server.url, f"PUT /imports/{table} HTTP/1.1\r\nHost: x\r\nContent-Type: {XLSX}\r\n"
                                         f"Content-Length: {50 << 20}\r\nConnection: close\r\n\r\n")
        elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than this server accepts (5 MB)" in answer
    assert elapsed < 5  # not a byte of the body was sent: the answer came without it
    assert spool_files(settings) == []


def test_chunked_body_over_the_limit_stops_at_the_limit(target, live_server) -> None:
    store, table, settings = target
    chunk = b"x" * (1 << 20)
    parts = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(12)] + [b"0\r\n\r\n"]
    with live_server(create_app(settings, store)) as server:
        answer = raw_request(server.url, f"PUT /imports/{table} HTTP/1.1\r\nHost: x\r\nContent-Type: {XLSX}\r\n"
                                         "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", parts, 0.01)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert store.count(table) == 10 and spool_files(settings) == []


def test_client_that_disconnects_mid_upload(target, live_server) -> None:
    store, table, settings = target
    body = workbook(list(demo_rows(3_000)))
    with live_server(create_app(settings, store)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(f"PUT /imports/{table}?mode=replace HTTP/1.1\r\nHost: x\r\nContent-Type: {XLSX}\r\n"
                         f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
            time.sleep(0.3)
        deadline = time.monotonic() + 10
        while spool_files(settings) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    assert spool_files(settings) == []
    assert store.count(table) == 10


@pytest.mark.postgres
def test_database_going_away_mid_import_writes_nothing(pg_url: str, pg_table: str, live_server, tmp_path: Path) -> None:
    store = open_store(pg_url)
    seed(store, 10, pg_table)
    settings = make_settings(tables=(pg_table,), data_dir=tmp_path / "data")
    body = workbook(list(demo_rows(150_000)), compress=deflater("isal", 1))
    killed = threading.Event()

    def terminate_copy() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                # A replace with no problem goes straight into the table (the direct path); staged otherwise.
                found = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                     "WHERE (query LIKE %s OR query LIKE %s) AND pid <> pg_backend_pid()",
                                     (f'COPY "sheetstream_staging_{pg_table}"%', f'COPY "{pg_table}" %')).fetchall()
                if found:
                    killed.set()
                    return
                time.sleep(0.01)

    killer = threading.Thread(target=terminate_copy)
    killer.start()
    with live_server(create_app(settings, store)) as server:
        response = put(server, pg_table, body, mode="replace")
    killer.join()
    assert killed.is_set(), "the COPY was never seen running"
    assert response.status_code == 503, response.text
    assert "connection to PostgreSQL was lost" in response.json()["message"]
    assert "nothing was written" in response.json()["message"]
    assert rows_of(store, pg_table) == list(demo_rows(10))
    assert spool_files(settings) == []


def test_the_configured_cpu_bound_reaches_the_import(tmp_path: Path, live_server) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed(store, 0)
    settings = make_settings(tables=("orders",), data_dir=tmp_path / "data", import_cpu_seconds=0.001)
    with live_server(create_app(settings, store)) as server:
        response = put(server, "orders", workbook(list(demo_rows(20_000))), mode="append")
    assert response.status_code == 422 and response.json()["error"] == "cpu_limit", response.text
    assert "SHEETSTREAM_IMPORT_CPU_SECONDS" in response.json()["message"] and store.count("orders") == 0
