"""The shared strings part: its texts, read block by block, bounded, and held compactly."""

from __future__ import annotations

import itertools
import re
from array import array
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .errors import BadWorkbook, WorkbookTooLarge
from .tokens import _blocks, _CellProblem, _decode, _rich_text

if TYPE_CHECKING:
    from .reader import Workbook

try:  # the compiled scanner (_cells.c); optional: without it, the strings are read by the regular expression
    from ._cells import shared as _shared_scan
except ImportError:  # pragma: no cover
    _shared_scan = None


#: Bytes of XML that a shared string takes at least (``<si><t>a</t></si>`` is 17; empty ones are rare, as the table
#: holds each text once): far more strings than the bytes allow is a flood meant to fill memory.
_SHARED_MIN_BYTES = 12


_SI = re.compile(rb"<si\b[^<>]*?(?:/>|>((?:[^<]++|<(?!si[\s>/]))*?)</si>)")


class SharedStrings(Sequence[str]):
    """The shared strings table, held compactly: the UTF-8 of every text in one buffer, and where each ends
    (4 bytes a string), rather than a Python string each (some 60 bytes more a string: 5,000,000 texts of 4
    bytes took 467 MB). A text is decoded when a cell asks for it (the compiled scanner does that itself)."""

    #: The first texts of the table, short ones, once read (by the compiled scanner): a column of few values (a
    #: category, a status) has them among the first, and they are then one string each, as in a list, for at
    #: most a few hundred kB.
    CACHED = 4096

    def __init__(self) -> None:
        self.data = bytearray()
        self.ends = array("I")  # the buffer stays under 4 GB: max_shared_chars is 100 million by default
        self.cache: list[str | None] = [None] * self.CACHED
        self.cached = array("q", [-1]) * self.CACHED  # the index of the text in each slot of the cache

    @classmethod
    def of(cls, texts: Iterable[str]) -> SharedStrings:
        table = cls()
        table.extend(list(texts))
        return table

    def extend(self, texts: list[str]) -> None:
        try:
            encoded = list(map(str.encode, texts))  # a loop in C: a third of the time of a comprehension
        except UnicodeEncodeError:  # a lone surrogate, from an escape such as _xD800_
            encoded = [text.encode("utf-8", "surrogatepass") for text in texts]
        ends = itertools.accumulate(map(len, encoded), initial=len(self.data))
        next(ends)  # the start of the first: the end of the last one there
        self.ends.extend(ends)
        self.data += b"".join(encoded)
        if len(self.data) >= 1 << 32:
            raise WorkbookTooLarge("the shared strings table holds over 4 GB of text")

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        end = self.ends[index]
        start = self.ends[index - 1] if index > 0 else 0
        return self.data[start:end].decode("utf-8", "surrogatepass")

    def nbytes(self) -> int:
        return len(self.data) + self.ends.itemsize * len(self.ends)


def _read_shared_strings(book: Workbook) -> SharedStrings:
    strings = SharedStrings()
    count = chars = seen = 0
    limits = book.limits
    for block in _blocks(book, book.shared_strings_path or "", b"<si", None, "shared string"):
        seen += len(block)
        texts = _shared_texts(block, count)
        chars += sum(map(len, texts))
        if chars > limits.max_shared_chars:
            raise WorkbookTooLarge(
                f"the shared strings table holds over {limits.max_shared_chars:,} characters, more than this "
                "server keeps in memory; save the sheet with fewer distinct texts or split it"
            )
        count += len(texts)
        if count > limits.max_shared_strings or count > seen // _SHARED_MIN_BYTES + 10_000:
            raise WorkbookTooLarge(
                f"the shared strings table holds over {min(count, limits.max_shared_strings):,} strings"
                + (f" in {seen:,} bytes, more than real workbooks ever do" if count <= limits.max_shared_strings
                   else ", more than this server keeps in memory; save the sheet with fewer distinct texts or split it")
            )
        strings.extend(texts)
    return strings


def _shared_texts(block: bytes, first: int) -> list[str]:
    """The texts of a block of shared strings, the first being string number ``first``: plain ones read by the
    compiled scanner where it is built, the others (and every one, where it is not) by :func:`_rich_text`."""
    found = _shared_scan(block, _decode) if _shared_scan is not None else None
    if found is None:
        found = [m.group(1) or "" for m in _SI.finditer(block)]
    for i, item in enumerate(found):
        if type(item) is bytes:
            try:
                found[i] = _rich_text(item)
            except _CellProblem as exc:
                raise BadWorkbook(f"shared string {first + i} cannot be read: {exc}") from None
    return found
