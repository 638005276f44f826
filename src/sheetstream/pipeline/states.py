"""A job's states and the one way it moves between them.

receiving -> queued -> parsing -> inserting [-> committing] -> done | failed. Every change of state goes through
:func:`move`, which refuses a move the life cycle does not have; :func:`~.jobs.managed` is the one place a run
ends (done or failed, and ended whatever happened).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class State(StrEnum):
    """Where a job is. Its record holds the value (a plain string in JSON)."""

    RECEIVING = "receiving"
    QUEUED = "queued"
    PARSING = "parsing"
    INSERTING = "inserting"
    COMMITTING = "committing"  # SQLite only, for an instant: written by the store inside the import's transaction
    DONE = "done"
    FAILED = "failed"


#: The moves a job may make (:func:`move` refuses any other). A job run where it is, as the tests and tools run
#: imports, goes from receiving to parsing without a queue; an ended job never moves again.
MOVES: dict[State, frozenset[State]] = {
    State.RECEIVING: frozenset({State.QUEUED, State.PARSING, State.FAILED}),
    State.QUEUED: frozenset({State.PARSING, State.FAILED}),
    State.PARSING: frozenset({State.INSERTING, State.FAILED}),
    State.INSERTING: frozenset({State.COMMITTING, State.DONE, State.FAILED}),
    State.COMMITTING: frozenset({State.DONE, State.FAILED}),
    State.DONE: frozenset(),
    State.FAILED: frozenset(),
}
STATES = tuple(s.value for s in State)
ENDED = (State.DONE.value, State.FAILED.value)


class IllegalMove(RuntimeError):
    """A job asked to move where its life cycle does not go: a bug, never a user's doing."""


def move(job: Any, to: State) -> None:
    """The one way a job changes state: along :data:`MOVES`, or :class:`IllegalMove`."""
    if to not in MOVES[State(job.state)]:
        raise IllegalMove(f"job {job.id} cannot go from {job.state} to {to.value}")
    job.state = to.value
