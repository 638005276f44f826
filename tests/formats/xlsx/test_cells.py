from datetime import date, datetime, time

import pytest

from sheetstream.formats.xlsx.cells import (
    column_index,
    column_letter,
    date_to_serial,
    datetime_to_serial,
    escape_text,
    excel_length,
    serial_to_datetime,
    time_to_serial,
    truncate_to_excel,
    unescape_text,
)


@pytest.mark.parametrize("index,letters", [(0, "A"), (25, "Z"), (26, "AA"), (701, "ZZ"), (702, "AAA"), (16383, "XFD")])
def test_column_letters(index: int, letters: str) -> None:
    assert column_letter(index) == letters and column_index(letters) == index


@pytest.mark.parametrize("value,serial", [
    (date(1900, 1, 1), 1), (date(1900, 2, 28), 59), (date(1900, 3, 1), 61), (date(2024, 1, 2), 45293),
])
def test_date_serials_match_excel(value: date, serial: int) -> None:
    assert date_to_serial(value) == serial
    assert serial_to_datetime(serial).date() == value


def test_datetime_and_time_serials() -> None:
    assert datetime_to_serial(datetime(2024, 1, 2, 12)) == 45293.5
    assert serial_to_datetime(45293.5) == datetime(2024, 1, 2, 12)
    assert serial_to_datetime(0, date1904=True) == datetime(1904, 1, 1)
    assert time_to_serial(time(6)) == 0.25


@pytest.mark.parametrize("text", ["plain", "a<b>&c", "ctl\x00\x01\x1f", "cr\r\nlf", "_x0041_", "_x00zz_", "x_y", "\ud800"])
def test_escape_round_trips(text: str) -> None:
    escaped = escape_text(text)
    assert not any(c in escaped for c in "<>\r\x00\x01")
    xml_unescaped = escaped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert unescape_text(xml_unescaped) == text


def test_excel_length_counts_utf16_units() -> None:
    assert excel_length("a" * 40_000) == 40_000
    assert excel_length("📦" * 20_000) == 40_000
    assert truncate_to_excel("📦" * 20_000) == "📦" * 16_383
