"""An import's problems handed back in the workbook itself: the kept upload, marked up (:mod:`..formats.xlsx.markup`).

Every problem an import finds goes to a file beside its upload as it is found (:class:`MarkFile`), one JSON line
each, so that the marked-up workbook marks all of them, 200,000 as well as 10, while the job's record lists the
first 100 and the groups. The file holds runs in sheet order: cell problems as the rows are read, then the keys
repeated in the sheet, then the keys that already exist; :func:`sheet_marks` merges the runs back into (row,
column) order, a sheet at a time, reading the file as a stream.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from .. import formats
from ..config import ExportOptions
from ..formats.xlsx import deflater, write_xlsx
from ..formats.xlsx.markup import Mark, mark_up

#: Problems written to the file at most (about 100 bytes each on disk); past this many they are counted only.
MAX_MARKS = 1_000_000
#: Which run a kind of problem is written in (each run is in sheet order).
_RUNS = {"duplicate": 1, "existing": 2}


def marks_path(upload: Path) -> Path:
    """Where the problems of the import of ``upload`` are written, and kept beside it."""
    return upload.with_name(upload.name + ".marks")


class MarkFile:
    """Writes every problem as it is found: the sink of :class:`~.validate.Problems`."""

    def __init__(self, path: Path, limit: int = MAX_MARKS):
        self.path, self.limit, self.count = path, limit, 0
        self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close(), after the import

    def __call__(self, kind: str, sheet: str, cell: str, message: str) -> None:
        if self.count < self.limit:
            self.count += 1
            self.file.write(json.dumps([_RUNS.get(kind, 0), sheet, cell, message], ensure_ascii=False) + "\n")

    def close(self) -> None:
        self.file.close()


def _run(path: Path, run: int, sheet: str) -> Iterator[tuple[tuple[int, int], Mark]]:
    prefix = f"[{run},"  # each line starts with its run: the others are skipped without parsing
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith(prefix):
                continue
            found_run, found_sheet, cell, message = json.loads(line)
            if found_run == run and found_sheet == sheet:
                mark = Mark(sheet=sheet, cell=cell, message=message)
                if mark.position:
                    yield mark.position, mark


def sheet_marks(path: Path, sheet: str, extra: list[Mark] = ()) -> Iterator[Mark]:  # type: ignore[assignment]
    """The problems of ``sheet`` in the file at ``path``, and ``extra`` marks (few), in (row, column) order."""
    listed = sorted(((m.position, m) for m in extra if m.sheet == sheet and m.position), key=lambda pm: pm[0])
    runs = [_run(path, run, sheet) for run in range(len(_RUNS) + 1)] if path.exists() else []
    for _, mark in heapq.merge(*runs, listed, key=lambda pm: pm[0]):
        yield mark


def sheets_in(path: Path) -> set[str]:
    found: set[str] = set()
    if path.exists():
        with open(path, encoding="utf-8") as f:
            for line in f:
                found.add(json.loads(line)[1])
    return found


def marks_of(job: dict[str, Any]) -> list[Mark]:
    """A job's listed problems and its warnings (as the API shows them) as marks."""
    def mark(entry: dict[str, Any], level: str) -> Mark:
        return Mark(sheet=entry.get("sheet") or "", cell=entry.get("cell") or "", message=entry.get("message") or "",
                    column=entry.get("column"), value=entry.get("value"), level=level)

    return [mark(e, "error") for e in job.get("errors") or []] + [mark(w, "warning") for w in job.get("warnings") or []]


def marked_workbook(path: str, job: dict[str, Any], options: ExportOptions) -> Generator[bytes, None, int]:
    """The workbook at ``path`` with ``job``'s problems marked (all of them, from the file beside it when there
    is one), in chunks; returns the bytes sent. A task for the processing queue, like an export. An upload in
    another format (CSV) comes back as a workbook of its rows, marked the same way."""
    fmt = formats.get(job.get("format") or "xlsx")
    if fmt is not formats.XLSX:
        copy = Path(path).with_name(Path(path).name + ".copy.xlsx")
        try:
            _as_workbook(fmt, Path(path), copy, job)
            return (yield from _marked(str(copy), marks_path(Path(path)), job, options))
        finally:
            copy.unlink(missing_ok=True)
    return (yield from _marked(path, marks_path(Path(path)), job, options))


def _as_workbook(fmt: formats.Format, source: Path, target: Path, job: dict[str, Any]) -> None:
    """The rows of ``source`` (read as the import read them) written to a workbook, each at its own row number, so
    that the problems' cells are where they were; values as they were read (texts)."""
    with fmt.open(source, reading_options(job), None) as book, open(target, "wb") as out:
        sheet = book.sheet_names[0]
        rows = book.rows(sheet)
        first = next(rows, None)
        header = [("" if v is None else str(v)) for v in first[1]] if first else []

        def placed() -> Iterator[list[Any]]:
            at = first[0] if first else 1
            for number, values in rows:
                while at + 1 < number:  # rows the reader skipped (blank lines): kept blank, so cells stay put
                    at += 1
                    yield []
                at = number
                yield [v if v is None or isinstance(v, str) else str(v) for v in values]

        for chunk in write_xlsx(placed(), header, sheet_name=sheet):
            out.write(chunk)


def reading_options(job: dict[str, Any]) -> dict[str, Any]:
    """The options a job's file is opened with: its own, and its table's name for a format without sheet names."""
    return {"sheet_name": job.get("table") or "Sheet1", **(job.get("options") or {})}


def _marked(path: str, every: Path, job: dict[str, Any], options: ExportOptions) -> Generator[bytes, None, int]:
    marks = marks_of(job)
    unlisted = max(0, int(job.get("error_total") or 0) - len(job.get("errors") or []))
    if every.exists():
        warnings = [m for m in marks if m.level == "warning"]
        sheets = sheets_in(every) | {m.sheet for m in warnings if m.position}
        chunks = mark_up(path, marks, unlisted, compress=deflater(options.deflate, options.deflate_level),
                         cells=lambda sheet: sheet_marks(every, sheet, warnings), marked=sheets,
                         groups=job.get("problem_groups") or [])
    else:
        chunks = mark_up(path, marks, unlisted, compress=deflater(options.deflate, options.deflate_level),
                         groups=job.get("problem_groups") or [])
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        yield chunk
    return sent
