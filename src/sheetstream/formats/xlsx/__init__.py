"""Streaming xlsx: :func:`write_xlsx` turns rows into byte chunks, :func:`open_workbook` reads them back.

Every error raised on purpose is an :class:`XlsxError`.
"""

from .cells import MAX_CELL_CHARS, MAX_SHEET_COLUMNS, MAX_SHEET_ROWS
from .errors import (
    BadCell,
    BadWorkbook,
    CellTooLong,
    NotAWorkbook,
    PasswordProtected,
    UnsafeXml,
    WorkbookTooLarge,
    XlsxError,
)
from .parts import MEDIA_TYPE
from .reader import CellError, ReadLimits, Workbook, last_row, open_workbook
from .writer import DEFLATERS, Adaptive, Sheet, WriteStats, adaptive, deflater, write_workbook, write_xlsx

__all__ = [
    "DEFLATERS", "MAX_CELL_CHARS", "MAX_SHEET_COLUMNS", "MAX_SHEET_ROWS", "MEDIA_TYPE", "BadCell", "BadWorkbook",
    "CellError", "PasswordProtected",
    "CellTooLong", "NotAWorkbook", "ReadLimits", "UnsafeXml", "WorkbookTooLarge", "WriteStats", "XlsxError",
    "Adaptive", "Sheet", "Workbook", "adaptive", "deflater", "last_row", "open_workbook", "write_workbook", "write_xlsx",
]
