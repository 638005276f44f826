"""`sheetstream bench export --http-rows N`: the filtered, sorted and two-sheet exports are measured beside the plain
one, on a real server, and reported."""

from __future__ import annotations

import json
from pathlib import Path

from sheetstream.cli import main
from sheetstream.tools.bench.export import HTTP_QUERIES


def test_bench_export_measures_queries_and_a_two_sheet_book(tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    assert main(["bench", "export", "--rows", "100", "--repeats", "1", "--source", "demo", "--deflate-choices",
                 "default", "--http-rows", "2000", "--no-postgres-read", "--peers", "none", "--out", str(out)]) == 0
    http = json.loads(out.read_text())["http"][0]
    queries = http["queries"]
    assert [q["query"] for q in queries][:len(HTTP_QUERIES)] == list(HTTP_QUERIES)
    assert len(queries) == len(HTTP_QUERIES) + 1 and all(q["status"] == 200 and q["bytes"] > 1000 for q in queries)
    assert queries[-1]["bytes"] > http["bytes"] and queries[-1]["server_peak_rss_mb"] > 0  # two sheets of the table
    report = out.with_suffix(".md").read_text()
    assert "order, no index (order=weight)" in report and "two-sheet workbook" in report


def test_bench_postgres_queries_time_the_first_row(pg_url: str, pg_table: str) -> None:
    from rich.console import Console

    from sheetstream.store.demo import seed
    from sheetstream.store.postgres import PostgresStore
    from sheetstream.tools.bench.export import postgres_queries

    seed(PostgresStore(pg_url), 500, pg_table)
    found = postgres_queries(pg_url, pg_table, Console(quiet=True))
    assert [f["method"] for f in found] == [f"cursor, {name}" for name in HTTP_QUERIES]
    assert found[2]["rows"] == found[3]["rows"] == 500 and all(f["first_row_ms"] >= 0 for f in found)
