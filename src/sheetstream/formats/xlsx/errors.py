"""The format's own errors, rooted at :class:`XlsxError` (like stream-zip's ``ZipError``): callers catch one type."""

from __future__ import annotations

from typing import Any


class XlsxError(Exception):
    """Root of the format's errors: ``message`` (``str(error)``) is for a person; ``code`` is for a program and is
    named where a subclass is declared (``class NotAWorkbook(BadWorkbook, code="not_xlsx")``); ``detail``
    holds structured extras, such as the cell a problem is in."""

    code = "bad_workbook"

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
        # Keep the detail when the error crosses a process boundary (subclasses have other signatures).
        return _restore, (type(self), self.args, self.__dict__)


def _restore(cls: type[XlsxError], args: tuple, state: dict[str, Any]) -> XlsxError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class BadWorkbook(XlsxError):
    """The upload is not a workbook sheetstream can read, or a cell in it cannot be read."""


class NotAWorkbook(BadWorkbook, code="not_xlsx"):
    """Not an .xlsx workbook: another format, or damaged beyond reading."""


class WorkbookTooLarge(BadWorkbook, code="workbook_too_large"):
    """Over a size, ratio or count bound (zip bombs, huge shared-string tables)."""


class UnsafeXml(BadWorkbook, code="unsafe_xml"):
    """A part declares a DTD (entity expansion, external entities)."""


class BadCell(BadWorkbook, code="bad_cell"):
    """A cell that cannot be read (outside the grid, a value not of its type, too long); ``cell`` names it (A1)."""


class PasswordProtected(NotAWorkbook, code="password_protected"):
    """An encrypted (password-protected) workbook: it must be saved without the password first."""


class CellTooLong(XlsxError, code="cell_too_long"):
    """A text is longer than Excel's 32,767-character cell limit and ``long_text="error"``."""
