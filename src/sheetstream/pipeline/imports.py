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
import re
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ContextManager

from .. import formats
from ..config import ImportLimits
from ..errors import Invalid, RowRefused, TooMuchCpu
from ..formats.xlsx import ReadLimits, Workbook, last_row
from ..formats.xlsx.cells import column_letter
from ..store import OnCommit, Store
from ..store.staging import direct_allowed
from .encode import lines as encode_lines
from .encode import spec as encode_spec
from .review import reading_options
from .states import State, move
from .validate import Plan, Problems, _shown, convert_rows, read_header

if TYPE_CHECKING:
    from .jobs import Job

Report = Callable[[Any], None]
#: An ordered ``map`` that may run some items in another process.
Split = Callable[[Callable[[Any], Any], Iterable[Any]], Iterator[Any]]


def run_import(store: Store, job: Job, path: Path, report: Report, limits: ReadLimits = ReadLimits(),
               on_commit: OnCommit | None = None, split: Split | None = None,
               sink: Callable[[str, str, str, str], None] | None = None,
               cpu_seconds: float = ImportLimits.import_cpu_seconds) -> Job:
    """Import ``path`` into ``job.table`` as ``job`` describes; ``report(job)`` is called as it progresses,
    ``on_commit(conn, count)`` inside the transaction right before COMMIT. ``split``: a ``map`` that runs part of
    the blocks in another process (:func:`sheetstream.runtime.forked.forked_map`), used where the store can take
    rows encoded elsewhere. ``sink`` receives every problem (see :class:`~.validate.Problems`). Past
    ``cpu_seconds`` of this thread's CPU time, :class:`TooMuchCpu`.

    The chosen sheet (the first by default) is read with the sheets that continue it, as an export past
    1,048,576 rows writes them (``orders (2)``, ``orders (3)``, each with the same header); every other sheet
    is left out with a warning that names it.

    An import that needs no review (:func:`~sheetstream.store.staging.direct_allowed`) first writes straight
    into the table; at its first problem (a cell, a row the database refuses) that attempt is rolled back and the
    import runs again through the staging table, which finds and lists every problem as it always did."""
    started = time.thread_time()
    catalog = store.columns(job.table)
    move(job, State.PARSING)
    report(job)
    run = functools.partial(_run, store, job, path, report, limits, on_commit, split, catalog, started, cpu_seconds)
    empty = functools.partial(_empty, store, job.table, catalog)
    if getattr(store, "direct", False) and direct_allowed(catalog, job.mode, job.dry_run, empty):
        try:
            return run(None, direct=True)
        except _Redo:
            job.rows_read, job.warnings = 0, []
    return run(sink, direct=False)


def _empty(store: Store, table: str, catalog: list) -> bool:
    """Whether the table holds no row: one row read by its key, not a count (an append into an empty table needs
    no review of existing keys). A row added meanwhile by another import is met as a refused key, then staged."""
    rows = store.read_rows(table, catalog[:1], limit=1)
    try:
        return next(iter(rows), None) is None
    finally:
        getattr(rows, "close", lambda: None)()


class _Redo(Exception):
    """A direct import met a problem: its transaction is rolled back, and the import runs again, staged."""


def _run(store: Store, job: Job, path: Path, report: Report, limits: ReadLimits, on_commit: OnCommit | None,
         split: Split | None, columns: list, started: float, cpu_seconds: float,
         sink: Callable[[str, str, str, str], None] | None, direct: bool) -> Job:
    fmt = formats.get(job.format)
    with fmt.open(path, reading_options({"table": job.table, "options": job.options}), limits) as book:
        if hasattr(book, "on_progress"):
            total = _to_inflate(book, job.sheet)
            book.on_progress = functools.partial(_progress, job, report, started, cpu_seconds, total)
        sheet = job.sheet or (book.sheet_names[0] if book.sheet_names else "")
        header, first_rows, blocks, previous = _start(book, job.sheet)
        if header is None:
            raise Invalid(f"sheet {sheet!r} is empty: the first row must name the columns, the rows below hold "
                          "the data", errors=[], error_total=0)
        problems = Problems(sink=sink)
        job.warnings = []
        plan = read_header(header[1], columns, sheet, problems, job.warnings, job.extra_columns)
        sheets = Sheets(book, sheet, header[1])
        if job.state != State.INSERTING:
            move(job, State.INSERTING)
            report(job)
        if not plan.columns:
            raise problems.error("the header row does not match the table", job.table)
        if direct and problems.total:
            raise _Redo
        counters = {"rows_read": 0}
        try:
            with _staging(store, job, plan, direct) as staged:
                compiled = encode_spec(plan, staged.dialect.flags) if staged.copy_text else None
                blocky = hasattr(book, "row_blocks")
                encode = staged.encoder() if blocky and (split is not None or compiled is not None) else None
                if encode is None:
                    def rows() -> Iterator[tuple[int, list[Any]]]:
                        for index, name, rows in sheets.rows(first_rows, blocks, previous):
                            if getattr(book, "exact_width", False):
                                rows = _same_width(rows, len(header[1]), name, problems)
                            checked = convert_rows(rows, plan, name, problems, counters, numbered=True)
                            if direct:
                                checked = _stopping(checked, problems)
                            if index == 0:  # the first sheet's positions are its row numbers: no step per row
                                yield from checked
                            else:
                                yield from ((position(index, number), row) for number, row in checked)

                    staged.load(_reported(rows(), job, counters, report))
                else:
                    read = functools.partial(_read_block, book, plan, encode, compiled, staged.numbered)
                    with contextlib.closing((split or _mapped)(read, sheets.blocks(first_rows, blocks, previous))) as chunks:
                        staged.load_encoded(_merged(chunks, problems, job, counters, report, direct))
                job.rows_read = counters["rows_read"]
                job.warnings += sheets.left_out()
                if job.rows_read == 0 and not problems.total:
                    raise Invalid(f"sheet {sheet!r} has a header but no rows", errors=[], error_total=0)
                if not direct:
                    check_keys(staged, plan, sheets, job.table, problems)
                if problems.total:
                    if direct:
                        raise _Redo
                    raise problems.error(f"{sheets.described()} does not fit table {job.table!r}", job.table)
                if job.dry_run:
                    job.preview = preview(staged, plan, sheets)
                else:
                    job.rows_inserted = staged.apply()
                    if on_commit:
                        on_commit(staged.conn, job.rows_inserted)  # inside the transaction, right before COMMIT
                    staged.commit()
        except RowRefused as exc:
            if direct:
                raise _Redo from exc
            raise refused_row(exc, plan, sheets, job.table) from exc
        finally:
            job.rows_read = counters["rows_read"]
    return job


def _staging(store: Store, job: Job, plan: Plan, direct: bool) -> ContextManager[Any]:
    if direct:
        return store.staging(job.table, plan.columns, job.mode, direct=True)  # type: ignore[call-arg]
    return store.staging(job.table, plan.columns, job.mode)


def _mapped(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    """``map`` in this process, as a generator (which ``contextlib.closing`` can close)."""
    yield from map(fn, items)


def _stopping(rows: Iterator[tuple[int, list[Any]]], problems: Problems) -> Iterator[tuple[int, list[Any]]]:
    """A direct import's rows, up to the first problem: :class:`_Redo` there (the rows go no further)."""
    for row in rows:
        if problems.total:
            raise _Redo
        yield row
    if problems.total:
        raise _Redo


#: A staged row's position: its sheet's index (0 for the first) times this, plus its row number. One integer that
#: sorts in reading order across continuation sheets; a sheet has at most 1,048,576 rows (2^20).
SHEET_STRIDE = 1 << 21


def position(index: int, row: int) -> int:
    return index * SHEET_STRIDE + row


def _normal(header: list[Any]) -> list[str]:
    return [str(v).strip().lower() if v is not None else "" for v in header]


class Sheets:
    """The sheet being imported and the sheets that continue it: ``name (2)``, ``name (3)``, ... in a row, each
    starting with the same header (the writer's continuation sheets, :func:`..formats.xlsx.write_xlsx`). The
    continuation's header is checked when it is reached; a sheet named like one with another header ends the run
    and is left out like any other sheet."""

    def __init__(self, book: Workbook, first: str, header: list[Any]):
        self.book, self.header = book, _normal(header)
        self.names = [first]
        self.candidates = continuations(book.sheet_names, first)

    def name(self, index: int) -> str:
        return self.names[index] if index < len(self.names) else f"sheet {index + 1}"

    def at(self, pos: int) -> tuple[str, int]:
        """The sheet and row number of a staged position."""
        return self.name(pos // SHEET_STRIDE), pos % SHEET_STRIDE

    def _following(self) -> Iterator[tuple[int, str, Iterable, Iterator[bytes], int]]:
        """Each continuation sheet whose header matches: (index, name, rows after the header in its first block,
        the blocks left, the number of the first block's last row)."""
        for name in self.candidates:
            header, first_rows, blocks, previous = _start(self.book, name)
            if header is None or _normal(header[1]) != self.header:
                return
            self.names.append(name)
            yield len(self.names) - 1, name, first_rows, blocks, previous

    def rows(self, first_rows: list, blocks: Iterator[bytes], previous: int
             ) -> Iterator[tuple[int, str, Iterator[tuple[int, list[Any]]]]]:
        yield 0, self.names[0], itertools.chain(first_rows, _rest(self.book, blocks, previous))
        for index, name, rows, rest, last in self._following():
            yield index, name, itertools.chain(rows, _rest(self.book, rest, last))

    def blocks(self, first_rows: Iterable, blocks: Iterator[bytes], previous: int
               ) -> Iterator[tuple[bytes | list, int, int, str]]:
        """Items for :func:`_read_block`: (a block or rows already read, the row before it, sheet index, name)."""
        yield list(first_rows), 0, 0, self.names[0]
        for block, before in _numbered(blocks, previous):
            yield block, before, 0, self.names[0]
        for index, name, rows, rest, last in self._following():
            yield list(rows), 0, index, name
            for block, before in _numbered(rest, last):
                yield block, before, index, name

    def left_out(self) -> list[dict[str, Any]]:
        """A warning naming the worksheets that were not imported, if any."""
        others = [n for n in self.book.sheet_names if n not in self.names]
        if not others:
            return []
        listed = ", ".join(repr(n) for n in others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
        return [{"sheet": others[0], "cell": "A1", "column": None, "value": None, "kind": "sheet",
                 "message": f"only {self.described()} was imported; the workbook's other sheet(s) were left out: "
                            f"{listed} (choose one with sheet=NAME)"}]

    def described(self) -> str:
        if len(self.names) == 1:
            return f"sheet {self.names[0]!r}"
        return f"sheet {self.names[0]!r} with its continuation(s) {', '.join(repr(n) for n in self.names[1:])}"


def continuations(names: list[str], first: str) -> list[str]:
    """The sheets named as continuations of ``first``: ``first (2)``, ``first (3)``, ... consecutive from 2 (the
    writer shortens a long name to make room for the suffix, so a prefix of ``first`` counts too)."""
    by_number: dict[int, str] = {}
    for name in names:
        found = re.fullmatch(r"(.*) \((\d{1,7})\)", name)
        if found and found.group(1) and first.startswith(found.group(1)) and name != first:
            by_number.setdefault(int(found.group(2)), name)
    found_names = []
    for number in itertools.count(2):
        if number not in by_number:
            return found_names
        found_names.append(by_number[number])
    return found_names


def _to_inflate(book: Any, sheet: str | None) -> int:
    """The bytes of XML an import of ``sheet`` inflates, about: its shared strings and the sheet with its
    continuations (declared sizes; for the job's progress, not a bound)."""
    first = sheet or (book.sheet_names[0] if book.sheet_names else "")
    names = {first, *continuations(book.sheet_names, first)}
    parts = [part for name, part in book.sheets if name in names]
    if book.shared_strings_path:
        parts.append(book.shared_strings_path)
    found = (book.package.find(part) for part in parts)
    return sum(info.file_size for info in found if info is not None)


def _progress(job: Job, report: Report, started: float, cpu_seconds: float, total: int, inflated: int) -> None:
    """Called by the reader about every megabyte of XML, rows or none (a sheet of empty rows, a flood of
    shared strings): the CPU bound is checked, the share of the XML read becomes the job's ``progress``, and
    ``report`` (which saves progress and stops a cancelled job) runs although no row has come."""
    if total:
        job.progress = round(min(0.99, inflated / total), 3)
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


def _start(book: Any, sheet: str | None) -> tuple[tuple[int, list[Any]] | None, Iterable, Iterator[bytes], int]:
    """The header of ``sheet``, the rows after it, and for a book read in blocks (a workbook) the blocks left and
    the number of the row before them; a book read row by row (CSV) has no blocks."""
    if hasattr(book, "row_blocks"):
        blocks = book.row_blocks(sheet)
        header, first_rows, previous = _header(book, blocks)
        return header, first_rows, blocks, previous
    rows = book.rows(sheet)
    return next(rows, None), rows, iter(()), 0


def _rest(book: Any, blocks: Iterator[bytes], previous: int) -> Iterator[tuple[int, list[Any]]]:
    return book.rows_of(blocks, previous) if hasattr(book, "rows_of") else iter(())


def _same_width(rows: Iterable[tuple[int, list[Any]]], width: int, sheet: str, problems: Problems
                ) -> Iterator[tuple[int, list[Any]]]:
    """Rows of a format where every row has the header's fields (CSV): a row with more or fewer is a problem at
    its first field too many or too few (a delimiter too many, a quote not closed)."""
    for number, values in rows:
        if len(values) != width:
            at = f"{column_letter(min(len(values), width))}{number}"
            problems.add(sheet, at, None, None, f"row {number} has {len(values)} field(s) and the header has {width}: "
                         "look for a delimiter too many or too few, or a quote that is not closed", kind="cell")
        yield number, values


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

    numbers: list[int]  # the position (:func:`position`) of each encoded row
    data: Any
    rows_read: int
    problems: Problems


def _read_block(book: Workbook, plan: Plan, encode: Callable[[list], Any], compiled: tuple | None, numbered: bool,
                item: tuple[bytes | list, int, int, str]) -> Chunk:
    """A block (or the rows already read from it) -> a :class:`Chunk`; runs in either process of a split.
    ``compiled``: the compiled encoder's spec (:func:`.encode.spec`), for a store that takes COPY text."""
    block, previous, index, sheet = item
    rows = list(book.block_rows(block, previous)) if isinstance(block, bytes) else block
    problems = Problems(limit=sys.maxsize)  # all listed: the main process sinks them (Problems.merge)
    counters = {"rows_read": 0}
    base = position(index, 0)
    data = encode_lines(rows, plan, sheet, problems, counters, base, encode, numbered, compiled)
    return Chunk([base + number for number, _ in rows], data, counters["rows_read"], problems)


def _merged(chunks: Iterator[Chunk], problems: Problems, job: Job, counters: dict[str, int],
            report: Report, direct: bool = False) -> Iterator[tuple[list[int], Any]]:
    """The chunks' data for the store, their problems merged in sheet order, progress reported as they come; a
    direct import stops at the first problem (:class:`_Redo`)."""
    for chunk in chunks:
        problems.merge(chunk.problems)
        if direct and problems.total:
            raise _Redo
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


def check_keys(staged: Any, plan: Plan, sheets: Sheets, table: str, problems: Problems) -> None:
    """Keys repeated in the sheet (any mode) and keys already in the table (append), at their key cells. With a
    sink, every one of them is listed to it, in sheet order."""
    key = staged.keys[0] if staged.keys else None
    letter = _letters(plan).get(key) if key else None
    limit = MAX_SUNK if problems.sink else problems.room
    total, found = staged.duplicates(limit)
    for pos, values, first in found:
        sheet, row = sheets.at(pos)
        first_sheet, first_row = sheets.at(first)
        where = f"row {first_row}" if first_sheet == sheet else f"row {first_row} of sheet {first_sheet!r}"
        problems.add(sheet, f"{letter}{row}", key, values[0] if len(values) == 1 else str(values),
                     f"{_key_text(staged.keys, values)} appears more than once in the sheet (first in {where}): "
                     "keep one row per key", kind="duplicate")
    problems.count("duplicate", total, key)
    if staged.mode != "append":
        return
    total, found = staged.existing(limit)
    for pos, values in found:
        sheet, row = sheets.at(pos)
        problems.add(sheet, f"{letter}{row}", key, values[0] if len(values) == 1 else str(values),
                     f"{_key_text(staged.keys, values)} already exists in {table}: choose Update existing rows and add "
                     "new ones (mode upsert), or Replace the whole table (mode replace)", kind="existing")
    problems.count("existing", total, key)


#: Key problems listed to a sink at most (each is a line on disk for the marked-up workbook): past this many, the
#: rest are counted only.
MAX_SUNK = 1_000_000


def preview(staged: Any, plan: Plan, sheets: Sheets) -> dict[str, Any]:
    """What the import would do (counts), with a sample of the changed values at their cells."""
    found = staged.preview()
    letters = _letters(plan)
    for change in found["changes"]:
        sheet, row = sheets.at(change["row"])
        change.update(sheet=sheet, row=row, cell=f"{letters[change['column']]}{row}", old=_shown(change["old"]),
                      new=_shown(change["new"]))
    return found


def refused_row(exc: RowRefused, plan: Plan, sheets: Sheets, table: str) -> Invalid:
    """The database's refusal, at the sheet row (and column, when it said) it came from."""
    pos, column = exc.detail.get("row"), exc.detail.get("column")
    if pos is None:
        return Invalid(f"the database refused the rows ({exc.message}); nothing was written", errors=[], error_total=0)
    sheet, row = sheets.at(pos)
    letters = _letters(plan)
    letter = letters.get(column or "", column_letter(plan.sources[0]))
    problems = Problems()
    problems.add(sheet, f"{letter}{row}", column, None, f"the database refused row {row}: {exc.message}",
                 kind="refused")
    return problems.error(f"table {table!r} refused row {row} of sheet {sheet!r}", table)
