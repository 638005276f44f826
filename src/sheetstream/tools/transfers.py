"""The CLI's transfer runs: N concurrent downloads with a progress bar each and a summary table."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from ..client import Transfer, client_for, download, download_problems, upload


def export_url(base: str, table: str, columns: str | None = None, limit: int | None = None,
               filters: Sequence[str] = (), order: str | None = None, query: str | None = None) -> str:
    """The export's URL: ``filters`` as ``COLUMN=OPERATOR.VALUE`` each (docs/exports.md), ``query`` a raw query
    string added as it is (the part after ``?`` of a URL the page made)."""
    pairs = [(k, str(v)) for k, v in (("columns", columns), ("limit", limit), ("order", order)) if v is not None]
    for text in filters:
        column, sep, condition = text.partition("=")
        if not sep or not column:
            raise SystemExit(f"--filter {text!r}: write COLUMN=OPERATOR.VALUE, such as status=eq.paid")
        pairs.append((column, condition))
    encoded = "&".join(part for part in (urlencode(pairs), (query or "").lstrip("?")) if part)
    return f"{base.rstrip('/')}/exports/{table}.xlsx" + (f"?{encoded}" if encoded else "")


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
    url = export_url(args.url, args.table, args.columns, args.limit, args.filter or (), args.order, args.query)
    targets = destinations(args)
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn()]
    timeout = httpx.Timeout(30.0, read=300.0)
    with Progress(*columns, console=console, disable=args.quiet) as progress:
        async with client_for(args.token, timeout=timeout, limits=httpx.Limits(max_connections=args.parallel)) as client:

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


async def run_upload(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, disable=args.quiet) as progress:
        sending = progress.add_task(f"sending {args.file.name}", total=args.file.stat().st_size)
        importing = progress.add_task("import: waiting", total=None, visible=False)

        def on_job(job: dict) -> None:
            progress.update(importing, visible=True, description=f"import: {job['state']}, {job['rows_read']:,} rows read")

        async with client_for(args.token, timeout=httpx.Timeout(30.0, read=600.0, write=600.0)) as client:
            result = await upload(client, args.url, args.table, args.file, mode=args.mode, dry_run=args.dry_run,
                                  sheet=args.sheet, extra_columns=args.extra_columns,
                                  progress=lambda done, total: progress.update(sending, completed=done),
                                  job_progress=on_job)
            marked = await save_marked_up(client, args, result.job or {})
    out = Console()
    job = result.job or {}
    print_warnings(out, job)
    if result.ok:
        out.print(f"[green]{job['message']}[/green] ({job['rows_read']:,} rows read, {result.bytes:,} bytes sent, "
                  f"{result.seconds:.2f} s)")
        print_preview(out, job)
    else:
        out.print(f"[red]import failed: {job.get('message') or result.error}[/red]")
        print_problems(out, job)
    if marked:
        out.print(marked)
    return 0 if result.ok else 1


async def save_marked_up(client: httpx.AsyncClient, args: argparse.Namespace, job: dict) -> str | None:
    """With ``--problems-xlsx``, the workbook with the job's problems (or warnings) marked, saved; what to say."""
    if not args.problems_xlsx or not job.get("id") or not (job.get("errors") or job.get("warnings")):
        return None
    saved = await download_problems(client, args.url, job["id"], args.problems_xlsx)
    if not saved.ok:
        return f"[red]could not save the marked-up workbook: {saved.error}[/red]"
    return f"the workbook with its problems marked: {args.problems_xlsx} ({saved.bytes:,} bytes)"


def print_warnings(console: Console, job: dict) -> None:
    for w in job.get("warnings") or []:
        console.print(f"[yellow]warning: {w.get('sheet')}!{w.get('cell')}: {w.get('message')}[/yellow]")


def print_preview(console: Console, job: dict) -> None:
    """A dry run's preview: what the import would do, and the first changed values."""
    preview = job.get("preview")
    if not preview:
        return
    counts = [("inserted", "inserted"), ("updated", "updated"), ("unchanged", "unchanged")]
    if job.get("mode") == "replace":
        counts.append(("deleted", "deleted"))
    console.print("preview: " + ", ".join(f"{preview[k]:,} {label}" for k, label in counts))
    if preview.get("changes"):
        table = Table(title="changed values (first updated rows)")
        for name in ("cell", "column", "now", "after the import"):
            table.add_column(name)
        for c in preview["changes"]:
            table.add_row(str(c.get("cell")), str(c.get("column")), _text(c.get("old")), _text(c.get("new")))
        console.print(table)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def print_problems(console: Console, job: dict) -> None:
    errors = job.get("errors") or []
    if not errors:
        return
    table = Table(title=f"problems ({len(errors)} listed of {job.get('error_total', len(errors))})")
    for name in ("sheet", "cell", "column", "value", "message"):
        table.add_column(name)
    for e in errors:
        table.add_row(*(str(e.get(k) if e.get(k) is not None else "") for k in ("sheet", "cell", "column", "value", "message")))
    console.print(table)
