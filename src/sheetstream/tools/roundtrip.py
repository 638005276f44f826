"""The study's integrity test: N users each download the table and upload it into a scratch copy, at once;
then source and copies are compared with an order-independent checksum, column by column."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from ..access import new_token
from ..client import client_for, download, upload
from ..config import Settings
from ..server import create_app
from ..store import Store, open_store
from ..store.demo import seed
from .harness import ThreadedServer, scratch_tables


@dataclass
class Checksum:
    """Per column: value count, NULL count, and a sum of 64-bit hashes (so row order does not matter)."""

    rows: int = 0
    columns: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (nulls, hash sum)


def checksum(store: Store, table: str) -> Checksum:
    columns = store.columns(table)
    nulls = [0] * len(columns)
    sums = [0] * len(columns)
    result = Checksum()
    for row in store.read_rows(table, columns):
        result.rows += 1
        for i, value in enumerate(row):
            if value is None:
                nulls[i] += 1
            else:
                sums[i] = (sums[i] + _hash(value)) & 0xFFFFFFFFFFFFFFFF
    result.columns = {c.name: (n, s) for c, n, s in zip(columns, nulls, sums)}
    return result


def _hash(value: Any) -> int:
    text = f"{type(value).__name__}:{value!r}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def differences(source: Checksum, copy: Checksum) -> list[str]:
    found = [] if source.rows == copy.rows else [f"rows: {source.rows} vs {copy.rows}"]
    for name, (nulls, total) in source.columns.items():
        other = copy.columns.get(name)
        if other is None:
            found.append(f"{name}: missing in the copy")
        elif other[0] != nulls:
            found.append(f"{name}: {nulls} NULLs vs {other[0]}")
        elif other[1] != total:
            found.append(f"{name}: values differ")
    return found


@dataclass
class UserRun:
    user: int
    table: str
    download_s: float = 0.0
    upload_s: float = 0.0
    bytes: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)


async def run_users(base_url: str, source: str, copies: list[str], work: Path, token: str | None = None) -> list[UserRun]:
    async with client_for(token, timeout=httpx.Timeout(30.0, read=900.0, write=900.0),
                          limits=httpx.Limits(max_connections=2 * len(copies))) as client:

        async def user(i: int, copy: str) -> UserRun:
            run = UserRun(user=i, table=copy)
            path = work / f"user-{i}.xlsx"
            got = await download(client, f"{base_url}/exports/{source}.xlsx", path)
            run.download_s, run.bytes = got.seconds, got.bytes
            if not got.ok:
                run.problems.append(f"download failed: {got.error}")
                return run
            sent = await upload(client, base_url, copy, path, mode="replace")
            run.upload_s = sent.seconds
            path.unlink(missing_ok=True)
            if not sent.ok:
                run.problems.append(f"upload failed: {sent.error}")
            else:
                run.rows = sent.job["rows_inserted"]
            return run

        return await asyncio.gather(*(user(i, t) for i, t in enumerate(copies, 1)))


def roundtrip(store: Store, source: str, users: int, base_url: str, work: Path, token: str | None = None) -> list[UserRun]:
    columns = store.columns(source)
    copies = scratch_tables(source, "roundtrip", users)
    for copy in copies:
        store.create_table(copy, columns, replace=True)
    runs = asyncio.run(run_users(base_url, source, copies, work, token))
    expected = checksum(store, source)
    for run in runs:
        if not run.problems:
            run.problems.extend(differences(expected, checksum(store, run.table)))
    return runs


def run(args: argparse.Namespace) -> int:
    console = Console()
    if args.url and not args.database_url:
        raise SystemExit("--url needs --database-url: the command creates the scratch tables and compares them there")
    with tempfile.TemporaryDirectory(prefix="sheetstream-roundtrip-") as tmp:
        work = Path(tmp)
        url = args.database_url or f"sqlite:///{work / 'roundtrip.db'}"
        store = open_store(url)
        if args.rows or args.table not in store.tables():
            seed(store, args.rows or 20_000, args.table)
        copies = scratch_tables(args.table, "roundtrip", args.users)
        token = new_token()  # the admin token of its own server
        settings = Settings().with_(database_url=url, data_dir=work, tables=(args.table, *copies), admin_token=token)
        start = time.perf_counter()
        if args.url:
            runs = roundtrip(store, args.table, args.users, args.url.rstrip("/"), work, args.token)
        else:
            with ThreadedServer(create_app(settings, store)) as server:
                runs = roundtrip(store, args.table, args.users, server.url, work, token)
        seconds = time.perf_counter() - start
        for copy in copies:
            store.drop_table(copy)
    table = Table(title=f"round trip: {args.users} users, {seconds:.2f} s")
    for name in ("user", "bytes", "download (s)", "upload+import (s)", "rows", "integrity"):
        table.add_column(name)
    for r in runs:
        table.add_row(str(r.user), f"{r.bytes:,}", f"{r.download_s:.2f}", f"{r.upload_s:.2f}", f"{r.rows:,}",
                      "[green]identical[/green]" if not r.problems else "[red]" + "; ".join(r.problems) + "[/red]")
    console.print(table)
    return 0 if all(not r.problems for r in runs) else 1

