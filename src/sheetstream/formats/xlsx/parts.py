"""The small, fixed parts of an OOXML spreadsheet package (everything but the worksheets)."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument"

#: The media type of an .xlsx workbook.
MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

# Cell style indexes (cellXfs) used by the writer (1, the bold header, is written with the header row).
STYLE_DATE = 2
STYLE_DATETIME = 3
STYLE_TIME = 4
STYLE_DURATION = 5

#: Custom number formats (ids from 164 on are free for custom formats).
NUMBER_FORMATS = {
    164: "yyyy-mm-dd",
    165: "yyyy-mm-dd hh:mm:ss",
    166: "hh:mm:ss",
    167: "[h]:mm:ss",
}
#: Number formats every reader knows by id (ECMA-376 part 1, 18.8.30): no numFmt element needed.
BUILTIN_FORMATS = {"0": 1, "0.00": 2, "#,##0": 3, "#,##0.00": 4, "0%": 9, "0.00%": 10}
#: The first cell style (cellXfs index) of a column's own number format: after the writer's fixed ones.
FIRST_COLUMN_STYLE = 6
_FIRST_CUSTOM_FORMAT = max(NUMBER_FORMATS) + 1


def styles(column_formats: list[str] = ()) -> str:  # type: ignore[assignment]
    """The styles part: the writer's fixed cell styles (plain, bold header, date, date and time, time,
    duration), then one per format code of ``column_formats``, from :data:`FIRST_COLUMN_STYLE` on, in order."""
    custom = dict(NUMBER_FORMATS)
    ids = []
    for code in column_formats:
        if code not in BUILTIN_FORMATS and code not in custom.values():
            custom[_FIRST_CUSTOM_FORMAT + len(custom) - len(NUMBER_FORMATS)] = code
        ids.append(BUILTIN_FORMATS.get(code) or next(i for i, c in custom.items() if c == code))
    xfs = [f'<xf numFmtId="{i}" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>' for i in ids]
    return (
        XML_DECL
        + f'<styleSheet xmlns="{NS_MAIN}">'
        + f'<numFmts count="{len(custom)}">'
        + "".join(f"<numFmt numFmtId={quoteattr(str(i))} formatCode={quoteattr(code)}/>" for i, code in custom.items())
        + "</numFmts>"
        '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
        '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/>'
        '</fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        f'<cellXfs count="{FIRST_COLUMN_STYLE + len(xfs)}">'
        '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="165" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="166" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        '<xf numFmtId="167" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        + "".join(xfs)
        + "</cellXfs>"
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    )


STYLES = styles()

ROOT_RELS = (
    XML_DECL
    + f'<Relationships xmlns="{NS_PKG_REL}">'
    f'<Relationship Id="rId1" Type="{_DOC_REL}/officeDocument" Target="xl/workbook.xml"/>'
    f'<Relationship Id="rId2" Type="{_DOC_REL}/extended-properties" Target="docProps/app.xml"/>'
    "</Relationships>"
)

APP_PROPS = (
    XML_DECL
    + '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">'
    "<Application>sheetstream</Application></Properties>"
)


def content_types(sheet_count: int) -> str:
    sheets = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="{_CT}.spreadsheetml.worksheet+xml"/>'
        for i in range(1, sheet_count + 1)
    )
    return (
        XML_DECL
        + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        f'<Default Extension="rels" ContentType="{_CT.replace("officedocument", "package")}.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.spreadsheetml.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.spreadsheetml.styles+xml"/>'
        f'<Override PartName="/docProps/app.xml" ContentType="{_CT}.extended-properties+xml"/>'
        + sheets
        + "</Types>"
    )


def workbook(sheets: list[tuple[str, str | None]]) -> str:
    """``sheets``: (name, autofilter range such as ``A1:K100`` or None) in order."""
    entries = "".join(
        f"<sheet name={quoteattr(name)} sheetId=\"{i}\" r:id=\"rId{i}\"/>" for i, (name, _) in enumerate(sheets, 1)
    )
    names = "".join(
        f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
        f"{_sheet_ref(name)}!{_absolute(ref)}</definedName>"
        for i, (name, ref) in enumerate(sheets)
        if ref
    )
    return (
        XML_DECL
        + f'<workbook xmlns="{NS_MAIN}" xmlns:r="{NS_REL}">'
        '<workbookPr date1904="false"/>'
        '<bookViews><workbookView activeTab="0"/></bookViews>'
        f"<sheets>{entries}</sheets>"
        + (f"<definedNames>{names}</definedNames>" if names else "")
        + "</workbook>"
    )


def workbook_rels(sheet_count: int) -> str:
    rels = "".join(
        f'<Relationship Id="rId{i}" Type="{_DOC_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, sheet_count + 1)
    )
    styles = f'<Relationship Id="rId{sheet_count + 1}" Type="{_DOC_REL}/styles" Target="styles.xml"/>'
    return XML_DECL + f'<Relationships xmlns="{NS_PKG_REL}">{rels}{styles}</Relationships>'


def _sheet_ref(name: str) -> str:
    return "'" + name.replace("'", "''").replace("&", "&amp;").replace("<", "&lt;") + "'"


def _absolute(ref: str) -> str:
    start, end = ref.split(":")
    return ":".join("$" + "".join(c for c in part if c.isalpha()) + "$" + "".join(c for c in part if c.isdigit())
                    for part in (start, end))
