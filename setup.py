"""The compiled hot loops; everything else is in pyproject.toml.

Each is optional: where it cannot be built (no C compiler), the Python loop it stands in for gives the same
values and bytes (the test named beside it compares the two), only slower.
"""

from setuptools import Extension, setup

HOT_LOOPS = {
    "formats/xlsx/_cells.c": "the workbook reader's cell scanner (tests/formats/xlsx/test_cells.py)",
    "formats/xlsx/_rows.c": "the workbook writer's rows (tests/formats/xlsx/test_rows.py)",
    "formats/csv/_fast.c": "CSV's writer and record reader (tests/formats/csv/test_fast.py)",
    "pipeline/_encode.c": "the import's cell checks and COPY encoding (tests/pipeline/test_encode.py)",
    "store/_loaddata.c": "MySQL's LOAD DATA rows (tests/store/test_loaddata.py)",
}

setup(ext_modules=[Extension("sheetstream." + source[:-2].replace("/", "."), [f"src/sheetstream/{source}"],
                             extra_compile_args=["-O2"], optional=True) for source in HOT_LOOPS])
