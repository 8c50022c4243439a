"""Conditional polling: validators go back, and a 304 is 'unchanged' that costs no attempt."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from engine._core import step, timing
from engine._core.binding import Binding
from engine._core.reply import Reply
from engine._core.state import End, JobState, Phase
from engine._errors import RemoteError
from statemachines import Conditional
from tests.engine.core.conftest import binding, job, lifecycle_of, reply, toy_document

NOW = 10.0
TAGS = {"ETag": '"v1"', "Last-Modified": "Mon, 30 Nov 2026 10:00:00 GMT"}


def _on(b: Binding, state: JobState, got: Reply | RemoteError) -> step.Step:
    return step.on_reply(b, state, got, now=NOW, rng=random.Random(0))


def _conditional(*, given: Any = True, **schedule: Any) -> Binding:
    document = toy_document()
    lifecycle = lifecycle_of(document)
    lifecycle["poll"]["conditional"] = given
    lifecycle["schedule"].update(schedule)
    if lifecycle["schedule"]["deadline"] is None:
        del lifecycle["schedule"]["deadline"]
    return binding(document)


class TestValidators:
    """Which headers of an answer go back, as which request headers."""

    def test_both_validators_go_back_by_default(self) -> None:
        """ETag → If-None-Match, Last-Modified → If-Modified-Since."""
        found = step.validators(Conditional(), {k.lower(): v for k, v in TAGS.items()})

        assert found == {
            "If-None-Match": '"v1"',
            "If-Modified-Since": "Mon, 30 Nov 2026 10:00:00 GMT",
        }

    @pytest.mark.parametrize(
        ("conditional", "expected"),
        [
            (Conditional(last_modified=False), ["If-None-Match"]),
            (Conditional(etag=False), ["If-Modified-Since"]),
        ],
    )
    def test_the_spec_chooses_which_go_back(
        self, conditional: Conditional, expected: list[str]
    ) -> None:
        """An object form sends only the validators it enables."""
        headers = {k.lower(): v for k, v in TAGS.items()}

        assert list(step.validators(conditional, headers) or {}) == expected

    def test_an_answer_without_validators_gives_none(self) -> None:
        """No ETag and no Last-Modified: the next poll is unconditional."""
        assert step.validators(Conditional(), {"etag": ""}) is None


def test_a_polls_validators_are_sent_with_the_next_poll() -> None:
    """A 200 with an ETag: the next poll sends it back as If-None-Match."""
    b = _conditional(given={"last_modified": False})

    polled = _on(b, job(b), reply(200, {"status": "queued"}, TAGS))
    out = step.request_for(b, polled.job)

    assert polled.job.validators == {"If-None-Match": '"v1"'}
    assert out.headers == (("If-None-Match", '"v1"'),)


def test_without_conditional_no_validator_is_kept_nor_sent(toy: Binding) -> None:
    """A spec that does not ask for conditional polls sends none."""
    polled = _on(toy, job(toy), reply(200, {"status": "queued"}, TAGS))

    assert polled.job.validators is None
    assert step.request_for(toy, polled.job).headers == ()


def test_a_304_changes_nothing_uses_no_attempt_and_polls_on() -> None:
    """304: no transition, polls unchanged, the next poll scheduled, a record says so."""
    b = _conditional()
    waiting = job(
        b, state="Running", polls=4, failures=1, validators={"If-None-Match": "x"}
    )

    done = _on(b, waiting, reply(304, None))

    assert (done.job.state, done.job.polls, done.job.failures) == ("Running", 4, 0)
    assert (done.job.phase, done.job.not_modified) == (Phase.POLL, 1)
    assert done.job.due == NOW + 2
    assert done.job.validators == {"If-None-Match": "x"}
    assert [(r.kind, r.http_status, r.detail) for r in done.records] == [
        ("polled", 304, {"changed": False, "not_modified": True})
    ]


def test_a_304_with_fresh_validators_replaces_the_old() -> None:
    """A 304 that carries a new ETag: it is the one sent next."""
    b = _conditional()
    waiting = job(b, validators={"If-None-Match": "old"})

    done = _on(b, waiting, reply(304, None, {"ETag": "new"}))

    assert done.job.validators == {"If-None-Match": "new"}


def test_304s_never_use_up_max_attempts() -> None:
    """max_attempts 2 and one poll done: any number of 304s after it poll on."""
    b = _conditional(max_attempts=2, deadline=None)
    state = job(b, polls=1, deadline=None)

    for _ in range(5):
        state = _on(b, state, reply(304, None)).job

    assert (state.end, state.polls, state.not_modified) == (None, 1, 5)


def test_304s_grow_the_backoff_like_polls() -> None:
    """Exponential backoff: each 304 in the state lengthens the next wait."""
    b = _conditional(backoff={"kind": "exponential", "factor": 2, "max_interval": 60})
    state = job(b)

    waits = []
    for _ in range(3):
        state = _on(b, state, reply(304, None)).job
        waits.append(state.due - NOW)

    assert waits == [2.0, 4.0, 8.0]


def test_a_304_after_the_deadline_times_the_job_out() -> None:
    """The schedule goes on after a 304, deadline included."""
    b = _conditional()

    done = _on(b, job(b, deadline=NOW), reply(304, None))

    assert done.job.end is End.TIMED_OUT


def test_entering_a_state_resets_the_304_count() -> None:
    """A state change starts its backoff afresh, 304s included."""
    b = _conditional()

    moved = _on(b, job(b, not_modified=3), reply(200, {"status": "running"}))

    assert (moved.job.state, moved.job.not_modified) == ("Running", 0)


def test_without_conditional_a_304_is_read_like_any_answer(toy: Binding) -> None:
    """A 304 the spec did not ask for is a poll the observe rules read (here: unknown)."""
    done = _on(toy, job(toy), reply(304, None))

    assert done.job.polls == 1
    assert [r.kind for r in done.records] != ["polled"]


def test_not_modified_grows_the_delay_in_next_poll() -> None:
    """timing.next_poll counts 304s with polls for the backoff only."""
    b = _conditional(
        backoff={"kind": "exponential", "factor": 2, "max_interval": 60}, max_attempts=1
    )
    plan = timing.next_poll(
        b.lifecycle,
        "Queued",
        0,
        0,
        None,
        {},
        now=0.0,
        scale=1.0,
        rng=random.Random(0),
        not_modified=2,
    )

    assert plan.due == 4.0


def test_validators_survive_the_snapshot_and_old_snapshots_load(toy: Binding) -> None:
    """to_json/from_json keep validators and the 304 count; older snapshots have none."""
    kept = job(toy, validators={"If-None-Match": '"v1"'}, not_modified=2)
    old = job(toy).to_json()
    del old["validators"], old["not_modified"]

    again = JobState.from_json(json.loads(json.dumps(kept.to_json())))
    before = JobState.from_json(old)

    assert again == kept
    assert (before.validators, before.not_modified) == (None, 0)
