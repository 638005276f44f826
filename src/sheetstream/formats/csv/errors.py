"""The CSV format's errors, rooted at :class:`CsvError` (the same shape as ``formats.xlsx``'s ``XlsxError``)."""

from __future__ import annotations

from ..errors import FormatError


class CsvError(FormatError, code="bad_csv"):
    """Root of the CSV format's errors; ``detail`` holds ``line``, the record (spreadsheet row) the problem is in,
    wherever there is one."""


class NotCsv(CsvError, code="not_csv"):
    """Not a text file: binary data (NUL bytes at the start), a ZIP archive, an encoding that is refused."""


class CsvTooLarge(CsvError, code="csv_too_large"):
    """Over a bound of :class:`~sheetstream.formats.csv.CsvLimits`: a record's bytes, its fields, the file's bytes."""
