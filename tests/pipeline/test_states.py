"""A job's life cycle has one owner: every move is along the declared ones, and a run always ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from sheetstream.pipeline.jobs import Job, fail, managed, succeed
from sheetstream.pipeline.states import MOVES, IllegalMove, State, move


def test_the_declared_moves_and_nothing_else() -> None:
    job = Job(table="t")
    for step in (State.QUEUED, State.PARSING, State.INSERTING, State.COMMITTING, State.DONE):
        move(job, step)
        assert job.state == step.value
    with pytest.raises(IllegalMove, match="cannot go from done to parsing"):
        move(job, State.PARSING)
    assert all(not MOVES[end] for end in (State.DONE, State.FAILED))
    assert set(MOVES) == set(State)


def test_a_job_cannot_skip_its_work() -> None:
    with pytest.raises(IllegalMove, match="from queued to done"):
        succeed(Job(table="t", state="queued"))


def test_an_ended_job_stays_as_it_ended() -> None:
    job = Job(table="t", state="inserting")
    succeed(job)
    fail(job, RuntimeError("late"))
    assert job.state == "done" and job.error is None


def test_managed_ends_the_run_done_or_failed(tmp_path: Path) -> None:
    ok = Job(table="t", state="inserting")
    with managed(ok):
        pass
    bad = Job(table="t", state="parsing")
    with managed(bad):
        raise ValueError("boom")
    assert ok.state == "done" and bad.state == "failed" and bad.error == "internal_error"
    early = Job(table="t", state="queued")
    with pytest.raises(IllegalMove):  # a run that did not reach its work cannot be called done
        with managed(early):
            pass
