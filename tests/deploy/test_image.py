"""deploy/Dockerfile built and run for real with rootful podman (tests/deploy/podman.py), on the host network
against the local PostgreSQL: ready within 90 s, a sign-in, an export and an import through it, the compiled
scanner in use, non-root on a read-only root, its healthcheck passing. What it makes (container, volume, table)
is removed; the images stay as the cache of the next run (the base, and the build's layers)."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import psycopg
import pytest

from sheetstream.access import new_token
from sheetstream.store import open_store
from sheetstream.store.demo import seed
from sheetstream.tools.harness import free_port

from ..helpers import XLSX, bearer, read_workbook
from .podman import build_image, podman, require_podman

IMAGE = "localhost/sheetstream:test"
READY_SECONDS = 90


@pytest.fixture(scope="module")
def image() -> str:
    require_podman()
    build_image(IMAGE)
    return IMAGE


def wait_ready(url: str, name: str) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if podman("container", "inspect", "--format", "{{.State.Running}}", name, check=False).stdout.strip() != "true":
            break
        time.sleep(0.5)
    logs = podman("logs", name, check=False)
    raise AssertionError(f"the container was not ready within {READY_SECONDS} s:\n{logs.stdout[-3000:]}"
                         f"\n{logs.stderr[-3000:]}")


def test_the_image_serves_exports_and_imports(image: str, pg_url: str) -> None:
    table = f"image_{uuid.uuid4().hex[:8]}"
    seed(open_store(pg_url), 300, table)
    name, volume, port, token = f"sheetstream-test-{uuid.uuid4().hex[:8]}", f"sheetstream-test-{uuid.uuid4().hex[:8]}", \
        free_port(), new_token()
    url = f"http://127.0.0.1:{port}"
    try:
        podman("run", "-d", "--name", name, "--network", "host", "--read-only", "-v", f"{volume}:/home/sheetstream/data",
               "-e", f"SHEETSTREAM_DATABASE_URL={pg_url}", "-e", "SHEETSTREAM_HOST=127.0.0.1",
               "-e", f"SHEETSTREAM_PORT={port}", "-e", f"SHEETSTREAM_ADMIN_TOKEN={token}",
               "-e", f"SHEETSTREAM_TABLES={table}", "-e", "SHEETSTREAM_WORKERS=1", image)
        wait_ready(url, name)

        with httpx.Client(base_url=url, timeout=60) as client:  # signed in with the token, as the page does
            session = client.post("/session", json={"token": token}, headers={"Origin": url})
            assert session.status_code == 200 and session.json()["admin"] is True
            assert client.get("/status").json()["compiled_scanner"] is True
            export = client.get(f"/exports/{table}.xlsx")
            assert export.status_code == 200 and export.headers["content-type"] == XLSX
            rows = next(iter(read_workbook(export.content).values()))
            assert len(rows) == 301 and rows[0][0] == "id"
        imported = httpx.put(f"{url}/imports/{table}", params={"mode": "replace", "wait": "true"},
                             content=export.content, headers={**bearer(token), "Content-Type": XLSX}, timeout=120)
        assert imported.status_code == 200, imported.text
        assert imported.json()["rows_inserted"] == 300

        config = json.loads(podman("container", "inspect", name).stdout)[0]
        assert config["HostConfig"]["ReadonlyRootfs"] is True
        assert config["Config"]["User"] == "sheetstream"
        assert "readyz" in " ".join(json.loads(podman("image", "inspect", image).stdout)[0]["Healthcheck"]["Test"])
        assert podman("healthcheck", "run", name, check=False).returncode == 0  # no systemd here: run it by hand
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        assert podman("exec", name, "touch", "/opt/sheetstream/x", check=False).returncode != 0  # read-only root
        logged = podman("logs", name)
        log = logged.stdout + logged.stderr
        start = [json.loads(line) for line in log.splitlines() if '"event": "start"' in line]
        assert start and start[0]["compiled_scanner"] is True
        assert token not in log
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
