"""``GET /metrics`` in Prometheus text format, from a registry of the app's own (no global state)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psutil
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..runtime import ProcessingQueue
from .lag import LagMonitor

KINDS = ("export", "import")


class Metrics:
    def __init__(self, queue: ProcessingQueue, lag: LagMonitor):
        self.registry = CollectorRegistry(auto_describe=True)
        self.lag_seconds = Histogram(
            "sheetstream_event_loop_lag_seconds", "How late the event loop woke a 10 ms timer",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=self.registry)
        self.bytes_out = Counter("sheetstream_bytes_out", "Bytes of exports sent", registry=self.registry)
        self.bytes_in = Counter("sheetstream_bytes_in", "Bytes of uploads received", registry=self.registry)
        self.rows_exported = Counter("sheetstream_rows_exported", "Rows written to exports", registry=self.registry)
        self.rows_imported = Counter("sheetstream_rows_imported", "Rows committed by imports", registry=self.registry)
        self.registry.register(_Live(queue, lag))

    def watch_spill(self, spill: Any) -> None:
        """Report the spill's bytes (a :class:`~.spill.SpillBudget`)."""
        self.registry.register(_Spill(spill))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Spill(Collector):
    def __init__(self, spill: Any):
        self.spill = spill

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield CounterMetricFamily("sheetstream_bytes_spilled", "Bytes of downloads written to spill files, their "
                                  "clients slower than their workers", value=self.spill.spilled)
        yield GaugeMetricFamily("sheetstream_spill_held_bytes", "Bytes of downloads held for their clients now",
                                value=self.spill.held)


class _Live(Collector):
    """Values read at scrape time: queue occupancy, memory, the lag window's summary."""

    def __init__(self, queue: ProcessingQueue, lag: LagMonitor):
        self.queue = queue
        self.lag = lag

    def collect(self) -> Iterator[GaugeMetricFamily]:
        active = GaugeMetricFamily("sheetstream_jobs_active", "Tasks running on a worker", labels=["kind"])
        queued = GaugeMetricFamily("sheetstream_jobs_queued", "Tasks waiting for a worker", labels=["kind"])
        for kind in KINDS:
            active.add_metric([kind], self.queue.active[kind])
            queued.add_metric([kind], self.queue.queued[kind])
        yield active
        yield queued
        rss = GaugeMetricFamily("sheetstream_rss_bytes", "Resident memory", labels=["process"])
        rss.add_metric(["main"], psutil.Process().memory_info().rss)
        rss.add_metric(["workers"], self.queue.worker_rss())
        yield rss
        summary = self.lag.summary()
        window = GaugeMetricFamily("sheetstream_event_loop_lag_window_ms",
                                   f"Lag over the last {self.lag.window:.0f} s", labels=["stat"])
        for stat in ("p50_ms", "p99_ms", "max_ms"):
            window.add_metric([stat.removesuffix("_ms")], summary[stat])
        yield window
        recent = GaugeMetricFamily("sheetstream_event_loop_lag_recent_max_ms", "Largest lag in the last second")
        recent.add_metric([], self.lag.summary(time.perf_counter() - 1.0)["max_ms"])
        yield recent
        info = GaugeMetricFamily("sheetstream_workers", "Workers of the processing queue", labels=["strategy"])
        info.add_metric([self.queue.strategy.name], self.queue.workers)
        yield info
