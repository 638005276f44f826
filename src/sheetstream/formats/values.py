"""Values a format hands to the rest of sheetstream besides plain Python ones (str, int, Decimal, date...)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unreadable:
    """A cell the format could not read as text (invalid bytes for its encoding...); ``message`` says what and how
    to fix it. It stands in the cell's place so that the rest of the row is still read and the problem is reported
    at its cell, like any other value that does not fit its column."""

    message: str

    def __str__(self) -> str:
        return self.message
