"""The CLI's transfer runs: N concurrent downloads with a progress bar each and a summary table; an upload, and the
commit of a checked one, with their outcome. A refused request (or a server out of reach) is one line on stderr
that says what to do, and exit code 1; a command-line mistake (a file that is not there) exit code 2."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode

import httpx
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from .. import formats
from ..client import TOKEN_VARIABLE, Transfer, Upload, client_for, commit, download, download_problems, upload

#: Exit codes: the server refused or the work failed; the command line itself is wrong.
FAILED, USAGE = 1, 2
#: An upload's or a commit's: long reads and writes (a big file sent, a job that answers when it ends).
TIMEOUT = httpx.Timeout(30.0, read=600.0, write=600.0)


def columns() -> list:
    return [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn()]


def fail(message: str, code: int = FAILED) -> int:
    """``message`` as one line on stderr (no traceback, no table); returns the exit code."""
    print(f"sheetstream: {message}", file=sys.stderr, flush=True)
    return code


def explain(status: int | None, answer: dict | None, error: str | None, token: str | None, url: str) -> str:
    """What a refused request means for the person at the command line: the server's message, and for 401 and 403
    the way out (a token, a grant). 404's message already lists the tables the server serves."""
    message = (answer or {}).get("message") or (error or "").split(": ", 1)[-1]
    if status is None:
        return f"cannot reach the server at {url} ({error}); is it running, and is --url right?"
    if status < 400:  # answered, then it failed on this side (a file it cannot write, a read that timed out)
        return error or f"HTTP {status}"
    if status == 401 and not token:
        return (f"HTTP 401: this server wants an API token: give it with --token sst_... or in {TOKEN_VARIABLE} "
                "(whoever runs the server makes one: sheetstream token create NAME --grant TABLE:read)")
    if status == 401:
        return f"HTTP 401: {message} (the token given with --token or {TOKEN_VARIABLE})"
    if status == 403:
        permission, table = (answer or {}).get("permission"), (answer or {}).get("table")
        need = f"a token with the grant {table}:{permission}" if permission and table else "an admin token"
        return f"HTTP 403: {message}; this needs {need}"
    return f"HTTP {status}: {message}"


def export_url(base: str, table: str, columns: str | None = None, limit: int | None = None,
               filters: Sequence[str] = (), order: str | None = None, query: str | None = None,
               extension: str = "xlsx") -> str:
    """The export's URL: ``filters`` as ``COLUMN=OPERATOR.VALUE`` each (docs/exports.md), ``query`` a raw query
    string added as it is (the part after ``?`` of a URL the page made)."""
    pairs = [(k, str(v)) for k, v in (("columns", columns), ("limit", limit), ("order", order)) if v is not None]
    for text in filters:
        column, sep, condition = text.partition("=")
        if not sep or not column:
            raise SystemExit(f"--filter {text!r}: write COLUMN=OPERATOR.VALUE, such as status=eq.paid")
        pairs.append((column, condition))
    encoded = "&".join(part for part in (urlencode(pairs), (query or "").lstrip("?")) if part)
    return f"{base.rstrip('/')}/exports/{table}.{extension}" + (f"?{encoded}" if encoded else "")


def _extension(args: argparse.Namespace) -> str:
    return formats.get(getattr(args, "format", None) or "xlsx").extension


def destinations(args: argparse.Namespace) -> list[Path | None]:
    if args.to_dir:
        args.to_dir.mkdir(parents=True, exist_ok=True)
        if args.parallel == 1:
            return [args.to_dir / f"{args.table}.{_extension(args)}"]
        return [args.to_dir / f"{args.table}-{i}.{_extension(args)}" for i in range(1, args.parallel + 1)]
    if args.output:
        if args.parallel > 1:
            raise SystemExit("--output names one file; use --to-dir with --parallel")
        return [args.output]
    if args.parallel == 1:
        return [Path(f"{args.table}.{_extension(args)}")]
    return [None] * args.parallel  # parallel runs without --to-dir measure only


async def run_downloads(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    url = export_url(args.url, args.table, args.columns, args.limit, args.filter or (), args.order, args.query,
                     _extension(args))
    targets = destinations(args)
    timeout = httpx.Timeout(30.0, read=300.0)
    with Progress(*columns(), console=console, disable=args.quiet) as progress:
        async with client_for(args.token, timeout=timeout, limits=httpx.Limits(max_connections=args.parallel)) as client:

            async def one(i: int, dest: Path | None) -> Transfer:
                task = progress.add_task(f"#{i} {dest.name if dest else '(discarded)'}", total=None)
                result = await download(client, url, dest, lambda done, total: progress.update(task, completed=done, total=total))
                progress.update(task, total=result.bytes, completed=result.bytes)
                return result

            results = await asyncio.gather(*(one(i, d) for i, d in enumerate(targets, 1)))
    if not any(r.ok for r in results):  # refused, or out of reach: say why once, not in a table's cells
        reasons = dict.fromkeys(explain(r.status, r.refusal, r.error, args.token, args.url) for r in results)
        for reason in reasons:
            fail(reason)
        return FAILED
    print_summary(console, results)
    return 0 if all(r.ok for r in results) else FAILED


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
    if not args.file.is_file():
        return fail(f"{args.file}: {'not a file' if args.file.exists() else 'no such file'}", USAGE)
    with Progress(*columns(), console=Console(stderr=True), disable=args.quiet) as progress:
        sending = progress.add_task(f"sending {args.file.name}", total=args.file.stat().st_size)
        async with client_for(args.token, timeout=TIMEOUT) as client:
            result = await upload(client, args.url, args.table, args.file, mode=args.mode, dry_run=args.dry_run,
                                  sheet=args.sheet, extra_columns=args.extra_columns,
                                  progress=lambda done, total: progress.update(sending, completed=done),
                                  job_progress=job_bar(progress))
            marked = await save_marked_up(client, args, result.job or {})
    return report(args, result, marked, f"{result.bytes:,} bytes sent, ")


async def run_commit(args: argparse.Namespace) -> int:
    """``sheetstream commit JOB_ID``: the file a dry run checked, imported for real without sending it again."""
    with Progress(*columns(), console=Console(stderr=True), disable=args.quiet or not args.wait) as progress:
        async with client_for(args.token, timeout=TIMEOUT) as client:
            result = await commit(client, args.url, args.job, wait=args.wait, job_progress=job_bar(progress))
            marked = await save_marked_up(client, args, result.job or {}) if args.wait else None
    if not args.wait and not result.refused:
        job = result.job or {}
        Console().print(f"job {job.get('id')} imports what job {args.job} checked ({job.get('mode')} into "
                        f"{job.get('table')!r}): {job.get('state')}; its outcome: {args.url.rstrip('/')}"
                        f"{job.get('location')}")
        return 0
    return report(args, result, marked, "")


def job_bar(progress: Progress):
    """A progress line for the job once the server has it: its state and the rows read so far."""
    importing = progress.add_task("import: waiting", total=None, visible=False)

    def on_job(job: dict) -> None:
        progress.update(importing, visible=True, description=f"import: {job['state']}, {job['rows_read']:,} rows read")

    return on_job


def report(args: argparse.Namespace, result: Upload, marked: str | None, sent: str) -> int:
    """An import's outcome: its message, warnings and preview when done; its problems when not; one line on stderr
    when the request was refused before a job existed."""
    if result.refused:
        return fail(explain(result.status, result.job, result.error, args.token, args.url))
    out = Console()
    job = result.job or {}
    print_warnings(out, job)
    if result.ok:
        out.print(f"[green]{job['message']}[/green] ({job['rows_read']:,} rows read, {sent}{result.seconds:.2f} s)")
        print_preview(out, job)
        if job.get("dry_run"):
            out.print(f"checked only, nothing written; to import this file as checked: sheetstream commit {job['id']} "
                      "--wait")
    else:
        out.print(f"[red]import failed: {job.get('message') or result.error}[/red]")
        print_problems(out, job)
    if marked:
        out.print(marked)
    return 0 if result.ok else FAILED


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
