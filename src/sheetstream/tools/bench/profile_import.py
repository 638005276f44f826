"""``sheetstream bench profile-import``: where an import's CPU time goes, and which functions grow faster than
the rows.

Each size runs in its own process: the demo rows written to a workbook, then one import through
``pipeline.jobs.run_import_job`` (what the server's worker runs) into a scratch PostgreSQL table, under cProfile
with a CPU-time clock (``time.process_time``: far less sensitive to a busy machine than wall time). Recorded per
size: the profile (``profile-ROWS.pstats``, and every function's calls, own and cumulative CPU seconds in the
JSON), garbage-collection passes and their time by generation, the PostgreSQL backend's CPU seconds (the
backends are found by ``application_name``), the job-record saves, and the machine's load. The comparison lists
the functions whose CPU time grows more than the rows do (a ratio over ``rows_big / rows_small``), with the
seconds beyond linear growth.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..harness import POSTGRES_URL, machine, peak_rss_mb, postgres_problem, run_case
from .load import LoadWatch

APPLICATION = "sheetstream-profile"
TABLE = f"bench_profile_orders_{os.getpid()}"  # one per process: runs side by side do not meet


def write_workbook(path: Path, rows: int) -> None:
    from ...formats.xlsx import write_xlsx
    from ...store.demo import ORDERS, demo_rows

    with open(path, "wb") as f:
        for chunk in write_xlsx(demo_rows(rows), [c.name for c in ORDERS], sheet_name="orders"):
            f.write(chunk)


class GcTimer:
    """Counts garbage-collection passes and their CPU time by generation (through ``gc.callbacks``)."""

    def __init__(self) -> None:
        self.passes = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self.collected = [0, 0, 0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.process_time()
        else:
            g = info["generation"]
            self.passes[g] += 1
            self.seconds[g] += time.process_time() - self._start
            self.collected[g] += info.get("collected", 0)

    def summary(self) -> dict:
        return {f"gen{g}": {"passes": self.passes[g], "cpu_seconds": round(self.seconds[g], 3),
                            "collected": self.collected[g]} for g in range(3)}


class BackendCpu:
    """The CPU seconds of the PostgreSQL backends serving this process (matched by ``application_name``),
    sampled from a thread until stopped; a backend's last reading counts (they end with their connection)."""

    def __init__(self, url: str, interval: float = 0.2):
        self.url, self.interval = url, interval
        self.seen: dict[int, float] = {}
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BackendCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        import psutil
        import psycopg

        try:
            with psycopg.connect(self.url, autocommit=True, application_name=APPLICATION + "-watch") as conn:
                while not self._stop.is_set():
                    pids = [r[0] for r in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APPLICATION,))]
                    for pid in pids:
                        try:
                            t = psutil.Process(pid).cpu_times()
                            self.seen[pid] = t.user + t.system
                        except psutil.Error:
                            pass
                    self._stop.wait(self.interval)
        except Exception as exc:  # the profile stands without it
            self.error = f"{type(exc).__name__}: {exc}"

    def summary(self) -> dict:
        data: dict = {"backends": len(self.seen), "cpu_seconds": round(sum(self.seen.values()), 2),
                      "largest_backend_cpu_seconds": round(max(self.seen.values(), default=0.0), 2)}
        if self.error:
            data["error"] = self.error
        return data


def pg_table_stats(url: str) -> dict:
    """The job table's and the scratch table's dead tuples, HOT updates and size; WAL position."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT relname, n_tup_upd, n_tup_hot_upd, n_dead_tup, n_live_tup, pg_total_relation_size(relid) "
            "FROM pg_stat_user_tables WHERE relid IN (to_regclass('sheetstream_jobs'), to_regclass(%s))",
            (f'"{TABLE}"',)).fetchall()
        wal = conn.execute("SELECT pg_current_wal_lsn()::text, "
                           "(SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter)").fetchone()
    return {"tables": {r[0]: {"updates": r[1], "hot_updates": r[2], "dead": r[3], "live": r[4], "bytes": r[5]}
                       for r in rows},
            "wal_lsn": wal[0], "checkpoints": wal[1]}


def wal_bytes(url: str, start: str, end: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return int(conn.execute("SELECT pg_wal_lsn_diff(%s, %s)", (end, start)).fetchone()[0])


class Curve:
    """CPU and wall seconds since the start at every ``every`` rows passing through :meth:`wrap`."""

    def __init__(self, every: int):
        self.every = max(every, 1)
        self.points: list[tuple[int, float, float]] = []
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def wrap(self, rows):
        every, points = self.every, self.points
        for n, row in enumerate(rows, 1):
            if n % every == 0:
                points.append((n, round(time.process_time() - self.cpu, 3), round(time.perf_counter() - self.wall, 3)))
            yield row

    def blocks(self, chunks):
        """The same for the block path's ``(numbers, data)`` chunks: a point per ``every`` rows, at the end of the
        block that passes it (so several points may share a block's time)."""
        every, points, n = self.every, self.points, 0
        for chunk in chunks:
            before, n = n, n + len(chunk[0])
            cpu, wall = round(time.process_time() - self.cpu, 3), round(time.perf_counter() - self.wall, 3)
            points += [(mark, cpu, wall) for mark in range((before // every + 1) * every, n + 1, every)]
            yield chunk


#: Stages, each including the ones before it: read the sheet; + validate (cells to the table's types); + COPY
#: into PostgreSQL (``store.write_rows``); the whole job (``run_import_job``: + job-record saves and cancel checks).
STAGES = ("read", "validate", "copy", "job")


def stage_one(stage: str, rows: int, path: Path, url: str = POSTGRES_URL) -> dict:
    """One stage of the import, unprofiled, with its CPU curve (every tenth of the rows): whether the cost per row
    rises during the run, and where it starts to."""
    from ...formats.xlsx import open_workbook
    from ...pipeline import imports
    from ...pipeline.jobs import Job, run_import_job
    from ...pipeline.validate import Problems, convert_rows, map_header
    from ...store.demo import ORDERS
    from ...store.postgres import PostgresStore

    os.environ["PGAPPNAME"] = APPLICATION
    store = PostgresStore(url)
    store.create_table(TABLE, ORDERS, replace=True)
    store.jobs.save("bench-profile-warm", {"state": "done"})
    columns = store.columns(TABLE)
    before = pg_table_stats(url)
    curve = Curve(rows // 10)
    if stage == "job":
        # Rows pass through convert_rows, or as blocks through _merged (the compiled block path): both counted.
        original, merged = imports.convert_rows, imports._merged
        imports.convert_rows = lambda *a, **k: curve.wrap(original(*a, **k))  # type: ignore[assignment]
        imports._merged = lambda *a, **k: curve.blocks(merged(*a, **k))  # type: ignore[assignment]
        job = Job(table=TABLE, mode="replace")
        run_import_job(store, job, path)
        imports.convert_rows, imports._merged = original, merged  # type: ignore[assignment]
        done = job.rows_inserted if job.state == "done" else f"{job.state}: {job.message}"
    else:
        with open_workbook(path) as book:
            sheet_rows = book.rows()
            if stage == "read":
                done = sum(1 for _ in curve.wrap(sheet_rows)) - 1
            else:
                first = next(sheet_rows)
                plan = map_header(first[1], columns, "orders")
                typed = curve.wrap(convert_rows(sheet_rows, plan, "orders", Problems(), {"rows_read": 0}))
                done = (sum(1 for _ in typed) if stage == "validate"
                        else store.write_rows(TABLE, plan.columns, typed, "replace"))
    cpu, wall = time.process_time() - curve.cpu, time.perf_counter() - curve.wall
    after = pg_table_stats(url)
    store.drop_table(TABLE)
    return {"stage": stage, "rows": rows, "done": done, "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
            "curve": curve.points, "job_saves": _updates(after, before, "sheetstream_jobs"),
            "wal_bytes": wal_bytes(url, before["wal_lsn"], after["wal_lsn"]),
            "checkpoints": after["checkpoints"] - before["checkpoints"], "peak_rss_mb": round(peak_rss_mb(), 1)}


def _updates(after: dict, before: dict, table: str) -> int | None:
    a, b = after["tables"].get(table), before["tables"].get(table)
    return a["updates"] - b["updates"] if a and b else None


def server_one(rows: int, path: Path, url: str = POSTGRES_URL) -> dict:
    """The whole import through a server (``PUT /imports/...?wait=true``), unprofiled: the CPU seconds of the
    server's main process (HTTP, spool, job saves), of its workers (parse, validate, COPY), of the PostgreSQL
    backends serving it, and of this client."""
    import httpx
    import psutil

    from ...formats.xlsx import MEDIA_TYPE
    from ...store.demo import ORDERS
    from ...store.postgres import PostgresStore
    from ..harness import ServerProcess

    store = PostgresStore(url)
    store.create_table(TABLE, ORDERS, replace=True)
    saved = os.environ.get("PGAPPNAME")
    os.environ["PGAPPNAME"] = APPLICATION  # inherited by the server: its connections carry the name
    try:
        with ServerProcess(url, tables=[TABLE]) as server:
            main = psutil.Process(server.process.pid)

            def cpu(p: psutil.Process) -> float:
                t = p.cpu_times()
                return t.user + t.system

            def workers() -> dict[int, float]:
                return {c.pid: cpu(c) for c in main.children(recursive=True)}

            warm = path.with_name("warm-up.xlsx")  # start the workers and import everything before measuring
            write_workbook(warm, 10)
            with open(warm, "rb") as f:
                httpx.put(f"{server.url}/imports/{TABLE}", params={"mode": "replace", "wait": "true"}, content=f,
                          headers={"Content-Type": MEDIA_TYPE, **server.headers}, timeout=60)
            warm.unlink()
            before_main, before_workers = cpu(main), workers()
            before = pg_table_stats(url)
            client = time.process_time()
            with BackendCpu(url) as backend:
                start = time.perf_counter()
                with open(path, "rb") as f:
                    response = httpx.put(f"{server.url}/imports/{TABLE}", params={"mode": "replace", "wait": "true"},
                                         content=f, headers={"Content-Type": MEDIA_TYPE, **server.headers}, timeout=3600)
                wall = time.perf_counter() - start
            client = time.process_time() - client
            after_workers = workers()
            result = {"rows": rows, "status": response.status_code, "wall_seconds": round(wall, 3),
                      "rows_inserted": response.json().get("rows_inserted"),
                      "server_main_cpu_seconds": round(cpu(main) - before_main, 3),
                      "server_workers_cpu_seconds": round(sum(v - before_workers.get(k, 0.0)
                                                              for k, v in after_workers.items()), 3),
                      "postgres_backend": backend.summary(), "client_cpu_seconds": round(client, 3)}
        after = pg_table_stats(url)
        result["job_saves"] = _updates(after, before, "sheetstream_jobs")
        result["wal_bytes"] = wal_bytes(url, before["wal_lsn"], after["wal_lsn"])
        result["checkpoints"] = after["checkpoints"] - before["checkpoints"]
    finally:
        if saved is None:
            os.environ.pop("PGAPPNAME", None)
        else:
            os.environ["PGAPPNAME"] = saved
        store.drop_table(TABLE)
    return result


def save_cost(count: int = 100, url: str = POSTGRES_URL) -> dict:
    """What one progress save costs the worker: ``JobBoard.save`` then ``cancel_requested`` (what ``report`` in
    ``run_import_job`` does every 0.5 s), each on a new connection, ``count`` times. PostgreSQL's side is the CPU
    of its exited backends (the postmaster's children CPU); an idle window as long measures the others' share."""
    import psutil

    from ...store.postgres import PostgresStore

    jobs = PostgresStore(url).jobs
    postmaster = next((p for p in psutil.process_iter(["cmdline"])
                       if p.info["cmdline"] and p.info["cmdline"][0].endswith("/postgres") and p.ppid() == 1), None)

    def pg() -> float:
        if postmaster is None:
            return float("nan")
        t = postmaster.cpu_times()
        return t.children_user + t.children_system

    data = {"state": "inserting", "rows_read": 5000, "table": TABLE, "errors": [], "message": None}
    wall, client, server = time.perf_counter(), time.process_time(), pg()
    for _ in range(count):
        jobs.save("bench-profile-save-cost", data)
        jobs.cancel_requested("bench-profile-save-cost")
    wall, client, server = time.perf_counter() - wall, time.process_time() - client, pg() - server
    idle = pg()
    time.sleep(wall)
    idle = pg() - idle
    return {"count": count, "wall_ms": round(wall / count * 1000, 2), "client_cpu_ms": round(client / count * 1000, 2),
            "postgres_cpu_ms": round(server / count * 1000, 2), "postgres_idle_cpu_ms": round(idle / count * 1000, 2)}


def profile_one(rows: int, path: Path, out: Path, url: str = POSTGRES_URL, builtins: bool = False) -> dict:
    """One import of ``path`` (``rows`` data rows) under a CPU-time cProfile; writes ``out`` (.pstats). Run it in a
process of its own: the connections it opens carry ``application_name`` so that :class:`BackendCpu` finds them."""
    from ...pipeline.jobs import Job, run_import_job
    from ...store.demo import ORDERS
    from ...store.postgres import PostgresStore

    os.environ["PGAPPNAME"] = APPLICATION  # libpq: every connection the store opens carries this name
    store = PostgresStore(url)
    store.create_table(TABLE, ORDERS, replace=True)
    store.jobs.save("bench-profile-warm", {"state": "done"})  # the job table exists before the clock starts
    before = pg_table_stats(url)
    gc_timer = GcTimer()
    # builtins=False: a C function's time counts in its Python caller's own time (cProfile's overhead per call to a
    # builtin otherwise dwarfs the builtin itself; the caller still locates the cost)
    profiler = cProfile.Profile(time.process_time, builtins=builtins)
    job = Job(table=TABLE, mode="replace")
    gc.callbacks.append(gc_timer)
    wall, cpu = time.perf_counter(), time.process_time()
    profiler.enable()
    try:
        run_import_job(store, job, path)
    finally:
        profiler.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    gc.callbacks.remove(gc_timer)
    after = pg_table_stats(url)
    profiler.dump_stats(out)
    functions = {}
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
        if ct >= 0.005 or tt >= 0.005:
            functions[_key(filename, line, name)] = {"calls": nc, "own": round(tt, 4), "cumulative": round(ct, 4)}
    store.drop_table(TABLE)
    return {
        "rows": rows,
        "file_bytes": path.stat().st_size,
        "state": job.state,
        "rows_inserted": job.rows_inserted,
        "message": job.message,
        "wall_seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "gc": gc_timer.summary(),
        "postgres_before": before,
        "postgres_after": after,
        "wal_bytes": wal_bytes(url, before["wal_lsn"], after["wal_lsn"]),
        "pstats": str(out),
        "functions": functions,
    }


def _key(filename: str, line: int, name: str) -> str:
    """A function's name, the same in every process (a builtin's ``at 0x...`` address is not)."""
    return f"{_short(filename)}:{line}({re.sub(r' at 0x[0-9a-f]+', '', name)})"


def _short(filename: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def compare(small: dict, big: dict, threshold: float | None = None, min_seconds: float = 0.05) -> list[dict]:
    """Functions whose CPU seconds grow by more than ``threshold`` (default: the ratio of rows) from ``small``
    to ``big``; ``beyond_linear`` is the seconds at ``big`` over what linear growth from ``small`` predicts."""
    scale = big["rows"] / small["rows"]
    threshold = threshold or scale
    grown = []
    for key, b in big["functions"].items():
        s = small["functions"].get(key, {"calls": 0, "own": 0.0, "cumulative": 0.0})
        for measure in ("own", "cumulative"):
            if b[measure] < min_seconds:
                continue
            ratio = b[measure] / s[measure] if s[measure] else float("inf")
            if ratio > threshold:
                grown.append({"function": key, "measure": measure, "small": s[measure], "big": b[measure],
                              "ratio": round(ratio, 1) if s[measure] else None,
                              "calls_small": s["calls"], "calls_big": b["calls"],
                              "beyond_linear": round(b[measure] - scale * s[measure], 3)})
    return sorted(grown, key=lambda g: -g["beyond_linear"])


def top(run: dict, measure: str, n: int = 25) -> list[tuple[str, dict]]:
    return sorted(run["functions"].items(), key=lambda kv: -kv[1][measure])[:n]


def markdown(results: dict) -> str:
    runs = results["runs"]
    lines = [f"# Import profile ({results['started']})", "",
             "CPU-time cProfile (`time.process_time`) of one `run_import_job` into PostgreSQL per size, each in its "
             "own process. Timings were taken on the machine described below; CPU seconds are far less sensitive "
             "to other load than wall seconds, but cProfile adds its own overhead per call.", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()), "",
             "| rows | state | wall s | CPU s | CPU us/row | peak RSS MB | GC passes gen0/1/2 | GC CPU s gen2 | "
             "PostgreSQL backend CPU s | WAL MB | load avg before/after | other processes' CPU % (mean) |",
             "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|"]
    for r in runs:
        if "error" in r:
            lines.append(f"| {r.get('rows', '?')} | error: {r['error']} |||||||||||")
            continue
        g = r["gc"]
        lo = r["load"]
        lines.append(
            f"| {r['rows']:,} | {r['state']} | {r['wall_seconds']:.2f} | {r['cpu_seconds']:.2f} | "
            f"{r['cpu_seconds'] / r['rows'] * 1e6:.1f} | {r['peak_rss_mb']:.1f} | "
            f"{g['gen0']['passes']}/{g['gen1']['passes']}/{g['gen2']['passes']} | {g['gen2']['cpu_seconds']:.2f} | "
            f"{r['postgres_backend']['cpu_seconds']:.2f} | {r['wal_bytes'] / 1e6:.0f} | "
            f"{lo['loadavg_before'][0]:.2f} / {lo['loadavg_after'][0]:.2f} | {lo['others_cpu_percent']['mean']:.0f} |")
    ok = [r for r in runs if "error" not in r]
    for r in ok:
        for measure, title in (("cumulative", "cumulative"), ("own", "own (tottime)")):
            lines += ["", f"## {r['rows']:,} rows: top functions by {title} CPU seconds", "",
                      "| function | calls | own s | cumulative s |", "|---|---:|---:|---:|"]
            lines += [f"| `{k}` | {v['calls']:,} | {v['own']:.3f} | {v['cumulative']:.3f} |" for k, v in top(r, measure, 20)]
    for grown in results.get("comparisons", []):
        lines += ["", f"## Growing faster than the rows ({grown['small']:,} -> {grown['big']:,} rows, "
                      f"threshold {grown['threshold']:.1f}x)", "",
                  "| function | measure | CPU s small | CPU s big | ratio | calls small / big | s beyond linear |",
                  "|---|---|---:|---:|---:|---|---:|"]
        for g in grown["functions"]:
            ratio = f"{g['ratio']:.1f}x" if g["ratio"] is not None else "new"
            lines.append(f"| `{g['function']}` | {g['measure']} | {g['small']:.3f} | {g['big']:.3f} | {ratio} | "
                         f"{g['calls_small']:,} / {g['calls_big']:,} | {g['beyond_linear']:.3f} |")
    lines += stages_markdown(results)
    if cost := results.get("save_cost"):
        lines += ["", "## One progress save (`JobBoard.save` + `cancel_requested`, a new connection each)", "",
                  f"{cost['count']} in a row: {cost['wall_ms']} ms of wall time each (the import waits for it), "
                  f"{cost['client_cpu_ms']} ms of the worker's CPU and {cost['postgres_cpu_ms']} ms of PostgreSQL's "
                  f"(its exited backends; {cost['postgres_idle_cpu_ms']} ms in an idle window as long: other "
                  "users'). The worker makes one every 0.5 s, however many rows that is."]
    return "\n".join(lines) + "\n"


def _per_row(value: float, rows: int) -> str:
    return f"{value / rows * 1e6:.2f}"


def stages_markdown(results: dict) -> list[str]:
    lines = []
    stages = [s for s in results.get("stages", []) if "error" not in s]
    if stages:
        lines += ["", "## Stages, unprofiled (each includes the ones before it; one process each)", "",
                  "CPU us per row overall and in each tenth of the rows (a rising series is a cost that grows "
                  "during the run); the PostgreSQL backend's CPU is the server side of the same stage.", "",
                  "| stage | rows | wall s | CPU s | CPU us/row | us/row by tenth of the rows | PostgreSQL backend CPU s |"
                  " others' CPU % |", "|---|---:|---:|---:|---:|---|---:|---:|"]
        for s in stages:
            points = [(0, 0.0, 0.0), *s["curve"]]
            tenths = [(b[1] - a[1]) / (b[0] - a[0]) * 1e6 for a, b in zip(points, points[1:]) if b[0] > a[0]]
            lines.append(f"| {s['stage']} | {s['rows']:,} | {s['wall_seconds']:.2f} | {s['cpu_seconds']:.2f} | "
                         f"{_per_row(s['cpu_seconds'], s['rows'])} | {' '.join(f'{t:.0f}' for t in tenths)} | "
                         f"{s['postgres_backend']['cpu_seconds']:.2f} | {s['load']['others_cpu_percent']['mean']:.0f} |")
    server = [s for s in results.get("server", []) if "error" not in s]
    if server:
        lines += ["", "## Through the server (`PUT /imports/...?wait=true`), unprofiled", "",
                  "| rows | wall s | server main CPU s | workers CPU s | PostgreSQL backends CPU s | client CPU s | "
                  "job-record updates | checkpoints | others' CPU % |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for s in server:
            lines.append(f"| {s['rows']:,} | {s['wall_seconds']:.2f} | {s['server_main_cpu_seconds']:.2f} | "
                         f"{s['server_workers_cpu_seconds']:.2f} | {s['postgres_backend']['cpu_seconds']:.2f} | "
                         f"{s['client_cpu_seconds']:.2f} | {s['job_saves']} | {s['checkpoints']} | "
                         f"{s['load']['others_cpu_percent']['mean']:.0f} |")
    return lines


def run(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from rich.console import Console

    console = Console()
    if problem := postgres_problem(POSTGRES_URL):
        console.print(problem)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     "runs": [], "comparisons": [], "stages": [], "server": []}
    with tempfile.TemporaryDirectory(prefix="sheetstream-profile-") as tmp:
        for rows in args.rows:
            path = Path(tmp) / f"orders-{rows}.xlsx"
            console.log(f"{rows:,} rows: writing the workbook ...")
            write_workbook(path, rows)
            console.log(f"{rows:,} rows: importing ({path.stat().st_size / 1e6:.1f} MB) ...")
            if args.profile:
                # the watchers run here, not in the profiled process, whose CPU time they would add to
                with LoadWatch() as load, BackendCpu(POSTGRES_URL) as backend:
                    result = run_case("sheetstream.tools.bench.profile_import", str(rows), str(path),
                                      str(args.out / f"profile-{rows}.pstats"))
                results["runs"].append({"rows": rows, **result, "load": load.summary(),
                                        "postgres_backend": backend.summary()})
                console.log(f"  {result.get('cpu_seconds', result.get('error'))} CPU s")
            for stage in STAGES if args.stages else ():
                with LoadWatch() as load, BackendCpu(POSTGRES_URL) as backend:
                    result = run_case("sheetstream.tools.bench.profile_import", "--stage", stage, str(rows), str(path))
                results["stages"].append({"stage": stage, "rows": rows, **result, "load": load.summary(),
                                          "postgres_backend": backend.summary()})
                console.log(f"  stage {stage}: {result.get('cpu_seconds', result.get('error'))} CPU s")
            if args.server:
                with LoadWatch() as load:
                    result = server_one(rows, path)
                results["server"].append({**result, "load": load.summary()})
                console.log(f"  through the server: {result}")
            path.unlink()
    if args.server:
        results["save_cost"] = save_cost()
    ok = sorted((r for r in results["runs"] if "error" not in r), key=lambda r: r["rows"])
    for small, big in zip(ok, ok[1:]):
        results["comparisons"].append({"small": small["rows"], "big": big["rows"],
                                       "threshold": big["rows"] / small["rows"], "functions": compare(small, big)})
    (args.out / "profile.json").write_text(json.dumps(results, indent=2))
    report = markdown(results)
    (args.out / "profile.md").write_text(report)
    console.print(report, markup=False, highlight=False)
    console.print(f"results: {args.out / 'profile.json'}, {args.out / 'profile.md'} and the .pstats files")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "--stage":
        print(json.dumps(stage_one(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))))
    else:
        print(json.dumps(profile_one(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]),
                                     builtins=sys.argv[4:5] == ["builtins"])))
