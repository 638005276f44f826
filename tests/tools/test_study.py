"""`sheetstream study --quick` as a smoke test: the report and plots are produced and the numbers are sane
(not that they are fast)."""

from __future__ import annotations

import json
from pathlib import Path

from sheetstream.cli import main


def test_quick_study_writes_results_report_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "study"
    assert main(["study", "--quick", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    cells = results["cells"]
    assert {c["strategy"] for c in cells} == {"inline", "thread", "process"}
    assert {(c["operation"], c["users"]) for c in cells} >= {("roundtrip", 1), ("roundtrip", 5), ("download", 5)}
    for c in cells:
        assert not c["errors"] and not c["timed_out"], c
        assert c["wall_s"] > 0 and c["throughput_mb_s"] > 0 and c["cpu_s"] > 0
        assert c["rss_main_mb_max"] > 10 and c["rss_all_mb_max"] >= c["rss_main_mb_max"]
        assert c["lag"]["samples"] > 0 and c["lag"]["max_ms"] >= c["lag"]["p99_ms"] >= c["lag"]["p50_ms"] >= 0
    process = [c for c in cells if c["strategy"] == "process"]
    assert all(c["rss_all_mb_max"] > c["rss_main_mb_max"] for c in process)  # the workers are counted
    assert {w["name"] for w in results["writers"] if "seconds" in w} >= {"sheetstream", "xlsxwriter", "openpyxl"}
    assert {r["name"] for r in results["readers"] if "seconds" in r} >= {"sheetstream-parse", "openpyxl-parse"}
    report = (out / "study.md").read_text()
    assert "## Findings (computed from this run)" in report and "## Recommended configuration" in report
    assert "--executor" in report
    for plot in ("throughput.png", "lag_p99.png", "lag_over_time.png", "memory_over_time.png", "rss_main.png"):
        data = (out / plot).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5_000
