"""Streaming xlsx: :func:`write_xlsx` turns rows into byte chunks, :func:`open_workbook` reads them back."""

from .parts import MEDIA_TYPE
from .reader import BadWorkbook, CellError, ReadLimits, open_workbook
from .writer import CellTooLong, WriteStats, deflater, write_xlsx

__all__ = ["MEDIA_TYPE", "BadWorkbook", "CellError", "CellTooLong", "ReadLimits", "WriteStats", "deflater", "open_workbook", "write_xlsx"]
