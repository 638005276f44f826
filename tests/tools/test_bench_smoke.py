"""`sheetstream bench import` and `bench export` on tiny sizes with a peer or two (those installed): the JSON keeps
every run, the machine's load and the ratio ranges, and the Markdown shows them. Not a measure of speed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from sheetstream.cli import main
from sheetstream.tools.harness import installed

REPEATS = 2


def _check_load(results: dict, report: str) -> None:
    load = results["load"]
    assert load["cores"] >= 1 and len(load["loadavg_before"]) == 3 and len(load["loadavg_after"]) == 3
    assert load["others_cpu_percent"]["max"] >= load["others_cpu_percent"]["median"] >= 0
    assert "## Machine load" in report and "load average (1, 5, 15 min) before" in report
    assert "other processes' CPU" in report


def test_bench_import_tiny(tmp_path: Path) -> None:
    peers = [p for p, package in (("calamine-copy", "python-calamine"), ("pandas-copy", "pandas")) if installed(package)]
    out = tmp_path / "import.json"
    assert main(["bench", "import", "--rows", "300", "--databases", "sqlite", "--repeats", str(REPEATS),
                 "--openpyxl-max", "0", "--peers", ",".join(peers) or "none", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    report = out.with_suffix(".md").read_text()
    _check_load(results, report)
    runs = results["import"]
    cases = {"sheetstream", *(p for p in peers if p != "pandas-copy")}  # pandas + COPY is PostgreSQL only
    assert {r["case"] for r in runs} == cases
    assert len(runs) == len(cases) * REPEATS  # every raw run is kept
    assert [r["case"] for r in runs][: len(cases)] == [r["case"] for r in runs][len(cases): 2 * len(cases)]
    for r in runs:
        assert "error" not in r, r
        assert r["seconds"] > 0 and r["cpu_seconds"] >= 0 and r["rows_done"] == 300 and "others_cpu_percent" in r
    ratios = results["ratios"]["import"]["sqlite 300"]
    assert ratios["sheetstream"]["ratio"]["median"] == 1.0
    for peer in cases - {"sheetstream"}:
        stats = ratios[peer]["ratio"]
        assert stats["n"] == REPEATS and stats["min"] <= stats["median"] <= stats["max"]
        assert re.search(rf"\| sqlite 300 \| {peer} \| [\d.]+ \([\d.]+-[\d.]+\) \|", report), report
    if "pandas-copy" in peers:
        assert any(s["case"] == "pandas-copy" and "PostgreSQL only" in s["reason"] for s in results["skipped"])
    assert {p["case"] for p in results["parse"]} >= {"sheetstream-parse"}
    assert "time / sheetstream" in report


def test_bench_import_reads_a_workbook_written_as_excel_writes_one(tmp_path: Path) -> None:
    """``--writer xlsxwriter``: shared strings and a reference on every cell; every case reads all its rows."""
    peers = ["calamine-copy"] if installed("python-calamine") else []
    out = tmp_path / "import.json"
    assert main(["bench", "import", "--rows", "300", "--databases", "sqlite", "--repeats", "1", "--writer",
                 "xlsxwriter", "--openpyxl-max", "0", "--peers", ",".join(peers) or "none", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["writer"] == "xlsxwriter" and {r["case"] for r in results["import"]} == {"sheetstream", *peers}
    assert all("error" not in r and r["rows_done"] == 300 for r in results["import"] + results["parse"])
    assert "written by XlsxWriter" in out.with_suffix(".md").read_text()


def test_bench_export_tiny(tmp_path: Path) -> None:
    peers = [p for p, package in (("xlsxwriter", "xlsxwriter"), ("rustpy-xlsxwriter", "rustpy-xlsxwriter"))
             if installed(package)]
    out = tmp_path / "export.json"
    assert main(["bench", "export", "--rows", "300", "--repeats", str(REPEATS), "--source", "demo",
                 "--deflate-choices", "default", "--http-rows", "--no-postgres-read",
                 "--peers", ",".join(peers) or "none", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    report = out.with_suffix(".md").read_text()
    _check_load(results, report)
    writers = ["source", "sheetstream:isal:1", *peers]
    assert [w["writer"] for w in results["writers"]] == writers * REPEATS
    for w in results["writers"]:
        assert "error" not in w, w
        assert w["seconds"] > 0 and w["cpu_seconds"] >= 0 and w["rows"] == 300
        if w["writer"] != "source":
            assert w["bytes"] > 1000 and w["first_byte_seconds"] is not None
    baseline = results["baseline"]
    assert baseline == ("xlsxwriter" if "xlsxwriter" in peers else "sheetstream:isal:1")
    stats = results["ratios"]["seconds"]["300"]
    for writer in writers:
        assert stats[writer]["speedup"]["n"] == REPEATS
    line = next(line for line in report.splitlines() if line.startswith("| sheetstream:isal:1 | 300 |"))
    if baseline != "sheetstream:isal:1":
        assert re.search(r"\| [\d.]+x \([\d.]+-[\d.]+\)x? \|", line) or re.search(r"\| [\d.]+x \|", line), line
    assert "CPU us/row" in report and "speed-up vs" in report


def test_bench_export_floor_tiny(tmp_path: Path, pg_url: str) -> None:
    """The export's floor: PostgreSQL's COPY of the rows, then the deflate of sheetstream's sheet XML of them."""
    out = tmp_path / "export.json"
    assert main(["bench", "export", "--rows", "300", "--repeats", "1", "--source", "postgres", "--deflate-choices",
                 "default", "--http-rows", "--no-postgres-read", "--peers", "copy-floor", "--out", str(out)]) == 0
    writers = {w["writer"]: w for w in json.loads(out.read_text())["writers"]}
    floor, mine = writers["copy-floor"], writers["sheetstream:isal:1"]
    assert "error" not in floor and floor["seconds"] > 0 and floor["source"].startswith("postgres:"), floor
    # the deflated sheet XML alone: a little smaller than the workbook, which holds it and a few small parts
    assert 0.5 * mine["bytes"] < floor["bytes"] < mine["bytes"], (floor, mine)
    assert "copy-floor" in out.with_suffix(".md").read_text()


def test_bench_profile_import_tiny(tmp_path: Path, pg_url: str) -> None:
    out = tmp_path / "profile"
    assert main(["bench", "profile-import", "--rows", "300", "600", "--no-server", "--out", str(out)]) == 0
    results = json.loads((out / "profile.json").read_text())
    runs = results["runs"]
    assert [r["rows"] for r in runs] == [300, 600]
    for r in runs:
        assert r["state"] == "done" and r["rows_inserted"] == r["rows"], r
        assert r["cpu_seconds"] > 0 and (out / f"profile-{r['rows']}.pstats").exists()
        assert any("run_import_job" in name for name in r["functions"])
        assert r["load"]["cores"] >= 1 and len(r["load"]["loadavg_before"]) == 3
    assert [(c["small"], c["big"], c["threshold"]) for c in results["comparisons"]] == [(300, 600, 2.0)]
    stages = {(s["stage"], s["rows"]): s for s in results["stages"]}
    assert set(stages) == {(stage, rows) for stage in ("read", "validate", "copy", "job") for rows in (300, 600)}
    assert all(s["done"] == s["rows"] and len(s["curve"]) == 10 for s in stages.values()), stages
    report = (out / "profile.md").read_text()
    assert "Growing faster than the rows (300 -> 600 rows" in report and "## Stages, unprofiled" in report


def test_bench_throttled_tiny(tmp_path: Path) -> None:
    out = tmp_path / "throttled.json"
    assert main(["bench", "throttled", "--rows", "300", "--rate", "50", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    runs = results["runs"]
    assert [(r["mode"], r["rate"]) for r in runs] == [("fixed", None), ("adaptive", None), ("fixed", 50e6),
                                                       ("adaptive", 50e6)]
    for r in runs:
        assert r["status"] == 200 and r["zip_ok"] and r["wire_bytes"] > r["file_bytes"] > 1000, r
        assert r["seconds"] > 0 and r["server_cpu_seconds"] >= 0
    report = out.with_suffix(".md").read_text()
    _check_load(results, report)
    assert "| 50 MB/s | adaptive |" in report and "valid archive (status 200, zipfile testzip): yes" in report


def test_bench_slow_clients_tiny(tmp_path: Path) -> None:
    out = tmp_path / "slow-clients.json"
    assert main(["bench", "slow-clients", "--rows", "300", "--readers", "2", "--rates", "0.05", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    runs = results["runs"]
    assert [(r["mode"], r["rate"]) for r in runs] == [("spill", None), ("no spill", None), ("spill", 50e3),
                                                       ("no spill", 50e3)]
    for r in runs:
        assert r["completed"] == 2 and r["bytes"] > 2000 and r["worker_seconds_per_export"] >= 0, r
    # CPU per row of a 300-row export can measure 0 (the clock counts in ticks): present, not positive
    assert all(r["first_byte_ms"] > 0 and r["cpu_us_per_row"] >= 0 for r in runs if r["rate"] is None)
    report = out.with_suffix(".md").read_text()
    _check_load(results, report)
    assert "| 0.05 MB/s | no spill |" in report and "Downloads that did not complete: 0." in report


def test_bench_import_and_export_on_mysql_tiny(tmp_path: Path, mysql_url: str) -> None:
    """MariaDB with its peers: LOAD DATA of a CSV (the floor) and, when SQLAlchemy is installed, pandas ``to_sql``
    and ``read_sql``; the HTTP export served from MariaDB."""
    peers = ["csv-load-data", *(["pandas-to_sql"] if installed("sqlalchemy") else [])]
    out = tmp_path / "import.json"
    assert main(["bench", "import", "--rows", "300", "--databases", "mysql", "--repeats", "1", "--openpyxl-max", "0",
                 "--peers", ",".join(peers), "--out", str(out)]) == 0
    runs = json.loads(out.read_text())["import"]
    assert {r["case"] for r in runs} == {"sheetstream", *peers}
    assert all("error" not in r and r["rows_done"] == 300 and r["database"] == "mysql" for r in runs), runs
    out = tmp_path / "export.json"
    readers = ["pandas-read_sql"] if installed("sqlalchemy") else []
    assert main(["bench", "export", "--rows", "300", "--repeats", "1", "--source", "mysql", "--deflate-choices",
                 "default", "--http-rows", "300", "--no-postgres-read", "--peers", ",".join(readers) or "none",
                 "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["source"].startswith("mysql:") and {w["writer"] for w in results["writers"]} >= {"source", *readers}
    assert all(w["rows"] == 300 and "error" not in w for w in results["writers"]), results["writers"]
    [http] = results["http"]
    assert (http["database"], http["status"]) == ("mysql", 200) and http["first_byte_ms"] > 0
    assert "HTTP export from MySQL/MariaDB" in out.with_suffix(".md").read_text()


def test_bench_csv_tiny(tmp_path: Path, pg_url: str) -> None:
    out = tmp_path / "csv.json"
    assert main(["bench", "csv", "--rows", "300", "--repeats", "1", "--no-parts", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    peer = set() if results["left_out"] else {"import-polars"}  # polars + ADBC come with the bench extra
    assert {r["case"] for r in results["results"]} == {"export", "export-copy", "import", "import-copy"} | peer
    assert all(r["rows"] == 300 and r["seconds"] > 0 for r in results["results"])
    report = out.with_suffix(".md").read_text()
    assert "| 300 | export | " in report and "| 300 | import | " in report and "| export-copy (" in report


def test_bench_markup_tiny(tmp_path: Path) -> None:
    out = tmp_path / "markup.json"
    assert main(["bench", "markup", "--problems", "50", "--repeats", "1", "--out", str(out)]) == 0
    [result] = json.loads(out.read_text())["results"]
    assert result["problems"] == 50 and result["bytes"] > 1000 and result["peak_rss_mb"] > 0


def test_bench_hostile_tiny(tmp_path: Path, monkeypatch) -> None:
    from sheetstream.tools.bench import hostile

    monkeypatch.setattr(hostile, "SHAPES", {
        "plain": lambda: hostile.package(hostile._header_sheet("<row><c><v>1</v></c></row>")),
        "row heads that never end": lambda: hostile.package(
            f"<worksheet {hostile.NS}><sheetData>".encode() + b"<row" * 5_000 + b"</sheetData></worksheet>"),
    })
    out = tmp_path / "hostile.json"
    assert main(["bench", "hostile", "--out", str(out)]) == 0
    plain, endless = json.loads(out.read_text())["results"]
    assert plain["status"] == 422 and endless["status"] == 422  # a header only; a row head that never ends
    assert "row" in endless["message"] and endless["server_tree_peak_pss_mb"] > 0
