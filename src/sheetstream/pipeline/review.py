"""An import's problems handed back in the workbook itself: the kept upload, marked up (:mod:`..formats.xlsx.markup`)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ..config import ExportOptions
from ..formats.xlsx import deflater
from ..formats.xlsx.markup import Mark, mark_up


def marks_of(job: dict[str, Any]) -> list[Mark]:
    """A job's listed problems and its warnings (as the API shows them) as marks."""
    def mark(entry: dict[str, Any], level: str) -> Mark:
        return Mark(sheet=entry.get("sheet") or "", cell=entry.get("cell") or "", message=entry.get("message") or "",
                    column=entry.get("column"), value=entry.get("value"), level=level)

    return [mark(e, "error") for e in job.get("errors") or []] + [mark(w, "warning") for w in job.get("warnings") or []]


def marked_workbook(path: str, job: dict[str, Any], options: ExportOptions) -> Generator[bytes, None, int]:
    """The workbook at ``path`` with ``job``'s problems marked, in chunks; returns the bytes sent. A task for the
    processing queue, like an export."""
    marks = marks_of(job)
    unlisted = max(0, int(job.get("error_total") or 0) - len(job.get("errors") or []))
    sent = 0
    for chunk in mark_up(path, marks, unlisted, compress=deflater(options.deflate, options.deflate_level)):
        sent += len(chunk)
        yield chunk
    return sent
