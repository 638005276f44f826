"""Event-loop lag: a task asks to wake every 10 ms and records how late it woke.

Anything that holds the loop (a blocking call, CPU work run inline) shows up here as lag; the summary gives
p50 / p99 / max over a sliding window, and each sample also goes to the Prometheus histogram.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class LagMonitor:
    def __init__(self, interval: float = 0.01, window: float = 60.0, observe: Callable[[float], None] | None = None):
        self.interval = interval
        self.window = window
        self.observe = observe
        self.samples: deque[tuple[float, float]] = deque()  # (monotonic time, lag in seconds)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sheetstream-lag-monitor")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            lag = max(0.0, now - start - self.interval)
            self.samples.append((now, lag))
            while self.samples and self.samples[0][0] < now - self.window:
                self.samples.popleft()
            if self.observe:
                self.observe(lag)

    def summary(self, since: float | None = None) -> dict[str, float]:
        """p50, p99 and max lag in milliseconds over the window (or since ``since``, a perf_counter time)."""
        # /metrics renders in a worker thread while the loop appends and pops: copy first (tuple() of a deque
        # holds the GIL throughout), then filter. Iterating the deque itself raised "deque mutated during
        # iteration" under load, and /metrics answered 500.
        samples = tuple(self.samples)
        lags = sorted(lag for t, lag in samples if since is None or t >= since)
        if not lags:
            return {"samples": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}

        def pick(q: float) -> float:
            return round(lags[min(len(lags) - 1, int(q * len(lags)))] * 1000, 2)

        return {"samples": len(lags), "p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": round(lags[-1] * 1000, 2)}
