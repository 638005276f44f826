"""The CPU-heavy tasks the processing queue runs: module-level functions with picklable arguments, so that the
inline, thread and process strategies all run exactly this code."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import Column, Store
from .errors import Cancelled
from .importer import run_import
from .jobs import Job, JobBoard
from .xlsx import ReadLimits, WriteStats, deflater, write_xlsx


@dataclass(frozen=True)
class ExportOptions:
    deflate: str = "isal"
    deflate_level: int = 1
    max_sheet_rows: int = 1_048_576
    long_text: str = "truncate"


def export_chunks(store: Store, table: str, columns: Sequence[Column], limit: int | None,
                  options: ExportOptions) -> Iterator[bytes | dict[str, Any]]:
    """The workbook's byte chunks, then one summary dict (``rows``, ``sheets``, ``truncated_cells``)."""
    stats = WriteStats()
    yield from write_xlsx(
        store.read_rows(table, columns, limit),
        [c.name for c in columns],
        sheet_name=table,
        max_sheet_rows=options.max_sheet_rows,
        long_text=options.long_text,  # type: ignore[arg-type]
        compress=deflater(options.deflate, options.deflate_level),
        stats=stats,
    )
    yield {"rows": stats.rows, "sheets": len(stats.sheets), "truncated_cells": stats.truncated_cells}


def import_file(store: Store, job: Job, path: Path, limits: ReadLimits = ReadLimits()) -> Job:
    """Import ``path`` as ``job`` says; progress goes to the job board, and a cancel request stops it."""
    board = JobBoard(store)

    def report(current: Job) -> None:
        if board.save(current) and board.cancel_requested(current.id):
            raise Cancelled("the import was cancelled; its transaction was rolled back and nothing was written")

    return run_import(store, job, path, report, limits)
