"""The compiled CSV reader and writer (``formats/csv/_fast.c``) against their Python references: every reading in
these tests goes through :func:`read_both`, which reads with both and insists on the same records and the same
error (class, message, detail), so that every input of the reader's tests is a differential case too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sheetstream.formats.csv import CsvBook, open_csv, reader
from sheetstream.formats.values import Unreadable


def outcome(book: CsvBook, compiled: bool) -> tuple[list, Exception | None]:
    """(the records read, as far as they go; the error that stopped them, or None)."""
    records: list = []
    try:
        for number, values in book.rows(compiled=compiled):
            records.append((number, list(values)))
    except Exception as error:  # noqa: BLE001 - compared below, whatever it is
        return records, error
    return records, None


def described(error: Exception | None) -> Any:
    return None if error is None else (type(error), str(error), getattr(error, "detail", None))


def read_both(path: Path, chunk: int | None = None, each: Callable[[CsvBook], Any] | None = None,
              **options: Any) -> list:
    """The records of ``path`` (``open_csv(path, **options)``), read by the compiled reader and by the Python loop
    (in chunks of ``chunk`` bytes when given, else the reader's own), which must agree; the error raised by both,
    if any, is raised."""
    saved = reader._CHUNK
    if chunk is not None:
        reader._CHUNK = chunk
    try:
        with open_csv(path, **options) as book:
            if each is not None:
                each(book)
            assert reader._fast is not None, "the compiled reader is not built (setup.py: a C compiler?)"
            fast, slow = outcome(book, True), outcome(book, False)
    finally:
        reader._CHUNK = saved
    assert fast[0] == slow[0], "the compiled reader's records differ from the Python loop's"
    assert described(fast[1]) == described(slow[1])
    for (_, a), (_, b) in zip(fast[0], slow[0]):
        assert [type(v) for v in a] == [type(v) for v in b]
        assert [v.message for v in a if isinstance(v, Unreadable)] == [v.message for v in b if isinstance(v, Unreadable)]
    if fast[1] is not None:
        raise fast[1]
    return fast[0]
