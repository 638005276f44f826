"""The benchmarks' statistics: interleaved runs, ratios to the baseline taken pair by pair (median and range),
the machine-load watch, and the profile comparison that finds functions growing faster than the rows."""

from __future__ import annotations

import time

import pytest

from sheetstream.tools.bench import load
from sheetstream.tools.bench.pairs import interleave, ratio_stats, shown, summary
from sheetstream.tools.bench.profile_import import compare


def test_interleave_runs_a_b_a_b_and_keeps_every_run() -> None:
    calls: list[str] = []

    def case(name: str):
        def run() -> dict:
            calls.append(name)
            return {"seconds": len(calls)}
        return run

    seen: list[dict] = []
    results = interleave([("a", case("a")), ("b", case("b")), ("c", case("c"))], 3, on_result=seen.append)
    assert calls == ["a", "b", "c"] * 3
    assert [r["case"] for r in results] == calls
    assert [r["repeat"] for r in results] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert [r["order"] for r in results] == list(range(9))
    assert [r["seconds"] for r in results] == list(range(1, 10))
    assert seen == results


def _runs(timings: dict[str, list[float]], **extra) -> list[dict]:
    return [{"case": name, "repeat": i, "seconds": t, **extra} for name, ts in timings.items() for i, t in enumerate(ts)]


def test_ratios_are_taken_pair_by_pair_then_summarised() -> None:
    # The machine slows down in repeat 2 (everything doubles): per-pair ratios stay put, raw times do not.
    runs = _runs({"base": [1.0, 2.0, 4.0, 1.0, 1.0], "fast": [0.5, 1.0, 2.0, 0.25, 0.5]})
    stats = ratio_stats(runs, "base")[()]
    assert stats["fast"]["ratio"] == {"median": 0.5, "min": 0.25, "max": 0.5, "n": 5}
    assert stats["fast"]["speedup"] == {"median": 2.0, "min": 2.0, "max": 4.0, "n": 5}
    assert stats["fast"]["value"] == {"median": 0.5, "min": 0.25, "max": 2.0, "n": 5}
    assert stats["base"]["ratio"] == {"median": 1.0, "min": 1.0, "max": 1.0, "n": 5}
    # a median of the raw times would say 0.5 / 1.0 too here, but not with an odd pairing:
    odd = ratio_stats(_runs({"base": [1.0, 10.0, 1.0], "x": [2.0, 10.0, 2.0]}), "base")[()]["x"]
    assert odd["ratio"]["median"] == 2.0 and odd["ratio"]["min"] == 1.0 and odd["value"]["median"] == 2.0


def test_ratios_group_by_key_and_leave_out_failed_runs() -> None:
    runs = _runs({"base": [1.0, 1.0], "x": [3.0, 2.0]}, rows=10) + _runs({"base": [2.0, 2.0], "x": [2.0, 1.0]}, rows=20)
    runs.append({"case": "x", "repeat": 2, "rows": 20, "error": "boom"})
    runs.append({"case": "base", "repeat": 2, "rows": 20, "seconds": 5.0})  # its pair failed: no ratio
    runs.append({"case": "y", "repeat": 0, "rows": 20, "skipped": "not installed"})
    stats = ratio_stats(runs, "base", key=lambda r: r["rows"])
    assert set(stats) == {10, 20}
    assert stats[10]["x"]["ratio"] == {"median": 2.5, "min": 2.0, "max": 3.0, "n": 2}
    assert stats[20]["x"]["ratio"] == {"median": 0.75, "min": 0.5, "max": 1.0, "n": 2}
    assert stats[20]["base"]["value"]["n"] == 3 and "y" not in stats[20]


def test_cpu_seconds_can_be_the_metric() -> None:
    runs = [{"case": "base", "repeat": 0, "seconds": 9.0, "cpu_seconds": 2.0},
            {"case": "x", "repeat": 0, "seconds": 1.0, "cpu_seconds": 1.0}]
    assert ratio_stats(runs, "base", metric="cpu_seconds")[()]["x"]["ratio"]["median"] == 0.5


def test_summary_and_shown() -> None:
    assert summary([]) == {"median": None, "min": None, "max": None, "n": 0}
    assert summary([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
    assert shown(summary([1.0, 2.0, 4.0]), 2, "x") == "2.00x (1.00-4.00)"
    assert shown(summary([1.5]), 1) == "1.5"
    assert shown(summary([])) == ""


def test_load_watch_reports_load_average_cores_and_others_cpu() -> None:
    with load.LoadWatch(interval=0.05) as watch:
        time.sleep(0.3)
    s = watch.summary()
    assert s["cores"] >= 1 and len(s["loadavg_before"]) == 3 and len(s["loadavg_after"]) == 3
    assert s["samples"] >= 2 and s["seconds"] >= 0.3
    cpu = s["others_cpu_percent"]
    assert 0 <= cpu["median"] <= cpu["max"] and cpu["mean"] >= 0
    report = "\n".join(load.markdown(s))
    assert report.startswith("## Machine load") and "load average" in report and "other processes' CPU" in report


def test_compare_lists_functions_growing_faster_than_the_rows() -> None:
    small = {"rows": 100, "functions": {"linear": {"calls": 100, "own": 1.0, "cumulative": 1.0},
                                        "quadratic": {"calls": 100, "own": 0.1, "cumulative": 0.2}}}
    big = {"rows": 500, "functions": {"linear": {"calls": 500, "own": 5.1, "cumulative": 5.0},
                                      "quadratic": {"calls": 500, "own": 2.5, "cumulative": 5.0},
                                      "new": {"calls": 1, "own": 0.3, "cumulative": 0.3}}}
    grown = compare(small, big)
    assert [(g["function"], g["measure"]) for g in grown] == [
        ("quadratic", "cumulative"), ("quadratic", "own"), ("new", "own"), ("new", "cumulative"),
        ("linear", "own")]
    first = grown[0]
    assert first["ratio"] == 25.0 and first["beyond_linear"] == pytest.approx(4.0)
    assert grown[2]["ratio"] is None  # absent at the small size
