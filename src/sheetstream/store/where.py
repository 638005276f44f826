"""Which rows and in what order: typed conditions and sort keys, rendered as SQL templates for either store.

A condition holds a catalog :class:`~.base.Column` and Python values already parsed by the column's type (the
grammar that makes them from a query string is :mod:`sheetstream.pipeline.query`). Rendering never puts a value
into SQL: a template has ``{0}`` for the column's quoted name and ``{1}``, ``{2}``... for bound parameters, so
the same template fills with ``str.format`` (SQLite: ``?``) and with :class:`psycopg.sql.SQL` (``%s``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import Column

#: Comparison operators: PostgREST's names -> SQL.
COMPARISONS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
#: Every operator a condition may have.
OPERATORS = (*COMPARISONS, "like", "ilike", "in", "is")


@dataclass(frozen=True)
class Condition:
    """``column op value``, or its negation. ``value``: a typed value; a tuple of them for ``in``; None, True or
    False for ``is``; the pattern text (``*`` for any characters) for ``like`` and ``ilike``."""

    column: Column
    op: str
    value: Any
    negated: bool = False


@dataclass(frozen=True)
class Sort:
    """One sort key. ``nulls``: "first" or "last"; None sorts as PostgreSQL does (last ascending, first
    descending) on both stores."""

    column: Column
    descending: bool = False
    nulls: str | None = None


def predicate(c: Condition, dialect: str) -> tuple[str, list[Any]]:
    """``c`` as a template (``{0}``: the column, ``{1}``...: parameters) and the values to bind, for ``dialect``
    ``sqlite``, ``postgres`` or ``mysql``."""
    if c.op in COMPARISONS:
        template, values = f"{{0}} {COMPARISONS[c.op]} {{1}}", [c.value]
    elif c.op == "in":
        if not c.value:
            template, values = "1 = 0", []  # in.() matches nothing (as in PostgREST)
        else:
            slots = ", ".join(f"{{{i}}}" for i in range(1, len(c.value) + 1))
            template, values = f"{{0}} IN ({slots})", list(c.value)
    elif c.op == "is":
        template, values = "{0} IS " + {None: "NULL", True: "TRUE", False: "FALSE"}[c.value], []
    elif c.op == "like" and dialect == "sqlite":
        # SQLite's LIKE ignores ASCII case; GLOB keeps it, and its wildcard is the grammar's own "*".
        template, values = "{0} GLOB {1}", [_glob(c.value)]
    elif c.op in ("like", "ilike") and dialect == "mysql":
        # MySQL's escape is the backslash by default (a '\' literal would itself need escaping there); the tables
        # it serves compare texts as their collation says, so ilike folds both sides.
        column = "LOWER({0})" if c.op == "ilike" else "{0}"
        pattern = "LOWER({1})" if c.op == "ilike" else "{1}"
        template, values = f"{column} LIKE {pattern}", [_like(c.value)]
    elif c.op in ("like", "ilike"):
        operator = "ILIKE" if c.op == "ilike" and dialect == "postgres" else "LIKE"  # SQLite's LIKE folds case
        template, values = f"{{0}} {operator} {{1}} ESCAPE '\\'", [_like(c.value)]
    else:
        raise ValueError(f"unknown operator {c.op!r}")
    return (f"NOT ({template})" if c.negated else template), values


def ordering(s: Sort, dialect: str = "") -> str:
    """``s`` as a template with ``{0}`` for the column; nulls placed as PostgreSQL places them by default (MySQL has
    no NULLS FIRST/LAST: a sort on ``{0} IS NULL`` first does the same)."""
    nulls = s.nulls or ("first" if s.descending else "last")
    direction = "DESC" if s.descending else "ASC"
    if dialect == "mysql":
        return f"({{0}} IS NULL) {'DESC' if nulls == 'first' else 'ASC'}, {{0}} {direction}"
    return f"{{0}} {direction} NULLS {nulls.upper()}"


def tie_break(order: Sequence[Sort], keys: Sequence[Column]) -> list[Sort]:
    """``order`` followed by the primary key columns it lacks, so that the same query gives the same rows in the
    same order every time."""
    named = {s.column.name for s in order}
    return [*order, *(Sort(k) for k in keys if k.name not in named)] if order else []


def _like(pattern: str) -> str:
    r"""The grammar's pattern (``*``: any characters) as a LIKE pattern with ``\`` as its escape: ``%``, ``_``
    and ``\`` in the text match themselves."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def _glob(pattern: str) -> str:
    """The grammar's pattern as a GLOB pattern: ``?`` and ``[`` match themselves, ``*`` stays the wildcard."""
    return "".join("[" + ch + "]" if ch in "?[" else ch for ch in pattern)
