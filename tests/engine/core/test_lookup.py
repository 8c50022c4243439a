"""Crash-safe submissions: a client reference goes out with the submit and finds it again."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest

from engine._core import step
from engine._core.binding import Binding
from engine._core.state import End, Phase
from engine._errors import RemoteError
from tests.engine.core.conftest import (
    BASE,
    binding,
    job,
    lifecycle_of,
    reply,
    toy_document,
)

NOW = 1000.0
LOOKUP_URL = f"{BASE}/by-ref/r-77"


def _binding(*, ref: dict[str, str], observe: bool = True) -> Binding:
    document = toy_document()
    lifecycle = lifecycle_of(document)
    lifecycle["inputs"]["ref"] = {"in": "body"}
    lifecycle["submit"]["client_ref"] = ref
    lifecycle["lookup"] = {
        "request": {"path": "/by-ref/{client_ref}"},
        "job_id": {"pointer": "/id"},
        "observe": observe,
    }
    return binding(document)


def _intent(b: Binding, **inputs: Any) -> Any:
    return step.new_submission(
        b,
        key="k1",
        inputs={"region": "eu", **inputs},
        filters=None,
        now=NOW,
        client_ref="generated-1",
    )


def _looking(b: Binding) -> Any:
    return job(b, job_id="", phase=Phase.LOOKUP, client_ref="r-77", deadline=NOW + 100)


def test_the_callers_reference_wins_over_a_generated_one() -> None:
    """A reference the caller gave (in the input the spec names) is the one stored."""
    b = _binding(ref={"input": "ref"})

    assert _intent(b, ref="mine-9").client_ref == "mine-9"
    assert _intent(b).client_ref == "generated-1"


def test_a_generated_reference_goes_in_the_named_input() -> None:
    """Without the caller's own, the generated reference is sent in the body input."""
    b = _binding(ref={"input": "ref"})

    out = step.submit_request(b, _intent(b), {"region": "eu"})

    assert out.json_body == {"ref": "generated-1"}
    assert out.headers == ()


def test_a_header_reference_is_sent_as_that_header() -> None:
    """An Idempotency-Key reference travels as a header of the submit only."""
    b = _binding(ref={"header": "Idempotency-Key"})

    out = step.submit_request(b, _intent(b), {"region": "eu"})

    assert out.headers == (("Idempotency-Key", "generated-1"),)


def test_an_unanswered_submission_with_a_lookup_is_looked_up_on_resume() -> None:
    """After a restart, a submission without an id is looked up by its reference, now."""
    b = _binding(ref={"input": "ref"})
    intent = job(b, job_id="", phase=Phase.SUBMIT, client_ref="r-77")

    resumed = step.resume(b, intent, now=NOW)

    assert (resumed.job.phase, resumed.job.due) == (Phase.LOOKUP, NOW)
    assert [r.kind for r in resumed.records] == ["resumed"]
    assert step.request_for(b, resumed.job).url == f"{LOOKUP_URL}"


def test_a_found_submission_goes_on_from_the_state_its_answer_shows() -> None:
    """Found: its id is taken, 'lookup' and 'submitted' are recorded, its state applied."""
    b = _binding(ref={"input": "ref"})

    done = step.on_reply(
        b,
        _looking(b),
        reply(200, {"id": "j42", "status": "running"}, url=LOOKUP_URL),
        now=NOW,
        rng=random.Random(1),
    )

    assert (done.job.job_id, done.job.phase, done.job.state) == (
        "j42",
        Phase.POLL,
        "Running",
    )
    kinds = [r.kind for r in done.records]
    assert kinds[:2] == ["lookup", "submitted"]
    assert "transition" in kinds
    assert done.records[0].detail == {"client_ref": "r-77", "found": True}


def test_a_found_submission_without_observing_waits_its_first_poll() -> None:
    """With observe off, the found job stays in its state and is polled after the delay."""
    b = _binding(ref={"input": "ref"}, observe=False)

    done = step.on_reply(
        b,
        _looking(b),
        reply(200, {"id": "j42", "status": "running"}, url=LOOKUP_URL),
        now=NOW,
        rng=random.Random(1),
    )

    assert (done.job.phase, done.job.state, done.job.due) == (Phase.POLL, "Queued", NOW)


def test_a_submission_the_service_never_received_is_safe_to_send_again() -> None:
    """404 from the lookup: it never arrived; the job ends saying so (code not_submitted)."""
    b = _binding(ref={"input": "ref"})

    done = step.on_reply(
        b, _looking(b), reply(404, url=LOOKUP_URL), now=NOW, rng=random.Random(1)
    )

    error = done.job.job_error()
    assert isinstance(error, RemoteError)
    assert (error.kind, error.code) == ("submission", "not_submitted")
    assert "safe to submit again" in str(error)
    assert done.records[0].detail == {"client_ref": "r-77", "found": False}


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (
            reply(403, {"error": {"code": "DENIED"}}, url=LOOKUP_URL),
            "could not be looked up",
        ),
        (reply(200, {"status": "running"}, url=LOOKUP_URL), "no job id"),
    ],
)
def test_a_lookup_that_cannot_tell_leaves_the_submission_unresolved(
    answer: Any, why: str
) -> None:
    """A fatal answer, or an answer without an id: unresolved, for a person to check."""
    b = _binding(ref={"input": "ref"})

    done = step.on_reply(b, _looking(b), answer, now=NOW, rng=random.Random(1))

    error = done.job.job_error()
    assert isinstance(error, RemoteError)
    assert (error.kind, error.code) == ("submission", "unresolved")
    assert why in str(error)
    assert [r.kind for r in done.records] == ["unresolved_submission"]


def test_a_lookup_is_retried_then_left_unresolved_when_the_budget_is_spent() -> None:
    """Transient failures are retried; past the retry budget the submission is unresolved."""
    b = _binding(ref={"input": "ref"})
    looking = _looking(b)
    down = reply(503, url=LOOKUP_URL)

    first = step.on_reply(b, looking, down, now=NOW, rng=random.Random(1))
    spent = step.on_reply(
        b, attrs.evolve(looking, failures=2), down, now=NOW, rng=random.Random(1)
    )

    assert (first.job.phase, first.job.failures) == (Phase.LOOKUP, 1)
    assert [r.kind for r in first.records] == ["retrying"]
    assert (spent.job.end, spent.job.reason) == (End.ERRORED, "unresolved_submission")
