"""The Unix-socket channel from workers to the event loop: a fast worker, and the folders killed servers leave."""

from __future__ import annotations

import asyncio
import functools
import os
import subprocess
import sys
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sheetstream.runtime.channel import Channel, remove_dead


def two_chunks() -> Generator[bytes, None, str]:
    yield b"first"
    yield b"second"
    return "returned"


def test_a_worker_that_ends_before_its_connection_is_accepted_still_streams() -> None:
    # Found by the API fuzzing: a small export could end in its worker before the event loop accepted the
    # worker's connection, and the response was cut ("the worker ended without streaming").
    async def run() -> tuple[list[bytes], list]:
        channel = Channel()
        accept = channel._accept

        async def late_accept(reader, writer) -> None:  # an event loop busy elsewhere
            await asyncio.sleep(0.5)
            await accept(reader, writer)

        channel._accept = late_accept
        await channel.start()
        returned: list = []
        try:
            with ThreadPoolExecutor(1) as pool:
                loop = asyncio.get_running_loop()

                def submit(fn, *args) -> asyncio.Future:
                    return loop.run_in_executor(pool, functools.partial(fn, *args))

                chunks = [chunk async for chunk in channel.stream(submit, two_chunks, (), returned)]
        finally:
            await channel.stop()
        return chunks, returned

    assert asyncio.run(run()) == ([b"first", b"second"], ["returned"])


def test_folders_of_dead_servers_are_removed(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = tmp_path / f"sheetstream-channel-{child.pid}-abc"
    alive = tmp_path / f"sheetstream-channel-{os.getpid()}-def"
    other = tmp_path / "sheetstream-profile-x"
    for folder in (dead, alive, other):
        folder.mkdir()
        (folder / "chunks.sock").write_bytes(b"")
    assert remove_dead(tmp_path) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])
