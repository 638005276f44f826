"""``sheetstream bench channel``: the cost of moving export chunks from a worker to the event loop.

The same 64 kB chunks (already compressed, as the writer's are) go through: the thread strategy's bounded
hand-off, the process strategy's Unix-socket frames (the real ``ProcessingQueue`` path), and, for
comparison, a bounded ``multiprocessing.Queue`` read from the loop through a thread. Reported: MB/s and the
main process's CPU seconds per GB moved (what the event loop's process pays).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ...runtime import ProcessingQueue, make_strategy

CHUNK = 65_536


def chunks(megabytes: int) -> Iterator[bytes]:
    data = os.urandom(CHUNK)
    for _ in range(megabytes * (1 << 20) // CHUNK):
        yield data


def _fill(queue, megabytes: int) -> None:
    for chunk in chunks(megabytes):
        queue.put(chunk)
    queue.put(None)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def through_queue(strategy: str, megabytes: int) -> int:
    queue = ProcessingQueue(make_strategy(strategy, 1), workers=1)
    await queue.start()
    moved = 0
    try:
        async for chunk in queue.stream("export", chunks, megabytes):
            moved += len(chunk)
    finally:
        await queue.stop()
    return moved


async def through_mp_queue(megabytes: int) -> int:
    context = multiprocessing.get_context("forkserver")
    queue = context.Queue(maxsize=8)
    producer = context.Process(target=_fill, args=(queue, megabytes))
    producer.start()
    loop = asyncio.get_running_loop()
    moved = 0
    while (chunk := await loop.run_in_executor(None, queue.get)) is not None:
        moved += len(chunk)
    producer.join()
    return moved


async def measure(name: str, megabytes: int) -> dict:
    runs = {"thread hand-off": lambda: through_queue("thread", megabytes),
            "process, Unix socket frames (used)": lambda: through_queue("process", megabytes),
            "process, multiprocessing.Queue": lambda: through_mp_queue(megabytes)}
    await runs[name]()  # warm: start the worker processes, import everything
    start, before = time.perf_counter(), cpu()
    moved = await runs[name]()
    seconds, spent = time.perf_counter() - start, cpu() - before
    return {"channel": name, "megabytes": megabytes, "bytes": moved, "seconds": round(seconds, 3),
            "mb_per_s": round(moved / 1e6 / seconds, 1), "main_cpu_s_per_gb": round(spent / (moved / 1e9), 2)}


def run(args: argparse.Namespace) -> int:
    results = [asyncio.run(measure(name, args.megabytes)) for name in
               ("thread hand-off", "process, Unix socket frames (used)", "process, multiprocessing.Queue")]
    table = Table(title=f"moving {args.megabytes} MB of 64 kB chunks to the event loop")
    for column in ("channel", "MB/s", "main-process CPU s per GB"):
        table.add_column(column)
    for r in results:
        table.add_row(r["channel"], f"{r['mb_per_s']:,.0f}", f"{r['main_cpu_s_per_gb']:.2f}")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    run(argparse.Namespace(megabytes=512, out=Path("bench-results/channel.json")))
