"""A table (its rows as an :class:`~.query.ExportQuery` chose them) -> workbook chunks: the export task the processing queue runs (every strategy runs this code)."""

from __future__ import annotations

from collections.abc import Generator

from ..config import ExportOptions
from ..formats.xlsx import WriteStats, adaptive, deflater, write_xlsx
from ..store import Store
from .query import ExportQuery


def export_workbook(store: Store, table: str, query: ExportQuery,
                    options: ExportOptions) -> Generator[bytes, None, WriteStats]:
    """The workbook's byte chunks, read from ``store`` as they are written; returns what was written."""
    stats = WriteStats()
    rows = store.read_rows(table, query.columns, query.limit, where=query.where, order=query.order)
    yield from write_xlsx(
        rows,
        [c.name for c in query.columns],
        sheet_name=table,
        max_sheet_rows=options.max_sheet_rows,
        long_text=options.long_text,  # type: ignore[arg-type]
        compress=(adaptive if options.deflate_adaptive else deflater)(options.deflate, options.deflate_level),
        stats=stats,
    )
    return stats
