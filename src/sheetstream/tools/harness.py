"""What the tools and the tests share to run sheetstream for real: servers (in a thread or a subprocess) on free
loopback ports, the PostgreSQL they use, and memory readings."""

from __future__ import annotations

import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx
import psutil
import uvicorn

from ..access import new_token
from ..server.connections import uvicorn_options

#: The PostgreSQL the tests and benchmarks use (trust authentication on loopback, database ``test``).
POSTGRES_URL = os.environ.get("SHEETSTREAM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_problem(url: str = POSTGRES_URL) -> str | None:
    """None when PostgreSQL answers at ``url``; otherwise why not, in a sentence."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return f"PostgreSQL is not reachable at {url}: {str(exc).strip()}"
    return None


#: The MySQL or MariaDB the tests use (root without a password on loopback, database ``test``).
MYSQL_URL = os.environ.get("SHEETSTREAM_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")


def mysql_problem(url: str = MYSQL_URL) -> str | None:
    """None when MySQL/MariaDB answers at ``url`` (and its driver is installed); otherwise why not, in a sentence."""
    from ..errors import StoreUnavailable
    from ..store.mysql_connect import connect

    try:
        connect(url).close()
    except StoreUnavailable as exc:
        return f"MySQL/MariaDB is not usable at {url}: {exc.message}"
    return None


def scratch_tables(source: str, purpose: str, count: int) -> list[str]:
    """The names of ``count`` scratch copies of ``source`` for a tool (``orders_roundtrip_1``, ``orders_load_1``...);
    a server used with ``--url`` must have them on its allow-list."""
    return [f"{source}_{purpose}_{i}" for i in range(1, count + 1)]


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024



def machine() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "isal": version("isal"),
    }


def free_port() -> int:
    with bound_socket() as s:
        return s.getsockname()[1]


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a free port on ``host`` (kept bound, so no other process can take the port)."""
    sock = socket.socket()
    sock.bind((host, 0))
    return sock


def wait_until_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not come up")


def peak_rss(pid: int) -> float:
    """VmHWM: the process's peak resident set size, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


class ServerProcess:
    """``sheetstream serve`` in a subprocess on a free loopback port (so that its memory and event loop are its
    own); ``with ServerProcess(url) as server: server.url, server.process.pid``."""

    def __init__(self, database_url: str, tables: list[str] | None = None, executor: str | None = None,
                 workers: int | None = None, start_method: str | None = None, data_dir: Path | None = None,
                 env: dict[str, str] | None = None, open_files: int | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = new_token()  # its admin token (SHEETSTREAM_ADMIN_TOKEN), for the tools' clients
        self.headers = {"Authorization": f"Bearer {self.token}"}
        self.command = [sys.executable, "-m", "sheetstream.cli", "serve", "--no-seed", "--database-url", database_url,
                        "--port", str(self.port)]
        for flag, value in (("--tables", ",".join(tables or [])), ("--executor", executor), ("--workers", workers),
                            ("--start-method", start_method), ("--data-dir", data_dir)):
            if value:
                self.command += [flag, str(value)]
        self.env = {**os.environ, **(env or {})}  # SHEETSTREAM_* settings that have no flag
        self.open_files = open_files  # the soft RLIMIT_NOFILE it starts with (default: this process's)
        self.process: subprocess.Popen | None = None
        # Its log (a line per request) goes to a file: a pipe nobody reads would fill and stop the server.
        self.log = tempfile.TemporaryFile()

    def __enter__(self) -> ServerProcess:
        env = {**self.env, "SHEETSTREAM_ADMIN_TOKEN": self.token}
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=self.log, env=env,
                                        preexec_fn=self._limit if self.open_files else None)
        try:
            wait_until_up(self.url)
        except BaseException:
            self.process.kill()
            raise
        return self

    def _limit(self) -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def log_text(self) -> str:
        """What the server has written to stderr so far (its log lines)."""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")


def run_case(module: str, *args: str, timeout: float = 1800) -> dict:
    """``python -m module args`` in its own process (its peak RSS is its own): the JSON it prints, or the last
    line of its error as ``{"error": ...}``."""
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(done.stdout)


def installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


class ThreadedServer:
    """uvicorn serving ``app`` from a background thread on a free loopback port (the round trip's own server,
    and the tests' live server): ``with ThreadedServer(app) as server: server.url``."""

    def __init__(self, app, host: str = "127.0.0.1"):
        self.sock = bound_socket(host)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        # Connections bounded as `sheetstream serve` bounds them (proxy_headers off: the app decides itself which
        # proxies it believes); an app that is not sheetstream's gets uvicorn's own protocol.
        settings = getattr(getattr(app, "state", None), "settings", None)
        options = uvicorn_options(settings) if settings is not None else {"proxy_headers": False}
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **options))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()
