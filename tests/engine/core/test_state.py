"""JobState / JobResult: the snapshot round trip, results for every end, and job errors."""

from __future__ import annotations

import json

import attrs
import pytest

from engine._core.binding import Binding
from engine._core.state import End, JobRef, JobResult, JobState, Phase
from engine._errors import JobFailed, JobTimedOut, RemoteError
from statemachines import Outcome
from tests.engine.core.conftest import job


def _ended(b: Binding, end: End, **changes: object) -> JobState:
    return job(b, phase=Phase.DONE, end=end, **changes)


def test_a_job_is_done_only_in_phase_done(toy: Binding) -> None:
    """``done`` is the phase, not the state: a terminal state still fetching is live."""
    fetching = job(toy, state="Done", phase=Phase.RESULT)
    ended = job(toy, state="Done", phase=Phase.DONE)

    assert not fetching.done
    assert ended.done


def test_ref_names_the_job(toy: Binding) -> None:
    """A job's handle carries its key, service, lifecycle and remote id."""
    assert job(toy).ref() == JobRef("k1", "toy", "job", "j1")


def test_copy_is_a_new_object_that_shares_containers(toy: Binding) -> None:
    """A copy can be changed without touching the original; containers are shared."""
    original = job(toy, items={"a": "X"})

    copied = original.copy()
    copied.state = "Running"

    assert original.state == "Queued"
    assert copied.items is original.items


def test_snapshot_round_trips_through_json(toy: Binding) -> None:
    """to_json → JSON text → from_json gives back an equal state, every field included."""
    full = job(
        toy,
        state="Running",
        phase=Phase.ITEMS,
        due=12.5,
        polls=3,
        polls_in_state=1,
        failures=1,
        links={"/poll": "https://api.example.test/op/1"},
        poll_link="https://api.example.test/op/1?x=1",
        result_link="https://api.example.test/r/1",
        items={"d1": "Working"},
        page="https://api.example.test/docs?page=2",
        pages=1,
        listed=50,
        filters={"statuses": ["Ok"]},
        client_ref="ref-1",
        started=1.0,
        end=End.ERRORED,
        reason="errored",
        status=500,
        error={"kind": "status", "status": 500},
        response={"status": "running"},
        result=[1, 2],
    )

    again = JobState.from_json(json.loads(json.dumps(full.to_json())))

    assert again == full


def test_snapshot_of_a_fresh_job_round_trips_with_empty_containers(
    toy: Binding,
) -> None:
    """A live job without links, items, filters or error stores them as null."""
    fresh = job(toy)

    data = fresh.to_json()

    assert [data[k] for k in ("links", "items", "filters", "error", "end")] == [
        None
    ] * 5
    assert JobState.from_json(data) == fresh


def test_snapshot_without_inputs_reads_as_no_inputs(toy: Binding) -> None:
    """A snapshot whose inputs are null rebuilds with an empty mapping."""
    data = job(toy).to_json()
    data["inputs"] = None

    assert JobState.from_json(data).inputs == {}


def test_snapshot_missing_a_field_is_not_a_snapshot(toy: Binding) -> None:
    """A snapshot without one of its fields is refused with a ValueError naming it."""
    data = job(toy).to_json()
    del data["due"]

    with pytest.raises(ValueError, match=r"not a job snapshot.*due"):
        JobState.from_json(data)


def test_something_other_than_a_mapping_is_not_a_snapshot() -> None:
    """A list handed over as a snapshot is refused with a ValueError."""
    with pytest.raises(ValueError, match="not a job snapshot"):
        JobState.from_json([1, 2])  # type: ignore[arg-type] # the point: not a mapping


def test_snapshot_with_an_unknown_phase_is_not_a_snapshot(toy: Binding) -> None:
    """A phase the core does not know is refused as not a snapshot."""
    data = job(toy).to_json()
    data["phase"] = "dancing"

    with pytest.raises(ValueError, match="not a job snapshot"):
        JobState.from_json(data)


def test_snapshot_with_an_unknown_end_is_not_a_snapshot(toy: Binding) -> None:
    """An end the core does not know is refused as not a snapshot."""
    data = job(toy).to_json()
    data["end"] = "exploded"

    with pytest.raises(ValueError, match="not a job snapshot"):
        JobState.from_json(data)


def test_completed_job_result_carries_outcome_result_and_items(toy: Binding) -> None:
    """A completed job's result has the outcome, the result, polls and items."""
    ended = _ended(
        toy,
        End.COMPLETED,
        state="Done",
        status=200,
        polls=4,
        response={"status": "done"},
        result={"answer": 42},
        items={"d1": "Ok"},
    )

    result = ended.to_result(Outcome.SUCCESS)

    assert result == JobResult(
        job=ended.ref(),
        state="Done",
        outcome=Outcome.SUCCESS,
        status=200,
        response={"status": "done"},
        result={"answer": 42},
        attempts=4,
        items={"d1": "Ok"},
        error=None,
    )
    assert result.ok


@pytest.mark.parametrize("end", [End.TIMED_OUT, End.ERRORED, End.FORGOTTEN])
def test_a_job_that_did_not_complete_has_no_outcome_nor_result(
    toy: Binding, end: End
) -> None:
    """Only a completed job reports an outcome and a result; the others carry an error."""
    ended = _ended(toy, end, state="Done", result={"stale": True})

    result = ended.to_result(Outcome.SUCCESS)

    assert (result.outcome, result.result, result.ok) == (None, None, False)
    assert result.error is not None


def test_a_live_job_has_no_error(toy: Binding) -> None:
    """A job that has not ended has no error to report."""
    assert job(toy).job_error() is None


def test_a_completed_job_has_no_error(toy: Binding) -> None:
    """Completing, whatever the outcome, is not an error."""
    assert _ended(toy, End.COMPLETED, state="Failed").job_error() is None


def test_a_timed_out_job_raises_job_timed_out_with_its_reason(toy: Binding) -> None:
    """A job that timed out gets JobTimedOut naming the state and the reason."""
    error = _ended(toy, End.TIMED_OUT, state="Running", reason="deadline reached")

    found = error.job_error()

    assert isinstance(found, JobTimedOut)
    assert str(found) == "toy/job job j1 timed out in state Running: deadline reached"
    assert (found.job, found.last_state) == (error.ref(), "Running")


def test_a_forgotten_job_reports_a_time_out_with_reason_forgotten(
    toy: Binding,
) -> None:
    """Waiters on a forgotten job get JobTimedOut whose message says forgotten."""
    found = _ended(toy, End.FORGOTTEN, reason="forgotten").job_error()

    assert isinstance(found, JobTimedOut)
    assert str(found).endswith(": forgotten")


def test_an_errored_job_raises_the_classified_remote_error(toy: Binding) -> None:
    """An errored job's RemoteError carries every field of the stored classification."""
    ended = _ended(
        toy,
        End.ERRORED,
        state="Running",
        error={
            "kind": "status",
            "status": 403,
            "code": "Forbidden",
            "message": "HTTP 403 Forbidden from api.example.test/x (fatal)",
            "remote_message": "no",
            "retryable": False,
        },
    )

    found = ended.job_error()

    assert isinstance(found, RemoteError)
    assert (found.kind, found.status, found.code, found.remote_message) == (
        "status",
        403,
        "Forbidden",
        "no",
    )
    assert (found.retryable, found.last_state, found.job) == (
        False,
        "Running",
        ended.ref(),
    )
    assert str(found) == "HTTP 403 Forbidden from api.example.test/x (fatal)"


def test_an_errored_job_without_details_is_a_protocol_error_named_by_its_reason(
    toy: Binding,
) -> None:
    """No stored classification: kind protocol, not retryable, the reason as message."""
    found = _ended(toy, End.ERRORED, reason="unresolved_submission").job_error()

    assert isinstance(found, RemoteError)
    assert (found.kind, found.retryable, str(found)) == (
        "protocol",
        False,
        "unresolved_submission",
    )


def test_an_errored_job_without_details_nor_reason_says_error(toy: Binding) -> None:
    """The last fallback message is the word error."""
    assert str(_ended(toy, End.ERRORED).job_error()) == "error"


def test_raise_for_outcome_returns_a_success(toy: Binding) -> None:
    """A successful result is returned as is."""
    result = _ended(toy, End.COMPLETED, state="Done").to_result(Outcome.SUCCESS)

    assert result.raise_for_outcome() is result


def test_raise_for_outcome_raises_the_jobs_error(toy: Binding) -> None:
    """A result carrying an error raises that very error."""
    result = _ended(toy, End.TIMED_OUT, reason="deadline reached").to_result(None)

    with pytest.raises(JobTimedOut) as info:
        result.raise_for_outcome()

    assert info.value is result.error


def test_raise_for_outcome_raises_job_failed_for_a_failure(toy: Binding) -> None:
    """A terminal state with a non-success outcome raises JobFailed with that outcome."""
    result = _ended(toy, End.COMPLETED, state="Failed").to_result(Outcome.FAILURE)

    with pytest.raises(
        JobFailed, match="toy/job job j1 ended Failed \\(failure\\)"
    ) as info:
        result.raise_for_outcome()

    assert (info.value.outcome, info.value.last_state) == ("failure", "Failed")


def test_raise_for_outcome_without_an_outcome_says_none(toy: Binding) -> None:
    """A result with neither error nor outcome fails with outcome none."""
    result = attrs.evolve(
        _ended(toy, End.COMPLETED).to_result(None), outcome=None, error=None
    )

    with pytest.raises(JobFailed) as info:
        result.raise_for_outcome()

    assert info.value.outcome == "none"
