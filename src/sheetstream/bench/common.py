"""Helpers shared by the benchmarks: the machine's description, ports, servers, memory readings."""

from __future__ import annotations

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


def start_server(database_url: str, *extra: str) -> tuple[subprocess.Popen, str]:
    """``sheetstream serve`` in a subprocess on a free port; returns it and its URL once it answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "sheetstream.cli", "serve", "--no-seed", "--database-url", database_url,
         "--port", str(port), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url)
    except BaseException:
        server.kill()
        raise
    return server, url


def installed(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None
