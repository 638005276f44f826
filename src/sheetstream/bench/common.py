"""Helpers shared by the benchmarks: the machine's description, ports, servers, memory readings."""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import httpx
import psutil


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "stream-zip": version("stream-zip"),
        "isal": version("isal"),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, seconds: float = 30) -> None:
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
                 workers: int | None = None, start_method: str | None = None, data_dir: Path | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "sheetstream.cli", "serve", "--no-seed", "--database-url", database_url,
                        "--port", str(self.port)]
        for flag, value in (("--tables", ",".join(tables or [])), ("--executor", executor), ("--workers", workers),
                            ("--start-method", start_method), ("--data-dir", data_dir)):
            if value:
                self.command += [flag, str(value)]
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_until_up(self.url)
        except BaseException:
            self.process.kill()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


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
