"""Streaming xlsx: :func:`write_xlsx` turns rows into byte chunks."""

from .writer import CellTooLong, WriteStats, deflater, write_xlsx

__all__ = ["CellTooLong", "WriteStats", "deflater", "write_xlsx"]
