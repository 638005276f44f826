"""The server's log, read from a real ``sheetstream serve`` process: one JSON line per request and per job
transition, a request id followed from the request's line to its job's lines, and no secret in any line."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from sheetstream.cli import main
from sheetstream.server.logs import loggable_query, request_id_of
from sheetstream.tools.harness import ServerProcess

from ..helpers import bearer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("logs")
    assert main(["seed", "--rows", "50", "--data-dir", str(data)]) == 0
    with ServerProcess(f"sqlite:///{data / 'sheetstream.db'}", executor="process", workers=1, data_dir=data) as server:
        yield server


def lines(server: ServerProcess) -> list[dict]:
    """Every log line so far, each of which must be one JSON object (stderr is not a terminal: JSON)."""
    return [json.loads(line) for line in server.log_text().splitlines() if line.strip()]


def wait_for_line(server: ServerProcess, match, seconds: float = 20) -> dict:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [line for line in lines(server) if match(line)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no such log line within {seconds} s; the log:\n{server.log_text()[-3000:]}")


def test_one_request_id_from_the_request_line_to_the_jobs_lines(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, headers=bearer(server.token), timeout=30) as client:
        workbook = client.get("/exports/orders.xlsx", params={"limit": 20})
        assert workbook.status_code == 200
        sent = client.put("/imports/orders", params={"dry_run": "true", "mode": "upsert"}, content=workbook.content,
                          headers={"X-Request-ID": "dry-run-42", "Content-Type": "application/octet-stream"})
        assert sent.status_code == 202, sent.text
        assert sent.headers["x-request-id"] == "dry-run-42"
        job_id = sent.json()["id"]

    request = wait_for_line(server, lambda line: line.get("request_id") == "dry-run-42"
                            and line.get("event") == "request")
    assert request["method"] == "PUT" and request["path"] == "/imports/orders" and request["status"] == 202
    assert request["identity"] == "token:admin" and request["bytes"] > 0 and request["duration_ms"] >= 0
    assert request["level"] == "info" and request["logger"] == "sheetstream.requests" and request["time"]
    queued = wait_for_line(server, lambda line: line.get("event") == "job.queued" and line.get("job_id") == job_id)
    done = wait_for_line(server, lambda line: line.get("event") == "job.done" and line.get("job_id") == job_id)
    for line in (queued, done):  # the job ran on a worker after the 202 was sent: the id went with it
        assert line["request_id"] == "dry-run-42"
        assert line["table"] == "orders" and line["mode"] == "upsert" and line["dry_run"] is True
    assert done["rows_read"] == 20 and done["rows_written"] == 0 and done["outcome"] == "done"
    started = wait_for_line(server, lambda line: line.get("event") == "job.started" and line.get("job_id") == job_id)
    assert started["request_id"] == "dry-run-42"  # written by the worker process itself, in the same format
    assert started["pid"] != request["pid"] == server.process.pid
    assert sent.json()["request_id"] == "dry-run-42"  # the job's record keeps it too

    export = [line for line in lines(server) if line.get("event") == "request" and line.get("method") == "GET"
              and line.get("path") == "/exports/orders.xlsx"]
    assert export and export[0]["bytes"] == len(workbook.content)  # the streamed body, counted as it passed
    assert export[0]["request_id"] == workbook.headers["x-request-id"] != "dry-run-42"


def test_no_token_cookie_or_password_in_the_log(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        page = client.get("/", params={"token": server.token, "table": "orders"})  # the page's sign-in link
        assert page.status_code == 200
        signed_in = client.post("/session", json={"token": server.token},
                                headers={"Origin": server.url, "X-Request-ID": "sign-in"})
        assert signed_in.status_code == 200
        cookie = next(iter(client.cookies.values()))
        assert client.get("/session").status_code == 200  # with the cookie
        assert client.get("/tables", headers=bearer(server.token)).status_code == 200
        assert client.get("/tables", headers=bearer("sst_not-a-real-token-secret")).status_code == 401
        forged = client.get("/healthz", headers={"X-Request-ID": 'x" injected {"level": "error"}'})
        assert len(forged.headers["x-request-id"]) == 32  # not the client's: a new one

    text = server.log_text()
    for secret in (server.token, cookie, "not-a-real-token-secret", "injected"):
        assert secret not in text
    page_line = wait_for_line(server, lambda line: line.get("path") == "/" and line.get("query"))
    assert page_line["query"] == "token=***&table=orders"
    sign_in = wait_for_line(server, lambda line: line.get("request_id") == "sign-in")
    assert sign_in["status"] == 200 and sign_in["method"] == "POST"
    refused = wait_for_line(server, lambda line: line.get("status") == 401)
    assert "identity" not in refused  # nobody was identified


def test_request_ids_are_kept_when_sane_and_made_otherwise() -> None:
    assert request_id_of([(b"x-request-id", b"abc-123_x.y:z")]) == "abc-123_x.y:z"
    for bad in (b"", b"a b", b"x" * 129, b'a"b', b"a\nb"):
        made = request_id_of([(b"x-request-id", bad)])
        assert len(made) == 32 and made != bad.decode("latin-1")
    assert loggable_query("token=abc&limit=5&session_id=s&csrf=c&password=p") == (
        "token=***&limit=5&session_id=***&csrf=***&password=***")


def test_text_format_for_a_terminal(tmp_path: Path) -> None:
    """``--log-format text``: a line a person reads, with the request id in it."""
    assert main(["seed", "--rows", "5", "--data-dir", str(tmp_path)]) == 0
    server = ServerProcess(f"sqlite:///{tmp_path / 'sheetstream.db'}", executor="thread", data_dir=tmp_path,
                           env={"SHEETSTREAM_LOG_FORMAT": "text"})
    with server:
        httpx.get(f"{server.url}/tables", headers={**bearer(server.token), "X-Request-ID": "text-1"}, timeout=10)
    line = next(line for line in server.log_text().splitlines() if "request_id=text-1" in line)
    assert " INFO    sheetstream.requests: GET /tables 200" in line and "identity=token:admin" in line
    stop = [line for line in server.log_text().splitlines() if "sheetstream.lifecycle" in line]
    assert "stopping: taking no new work; 0 running job(s)" in stop[0] and "stopped: 0 job(s)" in stop[-1]
