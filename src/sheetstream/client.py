"""The HTTP client side: downloads and uploads as streams, with timings.

The functions take an ``httpx.AsyncClient``; one made by :func:`client_for` sends an API token with every request
(``Authorization: Bearer ...``), as the server wants unless it runs with ``--no-auth``."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from . import formats

Progress = Callable[[int, int | None], None]  # (bytes so far, total if known)
#: Where the command line finds its token when ``--token`` is not given.
TOKEN_VARIABLE = "SHEETSTREAM_TOKEN"


def auth_headers(token: str | None) -> dict[str, str]:
    """The header that carries ``token`` (none without one)."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def client_for(token: str | None = None, **options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` that sends ``token`` (default: ``$SHEETSTREAM_TOKEN``) with every request."""
    token = token if token is not None else os.environ.get(TOKEN_VARIABLE)
    headers = {**options.pop("headers", {}), **auth_headers(token)}
    return httpx.AsyncClient(headers=headers, **options)


@dataclass
class Transfer:
    url: str
    path: Path | None = None
    status: int | None = None
    bytes: int = 0
    ttfb: float | None = None  # seconds from the request to the first body byte
    seconds: float = 0.0
    error: str | None = None
    busy_retries: int = 0  # 429 answers waited out
    refusal: dict | None = None  # the server's JSON answer to a refused request (error, message, detail)

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds else 0.0


async def download(
    client: httpx.AsyncClient,
    url: str,
    dest: Path | None,
    progress: Progress | None = None,
    retries: int = 0,
) -> Transfer:
    """GET ``url`` and write the body to ``dest`` chunk by chunk (or discard it when ``dest`` is None).

    A 429 is waited out (its ``Retry-After``) up to ``retries`` times.
    """
    result = Transfer(url=url, path=dest)
    start = time.perf_counter()
    partial = dest.with_name(dest.name + ".part") if dest else None
    try:
        while True:
            response = await client.send(client.build_request("GET", url), stream=True)
            if response.status_code != 429 or result.busy_retries >= retries:
                break
            await response.aclose()
            result.busy_retries += 1
            await asyncio.sleep(retry_after(response))
        try:
            result.status = response.status_code
            if response.status_code != 200:
                body = (await response.aread()).decode("utf-8", "replace")
                result.error = f"HTTP {response.status_code}: {_message(body)}"
                result.refusal = _object(body)
                return result
            total = int(response.headers["content-length"]) if "content-length" in response.headers else None
            out = open(partial, "wb") if partial else None
            try:
                async for chunk in response.aiter_raw():
                    if result.ttfb is None:
                        result.ttfb = time.perf_counter() - start
                    result.bytes += len(chunk)
                    if out:
                        out.write(chunk)
                    if progress:
                        progress(result.bytes, total)
            finally:
                if out:
                    out.close()
            if partial and dest:
                partial.replace(dest)
        finally:
            await response.aclose()
    except (httpx.HTTPError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.seconds = time.perf_counter() - start
        if partial and partial.exists() and not result.ok:
            partial.unlink()
    return result


def retry_after(response: httpx.Response) -> float:
    try:
        return max(0.1, float(response.headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


def _message(body: str) -> str:
    try:
        return json.loads(body).get("message", body)
    except (ValueError, AttributeError):
        return body[:300]


def _object(body: str) -> dict | None:
    try:
        found = json.loads(body)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


@dataclass
class Upload:
    path: Path | None = None  # None for a commit of a dry run (the server has the file)
    status: int | None = None
    bytes: int = 0
    seconds: float = 0.0
    job: dict | None = None
    error: str | None = None
    busy_retries: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.job is not None and self.job.get("state") == "done"

    @property
    def refused(self) -> bool:
        """The request was refused (or never answered) before any job existed: no job id to report on."""
        return not self.ok and not (self.job or {}).get("id")


async def upload(
    client: httpx.AsyncClient,
    base_url: str,
    table: str,
    path: Path,
    *,
    mode: str | None = None,
    dry_run: bool = False,
    sheet: str | None = None,
    extra_columns: str = "ignore",
    progress: Progress | None = None,
    job_progress: Callable[[dict], None] | None = None,
    chunk_size: int = 1 << 16,
    retries: int = 0,
) -> Upload:
    """PUT ``path`` to ``/imports/{table}`` as a stream, then follow the job until it ends: by polling it when
    ``job_progress`` wants to see its progress, otherwise by asking the server to answer when it has ended.

    A 429 (refused before the body is read) is waited out (its ``Retry-After``) up to ``retries`` times.
    """
    result = Upload(path=path)
    size = path.stat().st_size
    start = time.perf_counter()

    async def body():
        result.bytes = 0
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                result.bytes += len(chunk)
                if progress:
                    progress(result.bytes, size)
                yield chunk

    params = {**({"mode": mode} if mode else {}), "dry_run": str(dry_run).lower(), "extra_columns": extra_columns,
              **({"sheet": sheet} if sheet else {})}
    if job_progress is None:
        params["wait"] = "true"
    fmt = formats.by_extension(str(path))  # the server tells the format from the bytes; the type must agree
    headers = {"Content-Type": fmt.media_type if fmt else "application/octet-stream", "Content-Length": str(size)}
    try:
        response = await _send(client, f"{base_url.rstrip('/')}/imports/{table}", params, body, headers, retries,
                               result)
        result.status = response.status_code
        if job_progress is None and response.status_code == 200:
            result.job = response.json()
        elif response.status_code != 202:
            result.error = f"HTTP {response.status_code}: {_message(response.text)}"
            result.job = _json(response)
        else:
            location = f"{base_url.rstrip('/')}{response.headers['location']}"
            result.job = await _follow(client, location, response.json(), job_progress)
            if result.job["state"] != "done":
                result.error = f"HTTP {result.job.get('status')}: {result.job.get('message')}"
    except (httpx.HTTPError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.seconds = time.perf_counter() - start
    return result


async def commit(
    client: httpx.AsyncClient,
    base_url: str,
    job_id: str,
    *,
    wait: bool = True,
    job_progress: Callable[[dict], None] | None = None,
) -> Upload:
    """Import for real the file that dry run ``job_id`` checked (``POST /jobs/{id}/commit``: the server kept it, so
    nothing is sent again). With ``wait``, follow the new job until it ends (polling it when ``job_progress``
    wants to see its progress); without, return the job as it started."""
    result = Upload()
    start = time.perf_counter()
    base = base_url.rstrip("/")
    params = {"wait": "true"} if wait and job_progress is None else {}
    try:
        response = await client.post(f"{base}/jobs/{job_id}/commit", params=params)
        result.status = response.status_code
        result.job = _json(response)
        if response.status_code == 202 and wait:
            result.job = await _follow(client, f"{base}{response.headers['location']}", response.json(), job_progress)
        if response.status_code not in (200, 202):
            result.error = f"HTTP {response.status_code}: {_message(response.text)}"
        elif result.job and result.job.get("state") == "failed":
            result.error = f"HTTP {result.job.get('status')}: {result.job.get('message')}"
    except (httpx.HTTPError, OSError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.seconds = time.perf_counter() - start
    return result


async def _send(client: httpx.AsyncClient, url: str, params: dict, body: Callable, headers: dict, retries: int,
                result: Upload) -> httpx.Response:
    """PUT the body, waiting out up to ``retries`` 429s (refused before the body is read)."""
    while True:
        response = await client.put(url, params=params, content=body(), headers=headers)
        if response.status_code != 429 or result.busy_retries >= retries:
            return response
        result.busy_retries += 1
        await asyncio.sleep(retry_after(response))


async def _follow(client: httpx.AsyncClient, location: str, job: dict,
                  job_progress: Callable[[dict], None] | None) -> dict:
    """Poll the job until it ends, showing each reading to ``job_progress``."""
    while job["state"] not in ("done", "failed"):
        if job_progress:
            job_progress(job)
        await asyncio.sleep(0.2)
        job = (await client.get(location)).json()
    if job_progress:
        job_progress(job)
    return job


def _json(response: httpx.Response) -> dict | None:
    try:
        return response.json()
    except ValueError:
        return None


async def download_problems(client: httpx.AsyncClient, base_url: str, job_id: str, dest: Path) -> Transfer:
    """The uploaded workbook of job ``job_id`` with its problems marked (``GET /jobs/{id}/problems.xlsx``), streamed
    to ``dest`` (not left behind when it fails)."""
    return await download(client, f"{base_url.rstrip('/')}/jobs/{job_id}/problems.xlsx", dest)
