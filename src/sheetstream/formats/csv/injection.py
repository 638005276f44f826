"""Formula-injection neutralising ("CSV injection", OWASP): spreadsheet apps run a cell that begins with ``=``,
``+``, ``-`` or ``@`` as a formula (``=HYPERLINK(...)``, DDE payloads), and some skip a leading tab or CR first.
The writer puts a ``'`` before such a text, which Excel and LibreOffice show as text and do not run; the reader
takes it off again, so that an export reads back exactly.

So that the pair is exact for every text, a text that already begins with ``'`` followed (after any more ``'``)
by a trigger gets one more ``'`` too: the writer's rule is "``'`` before any text that, with its leading ``'``
removed, begins with a trigger", and the reader's is its inverse, "remove one ``'`` from such a text". A file
written by hand with ``'=1`` in a cell therefore reads as ``=1``. Numbers are never changed (``-5`` is a number).
"""

from __future__ import annotations

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# The cheap first test for both directions: a text that starts with none of these needs no look at all.
STARTS = TRIGGERS + ("'",)


def neutralise(text: str) -> str:
    """``text`` as the writer writes it (see the module)."""
    if text.startswith(STARTS) and text.lstrip("'").startswith(TRIGGERS):
        return "'" + text
    return text


def restore(text: str) -> str:
    """The inverse of :func:`neutralise`."""
    if text.startswith("'") and text.lstrip("'").startswith(TRIGGERS):
        return text[1:]
    return text
