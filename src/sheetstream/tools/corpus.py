"""Read a workbook with our reader and with a reference reader, and compare the two cell by cell.

The reference is python-calamine (``CalamineWorkbook.from_path(...).get_sheet_by_name(name).to_python()``);
openpyxl (``load_workbook(read_only=True, data_only=True)``) stands in where calamine cannot open a file or a
sheet, and settles error cells, which calamine's ``to_python`` returns as empty strings.

Both sides are normalised to one canonical form before they are compared:

* empty: ``None`` and ``""`` (calamine cannot tell an empty string from an empty cell, and pads its ranges
  with ``""``); rows and columns are compared by coordinate, so trailing empty rows and columns do not count;
* numbers: ``int`` and ``float`` alike, equal within 1e-9 relative (calamine returns floats for integers);
* dates and times: Excel serial days in the workbook's date system (1900, with its phantom 1900-02-29, or
  1904), equal within a millisecond; a calamine ``date`` equals our midnight ``datetime``, a calamine ``time``
  or ``timedelta`` is a difference of its own category when we return a ``datetime``;
* booleans, error codes (our :class:`~sheetstream.formats.xlsx.CellError`) and text compared exactly.

Each difference is ``(sheet, A1 cell, ours, theirs, category)``; the categories name what differs (``"text:
whitespace"``, ``"ours number / theirs date"``, ...), so that files fall into groups with a common cause.
Files that sheetstream refuses by design (legacy ``.xls``, encrypted workbooks, ``.xlsb``, ``.ods``) are not
compared: the reader must refuse them with one of its own errors.

``python -m sheetstream.tools.corpus [DIR] [--json OUT]`` runs the comparison over every workbook under ``DIR``
(default ``tests/corpus/files``) and prints the counts by source (the first folder under ``DIR``) and the
differing cells grouped by category.

This module imports only :mod:`sheetstream.formats.xlsx` and third-party libraries.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time as _time
import traceback
import zipfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sheetstream.formats.xlsx import BadWorkbook, CellError, open_workbook
from sheetstream.formats.xlsx.cells import column_letter

#: File name endings that are workbooks of some kind (the others in a corpus folder are ignored).
WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xltx", ".xltm", ".xlam", ".xls", ".xlsb", ".ods")

#: Differences that the project has decided on, by category: a file whose differences are all in these
#: categories counts as "deliberate", not "differing".
SERIAL_ZERO = "date: serial 0 (theirs: time 00:00, whatever the format)"
DELIBERATE_CATEGORIES: dict[str, str] = {
    SERIAL_ZERO: "calamine turns every serial below 1 into a time of day, even under a date format (yyyy/mm/dd, "
    "m/d/yyyy); Excel shows serial 0 under a date format as the day 0 of its epoch, which we read as "
    "datetime(1899, 12, 31) in the 1900 system and datetime(1904, 1, 1) in the 1904 system",
}

#: At most this many differences are kept for one sheet (the count goes on).
MAX_KEPT = 200

_DAY = timedelta(days=1)
_EPOCH_1900 = datetime(1899, 12, 30)
_EPOCH_1904 = datetime(1904, 1, 1)
_CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # OLE compound file: a legacy .xls, or an encrypted .xlsx


@dataclass(frozen=True)
class Difference:
    sheet: str
    cell: str  # A1 reference; "" for a difference of the whole sheet
    ours: Any
    theirs: Any
    category: str


@dataclass
class Result:
    path: str
    #: "identical", "deliberate", "differing", "refused" (not compared: a format we refuse by design),
    #: or "crashed" (our reader raised something other than BadWorkbook)
    status: str = "identical"
    reference: str = "calamine"  # "calamine", "openpyxl" or "" (refused, or no reference could read it)
    sheets: int = 0
    cells: int = 0  # non-empty cells on either side
    differences: list[Difference] = field(default_factory=list)
    omitted: int = 0  # differences counted but not kept (over MAX_KEPT in a sheet)
    note: str = ""  # why a file was refused, the crash, what the reference could not do

    @property
    def categories(self) -> Counter[str]:
        return Counter(d.category for d in self.differences)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["differences"] = [
            {**asdict(d), "ours": _show(d.ours), "theirs": _show(d.theirs)} for d in self.differences
        ]
        return data


def _show(value: Any, width: int = 0) -> Any:
    """A JSON-friendly form of a cell value; ``width`` cuts long texts for a table."""
    if isinstance(value, str) and width and len(value) > width:
        return value[: width - 3] + "..."
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, CellError):
        return f"CellError({value.code})"
    return repr(value)


def refusal(path: Path) -> str | None:
    """Why ``path`` is a format sheetstream refuses by design, or None for an OOXML workbook."""
    suffix = path.suffix.lower()
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _CFB:
        return "legacy .xls" if suffix == ".xls" else "encrypted (OLE compound file)"
    if suffix in (".xls", ".xlsb", ".ods"):
        return {".xls": "legacy .xls", ".xlsb": "binary .xlsb", ".ods": "OpenDocument .ods"}[suffix]
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
        except zipfile.BadZipFile:
            return None
        if "xl/workbook.bin" in names:
            return "binary .xlsb"
        if "mimetype" in names and "content.xml" in names:
            return "OpenDocument .ods"
    return None


# -- normalisation -------------------------------------------------------------------------------------------

def _serial(value: datetime, date1904: bool) -> float:
    """Excel serial days of a datetime, the inverse of the reader's conversion."""
    if date1904:
        return (value - _EPOCH_1904) / _DAY
    serial = (value - _EPOCH_1900) / _DAY
    return serial - 1 if serial < 61 else serial  # the phantom 1900-02-29


def canonical(value: Any, date1904: bool) -> tuple | None:
    """One comparable form for a value of either side: None for empty, else (kind, value[, detail])."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", float(value))
    if isinstance(value, str):
        return ("text", value)
    if isinstance(value, CellError):
        return ("error", value.code)
    if isinstance(value, datetime):
        return ("date", _serial(value.replace(tzinfo=None), date1904), "datetime")
    if isinstance(value, date):
        return ("date", _serial(datetime(value.year, value.month, value.day), date1904), "date")
    if isinstance(value, time):
        return ("date", (value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6) / 86400, "time")
    if isinstance(value, timedelta):
        return ("date", value / _DAY, "duration")
    return ("other", repr(value))


_XML_SPACE = " \t\r\n"


def _text_category(ours: str, theirs: str) -> str:
    if ours.replace("\r\n", "\n") == theirs:
        return "text: CR LF kept (XML end-of-line handling reads LF)"
    if ours.strip(_XML_SPACE) == theirs:
        return "text: leading/trailing whitespace kept (theirs trims it)"
    if theirs.strip(_XML_SPACE) == ours:
        return "text: leading/trailing whitespace lost (theirs keeps it)"
    if "".join(ours.split()) == "".join(theirs.split()):
        return "text: inner whitespace"
    if "_x" in ours or "_x" in theirs:
        return "text: _xHHHH_ escapes"
    if theirs.startswith(ours) or ours.startswith(theirs):
        return "text: cut short"
    return "text: other"


def classify(ours: tuple | None, theirs: tuple | None) -> str | None:
    """The category of a difference between two canonical values, or None when they are equal."""
    if ours == theirs:
        return None
    if ours is None:
        return f"ours empty / theirs {theirs[0]}"
    if theirs is None:
        if ours[0] == "text" and not ours[1].strip(_XML_SPACE):
            return "text: whitespace-only kept (theirs trims it to empty)"
        return f"ours {ours[0]} / theirs empty"
    if ours[0] != theirs[0]:
        return f"ours {ours[0]} / theirs {theirs[0]}"
    kind = ours[0]
    if kind == "number":
        return None if math.isclose(ours[1], theirs[1], rel_tol=1e-9, abs_tol=1e-300) else "number: value"
    if kind == "date":
        same = abs(ours[1] - theirs[1]) < 0.5 / 86400_000 * 2
        if theirs[2] in ("datetime", "date"):
            if same:
                return None
            if abs(ours[1] - theirs[1]) in (1462.0, 1.0):
                return "date: off by the 1904/1900 epoch" if abs(ours[1] - theirs[1]) == 1462.0 else "date: one day off"
            return "date: value"
        if theirs[2] == "time":
            if ours[1] == 0 and theirs[1] == 0:
                return SERIAL_ZERO
            if abs(ours[1] % 1 - theirs[1]) < 1e-8 or abs(ours[1] - theirs[1]) < 1e-8:
                return "date: ours datetime / theirs time of day"
            return "date: time of day value"
        if theirs[2] == "duration":
            return "date: ours datetime / theirs duration" if same else "date: duration value"
    if kind == "text":
        return _text_category(ours[1], theirs[1])
    return f"{kind}: value"


# -- the two sides -------------------------------------------------------------------------------------------

def _ours(path: Path) -> tuple[list[str], bool, dict[str, dict[tuple[int, int], Any]]]:
    with open_workbook(path) as book:
        sheets = {}
        for name in book.sheet_names:
            cells = {}
            for row, values in book.rows(name):
                for col, value in enumerate(values):
                    if value is not None and value != "":
                        cells[(row, col)] = value
            sheets[name] = cells
        return book.sheet_names, book.date1904, sheets


class _Reference:
    """python-calamine, with openpyxl where calamine fails, and openpyxl's word on error cells."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = "calamine"
        self.note = ""
        self._openpyxl: Any = None
        self._error_cells: dict[str, dict[tuple[int, int], str]] = {}
        try:
            from python_calamine import CalamineWorkbook, SheetTypeEnum

            self._calamine = CalamineWorkbook.from_path(str(path))
            self.sheet_names = [m.name for m in self._calamine.sheets_metadata if m.typ == SheetTypeEnum.WorkSheet]
        except Exception as exc:  # noqa: BLE001 - any failure of the reference sends us to openpyxl
            self.note = f"calamine cannot open it ({type(exc).__name__}: {exc}); openpyxl used"
            self.name = "openpyxl"
            self._calamine = None
            self.sheet_names = self._open_openpyxl().sheetnames
            self.sheet_names = [n for n in self.sheet_names if self._openpyxl[n].__class__.__name__ != "Chartsheet"]

    def _open_openpyxl(self) -> Any:
        if self._openpyxl is None:
            import warnings

            import openpyxl

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._openpyxl = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
        return self._openpyxl

    def close(self) -> None:
        if self._openpyxl is not None:
            self._openpyxl.close()
        if self._calamine is not None:
            self._calamine.close()

    def cells(self, name: str) -> dict[tuple[int, int], Any]:
        if self._calamine is not None:
            try:
                rows = self._calamine.get_sheet_by_name(name).to_python(skip_empty_area=False)
            except Exception as exc:  # noqa: BLE001
                self.note += f"calamine cannot read sheet {name!r} ({type(exc).__name__}: {exc}); openpyxl used. "
                return self._openpyxl_cells(name)
            return {(r + 1, c): v for r, row in enumerate(rows) for c, v in enumerate(row) if v is not None and v != ""}
        return self._openpyxl_cells(name)

    def _openpyxl_cells(self, name: str) -> dict[tuple[int, int], Any]:
        sheet = self._open_openpyxl()[name]
        found = {}
        for row in sheet.iter_rows():
            for cell in row:
                if cell.value is None or cell.value == "" or not hasattr(cell, "row"):
                    continue
                found[(cell.row, cell.column - 1)] = CellError(cell.value) if cell.data_type == "e" else cell.value
        return found

    def error_at(self, name: str, key: tuple[int, int]) -> str | None:
        """openpyxl's error code in a cell (calamine's ``to_python`` gives errors as empty strings)."""
        if name not in self._error_cells:
            errors = {}
            try:
                for cell_key, value in self._openpyxl_cells(name).items():
                    if isinstance(value, CellError):
                        errors[cell_key] = value.code
            except Exception:  # noqa: BLE001 - no second opinion, the difference stays
                pass
            self._error_cells[name] = errors
        return self._error_cells[name].get(key)


# -- the comparison ------------------------------------------------------------------------------------------

def compare(path: str | Path) -> Result:
    """Read ``path`` with our reader and the reference, and list every difference."""
    path = Path(path)
    result = Result(path=str(path))
    why = refusal(path)
    if why is not None:
        result.status, result.reference, result.note = "refused", "", why
        try:
            _ours(path)
        except BadWorkbook:
            return result
        except Exception as exc:  # noqa: BLE001
            result.status, result.note = "crashed", f"{why}; our reader raised {_crash(exc)}"
            return result
        result.status = "differing"
        result.differences.append(Difference("", "", "opened", "refused", f"refusal: ours opens a {why} file"))
        return result
    try:
        our_names, date1904, ours = _ours(path)
    except BadWorkbook as exc:
        ours_error: Exception | None = exc
        our_names, date1904, ours = [], False, {}
    except Exception as exc:  # noqa: BLE001
        result.status, result.reference, result.note = "crashed", "", f"our reader raised {_crash(exc)}"
        return result
    else:
        ours_error = None
    try:
        reference = _Reference(path)
    except Exception as exc:  # noqa: BLE001
        result.reference, result.note = "", f"no reference reader can open it: {type(exc).__name__}: {exc}"
        if ours_error is not None:
            result.status = "refused"
            result.note += f"; ours refuses it too: {ours_error}"
        else:
            result.status = "differing"
            result.differences.append(Difference("", "", "readable", None, "workbook: only ours reads it"))
        return result
    try:
        result.reference = reference.name
        if ours_error is not None:
            result.differences.append(Difference("", "", str(ours_error), "readable", "workbook: ours refuses it"))
        else:
            _compare_sheets(result, reference, our_names, date1904, ours)
        result.note = (result.note + " " + reference.note).strip()
    finally:
        reference.close()
    deliberate = all(d.category in DELIBERATE_CATEGORIES for d in result.differences)
    if result.differences or result.omitted:
        result.status = "deliberate" if deliberate and not result.omitted else "differing"
    return result


def _crash(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})"


def _compare_sheets(result: Result, reference: _Reference, our_names: list[str], date1904: bool,
                    ours: dict[str, dict[tuple[int, int], Any]]) -> None:
    for name in reference.sheet_names:
        if name not in ours:
            result.differences.append(Difference(name, "", None, "worksheet", "sheet: missing from ours"))
    for name in our_names:
        if name not in reference.sheet_names:
            result.differences.append(Difference(name, "", "worksheet", None, "sheet: not a worksheet for theirs"))
            continue
        result.sheets += 1
        mine = ours[name]
        try:
            theirs = reference.cells(name)
        except Exception as exc:  # noqa: BLE001 - the reference failing is no fault of ours, but no pass either
            result.differences.append(Difference(name, "", "readable", f"{type(exc).__name__}: {exc}",
                                                 "sheet: no reference can read it"))
            continue
        kept = 0
        for key in sorted(mine.keys() | theirs.keys()):
            result.cells += 1
            a, b = mine.get(key), theirs.get(key)
            category = classify(canonical(a, date1904), canonical(b, date1904))
            if category is None:
                continue
            if isinstance(a, CellError) and b is None and reference.name == "calamine":
                if reference.error_at(name, key) == a.code:
                    continue
            if kept >= MAX_KEPT:
                result.omitted += 1
                continue
            kept += 1
            cell = f"{column_letter(key[1])}{key[0]}"
            result.differences.append(Difference(name, cell, a, b, category))


# -- the command ---------------------------------------------------------------------------------------------

def workbooks(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in WORKBOOK_SUFFIXES)


def source_of(path: Path, directory: Path) -> str:
    parts = path.relative_to(directory).parts
    return parts[0] if len(parts) > 1 else "."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sheetstream.tools.corpus", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", default="tests/corpus/files", type=Path)
    parser.add_argument("--json", type=Path, help="write every result to this JSON file")
    parser.add_argument("--examples", type=int, default=3, help="example cells shown per category")
    args = parser.parse_args(argv)
    directory: Path = args.directory
    paths = workbooks(directory)
    if not paths:
        print(f"no workbooks under {directory}", file=sys.stderr)
        return 2
    started = _time.perf_counter()
    results = []
    for path in paths:
        results.append((source_of(path, directory), path, compare(path)))
    elapsed = _time.perf_counter() - started

    statuses = ("identical", "deliberate", "differing", "refused", "crashed")
    by_source: dict[str, Counter[str]] = defaultdict(Counter)
    for source, path, result in results:
        counts = by_source[source]
        counts["files"] += 1
        counts["bytes"] += path.stat().st_size
        counts["sheets"] += result.sheets
        counts["cells"] += result.cells
        counts[result.status] += 1
    columns = ("files", "bytes", "sheets", "cells", *statuses)
    width = max(len(s) for s in [*by_source, "source", "total"]) + 2
    print("source".ljust(width) + "".join(c.rjust(11) for c in columns))
    total: Counter[str] = Counter()
    for source in sorted(by_source):
        total.update(by_source[source])
        print(source.ljust(width) + "".join(str(by_source[source][c]).rjust(11) for c in columns))
    print("total".ljust(width) + "".join(str(total[c]).rjust(11) for c in columns))
    print(f"({elapsed:.1f} s)")

    groups: dict[str, list[tuple[Path, Difference]]] = defaultdict(list)
    for _, path, result in results:
        for d in result.differences:
            groups[d.category].append((path, d))
    if groups:
        print("\ndiffering cells by category (cells, files; examples)")
        for category, found in sorted(groups.items(), key=lambda item: -len(item[1])):
            files = {p for p, _ in found}
            print(f"  {category}: {len(found)} cells in {len(files)} files")
            shown: set[Path] = set()
            for path, d in found:
                if path in shown:
                    continue
                shown.add(path)
                where = f"{d.sheet}!{d.cell}" if d.cell else d.sheet
                print(f"      {path.relative_to(directory)} {where}: ours {_show(d.ours, 60)!r} theirs {_show(d.theirs, 60)!r}")
                if len(shown) >= args.examples:
                    break
    for path, result in [(p, r) for _, p, r in results if r.status == "crashed"]:
        print(f"\n{result.status}: {path.relative_to(directory)}: {result.note}")
    if args.json:
        args.json.write_text(json.dumps(
            [{"source": s, **r.to_json(), "path": str(p.relative_to(directory))} for s, p, r in results],
            indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
