"""What the machine was doing during a benchmark: load average before and after, and the CPU used by every
process that is not ours (this process and its descendants), sampled from a thread.

``with LoadWatch() as load: ...`` then ``load.summary()``: the load averages, the cores, the other processes'
CPU (in percent of one core: 100 = one core fully used by others) as mean, median and max over the samples,
and the busiest other processes by CPU seconds during the run (PostgreSQL's backends show up there: the
database's work for a case is done by processes that are not ours).
"""

from __future__ import annotations

import os
import statistics
import threading
import time

import psutil


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


class LoadWatch:
    def __init__(self, interval: float = 1.0, extra_own: tuple[int, ...] = ()):
        self.interval = interval
        self.extra_own = set(extra_own)
        self.samples: list[float] = []
        self.by_process: dict[tuple[int, float], list] = {}  # (pid, create time) -> [name, cpu seconds]
        self.before: list[float] = []
        self.after: list[float] = []
        self.started = self.seconds = self.started_epoch = 0.0
        self._last: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-watch", daemon=True)

    def __enter__(self) -> LoadWatch:
        self.before = loadavg()
        self.started = time.monotonic()
        self.started_epoch = time.time()
        self._last = self._others()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.seconds = time.monotonic() - self.started
        self.after = loadavg()

    def _own(self) -> set[int]:
        me = psutil.Process()
        try:
            return {me.pid, *(c.pid for c in me.children(recursive=True))} | self.extra_own
        except psutil.Error:
            return {me.pid} | self.extra_own

    def _others(self) -> dict[tuple[int, float], float]:
        own = self._own()
        found = {}
        for p in psutil.process_iter(["pid", "name", "cpu_times", "create_time"]):
            info = p.info
            if info["pid"] in own or info["cpu_times"] is None:
                continue
            key = (info["pid"], info["create_time"])
            found[key] = info["cpu_times"].user + info["cpu_times"].system
            if key not in self.by_process:
                self.by_process[key] = [info["name"], 0.0]
        return found

    def _run(self) -> None:
        last_time = time.monotonic()
        while not self._stop.wait(self.interval):
            self._sample(last_time)
            last_time = time.monotonic()
        self._sample(last_time)  # the tail of the run

    def _sample(self, last_time: float) -> None:
        now_cpu = self._others()
        elapsed = time.monotonic() - last_time
        if elapsed <= 0.01:
            return
        used = 0.0
        for key, cpu in now_cpu.items():
            # a process new since the last sample: all its CPU is this run's if it started during the run
            baseline = self._last.get(key, 0.0 if key[1] >= self.started_epoch else cpu)
            delta = max(0.0, cpu - baseline)
            used += delta
            self.by_process[key][1] += delta
        self._last = now_cpu
        self.samples.append(100 * used / elapsed)

    def summary(self, top: int = 5) -> dict:
        samples = self.samples or [0.0]
        busiest = sorted(self.by_process.items(), key=lambda kv: -kv[1][1])[:top]
        return {
            "cores": psutil.cpu_count(),
            "loadavg_before": self.before,
            "loadavg_after": self.after,
            "seconds": round(self.seconds, 2),
            "samples": len(self.samples),
            "others_cpu_percent": {"mean": round(statistics.fmean(samples), 1),
                                   "median": round(statistics.median(samples), 1), "max": round(max(samples), 1)},
            "busiest_others": [{"pid": pid, "name": name, "cpu_seconds": round(cpu, 2)}
                               for (pid, _), (name, cpu) in busiest if cpu > 0],
        }


def markdown(load: dict, title: str = "## Machine load") -> list[str]:
    """The report's machine-load section."""
    if not load:
        return []
    cpu = load["others_cpu_percent"]
    lines = [title, "",
             f"- cores: {load['cores']}",
             f"- load average (1, 5, 15 min) before: {', '.join(map(str, load['loadavg_before']))}; "
             f"after: {', '.join(map(str, load['loadavg_after']))}"]
    lines.append(f"- other processes' CPU during the run (100% = one core): mean {cpu['mean']:.0f}%, median "
                 f"{cpu['median']:.0f}%, highest sample {cpu['max']:.0f}%")
    if load.get("busiest_others"):
        lines.append("- busiest other processes: " + ", ".join(
            f"{p['name']} ({p['pid']}) {p['cpu_seconds']:.1f} CPU s" for p in load["busiest_others"]))
    busy = cpu["mean"] > 25 * load["cores"]
    lines.append(f"- {'**the machine was busy**: absolute times are not trustworthy; the ratios, taken pair by pair, are the figures to read' if busy else 'the machine was mostly quiet'}")
    return lines + [""]
