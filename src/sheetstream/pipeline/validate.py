"""Sheet cells -> the table's column types, with row- and column-precise problems.

The header maps sheet columns to table columns by name (case-insensitive, any order). Each cell is checked
against its column's kind from the database catalog; problems carry the sheet, the A1 reference, the column,
the value and a message a person can act on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import Invalid
from ..formats.values import Unreadable
from ..formats.xlsx import CellError
from ..formats.xlsx.cells import column_letter
from ..store import Column

MAX_LISTED = 100
#: Cells listed per group of problems (the first ones, in sheet order).
GROUP_CELLS = 5

#: What to do with a header column the table does not have: leave it out with a warning, or make it a problem.
EXTRA_COLUMNS = ("ignore", "error")

#: Each kind of problem, and what to do about it, for the summary a person reads first.
KINDS = {
    "header": "header cell(s) that do not match the table (fix the first row)",
    "cell": "cell(s) that do not fit their column",
    "duplicate": "key(s) repeated in the sheet (keep one row per key)",
    "existing": "key(s) that already exist in the table (choose Update existing rows and add new ones: mode "
                "upsert, or Replace the whole table: mode replace)",
    "refused": "row(s) the database refused",
}

#: Per kind, one piece of advice for a group of problems (the group's own words say what is wrong).
ADVICE = {
    "header": "fix the first row: it names the columns",
    "cell": "fix these cells; the marked-up workbook highlights each one",
    "duplicate": "keep one row per key",
    "existing": "choose Update existing rows and add new ones (mode upsert), or Replace the whole table (mode "
                "replace)",
    "refused": "fix the row the database refused, then import again",
}

#: The noun a group's count goes with, per kind.
_UNITS = {"header": "header cell", "cell": "cell", "duplicate": "row", "existing": "row", "refused": "row"}


class BadCell(ValueError):
    """A cell value does not fit its column; the message completes "<value> ..."."""


@dataclass
class Problems:
    """At most ``limit`` problems listed, all of them counted, and grouped by kind and column: 200,000 problems of
    one kind read as one line with its count, its first cells and one piece of advice, not as a wall.

    ``sink``, when given, receives every problem (listed or not) as ``(kind, sheet, cell, message)``: the
    marked-up workbook marks them all from there (:mod:`.marks`)."""

    limit: int = MAX_LISTED
    listed: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    groups: dict[tuple[str, str | None], dict[str, Any]] = field(default_factory=dict)
    sink: Callable[[str, str, str, str], None] | None = None

    def add(self, sheet: str, cell: str, column: str | None, value: Any, message: str, kind: str = "cell") -> None:
        self.total += 1
        self.kinds[kind] += 1
        group = self._group(kind, column)
        group["count"] += 1
        if len(group["cells"]) < GROUP_CELLS:
            group["cells"].append({"sheet": sheet, "cell": cell})
        if self.sink is not None:
            self.sink(kind, sheet, cell, message)
        if len(self.listed) < self.limit:
            self.listed.append({"sheet": sheet, "cell": cell, "column": column, "value": _shown(value), "message": message,
                                "kind": kind})
        if group["example"] is None:
            group["example"] = f"{message} ({cell})" if kind == "cell" else message
            group["sheet"] = sheet

    def _group(self, kind: str, column: str | None) -> dict[str, Any]:
        key = (kind, column)
        if key not in self.groups:
            self.groups[key] = {"kind": kind, "column": column, "count": 0, "cells": [], "example": None,
                                "sheet": None}
        return self.groups[key]

    def count(self, kind: str, total: int, column: str | None = None) -> None:
        """``total`` problems of ``kind`` (at ``column``) in all, of which some were added (listed) already."""
        group = self._group(kind, column)
        extra = total - group["count"]
        group["count"] += extra
        self.total += extra
        self.kinds[kind] += extra

    def merge(self, other: Problems) -> None:
        """Add ``other``'s problems (found further down the sheet) after these; all of them go to the sink, so
        ``other`` should list them all."""
        if self.sink is not None:
            for entry in other.listed:
                self.sink(entry["kind"], entry["sheet"], entry["cell"], entry["message"])
        self.listed.extend(other.listed[:max(self.room, 0)])
        self.total += other.total
        self.kinds.update(other.kinds)
        for key, theirs in other.groups.items():
            ours = self._group(*key)
            ours["count"] += theirs["count"]
            ours["cells"] += theirs["cells"][:GROUP_CELLS - len(ours["cells"])]
            if ours["example"] is None:
                ours["example"], ours["sheet"] = theirs["example"], theirs["sheet"]

    @property
    def room(self) -> int:
        return self.limit - len(self.listed)

    def summary(self, table: str) -> list[dict[str, Any]]:
        """The groups, most numerous first: ``{kind, column, count, cells, summary, advice}``; ``summary`` is the
        line a person reads ("199,996 rows: id already exists in orders")."""
        found = []
        for group in sorted(self.groups.values(), key=lambda g: -g["count"]):
            if not group["count"]:
                continue
            n, kind, column = group["count"], group["kind"], group["column"]
            unit = _UNITS.get(kind, "problem") + ("" if n == 1 else "s")
            if kind == "existing":
                what = f"{unit}: {column or 'the key'} already exists in {table}"
            elif kind == "duplicate":
                what = f"{unit}: {column or 'the key'} appears more than once in the sheet"
            elif kind == "cell" and column:
                what = (f"{unit} in column {column}: {group['example']}" if n == 1 else
                        f"{unit} in column {column} do not fit it, e.g. {group['example']}")
            else:
                what = f"{unit}: {group['example'] or KINDS.get(kind, kind)}"
            found.append({"kind": kind, "column": column, "count": n, "cells": list(group["cells"]),
                          "summary": f"{n:,} {what}", "advice": ADVICE.get(kind, "")})
        return found

    def error(self, summary: str, table: str = "") -> Invalid:
        shown = f" (the first {len(self.listed)} are listed)" if self.total > len(self.listed) else ""
        found = {k: n for k, n in self.kinds.items() if n and k in KINDS}
        # One kind of cell or header problems: the summary says it all; any other mix is spelled out, with hints.
        plain = len(found) == 1 and set(found) <= {"cell", "header"}
        kinds = "" if plain else "; ".join(f"{n:,} {KINDS[k]}" for k, n in found.items())
        return Invalid(f"{summary}: {self.total:,} problem(s){shown}" + (f": {kinds}" if kinds else "")
                       + "; nothing was written", errors=self.listed, error_total=self.total, kinds=dict(self.kinds),
                       problem_groups=self.summary(table))


def _shown(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, str) or len(value) <= 200 else value[:200] + "…"
    return str(value)


@dataclass(frozen=True)
class Plan:
    """Where each table column comes from in the sheet (sheet column index per table column)."""

    columns: list[Column]
    sources: list[int]


def map_header(header: Sequence[Any], table_columns: Sequence[Column], sheet: str) -> Plan:
    """The plan for ``header``, or :class:`Invalid` naming every header problem (extra columns included)."""
    problems = Problems()
    plan = read_header(header, table_columns, sheet, problems, [], extra_columns="error")
    if problems.total:
        raise problems.error("the header row does not match the table")
    return plan


def read_header(header: Sequence[Any], table_columns: Sequence[Column], sheet: str, problems: Problems,
                warnings: list[dict[str, Any]], extra_columns: str = "ignore") -> Plan:
    """Map ``header`` to the table's columns; header problems go to ``problems``, and columns the table does not
    have to ``warnings`` (``extra_columns="ignore"``) or to ``problems`` (``"error"``)."""
    by_name = {c.name.lower(): c for c in table_columns}
    seen: dict[str, str] = {}
    columns, sources = [], []
    known = ", ".join(c.name for c in table_columns)
    for index, cell in enumerate(header):
        ref = f"{column_letter(index)}1"
        if cell is None or (isinstance(cell, str) and not cell.strip()):
            continue
        name = str(cell).strip()
        column = by_name.get(name.lower())
        if column is None and extra_columns == "ignore":
            warnings.append({"sheet": sheet, "cell": ref, "column": name, "value": _shown(cell),
                             "message": f"column {name!r} is not in the table and was ignored; the table has: {known}"})
        elif column is None:
            problems.add(sheet, ref, name, cell, f"unknown column {name!r}; the table has: {known} (remove the column, "
                         "or import with extra_columns=ignore)", kind="header")
        elif column.name in seen:
            problems.add(sheet, ref, name, cell, f"column {column.name!r} appears twice (also in {seen[column.name]}); "
                         "remove one", kind="header")
        else:
            seen[column.name] = ref
            columns.append(column)
            sources.append(index)
    if not columns and not problems.total:
        message = ("the first row must name the columns, and it is empty" if not warnings else
                   f"no column of the first row is in the table; the table has: {known}")
        problems.add(sheet, "A1", None, None, message, kind="header")
    for column in table_columns:
        if column.name not in seen and not column.nullable:
            problems.add(sheet, "1:1", column.name, None, f"required column {column.name!r} is missing from the header",
                         kind="header")
    return Plan(columns, sources)


def _integer(v: Any) -> int:
    if type(v) is float:
        if v.is_integer():
            return int(v)
        raise BadCell("is not a whole number")
    if type(v) is str:
        try:
            return int(v.strip())
        except ValueError:
            raise BadCell("is not a whole number") from None
    raise BadCell(f"is {_a(v)}, not a whole number")


def _float(v: Any) -> float:
    if type(v) is int:
        return float(v)
    if type(v) is str:
        try:
            return float(v.strip())
        except ValueError:
            raise BadCell("is not a number") from None
    raise BadCell(f"is {_a(v)}, not a number")


def _numeric(column: Column) -> Callable[[Any], Decimal]:
    exponent = Decimal(1).scaleb(-column.scale) if column.scale is not None else None
    limit = Decimal(10) ** (column.precision - (column.scale or 0)) if column.precision else None
    kind = f"numeric({column.precision},{column.scale})" if column.precision else "numeric"

    def numeric(v: Any) -> Decimal:
        t = type(v)
        try:
            if t is float:
                d = Decimal(repr(v))
            elif t is int:
                d = Decimal(v)
            elif t is str:
                d = Decimal(v.strip())
            else:
                raise BadCell(f"is {_a(v)}, not a number")
        except InvalidOperation:
            raise BadCell("is not a number") from None
        if not d.is_finite():
            raise BadCell("is not a finite number")
        if exponent is not None:
            try:
                q = d.quantize(exponent)
            except InvalidOperation:  # more digits than Decimal's context holds (28): far past any column
                raise BadCell(f"is too large for {kind}") from None
            if q != d:
                raise BadCell(f"has more than {column.scale} decimal place(s); the column is {kind}")
            d = q
        if limit is not None and abs(d) >= limit:
            raise BadCell(f"is too large for {kind}")
        return d

    return numeric


def _text(column: Column) -> Callable[[Any], str]:
    def text(v: Any) -> str:
        t = type(v)
        if t is float:
            s = str(int(v)) if v.is_integer() else repr(v)
        elif t is datetime:
            s = v.isoformat(sep=" ")
        else:
            s = str(v)
        if column.length is not None and len(s) > column.length:
            raise BadCell(f"has {len(s)} characters; the column allows {column.length}")
        return s

    return text


def _date(v: Any) -> date:
    if type(v) is datetime:
        if v.time() != time():
            raise BadCell("has a time of day; the column holds dates only")
        return v.date()
    if type(v) is str:
        try:
            return date.fromisoformat(v.strip())
        except ValueError:
            raise BadCell("is not a date; write YYYY-MM-DD or format the cell as a date") from None
    raise BadCell(f"is {_a(v)}, not a date; format the cell as a date")


def _timestamp(v: Any) -> datetime:
    if type(v) is str:
        try:
            return datetime.fromisoformat(v.strip())
        except ValueError:
            raise BadCell("is not a date and time; write YYYY-MM-DD HH:MM:SS or format the cell as a date") from None
    raise BadCell(f"is {_a(v)}, not a date and time; format the cell as a date")


_TIME_ONLY_DAYS = (date(1899, 12, 30), date(1899, 12, 31), date(1904, 1, 1))


def _time(v: Any) -> time:
    if type(v) is time:  # a cell in a time format (h:mm) or an ISO time
        return v
    if type(v) is timedelta and timedelta(0) <= v < timedelta(days=1):  # a duration format ([h]:mm) under a day
        return (datetime.min + v).time()
    if type(v) is datetime:
        if v.date() not in _TIME_ONLY_DAYS:
            raise BadCell("has a date; the column holds times of day only")
        return v.time()
    if type(v) is str:
        try:
            return time.fromisoformat(v.strip())
        except ValueError:
            raise BadCell("is not a time of day; write HH:MM:SS") from None
    raise BadCell(f"is {_a(v)}, not a time of day")


_TRUE = {"true", "yes", "y", "t", "1", "x"}
_FALSE = {"false", "no", "n", "f", "0"}


def _boolean(v: Any) -> bool:
    if type(v) in (int, float) and v in (0, 1):
        return bool(v)
    if type(v) is str:
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    raise BadCell("is not TRUE or FALSE")


def _a(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, datetime):
        return "a date"
    if isinstance(v, time):
        return "a time of day"
    if isinstance(v, timedelta):
        return "a duration"
    if isinstance(v, str):
        return "a text"
    return type(v).__name__


#: Per kind: the Python type that passes as is (the fast path), and the converter for anything else.
def converter(column: Column) -> tuple[type | None, Callable[[Any], Any]]:
    kind = column.kind
    if kind == "integer":
        return int, _integer
    if kind == "float":
        return float, _float
    if kind == "numeric":
        return None, _numeric(column)
    if kind == "text":
        return (str if column.length is None else None), _text(column)
    if kind == "date":
        return None, _date
    if kind == "timestamp":
        return datetime, _timestamp
    if kind == "time":
        return None, _time
    if kind == "boolean":
        return bool, _boolean
    raise ValueError(f"unknown column kind {kind!r}")


def convert_rows(rows, plan: Plan, sheet: str, problems: Problems, counters: dict[str, int], numbered: bool = False):
    """Typed rows in table-column order; rows with a problem are reported and left out. ``numbered``: yield
    ``(sheet row number, row)`` for every row instead, with None in the cells that have a problem (so that the
    rest of the row, its key, can still be checked; a problem stops the writing anyway).

    ``counters["rows_read"]`` counts the data rows seen, also for the caller's progress reports.
    """
    steps = [(source, *converter(column), column.nullable, column.name, column_letter(source), column.kind == "text")
             for source, column in zip(plan.sources, plan.columns)]
    width = len(steps)
    for row_number, values in rows:
        counters["rows_read"] += 1
        out: list[Any] = [None] * width
        ok = True
        n = len(values)
        for j, (source, fast, convert, nullable, name, letter, is_text) in enumerate(steps):
            v = values[source] if source < n else None
            if v is None or (v == "" and not is_text):
                if not nullable:
                    problems.add(sheet, f"{letter}{row_number}", name, None, "is empty; the column requires a value")
                    ok = False
                continue
            if type(v) is fast:
                out[j] = v
                continue
            if type(v) is CellError:
                problems.add(sheet, f"{letter}{row_number}", name, str(v), f"holds the error {v}; enter a value")
                ok = False
                continue
            if type(v) is Unreadable:  # bytes the file's encoding cannot decode: the reader says which, and how
                problems.add(sheet, f"{letter}{row_number}", name, None, v.message)
                ok = False
                continue
            try:
                out[j] = convert(v)
            except BadCell as exc:
                problems.add(sheet, f"{letter}{row_number}", name, v, f"{_shown(v)!r} {exc}")
                ok = False
        if numbered:
            yield row_number, out
        elif ok:
            yield out
