"""The lag summary is read from another thread (``/metrics`` renders in the thread pool) while the loop records."""

from sheetstream.server.lag import LagMonitor


class _Since(float):
    """A ``since`` bound whose comparison records a sample, as the loop does between two steps of a reader."""

    def __new__(cls, value: float, monitor: LagMonitor):
        self = super().__new__(cls, value)
        self.monitor = monitor
        return self

    def __le__(self, other: object) -> bool:
        self.monitor.samples.append((99.0, 0.5))
        return float(self) <= other  # type: ignore[operator]


def test_a_sample_recorded_while_the_summary_reads_does_not_break_it():
    monitor = LagMonitor()
    monitor.samples.extend([(1.0, 0.001), (2.0, 0.002), (3.0, 0.004)])
    summary = monitor.summary(since=_Since(2.0, monitor))
    assert summary["samples"] == 2
    assert summary["max_ms"] == 4.0
    assert len(monitor.samples) == 6  # the loop's samples were kept, not lost
