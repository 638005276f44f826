"""The server process a job runs for, as a worker process sees it: an import checks it at every progress
report and right before COMMIT, so a worker never commits once its server is gone.

A worker's parent is not always the server (with ``forkserver`` it is the fork server, which outlives the
server while any worker holds its pipe), so the server is named by its pid and its start time: a pid
reused by another process, or a dead server kept as a zombie by its own parent, does not count as alive.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class Lifeline:
    pid: int
    started: float  # the process's start time, as psutil reads it

    @classmethod
    def of_this_process(cls) -> Lifeline:
        return cls(os.getpid(), psutil.Process().create_time())

    def alive(self) -> bool:
        if self.pid == os.getpid():
            return True
        try:
            process = psutil.Process(self.pid)
            return process.create_time() == self.started and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False
