"""An uploaded workbook on disk -> rows in the table: parse, validate, check and write in one pass, all or nothing.

Rows flow from the reader through validation into a staging table inside the import's transaction
(:mod:`sheetstream.store.staging`). Every problem is collected before anything is written, up to 100 listed:
the header's, each cell's, then the keys' (repeated in the sheet; already in the table when appending). A dry
run then previews what writing would do; otherwise, with no problem, the staged rows go to the table and the
transaction commits. Any problem rolls everything back.

Given a ``split`` (a worker of the ``process`` strategy, into PostgreSQL), the sheet is read block by block by
two processes: each block of whole rows is read, checked and encoded for the store (:func:`_read_block`) in one
of them, and the encoded blocks go into the staging table in sheet order, their problems merged in order, so the
result is the same as one process's (``tests/pipeline/test_split.py``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ImportLimits
from ..errors import Invalid, RowRefused, TooMuchCpu
from ..formats.xlsx import ReadLimits, Workbook, last_row, open_workbook
from ..formats.xlsx.cells import column_letter
from ..store import OnCommit, Store
from .validate import Plan, Problems, _shown, convert_rows, read_header

if TYPE_CHECKING:
    from .jobs import Job

Report = Callable[[Any], None]
#: An ordered ``map`` that may run some items in another process.
Split = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]


def run_import(store: Store, job: Job, path: Path, report: Report, limits: ReadLimits = ReadLimits(),
               on_commit: OnCommit | None = None, split: Split | None = None,
               cpu_seconds: float = ImportLimits.import_cpu_seconds) -> Job:
    """Import ``path`` into ``job.table`` as ``job`` describes; ``report(job)`` is called as it progresses,
    ``on_commit(conn, count)`` inside the transaction right before COMMIT. ``split``: a ``map`` that runs part of
    the blocks in another process (:func:`sheetstream.runtime.forked.forked_map`), used where the store can take
    rows encoded elsewhere. Past ``cpu_seconds`` of this thread's CPU time, :class:`TooMuchCpu`."""
    started = time.thread_time()
    columns = store.columns(job.table)
    job.state = "parsing"
    report(job)
    with open_workbook(path, limits) as book:
        book.on_progress = functools.partial(_progress, job, report, started, cpu_seconds)
        sheet = job.sheet or (book.sheet_names[0] if book.sheet_names else "")
        blocks = book.row_blocks(job.sheet)
        header, first_rows, previous = _header(book, blocks)
        if header is None:
            raise Invalid(f"sheet {sheet!r} is empty: the first row must name the columns, the rows below hold "
                          "the data", errors=[], error_total=0)
        problems = Problems()
        job.warnings = []
        plan = read_header(header[1], columns, sheet, problems, job.warnings, job.extra_columns)
        job.state = "inserting"
        report(job)
        if not plan.columns:
            raise problems.error("the header row does not match the table")
        counters = {"rows_read": 0}
        try:
            with store.staging(job.table, plan.columns, job.mode) as staged:
                encode = staged.encoder() if split is not None else None
                if encode is None:
                    rows = itertools.chain(first_rows, book.rows_of(blocks, previous))
                    staged.load(_reported(convert_rows(rows, plan, sheet, problems, counters, numbered=True),
                                          job, counters, report))
                else:
                    read = functools.partial(_read_block, book, plan, sheet, encode)
                    with contextlib.closing(split(read, _numbered(blocks, previous))) as rest:  # its helper goes
                        chunks = itertools.chain([read((first_rows, 0))], rest)
                        staged.load_encoded(_merged(chunks, problems, job, counters, report))
                job.rows_read = counters["rows_read"]
                if job.rows_read == 0 and not problems.total:
                    raise Invalid(f"sheet {sheet!r} has a header but no rows", errors=[], error_total=0)
                check_keys(staged, plan, sheet, job.table, problems)
                if problems.total:
                    raise problems.error(f"sheet {sheet!r} does not fit table {job.table!r}")
                if job.dry_run:
                    job.preview = preview(staged, plan, sheet)
                else:
                    job.rows_inserted = staged.apply()
                    if on_commit:
                        on_commit(staged.conn, job.rows_inserted)  # inside the transaction, right before COMMIT
                    staged.commit()
        except RowRefused as exc:
            raise refused_row(exc, plan, sheet, job.table) from exc
        finally:
            job.rows_read = counters["rows_read"]
    return job


def _progress(job: Job, report: Report, started: float, cpu_seconds: float, inflated: int) -> None:
    """Called by the reader about every megabyte of XML, rows or none (a sheet of empty rows, a flood of
    shared strings): the CPU bound is checked, and ``report`` (which saves progress and stops a cancelled job)
    runs although no row has come."""
    used = time.thread_time() - started
    if used > cpu_seconds:
        raise TooMuchCpu(f"the import needed more than {cpu_seconds:,.0f} s of CPU time, the most one import may "
                         f"use (SHEETSTREAM_IMPORT_CPU_SECONDS), after reading {inflated / 2**20:,.0f} MB of the "
                         "workbook's XML; nothing was written: split the workbook into smaller ones",
                         cpu_seconds=round(used, 1), limit_seconds=cpu_seconds)
    report(job)


def _header(book: Workbook, blocks: Iterator[bytes]) -> tuple[tuple[int, list[Any]] | None, list, int]:
    """The first row with a value (the header), the rows after it in its block, and the number of its block's last
    row; ``blocks`` is left at the next block."""
    previous = 0
    for block in blocks:
        rows, previous = _all_rows(book.block_rows(block, previous))
        if rows:
            return rows[0], rows[1:], previous
    return None, [], previous


def _all_rows(rows: Generator[tuple[int, list[Any]], None, int]) -> tuple[list[tuple[int, list[Any]]], int]:
    found = []
    while True:
        try:
            found.append(next(rows))
        except StopIteration as stop:
            return found, stop.value


def _reported(rows: Iterator[Any], job: Job, counters: dict[str, int], report: Report) -> Iterator[Any]:
    for count, row in enumerate(rows, 1):
        yield row
        if count % 5_000 == 0:
            job.rows_read = counters["rows_read"]
            report(job)


def _numbered(blocks: Iterator[bytes], previous: int) -> Iterator[tuple[bytes, int]]:
    """Each block with the number of the row before it, found without reading the cells (so that another
    process can read the block while this one reads the one before)."""
    for block in blocks:
        yield block, previous
        previous = last_row(block, previous)


@dataclass
class Chunk:
    """One block's rows, checked and encoded for the store, with what was found on the way."""

    numbers: list[int]  # the sheet row of each encoded row
    data: Any
    rows_read: int
    problems: Problems


def _read_block(book: Workbook, plan: Plan, sheet: str, encode: Callable[[list], Any],
                item: tuple[bytes | list, int]) -> Chunk:
    """A block (or the rows already read from it) -> a :class:`Chunk`; runs in either process of a split."""
    block, previous = item
    rows = book.block_rows(block, previous) if isinstance(block, bytes) else block
    problems = Problems()
    counters = {"rows_read": 0}
    checked = list(convert_rows(rows, plan, sheet, problems, counters, numbered=True))
    return Chunk([number for number, _ in checked], encode(checked), counters["rows_read"], problems)


def _merged(chunks: Iterator[Chunk], problems: Problems, job: Job, counters: dict[str, int],
            report: Report) -> Iterator[tuple[list[int], Any]]:
    """The chunks' data for the store, their problems merged in sheet order, progress reported as they come."""
    for chunk in chunks:
        problems.merge(chunk.problems)
        counters["rows_read"] += chunk.rows_read
        job.rows_read = counters["rows_read"]
        report(job)
        yield chunk.numbers, chunk.data


def _letters(plan: Plan) -> dict[str, str]:
    return {c.name: column_letter(s) for c, s in zip(plan.columns, plan.sources)}


def _key_text(names: list[str], key: tuple) -> str:
    if len(names) == 1:
        return f"{names[0]} {_shown(key[0])}"
    return f"({', '.join(names)}) ({', '.join(str(_shown(k)) for k in key)})"


def check_keys(staged: Any, plan: Plan, sheet: str, table: str, problems: Problems) -> None:
    """Keys repeated in the sheet (any mode) and keys already in the table (append), at their key cells."""
    letter = _letters(plan).get(staged.keys[0]) if staged.keys else None
    total, found = staged.duplicates(problems.room)
    for row, key, first_row in found:
        problems.add(sheet, f"{letter}{row}", staged.keys[0], key[0] if len(key) == 1 else str(key),
                     f"{_key_text(staged.keys, key)} appears more than once in the sheet (first in row {first_row}): "
                     "keep one row per key", kind="duplicate")
    problems.count("duplicate", total)
    if staged.mode != "append":
        return
    total, found = staged.existing(problems.room)
    for row, key in found:
        problems.add(sheet, f"{letter}{row}", staged.keys[0], key[0] if len(key) == 1 else str(key),
                     f"{_key_text(staged.keys, key)} already exists in {table}: use mode upsert to update existing "
                     "rows, or replace", kind="existing")
    problems.count("existing", total)


def preview(staged: Any, plan: Plan, sheet: str) -> dict[str, Any]:
    """What the import would do (counts), with a sample of the changed values at their cells."""
    found = staged.preview()
    letters = _letters(plan)
    for change in found["changes"]:
        change.update(sheet=sheet, cell=f"{letters[change['column']]}{change['row']}", old=_shown(change["old"]),
                      new=_shown(change["new"]))
    return found


def refused_row(exc: RowRefused, plan: Plan, sheet: str, table: str) -> Invalid:
    """The database's refusal, at the sheet row (and column, when it said) it came from."""
    row, column = exc.detail.get("row"), exc.detail.get("column")
    if row is None:
        return Invalid(f"the database refused the rows ({exc.message}); nothing was written", errors=[], error_total=0)
    letters = _letters(plan)
    letter = letters.get(column or "", column_letter(plan.sources[0]))
    problems = Problems()
    problems.add(sheet, f"{letter}{row}", column, None, f"the database refused row {row}: {exc.message}",
                 kind="refused")
    return problems.error(f"table {table!r} refused row {row} of sheet {sheet!r}")
