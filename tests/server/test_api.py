"""The API's conventions, on a real server: every error an RFC 9457 problem (the router's 404 and 405 too), the
OpenAPI document with its security schemes, real statuses and upload bodies, and ``/jobs`` paged with ``Link``."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from sheetstream.server import create_app
from sheetstream.store import open_store
from sheetstream.store.demo import seed

from ..helpers import XLSX, add_token, bearer, make_settings

PROBLEM = "application/problem+json"


@pytest.fixture
def api(tmp_path: Path, live_server):
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    seed(store, 10)
    token = add_token(store, "alice", "orders:read,append")
    with live_server(create_app(make_settings(data_dir=tmp_path, auth=True), store)) as server:
        with httpx.Client(base_url=server.url, headers=bearer(token), timeout=30) as client:
            yield client


def assert_problem(response: httpx.Response, status: int, error: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"urn:sheetstream:problem:{error}" and body["status"] == status and body["title"]
    assert body["error"] == error and body["detail"] == body["message"] and body["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_every_error_is_a_problem(api: httpx.Client) -> None:
    body = assert_problem(api.get("/exports/nope.xlsx"), 404, "not_found")
    assert body["instance"] == "/exports/nope.xlsx" and body["tables"] == ["orders"]  # today's extras stay
    body = assert_problem(api.get("/no/such/route"), 404, "not_found")
    assert "no GET /no/such/route" in body["detail"] and body["instance"] == "/no/such/route"
    wrong_method = api.patch("/jobs")
    body = assert_problem(wrong_method, 405, "method_not_allowed")
    assert wrong_method.headers["allow"] == "GET" and "PATCH" in body["detail"]
    body = assert_problem(api.get("/jobs", params={"limit": "many"}), 400, "bad_request")
    assert body["problems"] and "limit" in body["problems"][0]
    assert_problem(api.get("/audit"), 403, "forbidden")
    unauthenticated = httpx.get(api.base_url.join("/jobs"), timeout=10)
    assert_problem(unauthenticated, 401, "unauthenticated")
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert_problem(api.put("/imports/orders", content=b"PK", headers={"Content-Type": "application/pdf"}), 415,
                   "unsupported_media_type")


def test_a_waited_import_that_fails_is_a_problem_and_still_the_job(api: httpx.Client) -> None:
    response = api.put("/imports/orders", content=b"PK\x03\x04 not a workbook", params={"wait": "true"},
                       headers={"Content-Type": XLSX})
    body = assert_problem(response, 422, response.json()["error"])
    assert body["id"] and body["state"] == "failed" and body["instance"] == f"/jobs/{body['id']}"
    assert "errors" in body and "error_total" in body  # what the page reads


def test_the_document_says_how_to_sign_in_and_what_each_operation_answers(tmp_path: Path, live_server) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with live_server(create_app(make_settings(data_dir=tmp_path), store)) as server:
        doc = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
        assert httpx.get(f"{server.url}/status", timeout=10).json()["compiled_scanner"] is True  # built by setup
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["session"]["in"] == "cookie" and schemes["session"]["name"]
    assert {"bearer": []} in doc["security"] and doc["paths"]["/healthz"]["get"]["security"] == []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"] or path.startswith(("/imports", "/jobs/{job_id}/commit"))
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == [PROBLEM], (method, path, status)
    put, post = doc["paths"]["/imports/{table}"]["put"], doc["paths"]["/imports/{table}"]["post"]
    assert XLSX in put["requestBody"]["content"] and "400" in put["responses"] and "413" in put["responses"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["file"]["format"] == "binary" and form["required"] == ["file"]
    assert list(doc["paths"]["/exports/{table}.xlsx"]["get"]["responses"]["200"]["content"]) == [XLSX]
    assert "Link" in doc["paths"]["/jobs"]["get"]["responses"]["200"]["headers"]


def test_jobs_are_paged_with_link_headers(api: httpx.Client) -> None:
    made = []
    for _ in range(5):
        response = api.put("/imports/orders", content=b"PK\x03\x04", params={"wait": "true"},
                           headers={"Content-Type": XLSX})
        made.append(response.json()["id"])
    seen, url, pages = [], "/jobs?limit=2", 0
    while url:
        page = api.get(url)
        assert page.status_code == 200
        seen += [job["id"] for job in page.json()]
        pages += 1
        links = dict((rel, href) for href, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', page.headers.get("link", "")))
        if pages > 1:
            assert "offset=" in links["prev"]
        url = links.get("next")
    assert pages == 3 and seen == made[::-1]  # newest first, each once
    assert "link" not in api.get("/jobs", params={"limit": 5}).headers  # one page: no next, no prev


def test_an_unexpected_error_is_a_problem_with_its_request_id(tmp_path: Path, live_server) -> None:
    app = create_app(make_settings(data_dir=tmp_path), open_store(f"sqlite:///{tmp_path / 'db.sqlite'}"))

    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    with live_server(app) as server:
        response = httpx.get(f"{server.url}/broken", headers={"X-Request-ID": "bug-1"}, timeout=10)
    body = assert_problem(response, 500, "internal_error")
    assert body["request_id"] == "bug-1" and "RuntimeError" in body["detail"] and "a bug" not in body["detail"]
