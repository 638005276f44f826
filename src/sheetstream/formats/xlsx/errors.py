"""The format's own errors, rooted at :class:`XlsxError` (like stream-zip's ``ZipError``): callers catch one type."""

from __future__ import annotations

from ..errors import FormatError


class XlsxError(FormatError, code="bad_workbook"):
    """Root of the workbook format's errors (callers of this format alone catch this one)."""


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
