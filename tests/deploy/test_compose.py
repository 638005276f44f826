"""deploy/compose.yaml run for real with podman-compose: PostgreSQL, the one-shot seed, two instances and nginx,
with a host-network override file (each service on a free loopback port; no bridge network, no change to the
host's forwarding or firewall). Export and import through nginx, then everything torn down (containers,
volumes). The images come from Debian's archive (tests/deploy/images/*.Dockerfile, the app's deploy/Dockerfile
on the Debian base): no registry."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from sheetstream.access import new_token
from sheetstream.tools.harness import free_port

from ..helpers import XLSX, bearer, missing, read_workbook
from .podman import ROOT, base_image, build_image, podman, podman_env, require_podman

SHIPPED = ROOT / "deploy" / "compose.yaml"
IMAGES = Path(__file__).with_name("images")
APP, DB, NGINX = "localhost/sheetstream:test", "localhost/sheetstream-postgres:test", "localhost/sheetstream-nginx:test"
UP_SECONDS = 180  # the shipped seed writes 200,000 rows before the instances serve them
SERVICES = ("db", "seed", "app1", "app2", "nginx")


def compose_command() -> list[str]:
    """podman-compose of this environment (the test extra), else the system's."""
    found = shutil.which("podman-compose", path=str(Path(sys.executable).parent)) or shutil.which("podman-compose")
    if not found:
        missing("podman-compose is not installed (the test extra has it)")
    return [found]


@pytest.fixture(scope="module")
def images() -> None:
    require_podman()
    build_image(APP)
    base = base_image()
    for tag, dockerfile in ((DB, "postgres.Dockerfile"), (NGINX, "nginx.Dockerfile")):
        podman("build", "--format", "docker", "--network", "host", "--build-arg", f"BASE={base}",
               "-f", str(IMAGES / dockerfile), "-t", tag, str(IMAGES), timeout=900)


def override(folder: Path, ports: dict[str, int]) -> Path:
    """The host-network override: every service on the host's network at its own loopback port, the images
    built here, nginx's shipped configuration with only its upstreams and port rewritten."""
    url = f"postgresql://sheetstream:sheetstream@127.0.0.1:{ports['db']}/sheetstream"
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    for pattern, replacement in (
        (r"(?:\s*server app\d:8000;)+", f"\n        server 127.0.0.1:{ports['app1']};\n"
                                        f"        server 127.0.0.1:{ports['app2']};"),
        (r"listen 8080;", f"listen 127.0.0.1:{ports['nginx']};"),
    ):
        conf, count = re.subn(pattern, replacement, conf)
        assert count, f"the shipped nginx.conf no longer has {pattern!r}"
    (folder / "nginx.conf").write_text(conf)
    host = {"network_mode": "host"}
    services = {
        "db": {**host, "image": DB, "environment": {"PGPORT": str(ports["db"])}},
        "seed": {**host, "image": APP, "environment": {"SHEETSTREAM_DATABASE_URL": url}},
        "nginx": {**host, "image": NGINX, "volumes": [f"{folder / 'nginx.conf'}:/etc/sheetstream-test/nginx.conf:ro"],
                  "command": ["nginx", "-c", "/etc/sheetstream-test/nginx.conf", "-g", "daemon off;"]},
    }
    for name in ("app1", "app2"):
        services[name] = {**host, "image": APP, "environment": {
            "SHEETSTREAM_DATABASE_URL": url, "SHEETSTREAM_HOST": "127.0.0.1", "SHEETSTREAM_PORT": str(ports[name])}}
    path = folder / "compose.override.yaml"
    path.write_text(yaml.safe_dump({"services": services}))
    return path


def test_the_compose_stack_serves_through_nginx(images, tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("db", "app1", "app2", "nginx")}
    project = f"sheetstream-test-{uuid.uuid4().hex[:8]}"
    token = new_token()
    env = {**podman_env(), "SHEETSTREAM_ADMIN_TOKEN": token, "SHEETSTREAM_SESSION_SECRET": new_token()}
    compose = [*compose_command(), "-p", project, "-f", str(SHIPPED), "-f", str(override(tmp_path, ports))]

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([*compose, *args], env=env, capture_output=True, text=True, timeout=timeout)

    url = f"http://127.0.0.1:{ports['nginx']}"
    try:
        # --no-deps: podman here runs no healthchecks and cannot start containers that --requires an exited one
        # (the seed); the services wait for the database themselves, which is what this shows.
        started = run("up", "-d", "--no-build", "--no-deps", *SERVICES, timeout=UP_SECONDS)
        assert started.returncode == 0, started.stderr[-3000:]
        seeded = podman("wait", f"{project}_seed_1", timeout=UP_SECONDS).stdout.strip()
        assert seeded == "0", run("logs", "seed").stdout[-3000:]
        deadline = time.monotonic() + UP_SECONDS
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            raise AssertionError(f"the stack was not ready in {UP_SECONDS} s:\n{run('logs').stdout[-4000:]}")

        with httpx.Client(base_url=url, headers=bearer(token), timeout=120) as client:
            export = client.get("/exports/orders.xlsx", params={"limit": 1000})
            assert export.status_code == 200 and export.headers["content-type"] == XLSX
            assert len(next(iter(read_workbook(export.content).values()))) == 1001
            assert client.get("/tables").json()[0]["rows"] == 200_000  # the seed's, through the shared database
            imported = client.put("/imports/orders", params={"mode": "upsert", "wait": "true"},
                                  content=export.content, headers={"Content-Type": XLSX})
            assert imported.status_code == 200, imported.text
            job = imported.json()
            seen = {client.get(f"/jobs/{job['id']}").headers.get("x-request-id") for _ in range(4)}
            assert len(seen) == 4  # answered (round robin or least_conn) by instances sharing the job record
            # A dry run on one instance, committed on the other: they share the data volume, so the kept upload
            # is there for both.
            app1, app2 = (f"http://127.0.0.1:{ports[name]}" for name in ("app1", "app2"))
            dry = client.put(f"{app1}/imports/orders", params={"mode": "upsert", "dry_run": "true", "wait": "true"},
                             content=export.content, headers={"Content-Type": XLSX})
            assert dry.status_code == 200 and dry.json()["kept_until"], dry.text
            committed = client.post(f"{app2}/jobs/{dry.json()['id']}/commit", params={"wait": "true"})
            assert committed.status_code == 200, committed.text
            assert committed.json()["preview_of"] == dry.json()["id"] and committed.json()["rows_inserted"] == 1000
            assert dry.json()["instance"] != committed.json()["instance"]
            instances = {line for line in run("logs", "app1", "app2").stdout.splitlines() if '"event": "start"' in line}
            assert len(instances) >= 2  # both instances started and said which reader they use

        seeded_again = run("run", "--rm", "--no-deps", "seed", timeout=120)  # a second start of the stack
        assert seeded_again.returncode == 0, seeded_again.stderr[-2000:]
        assert "left as it is" in seeded_again.stdout + seeded_again.stderr
    finally:
        made = podman("ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={project}").stdout.split()
        if made:  # with their anonymous volumes, which down -v leaves
            podman("rm", "-f", "-v", "-t", "5", *made, check=False)
        down = run("down", "-v", "-t", "5")
        assert down.returncode == 0, down.stderr[-2000:]
    leftover = podman("ps", "-a", "--filter", f"label=io.podman.compose.project={project}", "-q").stdout.strip()
    assert not leftover
