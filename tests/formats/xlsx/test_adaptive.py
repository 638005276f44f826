"""Adaptive deflate: a slow consumer gets a higher level (a smaller file), a fast one the same bytes as before."""

from __future__ import annotations

import io
import time
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl

from sheetstream.formats.xlsx import Adaptive, adaptive, deflater, open_workbook, write_xlsx
from sheetstream.formats.xlsx.writer import ADAPTIVE_SLOW
from sheetstream.store.demo import ORDERS, demo_rows

HEADER = [c.name for c in ORDERS]
ROWS = 20_000
WHEN = datetime(2024, 5, 6, 7, 8, 10)
CHUNK = 16_384  # small chunks: many yields, hence many measurements, in a small file


def export(compress, pause=lambda index: 0.0) -> bytes:
    """The workbook as a consumer that waits ``pause(index)`` seconds after each chunk would read it, and at least
    three times as long as the writer took for the chunk when the pause is not zero (so that the consumer is the
    bottleneck on a busy machine too, where the writer's wall time per chunk grows)."""
    out = io.BytesIO()
    asked = time.perf_counter()
    for index, chunk in enumerate(write_xlsx(demo_rows(ROWS), HEADER, sheet_name="orders", compress=compress,
                                             chunk_size=CHUNK, modified_at=WHEN)):
        busy = time.perf_counter() - asked
        out.write(chunk)
        if seconds := pause(index):
            time.sleep(max(seconds, 3 * busy))
        asked = time.perf_counter()
    return out.getvalue()


def ours(data: bytes, tmp_path: Path, name: str) -> list:
    """The rows by our reader, after zipfile checked every member's CRC."""
    path = tmp_path / name
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
    with open_workbook(path) as book:
        return [values for _, values in book.rows()]


def openpyxls(data: bytes) -> list:
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    try:
        return [row for row in workbook.active.iter_rows(values_only=True)]
    finally:
        workbook.close()


def test_slow_consumer_gets_a_smaller_file_with_the_same_cells(tmp_path):
    fast, slow = adaptive(), adaptive()
    quick = export(fast)
    slowly = export(slow, lambda index: 0.05)  # a client that reads far slower than the writer produces
    assert fast.switches == 0
    assert slow.switches >= 1 and slow.slowed
    assert len(slowly) < 0.95 * len(quick)
    rows = ours(slowly, tmp_path, "slow.xlsx")
    assert len(rows) == ROWS + 1
    assert rows == ours(quick, tmp_path, "fast.xlsx")
    assert openpyxls(slowly) == openpyxls(quick)


def test_fast_consumer_gets_the_bytes_of_the_fixed_level():
    assert export(adaptive()) == export(deflater())


def test_level_goes_back_when_the_consumer_catches_up(tmp_path):
    # Slow for the first chunks, then as fast as the writer: up to the high level, then back to the fast one
    # (smoothed over fewer chunks than the default, so that this small export has enough of them for both).
    switching = Adaptive(deflater(), deflater(*ADAPTIVE_SLOW), smoothing=1 / 2)
    data = export(switching, lambda index: 0.05 if index < 5 else 0.0)
    assert switching.switches >= 2 and not switching.slowed
    assert ours(data, tmp_path, "both.xlsx") == ours(export(deflater()), tmp_path, "fixed.xlsx")


def test_update_follows_the_smoothed_share_of_waiting():
    policy = Adaptive(deflater(), deflater("zlib", 6))
    assert not any(policy.update(0.010, 0.001) for _ in range(20))  # the writer is the bottleneck
    assert any(policy.update(0.010, 0.030) for _ in range(20)) and policy.slowed
    # Still waiting for the client, though less than before: stay at the high level.
    assert not any(policy.update(0.020, 0.010) for _ in range(40))
    assert any(policy.update(0.020, 0.0001) for _ in range(40)) and not policy.slowed
    assert policy.switches == 2
