"""What every format's errors share (the shape of stream-zip's ``ZipError``): each format roots its own at a
subclass (``XlsxError``, ``CsvError``), and callers that take any format catch :class:`FormatError`."""

from __future__ import annotations

from typing import Any


class FormatError(Exception):
    """Root of the formats' errors: ``message`` (``str(error)``) is for a person; ``code`` is for a program and is
    named where a subclass is declared (``class NotAWorkbook(BadWorkbook, code="not_xlsx")``); ``detail`` holds
    structured extras, such as the cell (or the line) a problem is in."""

    code = "bad_file"

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


def _restore(cls: type[FormatError], args: tuple, state: dict[str, Any]) -> FormatError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error
