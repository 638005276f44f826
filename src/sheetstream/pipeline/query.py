"""An export's query string -> which columns, which rows, in what order: PostgREST's grammar, typed by the catalog.

    ?status=eq.paid&created_at=gte.2025-10-01&amount=lt.100&order=created_at.desc,id&select=id,customer

Every other parameter is a filter ``column=[not.]operator.value``; filters on several columns (or several on
one) must all hold. Operators: eq, neq, lt, lte, gt, gte, ``in.(a,b)``, like and ilike (``*`` for any
characters), ``is.null``, ``is.true``, ``is.false``. Values are parsed by the column's type here (the import's
converters), so the store binds typed values and never sees request text as SQL; anything that does not parse
is a :class:`~sheetstream.errors.BadRequest` naming the parameter. docs/exports.md documents it for people.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import BadRequest
from ..store import Column, select_columns
from ..store.where import COMPARISONS, OPERATORS, Condition, Sort
from .validate import BadCell, converter

#: Parameters that are not filters. ``columns`` is the older name of ``select``.
RESERVED = ("select", "columns", "order", "limit")
#: Values in one ``in.(...)``: SQLite binds at most 32,766 parameters in a statement.
MAX_IN_VALUES = 1_000
#: Filters in one query string.
MAX_FILTERS = 100
#: The largest LIMIT both stores take: a signed 64-bit integer (SQLite's INTEGER, PostgreSQL's bigint).
MAX_LIMIT = 2**63 - 1
_IS = {"null": None, "true": True, "false": False}
#: The integers both stores bind (SQLite's INTEGER, PostgreSQL's bigint); past them SQLite's driver refuses.
_INT64 = range(-(2**63), 2**63)
#: Decimal exponents a filter may have: PostgreSQL's numeric overflows far beyond any column's values.
_MAX_EXPONENT = 1000


@dataclass(frozen=True)
class ExportQuery:
    """What to export of a table: its columns in order, the conditions every row meets, the order, the limit."""

    columns: list[Column]
    where: tuple[Condition, ...] = ()
    order: tuple[Sort, ...] = ()
    limit: int | None = None


def parse_export_query(params: Iterable[tuple[str, str]], catalog: Sequence[Column],
                       limit: int | None = None) -> ExportQuery:
    """``params`` (the query string's pairs, repeats kept: ``request.query_params.multi_items()``) read against
    the table's ``catalog``; ``limit`` is taken as already checked."""
    by_name = {c.name.lower(): c for c in catalog}
    selected: list[str] | None = None
    where: list[Condition] = []
    order: tuple[Sort, ...] = ()
    for key, value in params:
        if key in ("select", "columns"):
            if selected is not None:
                raise BadRequest("give the columns once: select (or its older name columns), not both", parameter=key)
            selected = [c.strip() for c in value.split(",") if c.strip()]
        elif key == "order":
            order = _order(value, by_name, catalog)
        elif key in RESERVED:
            continue
        elif key in ("or", "and", "not"):
            raise BadRequest(f"{key}=... is not supported: every filter must hold (write one parameter per filter)",
                             parameter=key)
        else:
            column = by_name.get(key.lower())
            if column is None:
                raise BadRequest(f"unknown column {key!r} in filter {key}={value}; this table has: "
                                 f"{_names(catalog)}", parameter=key, unknown=[key],
                                 available=[c.name for c in catalog])
            where.append(_condition(column, key, value))
            if len(where) > MAX_FILTERS:
                raise BadRequest(f"more than {MAX_FILTERS} filters", parameter=key)
    return ExportQuery(select_columns(catalog, selected), tuple(where), order, limit)


def parse_book_query(params: Iterable[tuple[str, str]], catalogs: dict[str, Sequence[Column]]
                     ) -> list[tuple[str, ExportQuery]]:
    """A workbook of several tables (``catalogs``, in sheet order): each parameter but ``sheets`` is prefixed by
    its table's name, ``orders.status=eq.paid``, ``orders.select=id,amount``, ``orders.limit=10``."""
    by_table: dict[str, list[tuple[str, str]]] = {name: [] for name in catalogs}
    limits: dict[str, int | None] = dict.fromkeys(catalogs)
    longest_first = sorted(catalogs, key=len, reverse=True)  # "orders.x" belongs to "orders", not to "or"
    for key, value in params:
        if key == "sheets":
            continue
        table = next((t for t in longest_first if key.startswith(t + ".")), None)
        if table is None:
            raise BadRequest(f"parameter {key!r} names no sheet: in a workbook of several tables, write TABLE.{key} "
                             f"with one of {', '.join(catalogs)}", parameter=key)
        rest = key[len(table) + 1:]
        if rest == "limit":
            limits[table] = _limit(key, value)
        else:
            by_table[table].append((rest, value))
    return [(name, parse_export_query(by_table[name], catalog, limits[name])) for name, catalog in catalogs.items()]


def _limit(key: str, text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_LIMIT:  # isdigit alone takes "²"
        raise BadRequest(f"{key}={text}: a limit is a whole number from 0 to {MAX_LIMIT}", parameter=key)
    return int(text)


def _condition(column: Column, key: str, text: str) -> Condition:
    shown = f"{key}={text}"
    negated = text.startswith("not.")
    rest = text.removeprefix("not.")
    op, dot, value = rest.partition(".")
    if not dot or op not in OPERATORS:
        raise BadRequest(f"filter {shown!r}: {op!r} is not an operator; write {key}=OPERATOR.VALUE (such as "
                         f"{key}=eq.{value or rest or 'x'}) with one of {', '.join(OPERATORS)}, optionally after not.",
                         parameter=key, operators=list(OPERATORS))
    if op == "is":
        if value.lower() not in _IS:
            raise BadRequest(f"filter {shown!r}: is takes null, true or false", parameter=key)
        if value.lower() != "null" and column.kind != "boolean":
            raise BadRequest(f"filter {shown!r}: is.{value.lower()} needs a boolean column, and {column.name} is "
                             f"{column.kind}", parameter=key)
        return Condition(column, "is", _IS[value.lower()], negated)
    if op in ("like", "ilike"):
        if column.kind != "text":
            raise BadRequest(f"filter {shown!r}: {op} compares text, and {column.name} is {column.kind} (use eq, lt, "
                             "gt... on it)", parameter=key)
        return Condition(column, op, value, negated)
    if op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise BadRequest(f"filter {shown!r}: write in.(a,b,c) (a value with a comma in double quotes)",
                             parameter=key)
        items = _list(value[1:-1])
        if len(items) > MAX_IN_VALUES:
            raise BadRequest(f"filter {key}: in.(...) takes at most {MAX_IN_VALUES:,} values", parameter=key)
        return Condition(column, "in", tuple(parse_value(column, key, f"filter {shown!r}", v) for v in items), negated)
    assert op in COMPARISONS
    return Condition(column, op, parse_value(column, key, f"filter {shown!r}", value), negated)


def parse_value(column: Column, key: str, shown: str, text: str) -> Any:
    """``text`` as a value of ``column``'s type; BadRequest naming it (``shown``: "filter 'a=eq.1'") when it is
    not one. Whatever passes here binds on both stores: the query runs after the response has started, where an
    error would cut the stream."""
    if "\x00" in text:
        raise BadRequest(f"{shown}: a value cannot hold a NUL character", parameter=key, column=column.name)
    try:
        if column.kind == "text":
            return text  # compared as given: a longer text than the column holds simply matches nothing
        if column.kind == "numeric":
            return _decimal(text)  # any scale: amount=lt.100.005 is a fair question of a numeric(12,2)
        value = converter(column)[1](text)
        if column.kind == "integer" and value not in _INT64:
            raise BadCell("is out of range for a 64-bit integer")
        if column.kind == "float" and not math.isfinite(value):
            raise BadCell("is not a finite number")
    except BadCell as exc:
        raise BadRequest(f"{shown}: {text!r} {exc} (column {column.name} is {column.kind})",
                         parameter=key, column=column.name, value=text) from None
    if isinstance(value, datetime) and value.tzinfo is not None:
        raise BadRequest(f"{shown}: give the time without a time zone offset (it is compared with the "
                         f"stored time as written)", parameter=key, column=column.name, value=text)
    return value


def _decimal(text: str) -> Decimal:
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise BadCell("is not a number") from None
    if not d.is_finite():
        raise BadCell("is not a finite number")
    if abs(d.adjusted()) > _MAX_EXPONENT:
        raise BadCell(f"is out of range (at most {_MAX_EXPONENT} digits either side of the point)")
    return d


def _list(text: str) -> list[str]:
    """``a,b,"c,d"`` -> ``["a", "b", "c,d"]``: PostgREST quotes a value holding a comma or parenthesis."""
    if not text.strip():
        return []
    return next(csv.reader([text], skipinitialspace=True))


def _order(text: str, by_name: dict[str, Column], catalog: Sequence[Column]) -> tuple[Sort, ...]:
    """``created_at.desc,id`` -> sort keys; each ``column[.asc|.desc][.nullsfirst|.nullslast]``."""
    keys = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, *modifiers = part.split(".")
        column = by_name.get(name.lower())
        if column is None:
            raise BadRequest(f"unknown column {name!r} in order={text}; this table has: {_names(catalog)}",
                             parameter="order", unknown=[name], available=[c.name for c in catalog])
        descending, nulls = False, None
        for m in modifiers:
            if m in ("asc", "desc"):
                descending = m == "desc"
            elif m in ("nullsfirst", "nullslast"):
                nulls = m.removeprefix("nulls")
            else:
                raise BadRequest(f"order={text}: {m!r} is not asc, desc, nullsfirst or nullslast", parameter="order")
        keys.append(Sort(column, descending, nulls))
    return tuple(keys)


def _names(catalog: Sequence[Column]) -> str:
    return ", ".join(c.name for c in catalog)
