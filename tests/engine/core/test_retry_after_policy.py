"""Retry-After obeys the spec's `retry_after.honour` everywhere: polls, retries, submits."""

from __future__ import annotations

import random
from typing import Any

from engine._core import step
from engine._core.binding import Binding
from engine._core.reply import Reply
from engine._core.state import JobState, Phase
from tests.engine.core.conftest import binding, job, lifecycle_of, reply, toy_document

NOW = 10.0
SUBMIT_URL = "https://api.example.test/regions/eu/jobs"


def _bound(*, honour: bool) -> Binding:
    document = toy_document()
    schedule = lifecycle_of(document)["schedule"]
    schedule.update(initial_delay=3, retry_after={"honour": honour, "max": 60})
    lifecycle_of(document)["errors"] = {"retry_backoff": {"initial": 2, "factor": 2}}
    return binding(document, "job")


def _on(b: Binding, state: JobState, got: Reply) -> step.Step:
    return step.on_reply(b, state, got, now=NOW, rng=random.Random(0))


def _submitting(b: Binding) -> JobState:
    inputs = {"region": "eu", "api_version": "1"}
    return step.new_submission(b, key="k1", inputs=inputs, filters=None, now=0.0)


def _submit_reply(status: int, headers: dict[str, Any]) -> Reply:
    body = {"id": "j1"} if status < 300 else {"error": "busy"}
    return reply(status, body, headers, url=SUBMIT_URL)


def test_an_ignored_retry_after_does_not_delay_the_first_poll() -> None:
    """honour=false: a submit answer's Retry-After leaves the first poll at the initial delay."""
    b = _bound(honour=False)

    done = _on(b, _submitting(b), _submit_reply(201, {"Retry-After": "30"}))

    assert (done.job.phase, done.job.due) == (Phase.POLL, NOW + 3)


def test_an_ignored_retry_after_does_not_stretch_a_poll_retry() -> None:
    """honour=false: a 429's Retry-After is not a floor; the retry backoff decides."""
    b = _bound(honour=False)

    done = _on(b, job(b), reply(429, None, {"Retry-After": "30"}))

    assert done.job.due == NOW + 2


def test_a_submit_answered_429_is_retried_after_its_retry_after_without_sleeping() -> (
    None
):
    """A refused submit is a step due at its Retry-After (no sleep); honour=false ignores it."""
    honoured, ignored = _bound(honour=True), _bound(honour=False)

    later = _on(
        honoured, _submitting(honoured), _submit_reply(429, {"Retry-After": "30"})
    )
    sooner = _on(
        ignored, _submitting(ignored), _submit_reply(429, {"Retry-After": "30"})
    )

    assert (later.job.phase, later.job.due, later.job.failures) == (
        Phase.SUBMIT,
        NOW + 30,
        1,
    )
    assert (sooner.job.phase, sooner.job.due) == (Phase.SUBMIT, NOW + 2)
    assert [r.kind for r in later.records] == ["retrying"]
