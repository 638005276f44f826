"""The processing queue and its strategies on their own: admission, positions, results, errors, back-pressure."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Generator

import pytest

from sheetstream.errors import Busy, NotFound, WorkerLost
from sheetstream.runtime import ProcessingQueue, make_strategy

from ..helpers import pool_workers


def chunks(count: int, size: int = 1000) -> Generator[bytes, None, dict]:
    for i in range(count):
        yield bytes([i % 256]) * size
    return {"chunks": count, "pid": os.getpid()}


def failing(after: int) -> Generator[bytes, None, None]:
    yield from chunks(after)
    raise NotFound("no such thing", thing="x")


def add(a: int, b: int) -> tuple[int, int]:
    return a + b, os.getpid()


STRATEGIES = ["inline", "thread", "process"]


def run(coroutine):
    return asyncio.run(coroutine)


async def started(strategy: str, workers: int = 1, max_waiting: int | None = None) -> ProcessingQueue:
    queue = ProcessingQueue(make_strategy(strategy, workers, "forkserver"), workers, max_waiting)
    await queue.start()
    return queue


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_calls_streams_and_returns(strategy: str) -> None:
    async def go():
        queue = await started(strategy)
        try:
            total, pid = await queue.call("import", add, 2, 3)
            stream = queue.stream("export", chunks, 20)
            body = b"".join([chunk async for chunk in stream])
            return total, pid, body, stream.result
        finally:
            await queue.stop()

    total, pid, body, result = run(go())
    assert total == 5 and len(body) == 20_000 and result["chunks"] == 20
    assert (pid != os.getpid()) == (strategy == "process") and (result["pid"] != os.getpid()) == (strategy == "process")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_task_error_reaches_the_caller_with_its_detail(strategy: str) -> None:
    async def go():
        queue = await started(strategy)
        try:
            received = []
            with pytest.raises(NotFound) as caught:
                async for chunk in queue.stream("export", failing, 3):
                    received.append(chunk)
            return received, caught.value, dict(queue.active)
        finally:
            await queue.stop()

    received, error, active = run(go())
    assert len(received) == 3 and error.message == "no such thing" and error.detail == {"thing": "x"}
    assert active == {"export": 0}


def test_admission_refuses_past_the_waiting_list_and_positions_are_first_come_first_served() -> None:
    async def go():
        queue = await started("thread", workers=1, max_waiting=2)
        try:
            async with queue.slot("export"):  # the one worker is busy
                queue.admit("import", ticket="a")
                queue.admit("import", ticket="b")
                with pytest.raises(Busy) as caught:
                    queue.admit("import", ticket="c")
                positions = queue.position("a"), queue.position("b"), queue.position("c")
                queue.withdraw("import", "a")
                after = queue.position("b"), dict(queue.queued)
            return caught.value, positions, after
        finally:
            await queue.stop()

    busy, positions, after = run(go())
    assert busy.retry_after >= 1 and busy.detail["waiting"] == 2 and "the server is busy" in busy.message
    assert positions == (1, 2, None) and after == (1, {"export": 0, "import": 1})


def test_an_admitted_task_keeps_its_place_until_its_slot_starts() -> None:
    async def go():
        queue = await started("thread", workers=1, max_waiting=4)
        try:
            order = []

            async def task(name: str) -> None:
                async with queue.slot("import", ticket=name):
                    order.append(name)
                    await asyncio.sleep(0.01)

            async with queue.slot("export"):
                queue.admit("import", ticket="first")
                queue.admit("import", ticket="second")
                running = [asyncio.create_task(task("second")), asyncio.create_task(task("first"))]
                await asyncio.sleep(0.01)
                waiting = queue.waiting
            await asyncio.gather(*running)
            return order, waiting, queue.waiting
        finally:
            await queue.stop()

    order, waiting, left = run(go())
    assert waiting == 2 and left == 0 and sorted(order) == ["first", "second"]


@pytest.mark.parametrize("strategy", ["thread", "process"])
def test_a_consumer_that_stops_early_stops_the_producer(strategy: str) -> None:
    async def go():
        queue = await started(strategy)
        try:
            stream = queue.stream("export", chunks, 100_000, 65_536)  # 6.5 GB if nobody stopped it
            seen = 0
            async for _ in stream:
                seen += 1
                if seen == 3:
                    break
            await stream.chunks.aclose()
            return seen, dict(queue.active), stream.result
        finally:
            await queue.stop()

    seen, active, result = run(asyncio.wait_for(go(), 30))
    assert seen == 3 and active == {"export": 0} and result is None


def sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_a_dead_worker_fails_only_its_own_task_and_is_replaced_once() -> None:
    """Two tasks on two workers, one worker killed: its task fails with WorkerLost, the other task finishes on
    its own worker (which is not stopped), the dead one's lane is replaced, and the next task runs."""
    async def go():
        queue = await started("process", workers=2)
        strategy = queue.strategy
        try:
            lanes = list(strategy.lanes)
            running = [asyncio.create_task(queue.call("import", sleep_then_pid, 3)) for _ in range(2)]
            while len(pool_workers()) < 2 or sum(queue.active.values()) < 2:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            victim = pool_workers()[0]
            victim.kill()
            outcomes = await asyncio.gather(*running, return_exceptions=True)
            after = await queue.call("import", add, 1, 2)
            replaced = [a is not b for a, b in zip(lanes, strategy.lanes)]
            return outcomes, victim.pid, strategy.restarts, replaced, after[0], dict(queue.active)
        finally:
            await queue.stop()

    outcomes, victim, restarts, replaced, after, active = run(asyncio.wait_for(go(), 30))
    lost = [o for o in outcomes if isinstance(o, WorkerLost)]
    finished = [o for o in outcomes if isinstance(o, int)]
    assert len(lost) == 1 and "nothing it did was kept" in lost[0].message, outcomes
    assert len(finished) == 1 and finished[0] != victim, outcomes
    assert restarts == 1 and sorted(replaced) == [False, True] and after == 3 and active == {"import": 0}
