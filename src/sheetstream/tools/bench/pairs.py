"""Paired cases, interleaved, so that a figure holds on a busy machine.

Each repeat runs every case once, in the same order (A B C, A B C, ...): a burst of load from elsewhere hits
neighbouring runs alike, and the ratio of a case to the baseline is taken within a repeat, pair by pair, before
any summary. The summary of a ratio is its median and its range (min-max) over the repeats; every raw run is
kept.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..harness import installed, machine

Case = tuple[str, Callable[[], dict]]


def interleave(cases: Sequence[Case], repeats: int, on_result: Callable[[dict], None] | None = None) -> list[dict]:
    """Run ``cases`` (name, run) ``repeats`` times, A B A B ...; every result dict gets ``case``, ``repeat`` (from
    0) and ``order`` (its position in the whole sequence)."""
    results = []
    for repeat in range(repeats):
        for name, run in cases:
            result = {"case": name, "repeat": repeat, "order": len(results), **run()}
            results.append(result)
            if on_result:
                on_result(result)
    return results


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and count of ``values`` (None when empty)."""
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def ratio_stats(results: Sequence[dict], baseline: str, metric: str = "seconds",
                key: Callable[[dict], Any] = lambda r: ()) -> dict[Any, dict[str, dict]]:
    """Per group (``key(result)``, e.g. the row count) and per case: the ``metric``'s own summary, and the ratios
    to ``baseline`` taken pair by pair (the same group and repeat): ``ratio`` = case / baseline,
    ``speedup`` = baseline / case. Runs with an error or without the metric are left out of their pair."""
    by_pair: dict[tuple[Any, int], dict[str, float]] = {}
    for r in results:
        value = r.get(metric)
        if "error" in r or "skipped" in r or not isinstance(value, (int, float)):
            continue
        by_pair.setdefault((key(r), r["repeat"]), {})[r["case"]] = float(value)
    stats: dict[Any, dict[str, dict]] = {}
    groups = sorted({g for g, _ in by_pair}, key=repr)
    for group in groups:
        pairs = [cases for (g, _), cases in sorted(by_pair.items(), key=lambda kv: kv[0][1]) if g == group]
        names = list(dict.fromkeys(name for cases in pairs for name in cases))
        stats[group] = {}
        for name in names:
            values = [cases[name] for cases in pairs if name in cases]
            ratios = [cases[name] / cases[baseline] for cases in pairs
                      if name in cases and baseline in cases and cases[baseline] > 0]
            speedups = [cases[baseline] / cases[name] for cases in pairs
                        if name in cases and baseline in cases and cases[name] > 0]
            stats[group][name] = {"value": summary(values), "ratio": summary(ratios), "speedup": summary(speedups)}
    return stats


def shown(s: dict, digits: int = 2, suffix: str = "") -> str:
    """``median (min-max)`` for a report; a single run shows its value only."""
    if not s or s.get("n", 0) == 0:
        return ""
    if s["n"] == 1:  # several runs always show their range, equal or not: a report reads the same every time
        return f"{s['median']:.{digits}f}{suffix}"
    return f"{s['median']:.{digits}f}{suffix} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def chosen_peers(text: str, known: Sequence[str]) -> list[str]:
    """The peers named in ``text`` (comma-separated; ``none``: no peer); ValueError naming any unknown one."""
    peers = [p for p in text.split(",") if p and p != "none"]
    unknown = [p for p in peers if p not in known]
    if unknown:
        raise ValueError(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return peers


def new_results(repeats: int, packages: Iterable[str], fields: dict[str, Any]) -> dict:
    """A run's results before its first case: the machine, the versions of ``packages``, when it started, the
    repeats, then the command's own ``fields`` (such as the lists its cases' results go to)."""
    return {"machine": machine(), "versions": {name: installed(name) for name in sorted(set(packages))},
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "repeats": repeats, **fields}


def save(out: Path, results: dict, report: str, console: Any) -> None:
    """The run's JSON at ``out`` and its Markdown report beside it; the report printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(report)
    console.print(report, markup=False, highlight=False)
    console.print(f"results: {out} and {out.with_suffix('.md')}")
