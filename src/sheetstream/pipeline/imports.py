"""An uploaded workbook on disk -> rows in the table: parse, validate and write in one pass, all or nothing.

Rows flow from the reader through validation straight into the database write (COPY or executemany) inside
one transaction. The first problem stops the writing, but the reading goes on to report every problem (up to
100 listed); at the end, any problem raises inside the transaction, which rolls it back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Invalid
from ..formats.xlsx import ReadLimits, open_workbook
from ..store import OnCommit, Store
from .validate import Problems, convert_rows, map_header

if TYPE_CHECKING:
    from .jobs import Job

Report = Callable[[Any], None]


def run_import(store: Store, job: Job, path: Path, report: Report, limits: ReadLimits = ReadLimits(),
               on_commit: OnCommit | None = None) -> Job:
    """Import ``path`` into ``job.table`` as ``job`` describes; ``report(job)`` is called as it progresses,
    ``on_commit(conn, count)`` inside the transaction right before COMMIT."""
    columns = store.columns(job.table)
    job.state = "parsing"
    report(job)
    with open_workbook(path, limits) as book:
        sheet = job.sheet or (book.sheet_names[0] if book.sheet_names else "")
        rows = book.rows(job.sheet)
        first = next(rows, None)
        if first is None:
            raise Invalid(f"sheet {sheet!r} is empty: the first row must name the columns, the rows below hold "
                          "the data", errors=[], error_total=0)
        plan = map_header(first[1], columns, sheet)
        problems = Problems()
        counters = {"rows_read": 0}
        job.state = "inserting"
        report(job)

        def checked():
            typed = convert_rows(rows, plan, sheet, problems, counters)
            for count, row in enumerate(typed, 1):
                if problems.total == 0:
                    yield row
                if count % 5_000 == 0:
                    job.rows_read = counters["rows_read"]
                    report(job)
            job.rows_read = counters["rows_read"]
            if problems.total:
                raise problems.error(f"sheet {sheet!r} has cells that do not fit table {job.table!r}")
            if job.rows_read == 0:
                raise Invalid(f"sheet {sheet!r} has a header but no rows", errors=[], error_total=0)

        try:
            job.rows_inserted = store.write_rows(job.table, plan.columns, checked(), job.mode, job.dry_run, on_commit)
        finally:
            job.rows_read = counters["rows_read"]
        if job.dry_run:
            job.rows_inserted = 0
    return job
