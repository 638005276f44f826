"""The CLI's transfer runs: N concurrent downloads with a progress bar each and a summary table."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from urllib.parse import urlencode

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from .client import Transfer, download


def export_url(base: str, table: str, columns: str | None = None, limit: int | None = None) -> str:
    query = urlencode({k: v for k, v in {"columns": columns, "limit": limit}.items() if v is not None})
    return f"{base.rstrip('/')}/exports/{table}.xlsx" + (f"?{query}" if query else "")


def destinations(args: argparse.Namespace) -> list[Path | None]:
    if args.to_dir:
        args.to_dir.mkdir(parents=True, exist_ok=True)
        if args.parallel == 1:
            return [args.to_dir / f"{args.table}.xlsx"]
        return [args.to_dir / f"{args.table}-{i}.xlsx" for i in range(1, args.parallel + 1)]
    if args.output:
        if args.parallel > 1:
            raise SystemExit("--output names one file; use --to-dir with --parallel")
        return [args.output]
    if args.parallel == 1:
        return [Path(f"{args.table}.xlsx")]
    return [None] * args.parallel  # parallel runs without --to-dir measure only


async def run_downloads(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    url = export_url(args.url, args.table, args.columns, args.limit)
    targets = destinations(args)
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn()]
    timeout = httpx.Timeout(30.0, read=300.0)
    with Progress(*columns, console=console, disable=args.quiet) as progress:
        async with httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=args.parallel)) as client:

            async def one(i: int, dest: Path | None) -> Transfer:
                task = progress.add_task(f"#{i} {dest.name if dest else '(discarded)'}", total=None)
                result = await download(client, url, dest, lambda done, total: progress.update(task, completed=done, total=total))
                progress.update(task, total=result.bytes, completed=result.bytes)
                return result

            results = await asyncio.gather(*(one(i, d) for i, d in enumerate(targets, 1)))
    print_summary(console, results)
    return 0 if all(r.ok for r in results) else 1


def print_summary(console: Console, results: list[Transfer]) -> None:
    table = Table(title="downloads")
    for name in ("#", "file", "status", "bytes", "first byte (ms)", "total (s)", "MB/s"):
        table.add_column(name, justify="right" if name not in ("file", "status") else "left")
    for i, r in enumerate(results, 1):
        table.add_row(
            str(i),
            str(r.path or "-"),
            "ok" if r.ok else f"[red]{r.error}[/red]",
            f"{r.bytes:,}",
            f"{r.ttfb * 1000:.1f}" if r.ttfb is not None else "-",
            f"{r.seconds:.2f}",
            f"{r.mb_per_s:.1f}",
        )
    Console().print(table)
