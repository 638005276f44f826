"""A block of sheet rows -> checked COPY text lines for the store, in one step: the compiled encoder
(``_encode.c``) where it is built, the Python path (:func:`.validate.convert_rows`, then the store's own text
encoder) where it is not, and for every row the compiled one leaves (a cell it does not read, or one with a
problem). Both give the same bytes and the same problems (``tests/pipeline/test_encode.py``).

Why: checking each cell in Python, then having psycopg encode it again, was 41% of an import's worker samples
(validation 24%, psycopg's row encoding 17.5%).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .validate import Plan, Problems, convert_rows

try:  # optional: without it, every row takes the Python path (same bytes)
    from ._encode import encode as _compiled
except ImportError:  # pragma: no cover
    _compiled = None

#: The column kinds the compiled encoder reads (its ``kind`` codes); a plan with any other (time) takes Python.
KINDS = {"integer": 0, "float": 1, "numeric": 2, "text": 3, "date": 4, "timestamp": 5, "boolean": 6}
FLAG = 7  # a boolean written 1 or 0: MySQL's LOAD DATA, which reads the same text format otherwise

Rows = Iterable[tuple[int, list[Any]]]
#: The store's text encoder: ``[(position, typed values)]`` -> bytes (``Staged.encoder()``).
Encoder = Callable[[list[tuple[int, Sequence[Any]]]], bytes]


def spec(plan: Plan, flags: bool = False) -> tuple | None:
    """The compiled encoder's description of ``plan``, or None where it cannot encode it (not built, or a column
    of a kind it does not read). ``flags``: booleans as 1 or 0 (MySQL), not True or False (PostgreSQL)."""
    if _compiled is None or any(c.kind not in KINDS for c in plan.columns):
        return None
    none = -1
    return tuple((source, FLAG if flags and c.kind == "boolean" else KINDS[c.kind], c.nullable,
                  none if c.length is None else c.length,
                  none if c.precision is None else c.precision, none if c.scale is None else c.scale)
                 for source, c in zip(plan.sources, plan.columns))


def python_lines(rows: Rows, plan: Plan, sheet: str, problems: Problems, counters: dict[str, int], base: int,
                 encode: Encoder) -> bytes:
    """The reference: each row checked by :func:`.convert_rows` (a cell with a problem is None), then encoded by
    the store's encoder with its position, ``base`` + its row number."""
    checked = [(base + number, row) for number, row in convert_rows(rows, plan, sheet, problems, counters,
                                                                     numbered=True)]
    return encode(checked)


def lines(rows: Rows, plan: Plan, sheet: str, problems: Problems, counters: dict[str, int], base: int,
          encode: Encoder, numbered: bool, compiled: tuple | None) -> bytes:
    """The rows as COPY text lines, checked: by the compiled encoder with ``compiled`` (:func:`spec`), each row
    it leaves by :func:`python_lines`; ``numbered``: whether ``encode`` writes the position last (staging)."""
    if compiled is None or _compiled is None:
        return python_lines(rows, plan, sheet, problems, counters, base, encode)
    rows = rows if isinstance(rows, list) else list(rows)
    counters["rows_read"] += len(rows)
    uncounted = {"rows_read": 0}

    def fallback(number: int, values: list[Any]) -> bytes:
        return python_lines([(number, values)], plan, sheet, problems, uncounted, base, encode)

    return _compiled(rows, compiled, base if numbered else -1, fallback)
