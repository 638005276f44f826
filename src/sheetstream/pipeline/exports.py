"""A table (its rows as an :class:`~.query.ExportQuery` chose them), or several, -> file chunks in any registered
format: the export tasks the processing queue runs (every strategy runs this code)."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Mapping
from typing import Any

from .. import formats
from ..config import ExportOptions, NamedQuery
from ..formats.xlsx import Sheet, WriteStats, write_workbook, write_xlsx
from ..store import Column, Store
from .query import ExportQuery


def export_workbook(store: Store, table: str, query: ExportQuery, options: ExportOptions, format: str = "xlsx",
                    format_options: Mapping[str, str] | None = None) -> Generator[bytes, None, WriteStats]:
    """The file's byte chunks, read from ``store`` as they are written; returns what was written.
    ``format_options``: the format's own (checked by the caller with :func:`check_options`)."""
    fmt = formats.get(format)
    stats = WriteStats()
    written = fmt.export_options(options, format_options or {})
    rows = store.read_rows(table, query.columns, query.limit, where=query.where, order=query.order)
    if fmt is formats.XLSX:
        written.update(sheet_name=table, stats=stats, number_formats=[number_format(c) for c in query.columns])
    else:
        rows = _counted(rows, stats)
    yield from fmt.write(rows, [c.name for c in query.columns], **written)
    return stats


def check_options(format: str, options: ExportOptions, format_options: Mapping[str, str]) -> None:
    """Raise ``ValueError`` naming a format option that is not valid."""
    formats.get(format).export_options(options, format_options)


def _counted(rows: Iterable[Any], stats: WriteStats) -> Iterator[Any]:
    for row in rows:
        stats.rows += 1
        yield row


def export_book(store: Store, sheets: list[tuple[str, ExportQuery]],
                options: ExportOptions) -> Generator[bytes, None, WriteStats]:
    """One workbook of several tables, a sheet each, in order; each table is read only when its sheet's turn
    comes (one query open at a time, memory flat). Returns what was written."""
    stats = WriteStats()
    yield from write_workbook(
        # read_rows is a generator: its query opens when the sheet asks for its first row, not here.
        [Sheet(table, [c.name for c in q.columns], store.read_rows(table, q.columns, q.limit, where=q.where,
                                                                   order=q.order),
               [number_format(c) for c in q.columns]) for table, q in sheets],
        stats=stats,
        **formats.XLSX.export_options(options, {}),  # the server's settings, as for a table's workbook
    )
    return stats


def export_named(store: Store, query: NamedQuery, values: dict[str, Any], columns: list[Column],
                 options: ExportOptions) -> Generator[bytes, None, WriteStats]:
    """A named query's rows (``values`` bound to its parameters) as a workbook, streamed; returns what was written."""
    stats = WriteStats()
    yield from write_xlsx(
        store.read_query(query.sql, query.params, values, columns),
        [c.name for c in columns],
        number_formats=[number_format(c) for c in columns],
        sheet_name=query.name,
        stats=stats,
        **formats.XLSX.export_options(options, {}),  # the server's settings, as for a table's workbook
    )
    return stats


#: Excel shows at most 30 decimal places.
_MAX_PLACES = 30


def number_format(column: Column) -> str | None:
    """The format code of ``column``'s numbers in a workbook: a numeric with its scale (``#,##0.00`` for
    numeric(12,2)), whole numbers as such (``0``: General would show a 12-digit id as 1.23457E+11); None (General)
    for floats and a numeric without a scale."""
    if column.kind == "integer":
        return "0"
    if column.kind == "numeric" and column.scale is not None:
        places = min(column.scale, _MAX_PLACES)
        return "#,##0" + ("." + "0" * places if places else "")
    return None
