"""A table -> file chunks in any registered format: the export task the processing queue runs (every strategy runs
this code)."""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .. import formats
from ..config import ExportOptions
from ..formats.xlsx import WriteStats
from ..store import Column, Store


def export_workbook(store: Store, table: str, columns: Sequence[Column], limit: int | None,
                    options: ExportOptions, format: str = "xlsx", query: Mapping[str, str] | None = None
                    ) -> Generator[bytes, None, WriteStats]:
    """The file's byte chunks, read from ``store`` as they are written; returns what was written. ``query``: the
    format's own options (checked by the caller with :func:`check_options`)."""
    fmt = formats.get(format)
    stats = WriteStats()
    written = fmt.export_options(options, query or {})
    rows = store.read_rows(table, columns, limit)
    if fmt is formats.XLSX:
        written.update(sheet_name=table, stats=stats)
    else:
        rows = _counted(rows, stats)
    yield from fmt.write(rows, [c.name for c in columns], **written)
    return stats


def check_options(format: str, options: ExportOptions, query: Mapping[str, str]) -> None:
    """Raise ``ValueError`` naming a format option of ``query`` that is not valid."""
    formats.get(format).export_options(options, query)


def _counted(rows: Iterable[Any], stats: WriteStats) -> Iterator[Any]:
    for row in rows:
        stats.rows += 1
        yield row
