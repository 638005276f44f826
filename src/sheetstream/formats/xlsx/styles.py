"""The styles part: which cell styles show dates, times of day or durations (all a reader needs of it)."""

from __future__ import annotations

import re

from .package import _Package, _parse_small

#: Excel's own limit on cell formats; without it, a styles part of 12 MB listed 600,000 (592 MB as elements).
MAX_CELL_FORMATS = 64_000

# Built-in number formats that show dates or times (ECMA-376 18.8.30, and the CJK ones Excel uses).
_BUILTIN_DATES = frozenset([*range(14, 23), *range(27, 37), *range(45, 48), *range(50, 59), *range(71, 82)])
_BUILTIN_CLOCKS = {18: "time", 19: "time", 20: "time", 21: "time", 45: "time", 47: "time", 46: "duration"}
_NOT_TOKENS = re.compile(r'"[^"]*"|\\.|\[(?![hms]+\])[^\]]*\]|_.|\*.', re.IGNORECASE)
_AM_PM = re.compile(r"AM/PM|A/P", re.IGNORECASE)
_ELAPSED = re.compile(r"\[(?:h+|m+|s+)\]", re.IGNORECASE)


def format_kind(code: str) -> str | None:
    """What a custom number format shows: ``"date"`` (a date, maybe with a time: a datetime), ``"time"`` (a time of
    day only), ``"duration"`` (elapsed time: ``[h]:mm:ss``), or None (a number or text)."""
    section = _NOT_TOKENS.sub("", code.split(";")[0])
    if "general" in section.lower():
        return None
    section = _AM_PM.sub("", section)
    tokens = {c for c in section.lower() if c in "ymdhs"}
    if not tokens:
        return None
    if "y" in tokens or "d" in tokens:
        return "date"
    if _ELAPSED.search(section):
        return "duration"
    if "h" in tokens or "s" in tokens:
        return "time"
    return "date"  # months alone: mmm, mmmm


def is_date_format(code: str) -> bool:
    """True when a custom number format shows a date, time or duration (tokens y, m, d, h, s outside quotes)."""
    return format_kind(code) is not None


def _format_id(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return -1


def _number_styles(package: _Package, part: str) -> tuple[frozenset[int], dict[int, str]]:
    """The cell styles that show dates, times or durations; and of those, the times and durations by kind."""
    found = _parse_small(package, part, {
        "numFmts/numFmt": (MAX_CELL_FORMATS, "the workbook has over {most:,} number formats, more than Excel allows",
                           lambda a: (_format_id(a.get("numFmtId")), a.get("formatCode", ""))),
        "cellXfs/xf": (MAX_CELL_FORMATS, "the workbook has over {most:,} cell formats, more than Excel allows "
                       "(64,000): refused", lambda a: _format_id(a.get("numFmtId"))),
    })
    custom = dict(found["numFmts/numFmt"])
    dates, clocks = set(), {}
    for index, fmt in enumerate(found["cellXfs/xf"]):
        kind = format_kind(custom[fmt]) if fmt in custom else ("date" if fmt in _BUILTIN_DATES else None)
        kind = _BUILTIN_CLOCKS.get(fmt, kind) if fmt not in custom else kind
        if kind:
            dates.add(index)
            if kind != "date":
                clocks[index] = kind
    return frozenset(dates), clocks
