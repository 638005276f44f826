"""The compiled cell scanner (``sheetstream.formats.xlsx._cells``) and MySQL's LOAD DATA encoder
(``sheetstream.store._loaddata``); everything else is in pyproject.toml.

Both are optional: where they cannot be built (no C compiler), the reader reads every row with its Python loop and
the rows for MySQL are encoded in Python, which give the same values (tests/formats/xlsx/test_cells.py,
tests/store/test_loaddata.py), only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sheetstream.formats.xlsx._cells", ["src/sheetstream/formats/xlsx/_cells.c"],
                             extra_compile_args=["-O2"], optional=True),
                   Extension("sheetstream.store._loaddata", ["src/sheetstream/store/_loaddata.c"],
                             extra_compile_args=["-O2"], optional=True)])
