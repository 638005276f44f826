"""A sheet read block by block, each block numbered by :func:`last_row` of the ones before it without reading
their cells, gives exactly the rows of a whole read: what lets two processes read one sheet."""

from __future__ import annotations

import random
from pathlib import Path

import openpyxl
import pytest

from sheetstream.formats.xlsx import last_row, open_workbook, package, write_xlsx

from ...helpers import make_xlsx


def _rows(count: int, gaps: bool) -> list[tuple]:
    rng = random.Random(count)
    return [(i, f"text {i}", None if gaps and rng.random() < 0.3 else i * 1.5) for i in range(count)]


def _sheet_xml(rng: random.Random, count: int) -> str:
    """Rows numbered every way: by ``r`` (Excel), by position (no ``r``), after gaps, with empty ``<row/>``s,
    with other quotes and spacing."""
    out, number = [], 0
    for _ in range(count):
        number += rng.choice([1, 1, 1, 2, 7])
        how = rng.choice(["r", "none", "none", "empty", "quoted"])
        if how == "none" and out and out[-1][0] != number - 1:
            how = "r"  # a row without r follows the one before it: a gap needs its number
        cells = f'<c t="inlineStr"><is><t>row {number}</t></is></c><c><v>{number}</v></c>'
        head = {"r": f'<row r="{number}">', "none": "<row>", "quoted": f"<row spans='1:2'  r = '{number}' >",
                "empty": f'<row r="{number}"/>'}[how]
        out.append((number, head if how == "empty" else f"{head}{cells}</row>"))
    return "".join(xml for _, xml in out)


def _by_blocks(path: Path) -> tuple[list, list[int]]:
    """The rows of ``path`` read block by block, and the numbers :func:`last_row` gave each block."""
    with open_workbook(path) as book:
        rows, previous, numbers = [], 0, []
        for block in book.row_blocks():
            gen = book.block_rows(block, previous)
            while True:
                try:
                    rows.append(next(gen))
                except StopIteration as stop:
                    ended = stop.value
                    break
            guessed = last_row(block, previous)
            assert guessed == ended, f"block after row {previous}: last_row says {guessed}, reading it {ended}"
            numbers.append(ended)
            previous = guessed
        return rows, numbers


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(package, "_BLOCK", 4096)  # many blocks out of a small sheet


@pytest.mark.parametrize("gaps", [False, True])
def test_our_files_read_the_same_by_blocks(tmp_path: Path, small_blocks: None, gaps: bool) -> None:
    path = tmp_path / "ours.xlsx"
    path.write_bytes(b"".join(write_xlsx(_rows(3_000, gaps), ["id", "text", "value"])))
    rows, numbers = _by_blocks(path)
    with open_workbook(path) as book:
        assert rows == list(book.rows())
    assert len(numbers) > 20


def test_excel_style_files_read_the_same_by_blocks(tmp_path: Path, small_blocks: None) -> None:
    path = tmp_path / "openpyxl.xlsx"
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("data")
    for row in _rows(2_000, gaps=True):
        sheet.append(row)
    book.save(path)
    rows, numbers = _by_blocks(path)
    with open_workbook(path) as whole:
        assert rows == list(whole.rows())
    assert len(numbers) > 10


@pytest.mark.parametrize("seed", range(5))
def test_rows_numbered_every_way_read_the_same_by_blocks(tmp_path: Path, small_blocks: None, seed: int) -> None:
    path = make_xlsx(tmp_path / f"mixed{seed}.xlsx", _sheet_xml(random.Random(seed), 1_500))
    rows, numbers = _by_blocks(path)
    with open_workbook(path) as book:
        assert rows == list(book.rows())
    assert len(numbers) > 10 and all(values == [f"row {n}", n] for n, values in rows)
