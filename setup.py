"""The compiled cell scanner (``sheetstream.formats.xlsx._cells``) and the import's compiled cell checks and COPY
encoding (``sheetstream.pipeline._encode``); everything else is in pyproject.toml.

It is optional: where it cannot be built (no C compiler), the reader reads every row with its Python loop, which
gives the same values (tests/formats/xlsx/test_cells.py), only slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sheetstream.formats.xlsx._cells", ["src/sheetstream/formats/xlsx/_cells.c"],
                             extra_compile_args=["-O2"], optional=True),
                   Extension("sheetstream.pipeline._encode", ["src/sheetstream/pipeline/_encode.c"],
                             extra_compile_args=["-O2"], optional=True)])
