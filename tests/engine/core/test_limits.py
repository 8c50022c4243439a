"""A caller's own deadline and attempts for one job: checked, kept, applied by the timing rule."""

from __future__ import annotations

import json
import math
import random

import pytest

from engine._core import step, timing
from engine._core.binding import Binding
from engine._core.state import End, JobState, Phase, check_limits
from engine._errors import InputError
from tests.engine.core.conftest import binding, job, lifecycle_of, reply, toy_document

NOW = 100.0


# -- checking --------------------------------------------------------------------------------


def test_limits_default_to_the_specs() -> None:
    """No deadline and no attempts given: None for both, the spec's apply."""
    assert check_limits(None, None) == (None, None)


def test_a_whole_deadline_is_kept_as_seconds() -> None:
    """A deadline of whole seconds becomes a float; attempts stay a whole number."""
    assert check_limits(30, 5) == (30.0, 5)
    assert isinstance(check_limits(30, None)[0], float)


@pytest.mark.parametrize(
    "deadline", [0, -1, 0.0, math.nan, math.inf, -math.inf, True, "30", [30]]
)
def test_a_deadline_must_be_positive_and_finite(deadline: object) -> None:
    """Zero, negative, NaN, infinite, a bool or a string is refused, naming the value."""
    with pytest.raises(InputError, match=r"deadline must be a positive, finite number"):
        check_limits(deadline, None)


@pytest.mark.parametrize("attempts", [0, -3, 2.5, 3.0, True, "3", math.inf])
def test_attempts_must_be_a_whole_number_of_at_least_one(attempts: object) -> None:
    """Zero, negative, fractional, a float, a bool or a string is refused."""
    with pytest.raises(InputError, match=r"max_attempts must be a whole number"):
        check_limits(None, attempts)


# -- the deadline at the start ------------------------------------------------------------------


def _provisional() -> Binding:
    """The toy spec where Running has a deadline of its own (500 s)."""
    document = toy_document()
    lifecycle_of(document)["schedule"]["per_state"] = {"Running": {"deadline": 500}}
    return binding(document)


def test_start_deadline_is_the_specs_by_default(toy: Binding) -> None:
    """Without an own deadline, a job gives up the spec's 100 s after it starts."""
    schedule = toy.lifecycle.schedule

    assert timing.start_deadline(schedule, "Queued", now=NOW, scale=1.0) == NOW + 100


def test_start_deadline_of_a_state_with_its_own_is_that_states() -> None:
    """Adopted in a state with its own deadline, that deadline applies."""
    schedule = _provisional().lifecycle.schedule

    assert timing.start_deadline(schedule, "Running", now=NOW, scale=1.0) == NOW + 500


def test_an_own_deadline_replaces_the_specs_and_the_states() -> None:
    """The caller's deadline wins at the start, even in a state with its own."""
    schedule = _provisional().lifecycle.schedule

    queued = timing.start_deadline(schedule, "Queued", now=NOW, scale=1.0, own=7)
    running = timing.start_deadline(schedule, "Running", now=NOW, scale=1.0, own=7)

    assert (queued, running) == (NOW + 7, NOW + 7)


def test_an_own_deadline_is_scaled_like_the_specs() -> None:
    """Durations stand in for the spec's, so the time scale applies to them too."""
    schedule = binding().lifecycle.schedule

    assert timing.start_deadline(schedule, "Queued", now=0.0, scale=0.5, own=10) == 5


def test_no_deadline_anywhere_means_none() -> None:
    """A spec without a deadline, and no own one: the job never times out by time."""
    document = toy_document()
    del lifecycle_of(document)["schedule"]["deadline"]
    schedule = binding(document).lifecycle.schedule

    assert timing.start_deadline(schedule, "Queued", now=NOW, scale=1.0) is None


# -- attempts --------------------------------------------------------------------------------


def _next(b: Binding, polls: int, *, own: int | None, state: str = "Running") -> str:
    plan = timing.next_poll(
        b.lifecycle,
        state,
        polls,
        polls,
        None,
        {},
        now=NOW,
        scale=1.0,
        rng=random.Random(1),
        max_attempts=own,
    )
    return plan.give_up or "poll"


def _with_attempts(n: int) -> Binding:
    document = toy_document()
    lifecycle_of(document)["schedule"]["max_attempts"] = n
    return binding(document)


def test_own_attempts_replace_the_specs() -> None:
    """The spec allows 10 polls; a job given 3 gives up after its third."""
    b = _with_attempts(10)

    assert _next(b, 2, own=3) == "poll"
    assert _next(b, 3, own=3) == "3 polls (max_attempts)"


def test_own_attempts_may_be_more_than_the_specs() -> None:
    """A job given 50 attempts goes past the spec's 10."""
    b = _with_attempts(10)

    assert _next(b, 10, own=50) == "poll"
    assert _next(b, 10, own=None) == "10 polls (max_attempts)"


def test_a_states_own_attempts_still_decide_in_that_state() -> None:
    """A state with its own max_attempts counts polls in it, whatever the job's own."""
    document = toy_document()
    lifecycle_of(document)["schedule"]["per_state"] = {"Running": {"max_attempts": 2}}
    b = binding(document)

    assert _next(b, 2, own=50) == "2 polls in Running"


# -- in the job's state, through the core -----------------------------------------------------


def test_a_submission_keeps_its_own_limits(toy: Binding) -> None:
    """new_submission stores the caller's limits and the deadline they give."""
    new = step.new_submission(
        toy,
        key="k1",
        inputs={"region": "eu"},
        filters=None,
        now=NOW,
        deadline_after=30.0,
        max_attempts=4,
    )

    assert (new.deadline_after, new.max_attempts, new.deadline) == (30.0, 4, NOW + 30)


def test_an_adopted_job_keeps_its_own_limits(toy: Binding) -> None:
    """Adopting stores the caller's limits; the first poll is not after the own deadline."""
    adopted = step.adopt(
        toy,
        key="k1",
        job_id="j1",
        inputs={"region": "eu"},
        filters=None,
        state=None,
        now=NOW,
        deadline_after=1.0,
        max_attempts=2,
    ).job

    assert (adopted.deadline, adopted.max_attempts) == (NOW + 1, 2)
    assert adopted.due <= NOW + 1


def test_a_job_with_own_attempts_times_out_after_them(
    toy: Binding, rng: random.Random
) -> None:
    """Polls answered 'running' end the job timed out at its own attempts, not the spec's."""
    current = job(toy, state="Running", max_attempts=2, deadline=None)
    for now in (1.0, 2.0):
        current = step.on_reply(
            toy, current, reply(body={"status": "running"}), now=now, rng=rng
        ).job

    assert (current.end, current.reason) == (End.TIMED_OUT, "2 polls (max_attempts)")
    assert current.polls == 2


def test_own_limits_survive_the_snapshot(toy: Binding) -> None:
    """A stored job keeps its limits: any driver that takes it applies them."""
    limited = job(toy, deadline_after=12.5, max_attempts=3)

    again = JobState.from_json(json.loads(json.dumps(limited.to_json())))

    assert (again.deadline_after, again.max_attempts) == (12.5, 3)


def test_a_snapshot_written_before_limits_existed_still_loads(toy: Binding) -> None:
    """Snapshots without the new keys load with the defaults (the spec's limits)."""
    data = job(toy, phase=Phase.POLL).to_json()
    for key in ("deadline_after", "max_attempts"):
        del data[key]

    old = JobState.from_json(data)

    assert (old.deadline_after, old.max_attempts) == (None, None)
