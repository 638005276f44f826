"""The CSV format's errors, rooted at :class:`CsvError` (the same shape as ``formats.xlsx``'s ``XlsxError``)."""

from __future__ import annotations

from typing import Any


class CsvError(Exception):
    """Root of the format's errors: ``message`` (``str(error)``) is for a person; ``code`` is for a program and is
    named where a subclass is declared; ``detail`` holds structured extras: ``line``, the record (spreadsheet row)
    the problem is in, wherever there is one."""

    code = "bad_csv"

    def __init_subclass__(cls, code: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.code = code or cls.code

    def __init__(self, message: str, **detail: Any):
        super().__init__(message)
        self.detail = detail

    @property
    def message(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple:
        # Keep the detail when the error crosses a process boundary.
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls: type[CsvError], args: tuple, state: dict[str, Any]) -> CsvError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class NotCsv(CsvError, code="not_csv"):
    """Not a text file: binary data (NUL bytes at the start), a ZIP archive, an encoding that is refused."""


class CsvTooLarge(CsvError, code="csv_too_large"):
    """Over a bound of :class:`~sheetstream.formats.csv.CsvLimits`: a record's bytes, its fields, the file's bytes."""
