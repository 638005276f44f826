"""Every workbook of the corpus (tests/corpus/files, see SOURCES.md) read by our reader and by python-calamine.

A file passes when the two agree on every cell, or when each of its differences is of a category that
``DELIBERATE`` lists for it (a choice the project made, or a fault of the reference). A file with a known
reader gap is in ``EXPECTED_GAPS`` and marked ``xfail(strict=True)``: when the reader is fixed it XPASSes,
which fails the run until the entry is removed. A reader that raises anything other than ``BadWorkbook`` on
any file fails, and so does a file of a refused format (.xls, encrypted, .xlsb, .ods) that is not refused.

Extra folders can be compared the same way, without entries in the tables, by setting
``SHEETSTREAM_CORPUS_EXTRA`` to folders (separated by ``os.pathsep``) holding ``<source>/<workbook>`` files:
their files fail on any difference, which is the point of running them by hand.
"""

from __future__ import annotations

import os
from datetime import datetime, time
from pathlib import Path

import pytest
import xlsxwriter

from sheetstream.formats.xlsx import CellError
from sheetstream.tools.corpus import DELIBERATE_CATEGORIES, Difference, canonical, classify, compare, main, workbooks

FILES = Path(__file__).parent / "files"

# Categories of the comparison, named once.
CR_LF = "text: CR LF kept (XML end-of-line handling reads LF)"
TIME_OF_DAY = "date: ours datetime / theirs time of day"
RUN_SPACE = "text: inner whitespace"
XLS_OPENED = "refusal: ours opens a legacy .xls file"

#: file -> (why the difference is intended or is the reference's fault, the categories allowed)
DELIBERATE: dict[str, tuple[str, set[str]]] = {
    "pyexcel-xlsx/date_field.xlsx": ("serial 0 under a date format is Excel's day 0 of 1900 (shown 1900-01-00), which "
                                     "we read as a date; calamine reads every serial below 1 as a time of day",
                                     set(DELIBERATE_CATEGORIES)),
}

#: file -> the known reader gap that makes it differ (remove the entry when the reader is fixed)
EXPECTED_GAPS: dict[str, str] = {
}


def _corpus() -> list[tuple[str, Path]]:
    found = [(str(p.relative_to(FILES)), p) for p in workbooks(FILES)]
    for folder in filter(None, os.environ.get("SHEETSTREAM_CORPUS_EXTRA", "").split(os.pathsep)):
        found += [(f"extra:{p.relative_to(folder)}", p) for p in workbooks(Path(folder))]
    return found


CORPUS = _corpus()


def test_corpus_is_there() -> None:
    assert len([n for n, _ in CORPUS if not n.startswith("extra:")]) >= 50
    names = {n for n, _ in CORPUS}
    stale = (set(DELIBERATE) | set(EXPECTED_GAPS)) - names
    assert not stale, f"entries for files that are not in the corpus: {sorted(stale)}"
    assert not set(DELIBERATE) & set(EXPECTED_GAPS)


@pytest.mark.parametrize(("name", "path"), CORPUS, ids=[n for n, _ in CORPUS])
def test_workbook_reads_like_the_reference(name: str, path: Path, request: pytest.FixtureRequest) -> None:
    if name in EXPECTED_GAPS:
        request.applymarker(pytest.mark.xfail(strict=True, reason=EXPECTED_GAPS[name]))
    result = compare(path)
    assert result.status != "crashed", f"our reader crashed: {result.note}"
    if result.status == "refused":
        return
    assert result.reference, f"no reference could read it: {result.note}"
    allowed = DELIBERATE.get(name, ("", set()))[1]
    unexpected = [d for d in result.differences if d.category not in allowed]
    assert not unexpected and not result.omitted, _report(unexpected, result.omitted)
    if name in DELIBERATE:
        assert result.differences, "no difference any more: remove the DELIBERATE entry"


def _report(differences: list[Difference], omitted: int) -> str:
    lines = [f"{len(differences) + omitted} differences:"]
    for d in differences[:10]:
        lines.append(f"  {d.sheet}!{d.cell} [{d.category}] ours {d.ours!r:.80} theirs {d.theirs!r:.80}")
    return "\n".join(lines)


# -- the comparison itself --------------------------------------------------------------------------------------


def test_normalisation_absorbs_the_reference_forms() -> None:
    assert classify(canonical(3, False), canonical(3.0, False)) is None
    assert classify(canonical(0.1 + 0.2, False), canonical(0.3, False)) is None
    assert classify(canonical(1.0, False), canonical(1.0001, False)) == "number: value"
    assert classify(canonical("", False), canonical(None, False)) is None
    assert classify(canonical(True, False), canonical(1.0, False)) == "ours bool / theirs number"
    assert classify(canonical(CellError("#N/A"), False), canonical(CellError("#N/A"), False)) is None
    # 1900 system with the phantom 1900-02-29, and the 1904 system
    for date1904 in (False, True):
        day = datetime(1900, 1, 5) if not date1904 else datetime(1904, 1, 5)
        assert classify(canonical(day, date1904), canonical(day.date(), date1904)) is None
    assert classify(canonical(datetime(1899, 12, 31, 12), False), canonical(time(12), False)) == TIME_OF_DAY
    assert classify(canonical("a\r\nb", False), canonical("a\nb", False)) == CR_LF
    # calamine reads serial 0 as time 00:00 even under a date format: deliberate, for every file
    zero = classify(canonical(datetime(1899, 12, 31), False), canonical(time(0), False))
    assert zero in DELIBERATE_CATEGORIES


def test_compare_finds_no_difference_in_a_plain_workbook(tmp_path: Path) -> None:
    path = tmp_path / "plain.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet("Data")
    sheet.write_row("B2", [1, 2.5, "text", True])
    sheet.write_formula("B3", '="a"&"b"', None, "ab")
    sheet.write_formula("C3", "=1/0", None, "#DIV/0!")
    sheet.write_datetime("D3", datetime(2024, 2, 29, 13, 45), book.add_format({"num_format": "yyyy-mm-dd hh:mm"}))
    book.add_worksheet("Empty")
    book.close()
    result = compare(path)
    assert (result.status, result.sheets, result.differences) == ("identical", 2, [])
    assert result.cells == 7


def test_command_prints_the_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main([str(FILES / "tablib"), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "identical" in printed and "total" in printed
    assert out.stat().st_size > 0
