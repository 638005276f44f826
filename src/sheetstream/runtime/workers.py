"""Worker processes die with their server, and a stopped server leaves none behind.

- On Linux each worker asks the kernel for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``). With
  ``spawn`` and ``fork`` the parent is the server; with ``forkserver`` it is the fork server, which does not
  die with the server (every worker holds its "alive" pipe open), so each worker also watches the server
  itself (:class:`~sheetstream.pipeline.lifeline.Lifeline`) from a thread and kills itself when it is gone.
  Once the workers are gone, the fork server sees its pipe close and exits too.
- :func:`stop_pools` kills the pools' workers, then stops the fork server when no other pool still uses it.
- :func:`run_and_release` runs each task and then hands the freed heap back to the kernel (:func:`release_memory`),
  so that a worker rests near its size at start instead of at its peak.
"""

from __future__ import annotations

import ctypes
import multiprocessing.forkserver
import multiprocessing.resource_tracker
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

import psutil

from ..pipeline.lifeline import Lifeline
from .logformat import configure_worker

T = TypeVar("T")

PR_SET_PDEATHSIG = 1
#: How often a worker looks at its server (seconds): the longest a worker outlives it.
WATCH_EVERY = 0.2


def start_worker(lifeline: Lifeline, memory_limit: int = 0) -> None:
    """The pool's initializer, in each worker: die with the parent, and with the server; cap its memory; log as
    the server does."""
    configure_worker()
    limit_memory(memory_limit)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not lifeline.alive():  # it died before the line above took effect
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch, args=(lifeline,), name="sheetstream-lifeline", daemon=True).start()


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


_malloc_trim = _find_malloc_trim()


def release_memory() -> None:
    """Give the C heap's free pages back to the kernel. glibc keeps memory freed below a live block (a parse's
    buffers under a small object allocated later) mapped until ``malloc_trim``; without it a process rests at its
    peak. A no-op where libc has no ``malloc_trim``."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def warm_worker() -> int:
    """A worker's first task: import what tasks need (about 150 ms), so that the next real task, such as an
    export whose first byte a user waits for, finds a worker ready. Returns the worker's pid."""
    import importlib

    for module in ("sheetstream.pipeline.exports", "sheetstream.pipeline.jobs"):
        importlib.import_module(module)
    return os.getpid()


def run_and_release(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker, then :func:`release_memory` (a few milliseconds, once per task)."""
    try:
        return fn(*args)
    finally:
        release_memory()


def limit_memory(limit: int) -> None:
    """In each worker process as it starts: cap its address space at ``limit`` bytes (0: no cap), so a task that
    needs more fails with ``MemoryError`` in its own worker instead of waking the machine's out-of-memory killer."""
    if limit:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _watch(lifeline: Lifeline) -> None:
    while lifeline.alive():
        time.sleep(WATCH_EVERY)
    # SIGKILL, not an exit: no cleanup code of a half-done task may run (an open transaction just ends).
    os.kill(os.getpid(), signal.SIGKILL)


def stop_pools(pools: Iterable[ProcessPoolExecutor], retiring: Iterable[BaseProcess] = (),
               timeout: float = 5.0) -> None:
    """Kill the pools' workers (whatever they were doing rolls back with their connections), wait for them,
    and stop the fork server if nothing else uses it. ``retiring``: workers of pools shut down earlier that may
    not have exited yet (killed too; their pool's own thread waits for them)."""
    processes = []
    for pool in pools:
        processes += list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
    for process in [*processes, *retiring]:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout)
    _stop_forkserver()
    _stop_resource_tracker()


def _stop_forkserver() -> None:
    server = multiprocessing.forkserver._forkserver
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    try:
        if any(child.status() != psutil.STATUS_ZOMBIE for child in psutil.Process(pid).children()):
            return  # another pool's workers still hold it open; it exits after them
    except psutil.Error:
        pass
    server._stop()  # closes its "alive" pipe and waits for it to exit


def _stop_resource_tracker() -> None:
    """multiprocessing's resource tracker, a child of ours too: it exits when every holder of its pipe has gone,
    so stop it (close ours, wait) when no other child of ours may hold it."""
    tracker = multiprocessing.resource_tracker._resource_tracker
    pid = getattr(tracker, "_pid", None)
    if pid is None:
        return
    others = [c for c in psutil.Process().children() if c.pid != pid and c.status() != psutil.STATUS_ZOMBIE]
    if not others:
        tracker._stop()
