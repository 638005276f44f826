"""The workbook part: its sheets (worksheets, and the other kinds, told apart), its date system, and the parts
its relationships name."""

from __future__ import annotations

import posixpath

from .package import _Package, _parse_small, _relationships, _rels_path

_SHEET_KINDS = {"chartsheet": "a chart sheet", "xlMacrosheet": "a macro sheet", "xlIntlMacrosheet": "a macro sheet",
                "dialogsheet": "a dialog sheet"}

#: Excel has no fixed sheet limit, but 4,096 sheets is far past any workbook made by hand or by a program (and
#: past what a person picks from); without a bound, a workbook part of a few MB listed 560,000 (490 MB as elements).
MAX_SHEETS = 4_096


def workbook_part(package: _Package, target: str) -> tuple[list[tuple[str, str]], dict[str, str], bool,
                                                          dict[str, tuple[str, str]]]:
    """The workbook part ``target``: its worksheets as (name, part) in order, its other sheets (name -> kind), whether
    it counts dates from 1904, and its relationships (id -> (type, part))."""
    book = _parse_small(package, target, {
        "sheets/sheet": (MAX_SHEETS, "the workbook has over {most:,} sheets, more than this server reads in one "
                         "workbook: split it into workbooks of fewer sheets", _sheet_entry),
        "workbookPr": (16, "part {part} has over {most} workbookPr elements", lambda a: a.get("date1904", "")),
    })
    rels = {rid: (kind, part)
            for kind, part, rid in _relationships(package, _rels_path(target), posixpath.dirname(target))}
    sheets, others = [], {}
    for name, rid in book["sheets/sheet"]:
        kind, part = rels.get(rid or "", ("", ""))
        if kind.endswith("/worksheet") and package.find(part):
            sheets.append((name, part))
        elif kind.rsplit("/", 1)[-1] in _SHEET_KINDS:
            others[name] = kind.rsplit("/", 1)[-1]
    date1904 = any(value.lower() in ("1", "true") for value in book["workbookPr"][:1])
    return sheets, others, date1904, rels


def _sheet_entry(attrs: dict[str, str]) -> tuple[str, str | None]:
    """A ``<sheet>``'s name and relationship id (``r:id``, in the transitional or the strict namespace)."""
    return attrs.get("name", ""), next((value for key, value in attrs.items() if key.endswith("}id")), None)
