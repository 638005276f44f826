"""The delimiter, told from the first records: the candidate that splits them into the same number of fields.

Not ``csv.Sniffer``: it also guesses the quote character, the escape and "skip initial space", and picks
letters or digits as delimiters on small samples. Here only ``,`` ``;`` tab and ``|`` are candidates and each is
tried with the real parser (so quoted delimiters and newlines do not count):

1. a candidate must split the records into more than one field (its most common count);
2. the best is the one whose most common count covers the most records (consistent, even with a ragged
   record or two), then the one with the most fields, then the first of ``,`` ``;`` tab ``|``.

A file with one column (no candidate splits it) reads with ``,``.
"""

from __future__ import annotations

import csv
import io
from collections import Counter

CANDIDATES = (",", ";", "\t", "|")
SAMPLE_BYTES = 64 << 10
SAMPLE_RECORDS = 100


def sniff(sample: str, complete: bool) -> str:
    """The delimiter of ``sample``, the start of the file as text; ``complete`` when it is the whole file
    (otherwise its last, possibly cut, record is left out)."""
    best: tuple[float, int, int] | None = None
    choice = ","
    for order, delimiter in enumerate(CANDIDATES):
        counts = _field_counts(sample, delimiter, complete)
        if not counts:
            continue
        fields, times = Counter(counts).most_common(1)[0]
        if fields < 2:
            continue
        score = (times / len(counts), fields, -order)
        if best is None or score > best:
            best, choice = score, delimiter
    return choice


def _field_counts(sample: str, delimiter: str, complete: bool) -> list[int]:
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter)
    counts: list[int] = []
    try:
        for record in reader:
            if record:
                counts.append(len(record))
            if len(counts) >= SAMPLE_RECORDS:
                return counts
    except csv.Error:
        pass  # the reader will say what is wrong, at its line
    return counts if complete else counts[:-1]
