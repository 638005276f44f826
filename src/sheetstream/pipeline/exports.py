"""A table -> workbook chunks: the export task the processing queue runs (every strategy runs this code)."""

from __future__ import annotations

from collections.abc import Generator, Sequence

from ..config import ExportOptions
from ..formats.xlsx import WriteStats, adaptive, deflater, write_xlsx
from ..store import Column, Store


def export_workbook(store: Store, table: str, columns: Sequence[Column], limit: int | None,
                    options: ExportOptions) -> Generator[bytes, None, WriteStats]:
    """The workbook's byte chunks, read from ``store`` as they are written; returns what was written."""
    stats = WriteStats()
    yield from write_xlsx(
        store.read_rows(table, columns, limit),
        [c.name for c in columns],
        sheet_name=table,
        max_sheet_rows=options.max_sheet_rows,
        long_text=options.long_text,  # type: ignore[arg-type]
        compress=(adaptive if options.deflate_adaptive else deflater)(options.deflate, options.deflate_level),
        stats=stats,
    )
    return stats
