"""The compiled cell scanner (``_cells.c``) gives exactly the values of the reader's Python loop, or leaves the row
to it: generated rows of cells written every way, well and badly, are read both ways and compared, value and
type. Where the Python loop refuses a row (a problem at a cell), the scanner must not have given values for it."""

from __future__ import annotations

import math
import os
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sheetstream.formats.xlsx import open_workbook, write_xlsx
from sheetstream.formats.xlsx import shared_strings as shared_module
from sheetstream.formats.xlsx import sheet as sheet_module
from sheetstream.formats.xlsx.errors import XlsxError
from sheetstream.formats.xlsx.reader import Workbook
from sheetstream.formats.xlsx.tokens import _decode

scan = sheet_module._scan
needs_scanner = pytest.mark.skipif(scan is None, reason="the compiled cell scanner is not built (no C compiler?)")

STRINGS = ["zero", "one", "two & more", ""]
# Styles 2 and 3 show dates, 4 a time of day, 5 a duration (as styles._number_styles would find them).
DATE_STYLES, CLOCK_STYLES = frozenset({2, 3, 4, 5}), {4: "time", 5: "duration"}


def _book(date1904: bool = False) -> Workbook:
    return Workbook(zip=None, sheets=[], date1904=date1904, date_styles=DATE_STYLES,  # type: ignore[arg-type]
                    clock_styles=CLOCK_STYLES, _shared=list(STRINGS))


refs = st.one_of(st.just(""), st.sampled_from(["A", "B", "C", "K", "Z", "AA", "XFD", "XFE", "ZZZ", "AAAA", "a", "5"]))
styles = st.one_of(st.just(""), st.sampled_from(["0", "1", "2", "3", "4", "5", "77", "x", "0002", "2", "3", 'empty']))
kinds = st.one_of(st.just(""), st.sampled_from(["s", "n", "b", "str", "inlineStr", "e", "d", "foo"]))
NUMBERS = ["0", "7", "45000", "45000.5", "59.5", "60", "-1", "1e3", "-2.5E-3", "1e400", "3000000",
                     "0123", "1234567890123456789012", "inf", "nan", " 5", "1_0", "+5", "1.", ".5", "", "x",
                     "-", "2958465.99999999", "1.0000000001", "true", " 1 ", "TRUE", "#N/A", "3", "9"]
numbers = st.one_of(
    st.sampled_from(NUMBERS),
    st.integers(-10**20, 10**20).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
texts = st.one_of(
    st.sampled_from(["plain", "", "food &amp; drink", "&lt;b&gt; &quot;q&quot; &apos;a&apos;", "&#65;&#x42;",
                     "&bogus;", "a & b", "_x0041_", "bell_x0007_", "Ελληνικά 日本語", "  padded  ", "tab\there",
                     "&#32;refs&#10;", " ", "\n\t", "&#x20;", "_x0020_ a ", " &amp; ", "\u00a0nbsp\u00a0",
                     "a" * 40_000, "é" * 17_000]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="<&\r"), max_size=20),
).map(lambda t: t.encode())
BOOLEANS = ["0", "1", "true", "false", " 1 ", "\t1", "TRUE", "2", "1.0", "yes"]
INDEXES = ["0", "1", "2", "3", "4", "-1", "01", " 1", "+1", "1.0", "99", "9999999999"]
booleans, indexes = st.sampled_from(BOOLEANS), st.sampled_from(INDEXES)
SERIALS = ["0", "1", "59", "59.5", "59.99999999", "60", "60.5", "61", "-1", "-693593", "-693594", "2958465",
           "2958465.9999999", "2958466", "1e20", "45000.000005787", "0.5", "1.5e4", "4.5E+4"]
# Serials whose milliseconds end in exactly half a millisecond: round() takes them to the even one.
TIES = [repr(s) for s in ((k + 0.5) / 86_400_000 + d for k in range(0, 4000, 7) for d in (0, 1, 45000))
        if (s * 86_400_000) % 1 == 0.5]
serials = st.one_of(
    st.sampled_from(SERIALS + TIES),
    st.floats(-700_000, 3_000_000).map(repr),
    st.integers(-700_000, 3_000_000).map(str),
)
by_kind = {"b": booleans, "s": indexes, "n": numbers, "": numbers, "e": st.just("#N/A"), "d": st.just("2024-01-01")}
contents = st.one_of(
    st.tuples(st.just("v"), numbers.map(str.encode)),
    st.tuples(st.just("t"), texts),
    st.tuples(st.just("t_preserve"), texts),
    st.tuples(st.sampled_from(["closed", "empty", "formula", "rich", "bad_utf8", "v_attr"]), st.just(b"")),
)


@st.composite
def cells(draw) -> bytes:
    ref, style, kind = draw(refs), draw(styles), draw(kinds)
    attrs = []
    if ref:
        attrs.append(f'r="{ref}{draw(st.sampled_from(["", "1", "17", "x"]))}"')
    if style:
        attrs.append('s=""' if style == "empty" else f's="{style}"')  # s="": no style
    if kind:
        attrs.append(f't="{kind}"')
    if draw(st.booleans()):
        attrs.append('cm="1"')
    attrs = draw(st.permutations(attrs))
    form = draw(st.sampled_from(["plain", "plain", "plain", "single", "spaced", "tight"]))
    if form == "single" and attrs:
        attrs[0] = attrs[0].replace('"', "'")
    elif form == "spaced" and attrs:
        attrs[0] = attrs[0].replace("=", " = ")
    head = "<c" + "".join(f" {a}" for a in attrs) if form != "tight" else "<c " + "".join(attrs)
    if kind in ("str", "inlineStr", "foo") or draw(st.integers(0, 3)) == 0:
        what, raw = draw(contents)
    elif style in ("2", "3", "4", "5") and kind in ("", "n") and draw(st.booleans()):
        what, raw = "v", draw(serials).encode()
    else:
        what, raw = "v", draw(by_kind[kind]).encode()
    body = {
        "v": b"<v>" + raw + b"</v>",
        "t": b"<is><t>" + raw + b"</t></is>",
        "t_preserve": b'<is><t xml:space="preserve">' + raw + b"</t></is>",
        "empty": b"", "closed": None,
        "formula": b"<f>A1+1</f><v>2</v>", "rich": b"<is><r><t>a</t></r><r><t>b</t></r></is>",
        "bad_utf8": b"<is><t>\xff\xfe</t></is>", "v_attr": b'<v xml:space="preserve">3</v>',
    }[what]
    return head.encode() + (b"/>" if body is None else b">" + body + b"</c>")


rows = st.lists(cells(), max_size=8).map(lambda cs: b"<row>" + b"".join(cs))


def _typed(values: list) -> list:
    """Values with their types (1 == 1.0 == True in Python, but not in a table), NaN made comparable."""
    return [(type(v).__name__, "nan" if isinstance(v, float) and math.isnan(v) else v) for v in values]


def _both(piece: bytes, date1904: bool = False):
    book = _book(date1904)
    head_end = piece.find(b">")
    try:
        python = sheet_module._row_values(book, piece, head_end, 5)
    except XlsxError as exc:
        python = exc
    compiled = scan(piece, head_end + 1, sheet_module._scan_context(book))
    return python, compiled


@needs_scanner
@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, st.booleans())
def test_the_scanner_gives_the_python_loops_values_or_leaves_the_row_to_it(piece: bytes, date1904: bool):
    python, compiled = _both(piece, date1904)
    if compiled is None:
        return
    assert not isinstance(python, Exception), f"the Python loop refuses {piece!r} ({python}); the scanner read it"
    assert _typed(compiled) == _typed(python)


@needs_scanner
@pytest.mark.parametrize("date1904", [False, True])
def test_every_listed_value_reads_the_same_in_every_type_and_style(date1904: bool):
    """The cross product of the value lists above with every type and style, one cell each: the boundaries
    (serial 60, half milliseconds, the last day Excel shows, "true" and " 1 ") are met every time."""
    assert len(TIES) > 50
    read = 0
    for kind in ["", "s", "n", "b", "str", "inlineStr", "e", "d", "foo"]:
        for style in ["", "0", "1", "2", "3", "4", "5", "77"]:
            for value in sorted(set(BOOLEANS + INDEXES + SERIALS + TIES + NUMBERS)):
                attrs = (f' s="{style}"' if style else "") + (f' t="{kind}"' if kind else "")
                piece = f"<row><c{attrs}><v>{value}</v></c>".encode()
                python, compiled = _both(piece, date1904)
                if compiled is not None:
                    read += 1
                    assert not isinstance(python, Exception), piece
                    assert _typed(compiled) == _typed(python), piece
    assert read > 5_000  # the scanner read most of them itself


@needs_scanner
@pytest.mark.parametrize("piece, expected", [
    (b'<row><c><v>4</v></c><c t="inlineStr"><is><t>Tom&amp;s</t></is></c><c t="b"><v>1</v></c>'
     b'<c r="E2"><v>2.5</v></c><c r="F2"/>', [4, "Tom&s", True, None, 2.5]),
    (b'<row r="2"><c r="A2" s="2"><v>45000</v></c><c r="B2" s="3"><v>45000.75</v></c><c r="C2" t="s"><v>2</v></c>',
     [datetime(2023, 3, 15), datetime(2023, 3, 15, 18), "two & more"]),
    (b'<row><c t="inlineStr"><is><t xml:space="preserve">  padded  </t></is></c><c t="inlineStr"><is><t>'
     b"bell_x0007_</t></is></c><c t=\"str\"><v>&#65;</v></c>", ["  padded  ", "bell\x07", "A"]),
])
def test_the_usual_cells_are_read_by_the_scanner(piece: bytes, expected: list):
    """The forms that Excel, LibreOffice and our writer use, escapes and references included, do not fall back
    to the Python loop (else the scanner would be there for nothing)."""
    python, compiled = _both(piece)
    assert compiled is not None
    assert _typed(compiled) == _typed(python) == _typed(expected)


@needs_scanner
@pytest.mark.parametrize("cell", [
    b'<c r="XFE1"><v>1</v></c>', b'<c s="x"><v>1</v></c>', b'<c t="inlineStr"><is><t>\xff</t></is></c>',
    b'<c s="2"><v>1e20</v></c>', b'<c t="s"><v>99</v></c>', b"<c><v>abc</v></c>", b'<c t="e"><v>#N/A</v></c>',
    b"<c><f>1+1</f><v>2</v></c>", b"<c r='A1'><v>1</v></c>",
])
def test_cells_the_scanner_does_not_read_go_to_the_python_loop(cell: bytes):
    assert scan(b"<row>" + cell, 5, sheet_module._scan_context(_book())) is None


def test_a_workbook_reads_the_same_with_and_without_the_scanner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "rows.xlsx"
    rows = [(i, f"text {i} & more", i * 1.25, datetime(2024, 1, 1 + i % 28, i % 24), i % 2 == 0, None if i % 3 else "x")
            for i in range(3_000)]
    path.write_bytes(b"".join(write_xlsx(rows, ["id", "text", "number", "when", "flag", "sparse"])))
    with open_workbook(path) as book:
        compiled = list(book.rows())
    monkeypatch.setattr(sheet_module, "_scan", None)
    monkeypatch.setattr(sheet_module, "_scan_rows", None)
    with open_workbook(path) as book:
        python = list(book.rows())
    assert [(n, _typed(v)) for n, v in compiled] == [(n, _typed(v)) for n, v in python]
    assert len(python) == 3_001


@pytest.mark.skipif(os.environ.get("CI") != "true", reason="checked under CI=true, where a C compiler is installed")
def test_ci_builds_the_scanner():
    assert scan is not None, "the compiled cell scanner was not built: the import reads at a third of its speed"


# Shared strings: the scanner's reading of a block against the regular expression's, string by string.
_si_texts = st.one_of(texts, st.sampled_from([b"<![CDATA[x<y]]>", b"a\xffb"]))
_sis = st.one_of(
    _si_texts.map(lambda t: b"<si><t>" + t + b"</t></si>"),
    _si_texts.map(lambda t: b'<si><t xml:space="preserve">' + t + b"</t></si>"),
    st.sampled_from([b"<si/>", b"<si></si>", b"<si><t/></si>", b'<si count="1"><t>a</t></si>', b"<si ><t>b</t></si>",
                     b"<si><r><t>rich </t></r><r><rPr><b/></rPr><t>text</t></r></si>",
                     b'<si><t>kana</t><rPh sb="0" eb="1"><t>\xe3\x82\xab</t></rPh></si>', b"<si><t>a</t><t>b</t></si>",
                     b"<si><t>unended</t>", b"<sil/>", b"<si", b"\n  ", b'<sst xmlns="x" count="3">', b"</sst>",
                     b"<si><t>a</t><si><t>b</t></si>"]),
)


def _compiled_and_python(read, monkeypatch: pytest.MonkeyPatch, *compiled: str):
    """``read()`` with the scanner, then with the reader's ``compiled`` functions taken away (the Python code)."""
    with_scanner = read()
    with monkeypatch.context() as patched:
        for name in compiled:
            patched.setattr(shared_module if name == "_shared_scan" else sheet_module, name, None)
        return with_scanner, read()


def _texts_both_ways(block: bytes, monkeypatch: pytest.MonkeyPatch):
    def read():
        try:
            return shared_module._shared_texts(block, 7)
        except XlsxError as exc:
            return f"{type(exc).__name__}: {exc}"

    return _compiled_and_python(read, monkeypatch, "_shared_scan")


@needs_scanner
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(block=st.lists(_sis, max_size=10).map(b"".join))
def test_the_scanner_reads_shared_strings_as_the_regex_does(block: bytes, monkeypatch: pytest.MonkeyPatch):
    compiled, python = _texts_both_ways(block, monkeypatch)
    assert compiled == python


@needs_scanner
def test_plain_shared_strings_are_read_by_the_scanner():
    block = (b'<sst count="4"><si><t>plain</t></si><si><t xml:space="preserve"> a &amp; b </t></si><si/>'
             b"<si><t>bell_x0007_</t></si><si><r><t>rich</t></r></si>")
    assert shared_module._shared_scan(block, _decode) == ["plain", " a & b ", "", "bell\x07",
                                                                        b"<r><t>rich</t></r>"]


# Whole blocks: the rows in C (``rows``) against the Python loop, numbering included.
_heads = st.sampled_from(['<row r="{n}">', "<row>", '<row r="{n}" spans="1:3">', "<row spans='1:2'  r = '{n}' >",
                          '<row r="{n}"/>', "<row/>", '<row r="0">', '<row r="1048577">', '<row r=" {n}">',
                          '<row r="x">', '<row\tr="{n}">', "<row r={n}>", '<row customHeight="1" r="{n}">',
                          '<row r="{n}"', "<row", "<row/"])  # heads cut by the next "<": refused by both


@st.composite
def blocks(draw) -> bytes:
    out, n = [], 0
    for _ in range(draw(st.integers(0, 6))):
        n += draw(st.sampled_from([1, 1, 2, 9]))
        head = draw(_heads).format(n=n).encode()
        body = b"" if head.endswith(b"/>") else b"".join(draw(st.lists(cells(), max_size=4))) + b"</row>"
        out.append(draw(st.sampled_from([b"", b"\n", b"<c><v>1</v></c>"])) + head + body)
    return b"".join(out) + draw(st.sampled_from([b"", b"<c><v>1</v></c>"]))  # after the last row: not a cell


def _rows_both_ways(block: bytes, previous: int, monkeypatch: pytest.MonkeyPatch):
    def read():
        rows = sheet_module._block_rows(_book(), block, previous)
        found = []
        try:
            while True:
                number, values = next(rows)
                found.append((number, _typed(values)))
        except StopIteration as stop:
            return found, stop.value
        except XlsxError as exc:
            return found, f"{type(exc).__name__}: {exc}"

    return _compiled_and_python(read, monkeypatch, "_scan_rows", "_scan")


@needs_scanner
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(block=blocks(), previous=st.sampled_from([0, 5, 1_048_575]))
def test_the_scanner_reads_a_block_of_rows_as_the_python_loop_does(block: bytes, previous: int,
                                                                  monkeypatch: pytest.MonkeyPatch):
    compiled, python = _rows_both_ways(block, previous, monkeypatch)
    if isinstance(python[1], str):  # a refused row: the same error, after the same rows (where both give them)
        assert compiled[1] == python[1]
    else:
        assert compiled == python


@needs_scanner
def test_usual_rows_are_read_by_the_scanner(monkeypatch: pytest.MonkeyPatch):
    block = (b'<row r="2" spans="1:2"><c r="A2"><v>1</v></c></row><row><c><v>2</v></c></row>'
             b'<row r="7"/><row r="9"><c r="B9" t="inlineStr"><is><t>x</t></is></c></row>')
    found, last, rest = sheet_module._scan_rows(block, 1, sheet_module._scan_context(_book()), None)
    assert (found, last, rest) == ([(2, [1]), (3, [2]), (9, [None, "x"])], 9, len(block))


@needs_scanner
def test_shared_strings_read_the_same_from_the_compact_table(monkeypatch: pytest.MonkeyPatch):
    """The table is one UTF-8 buffer with an end offset per text, and the scanner keeps short texts it read in a
    cache of 4,096 slots: texts that share a slot, long ones, empty ones and lone surrogates (from ``_xD800_``)
    read back as they went in, in C and in Python."""
    texts = ["", "a", "é" * 40, "x" * 100, "\ud800 lone", "日本"] + [f"text {i}" for i in range(5_000)]
    order = [(i * 7_919) % len(texts) for i in range(3 * len(texts))]  # each slot visited by several texts
    block = b"".join(b'<row><c t="s"><v>%d</v></c></row>' % i for i in order)

    def read():
        book = Workbook(zip=None, sheets=[], _shared=list(texts))  # type: ignore[arg-type]
        return [values for _, values in sheet_module._block_rows(book, block, 0)]

    compiled, python = _compiled_and_python(read, monkeypatch, "_scan_rows", "_scan")
    assert compiled == python == [[texts[i]] for i in order]
