"""The compiled hot loops; everything else is in pyproject.toml.

They are optional: where they cannot be built (no C compiler), the Python loops they stand in for give the same
output (tests/formats/xlsx/test_cells.py, tests/formats/csv/test_fast.py), only slower: the workbook's cell
scanner (``sheetstream.formats.xlsx._cells``) and CSV's writer and reader (``sheetstream.formats.csv._fast``).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sheetstream.formats.xlsx._cells", ["src/sheetstream/formats/xlsx/_cells.c"],
                             extra_compile_args=["-O2"], optional=True),
                   Extension("sheetstream.formats.csv._fast", ["src/sheetstream/formats/csv/_fast.c"],
                             extra_compile_args=["-O2"], optional=True)])
