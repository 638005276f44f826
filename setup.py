"""The compiled hot loops: the import's cell scanner (``sheetstream.formats.xlsx._cells``) and the export's row
encoder (``sheetstream.formats.xlsx._rows``); everything else is in pyproject.toml.

Both are optional: where they cannot be built (no C compiler), the reader reads every row with its Python loop and
the writer writes every row with its own, which give the same values and bytes (tests/formats/xlsx/test_cells.py,
test_rows.py), only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sheetstream.formats.xlsx._cells", ["src/sheetstream/formats/xlsx/_cells.c"],
                             extra_compile_args=["-O2"], optional=True),
                   Extension("sheetstream.formats.xlsx._rows", ["src/sheetstream/formats/xlsx/_rows.c"],
                             extra_compile_args=["-O2"], optional=True)])
