"""CSV both ways: :func:`write_csv` turns rows into byte chunks (RFC 4180, UTF-8), :func:`open_csv` reads a file
back as a one-sheet book of records, bounded by :class:`CsvLimits`.

The text forms the writer gives each type are in :mod:`.writer`; the formula-injection neutralising (on by
default) and its inverse on reading in :mod:`.injection`; how the encoding and the delimiter are told in
:mod:`.encoding` and :mod:`.dialect`. Every error raised on purpose is a :class:`CsvError`.
"""

from .encoding import looks_like_csv
from .errors import CsvError, CsvTooLarge, NotCsv
from .reader import CsvBook, CsvLimits, open_csv
from .writer import write_csv

MEDIA_TYPE = "text/csv"
EXTENSIONS = (".csv", ".tsv", ".txt")

__all__ = ["EXTENSIONS", "MEDIA_TYPE", "CsvBook", "CsvError", "CsvLimits", "CsvTooLarge", "NotCsv", "looks_like_csv",
           "open_csv", "write_csv"]
