"""on_reply(): what a reply means in every phase, and retries, time-outs and errors."""

from __future__ import annotations

import random
from typing import Any

import pytest

from engine._core import step
from engine._core.binding import Binding
from engine._core.reply import Reply
from engine._core.state import End, JobState, Phase, Record
from engine._errors import RemoteError
from tests.engine.core.conftest import (
    BASE,
    batch_document,
    binding,
    job,
    lifecycle_of,
    reply,
    toy_document,
)

NOW = 10.0
SUBMIT_URL = f"{BASE}/regions/eu/jobs"
DOCS_URL = f"{BASE}/batches/j1/docs"


def _on(
    b: Binding, state: JobState, got: Reply | RemoteError, *, now: float = NOW
) -> step.Step:
    return step.on_reply(b, state, got, now=now, rng=random.Random(0))


def _kinds(done: step.Step) -> list[str]:
    return [r.kind for r in done.records]


def _bound(change: Any, lifecycle: str = "job", document: Any = None) -> Binding:
    """Bind a copy of the toy (or ``document``) after ``change(lifecycle_dict)``."""
    document = document if document is not None else toy_document()
    change(lifecycle_of(document, lifecycle))
    return binding(document, lifecycle)


def _transport(*, retryable: bool = True) -> RemoteError:
    return RemoteError(
        "connection reset by api.example.test/x", kind="transport", retryable=retryable
    )


def _error(done: step.Step) -> dict[str, Any]:
    assert done.job.error is not None
    return dict(done.job.error)


# -- any phase -------------------------------------------------------------------------------


def test_a_reply_for_a_job_that_ended_meanwhile_changes_nothing(toy: Binding) -> None:
    """A late reply to a forgotten job is dropped: the same job, no records."""
    ended = job(toy, phase=Phase.DONE, end=End.FORGOTTEN)

    done = _on(toy, ended, reply(200, {"status": "running"}))

    assert done.job is ended
    assert done.records == ()


def test_the_given_state_is_never_changed(toy: Binding) -> None:
    """on_reply works on a copy."""
    before = job(toy)
    snapshot = before.to_json()

    _on(toy, before, reply(200, {"status": "running"}))

    assert before.to_json() == snapshot


# -- submit ------------------------------------------------------------------------------------


def _submitting(b: Binding) -> JobState:
    # The driver fills defaults in before the core sees the inputs.
    inputs = {"region": "eu", "api_version": "1"}
    return step.new_submission(b, key="k1", inputs=inputs, filters=None, now=0.0)


def _submit_reply(status: int = 201, body: Any = None, headers: Any = None) -> Reply:
    return reply(
        status, {"id": "j1"} if body is None else body, headers, url=SUBMIT_URL
    )


def test_an_accepted_submit_records_the_id_and_starts_polling(toy: Binding) -> None:
    """The id located in the answer is the job's; the first poll is due after the initial delay."""
    done = _on(toy, _submitting(toy), _submit_reply())

    assert (done.job.job_id, done.job.phase, done.job.due, done.job.failures) == (
        "j1",
        Phase.POLL,
        NOW,
        0,
    )
    assert done.records == (
        Record(kind="submitted", to_state="Queued", trigger="submit", http_status=201),
    )


def test_the_first_poll_after_a_submit_waits_the_initial_delay() -> None:
    """Without a hint, the first poll waits initial_delay."""
    b = _bound(lambda lc: lc["schedule"].update(initial_delay=3))

    assert _on(b, _submitting(b), _submit_reply()).job.due == NOW + 3


def test_the_first_poll_after_a_submit_honours_its_retry_after() -> None:
    """A submit answer's Retry-After, longer than the initial delay, sets the first poll."""
    b = _bound(lambda lc: lc["schedule"].update(initial_delay=3))

    done = _on(b, _submitting(b), _submit_reply(headers={"Retry-After": "8"}))

    assert done.job.due == NOW + 8


def test_a_submit_keeps_the_links_later_requests_need() -> None:
    """Values later requests locate in the submit answer are kept with the job."""
    b = _bound(
        lambda lc: lc["poll"]["request"].update(
            url={"header": "Operation-Location", "response": "submit"}
        )
    )

    done = _on(
        b, _submitting(b), _submit_reply(headers={"Operation-Location": f"{BASE}/op/1"})
    )

    assert done.job.links == {"/lifecycles/job/poll/request/url": f"{BASE}/op/1"}
    assert step.poll_url(b, done.job) == f"{BASE}/op/1?v=1"


def test_a_submit_answer_without_an_id_ends_the_job(toy: Binding) -> None:
    """No id located: the job ends errored (protocol), keeping the answer."""
    done = _on(toy, _submitting(toy), _submit_reply(body={"other": 1}))

    assert (done.job.end, done.job.status, done.job.response) == (
        End.ERRORED,
        201,
        {"other": 1},
    )
    assert _error(done)["kind"] == "protocol"
    assert (
        _error(done)["message"]
        == "no job id in the submit response from api.example.test/regions/eu/jobs"
    )
    assert _error(done)["retryable"] is False
    assert _kinds(done) == ["errored"]


def test_a_submit_refused_with_a_retry_status_is_sent_again() -> None:
    """A status in submit.retry_status (429) proves no job was made: retried with backoff."""
    b = binding()

    done = _on(b, _submitting(b), _submit_reply(429, {"error": {"code": "Throttled"}}))

    assert (done.job.phase, done.job.failures, done.job.due) == (
        Phase.SUBMIT,
        1,
        NOW + 1,
    )
    assert done.records[0].kind == "retrying"
    assert done.records[0].trigger == "submit"
    assert done.records[0].detail == {
        "kind": "status",
        "error": "HTTP 429 Throttled from api.example.test/regions/eu/jobs (retryable)",
        "delay": 1.0,
        "failures": 1,
        "budget": 2,
    }


@pytest.mark.parametrize(
    "got",
    [
        _submit_reply(503),
        _submit_reply(400),
        _submit_reply(201, b"{not json"),
        _transport(),
    ],
    ids=["5xx", "4xx", "unreadable-201", "transport"],
)
def test_any_other_submit_failure_is_never_sent_again(
    toy: Binding, got: Reply | RemoteError
) -> None:
    """A 5xx, an unreadable answer or a transport error may have made the job: it ends."""
    done = _on(toy, _submitting(toy), got)

    assert (done.job.end, done.job.phase) == (End.ERRORED, Phase.DONE)
    assert _kinds(done) == ["errored"]


def test_submit_retries_end_when_the_budget_is_spent(toy: Binding) -> None:
    """The retry budget (2) counts consecutive failures; the third ends the job."""
    spent = _submitting(toy)
    spent.failures = 2

    done = _on(toy, spent, _submit_reply(429))

    assert done.job.end is End.ERRORED
    assert _error(done)["message"].endswith("(retryable) (after 2 retries)")


def test_a_submit_with_observe_reads_the_first_state_from_the_answer() -> None:
    """submit.observe: the answer's state is applied at once, then polled on schedule."""
    b = _bound(lambda lc: lc["submit"].update(observe=True))

    done = _on(b, _submitting(b), _submit_reply(body={"id": "j1", "status": "running"}))

    assert (done.job.state, done.job.due, done.job.polls) == ("Running", NOW + 2, 0)
    assert _kinds(done) == ["submitted", "polled", "transition"]
    assert done.records[2].trigger == "submit"


# -- poll ------------------------------------------------------------------------------------------


def test_a_poll_without_change_schedules_the_next(toy: Binding) -> None:
    """Same state: counted, recorded as polled (unchanged), next poll after the interval."""
    done = _on(toy, job(toy), reply(200, {"status": "queued"}))

    assert (done.job.state, done.job.polls, done.job.polls_in_state) == ("Queued", 1, 1)
    assert (done.job.phase, done.job.due) == (Phase.POLL, NOW + 2)
    assert done.records == (
        Record(
            kind="polled",
            trigger="poll",
            http_status=200,
            observed="queued",
            detail={"changed": False},
        ),
    )


def test_a_poll_showing_a_new_state_moves_the_job(toy: Binding) -> None:
    """A legal move: the job enters the state, its count in the state starts again."""
    done = _on(toy, job(toy, polls_in_state=4), reply(200, {"status": "running"}))

    assert (done.job.state, done.job.polls_in_state) == ("Running", 0)
    assert _kinds(done) == ["polled", "transition"]
    assert done.records[0].detail == {"changed": True}
    assert done.job.due == NOW + 2


def test_a_good_poll_resets_the_failure_count(toy: Binding) -> None:
    """Failures count consecutive transient faults: an answer ends the run."""
    done = _on(toy, job(toy, failures=2), reply(200, {"status": "queued"}))

    assert done.job.failures == 0


def test_a_poll_jumping_over_states_infers_them(toy: Binding) -> None:
    """Skipped states are entered and marked inferred."""
    done = _on(toy, job(toy, state="Queued"), reply(200, {"status": "cancelled"}))

    assert [
        (r.to_state, r.trigger) for r in done.records if r.kind == "transition"
    ] == [
        ("Cancelling", "inferred"),
        ("Cancelled", "poll"),
    ]


def test_an_illegal_move_is_refused_and_polling_goes_on(toy: Binding) -> None:
    """illegal_transition=reject: recorded, the state stays, next poll as usual."""
    done = _on(toy, job(toy, state="Running"), reply(200, {"status": "queued"}))

    assert (done.job.state, done.job.phase, done.job.due) == (
        "Running",
        Phase.POLL,
        NOW + 2,
    )
    assert _kinds(done) == ["polled", "illegal_transition"]


def test_an_illegal_move_under_fail_ends_the_job() -> None:
    """illegal_transition=fail: the job ends with kind illegal_transition, not retryable."""
    b = _bound(lambda lc: lc.update(policy={"illegal_transition": "fail"}))

    done = _on(b, job(b, state="Running"), reply(200, {"status": "queued"}))

    assert done.job.end is End.ERRORED
    assert _error(done)["kind"] == "illegal_transition"
    assert _error(done)["message"] == (
        "illegal transition Running -> Queued observed at api.example.test/regions/eu/jobs/j1"
    )
    assert _error(done)["retryable"] is False
    assert (done.job.status, done.job.response) == (200, {"status": "queued"})
    assert _kinds(done) == ["polled", "illegal_transition", "errored"]


def test_an_unknown_value_is_reported_and_polling_goes_on(toy: Binding) -> None:
    """unknown_state=reject: recorded, next poll as usual."""
    done = _on(toy, job(toy), reply(200, {"status": "exploding"}))

    assert (done.job.state, done.job.due) == ("Queued", NOW + 2)
    assert _kinds(done) == ["polled", "unknown_state"]


def test_an_unknown_value_under_fail_ends_the_job() -> None:
    """unknown_state=fail: the job ends with kind unknown_state."""
    b = _bound(lambda lc: lc.update(policy={"unknown_state": "fail"}))

    done = _on(b, job(b), reply(200, {"status": "exploding"}))

    assert done.job.end is End.ERRORED
    assert _error(done)["kind"] == "unknown_state"


def test_an_unknown_value_echoing_a_secret_is_redacted_in_the_error() -> None:
    """The unknown value is the service's text: a secret in it never reaches the message."""
    b = binding(_with_policy(unknown_state="fail"), secrets={"k3y-123"})

    done = _on(b, job(b), reply(200, {"status": "bad k3y-123"}))

    assert _error(done)["kind"] == "unknown_state"
    assert "k3y-123" not in _error(done)["message"]


def _with_policy(**policy: str) -> dict[str, Any]:
    document = toy_document()
    lifecycle_of(document)["policy"] = policy
    return document


def test_a_skip_rule_lets_the_next_rule_decide() -> None:
    """on_unknown=skip: a value the first rule does not map is read by the next rule."""

    def rules(lc: dict[str, Any]) -> None:
        lc["poll"]["observe"].insert(
            0, {"pointer": "/phase", "map": {"busy": "Running"}, "on_unknown": "skip"}
        )

    b = _bound(rules)

    done = _on(b, job(b), reply(200, {"phase": "other", "status": "running"}))

    assert done.job.state == "Running"


def test_a_poll_reaching_success_fetches_the_result_at_its_link(toy: Binding) -> None:
    """A success with a result block: the final answer is kept, the result is due now."""
    body = {"status": "done", "result_url": "/files/r1"}

    done = _on(toy, job(toy, state="Running"), reply(200, body))

    assert (done.job.state, done.job.phase, done.job.due) == ("Done", Phase.RESULT, NOW)
    assert done.job.result_link == f"{BASE}/files/r1"
    assert (done.job.response, done.job.status) == (body, 200)
    assert step.request_for(toy, done.job).url == f"{BASE}/files/r1"


def test_a_result_without_a_link_is_fetched_at_its_path(toy: Binding) -> None:
    """No result link in the answer: the result block's path template."""
    done = _on(toy, job(toy, state="Running"), reply(200, {"status": "done"}))

    assert done.job.result_link == f"{BASE}/regions/eu/jobs/j1/result"


def test_a_terminal_state_without_a_result_completes_with_the_final_answer(
    toy: Binding,
) -> None:
    """An outcome the result block does not fetch for: completed, result = final answer."""
    done = _on(
        toy, job(toy, state="Running", polls=4), reply(200, {"status": "failed"})
    )

    assert (done.job.end, done.job.phase, done.job.result) == (
        End.COMPLETED,
        Phase.DONE,
        {"status": "failed"},
    )
    assert done.records[-1] == Record(
        kind="completed",
        to_state="Failed",
        http_status=200,
        detail={"outcome": "failure", "polls": 5},
    )


def test_a_lifecycle_without_result_completes_on_its_terminal_state() -> None:
    """No result block: a success completes at once with the final answer as result."""
    b = _bound(lambda lc: lc.pop("result"))

    done = _on(b, job(b, state="Running"), reply(200, {"status": "done"}))

    assert (done.job.end, done.job.result) == (End.COMPLETED, {"status": "done"})


def test_a_result_link_that_cannot_be_built_ends_the_job(toy: Binding) -> None:
    """A follow-up request the job cannot fill (no link, path input missing) ends it: no retry."""
    done = _on(
        toy, job(toy, state="Running", inputs={}), reply(200, {"status": "done"})
    )

    assert done.job.end is End.ERRORED
    assert _error(done)["kind"] == "protocol"
    assert "input 'region' is needed by path" in _error(done)["message"]


def test_a_state_with_its_own_deadline_replaces_the_jobs_on_entry() -> None:
    """Entering a state with per-state deadline sets the job's to now + that (scaled)."""
    b = binding(_per_state(Running={"deadline": 10}), scale=0.5)

    done = _on(b, job(b), reply(200, {"status": "running"}))

    assert done.job.deadline == NOW + 5


def test_a_state_without_its_own_deadline_keeps_the_jobs(toy: Binding) -> None:
    """Entering an ordinary state leaves the deadline alone."""
    done = _on(toy, job(toy, deadline=77.0), reply(200, {"status": "running"}))

    assert done.job.deadline == 77.0


def _per_state(**per_state: Any) -> dict[str, Any]:
    document = toy_document()
    lifecycle_of(document)["schedule"]["per_state"] = per_state
    return document


def test_the_next_poll_follows_a_link_each_answer_gives() -> None:
    """A poll url located in the last answer becomes the next poll's URL."""
    b = _bound(lambda lc: lc["poll"]["request"].update(url={"header": "Location"}))

    done = _on(
        b, job(b), reply(200, {"status": "queued"}, {"Location": f"{BASE}/op/2"})
    )

    assert done.job.poll_link == f"{BASE}/op/2"


def test_an_answer_without_a_link_keeps_the_last_one() -> None:
    """A poll answer lacking the link does not lose the one already known."""
    b = _bound(lambda lc: lc["poll"]["request"].update(url={"header": "Location"}))

    done = _on(b, job(b, poll_link=f"{BASE}/op/1"), reply(200, {"status": "queued"}))

    assert done.job.poll_link == f"{BASE}/op/1"


def test_max_attempts_ends_the_job_timed_out() -> None:
    """The spec's max_attempts used up: timed out, with the count as reason."""
    b = _bound(lambda lc: lc["schedule"].update(max_attempts=2))

    done = _on(b, job(b, polls=1), reply(200, {"status": "queued"}))

    assert (done.job.end, done.job.reason) == (End.TIMED_OUT, "2 polls (max_attempts)")
    assert done.records[-1] == Record(
        kind="timed_out",
        from_state="Queued",
        detail={"reason": "2 polls (max_attempts)", "polls": 2},
    )


def test_a_states_max_attempts_ends_the_job_in_that_state() -> None:
    """Per-state max_attempts counts polls since entering the state."""
    b = binding(_per_state(Queued={"max_attempts": 1}))

    done = _on(b, job(b), reply(200, {"status": "queued"}))

    assert (done.job.end, done.job.reason) == (End.TIMED_OUT, "1 polls in Queued")


def test_the_deadline_ends_the_job_timed_out(toy: Binding) -> None:
    """A poll answered at the deadline that shows no end: timed out."""
    done = _on(toy, job(toy), reply(200, {"status": "queued"}), now=100.0)

    assert (done.job.end, done.job.reason, done.job.due) == (
        End.TIMED_OUT,
        "deadline reached",
        100.0,
    )


def test_the_last_poll_is_due_at_the_deadline(toy: Binding) -> None:
    """A wait that would pass the deadline is shortened so one poll happens at it."""
    done = _on(toy, job(toy), reply(200, {"status": "queued"}), now=99.0)

    assert done.job.due == 100.0


def test_a_polls_retry_after_is_a_floor(toy: Binding) -> None:
    """A poll answer asking for 30 s delays the next poll to then."""
    done = _on(toy, job(toy), reply(200, {"status": "queued"}, {"Retry-After": "30"}))

    assert done.job.due == NOW + 30


def test_a_transient_poll_status_is_retried(toy: Binding) -> None:
    """A retry status: failure counted, retried after the error backoff, not a poll."""
    done = _on(toy, job(toy, polls=3), reply(503, None))

    assert (done.job.phase, done.job.failures, done.job.polls, done.job.due) == (
        Phase.POLL,
        1,
        3,
        NOW + 1,
    )
    assert done.records[0].kind == "retrying"
    assert done.records[0].http_status == 503


def test_a_retry_honours_the_servers_retry_after(toy: Binding) -> None:
    """A 429's Retry-After is a floor on the retry."""
    done = _on(toy, job(toy), reply(429, None, {"Retry-After": "20"}))

    assert done.job.due == NOW + 20


def test_a_fatal_poll_status_ends_the_job_with_the_services_error(toy: Binding) -> None:
    """A fatal status ends the job; its error carries the service's code and message."""
    body = {"error": {"code": "NotFound", "message": "no such job"}}

    done = _on(toy, job(toy), reply(404, body))

    assert (done.job.end, done.job.status, done.job.response) == (
        End.ERRORED,
        404,
        body,
    )
    assert _error(done) == {
        "kind": "status",
        "status": 404,
        "code": "NotFound",
        "message": (
            "HTTP 404 NotFound from api.example.test/regions/eu/jobs/j1 (fatal): no such job"
        ),
        "remote_message": "no such job",
        "retryable": False,
    }
    assert done.records[-1] == Record(
        kind="errored",
        from_state="Queued",
        http_status=404,
        detail={"kind": "status", "code": "NotFound", "message": "no such job"},
    )


def test_a_5xx_the_spec_calls_fatal_ends_the_job_not_retryable() -> None:
    """The retryable flag is the verdict's: a 500 listed in fatal_status is not retryable."""
    b = _bound(lambda lc: lc["errors"].update(retry_status=[503], fatal_status=[500]))

    done = _on(b, job(b), reply(500, None))

    assert done.job.end is End.ERRORED
    assert _error(done)["retryable"] is False
    assert _error(done)["message"].endswith("(fatal)")


def test_a_4xx_the_spec_retries_is_retryable() -> None:
    """A 4xx listed in retry_status is retried, and its error says retryable."""
    b = _bound(lambda lc: lc["errors"].update(retry_status=[409], fatal_status=[]))

    done = _on(b, job(b), reply(409, None))

    assert (done.job.failures, done.job.end) == (1, None)
    assert done.records[0].detail is not None
    assert done.records[0].detail["error"].endswith("(retryable)")


def test_an_echoed_credential_never_reaches_the_jobs_error_or_records() -> None:
    """The binding's live secrets are blanked in the error and in the errored record."""
    b = binding(auth=("X-Key", "k3y-123"), secrets={"k3y-123"})
    body = {"error": {"code": "BadKey", "message": "key k3y-123 is not valid"}}

    done = _on(b, job(b), reply(401, body))

    assert "k3y-123" not in repr(done.job.error)
    assert "k3y-123" not in repr(done.records)
    assert _error(done)["remote_message"] == "key [REDACTED] is not valid"


def test_an_unreadable_fatal_answer_keeps_no_response(toy: Binding) -> None:
    """A fatal answer whose body is not JSON keeps the status, and no body."""
    done = _on(toy, job(toy), reply(404, b"<html>"))

    assert (done.job.status, done.job.response) == (404, None)


def test_an_unreadable_poll_answer_is_retried(toy: Binding) -> None:
    """A 200 whose body is not JSON is a transient fault (the error policy decides)."""
    done = _on(toy, job(toy), reply(200, b"{truncated"))

    assert (done.job.failures, done.job.phase) == (1, Phase.POLL)
    assert done.records[0].detail is not None
    assert done.records[0].detail["kind"] == "protocol"


def test_a_retryable_transport_error_is_retried(toy: Binding) -> None:
    """A transport fault marked retryable is retried; the record has no HTTP status."""
    done = _on(toy, job(toy), _transport())

    assert (done.job.failures, done.records[0].kind, done.records[0].http_status) == (
        1,
        "retrying",
        None,
    )


def test_a_transport_error_that_retrying_cannot_help_ends_the_job(toy: Binding) -> None:
    """A transport error marked not retryable (a foreign link) ends the job."""
    done = _on(toy, job(toy), _transport(retryable=False))

    assert (done.job.end, done.job.status) == (End.ERRORED, None)
    assert _error(done)["kind"] == "transport"


def test_retries_exhausting_the_budget_end_the_job(toy: Binding) -> None:
    """Past the retry budget the job ends errored, saying how many retries were made."""
    done = _on(toy, job(toy, failures=2), reply(503, None))

    assert (done.job.end, done.job.reason) == (End.ERRORED, "errored")
    assert _error(done)["message"] == (
        "HTTP 503 from api.example.test/regions/eu/jobs/j1 (retryable) (after 2 retries)"
    )
    assert _kinds(done) == ["errored"]


def test_the_deadline_reached_while_retrying_times_the_job_out(toy: Binding) -> None:
    """A transient fault at the deadline: timed out, the reason naming the fault."""
    done = _on(toy, job(toy), reply(503, None), now=100.0)

    assert done.job.end is End.TIMED_OUT
    assert done.job.reason == (
        "deadline reached while retrying "
        "(HTTP 503 from api.example.test/regions/eu/jobs/j1 (retryable))"
    )


# -- items --------------------------------------------------------------------------------------


def _page(
    entries: Any,
    *,
    following: str | None = None,
    status: int = 200,
    url: str = DOCS_URL,
) -> Reply:
    body: dict[str, Any] = {"value": entries}
    if following is not None:
        body["@next"] = following
    return reply(status, body, url=url)


def _listing(b: Binding, **changes: Any) -> JobState:
    return job(
        b, **{"state": "Running", "phase": Phase.ITEMS, "page": DOCS_URL, **changes}
    )


def test_a_poll_starts_listing_the_items_at_once(batch: Binding) -> None:
    """refresh=each_poll: after a poll the first page is due now."""
    done = _on(batch, job(batch), reply(200, {"status": "running"}))

    assert (done.job.phase, done.job.page, done.job.due) == (Phase.ITEMS, DOCS_URL, NOW)
    assert (done.job.pages, done.job.listed) == (0, 0)


def test_the_listing_asks_for_the_page_size_and_the_jobs_filters() -> None:
    """The first page carries the page size and each declared filter in its format."""

    def items(lc: dict[str, Any]) -> None:
        lc["items"]["paging"].update(page_size_param="top", page_size=50)
        lc["items"]["filters"] = {
            "statuses": {"param": "statuses", "format": "csv"},
            "ids": {"param": "id", "format": "repeat"},
            "since": {"param": "since"},
        }

    b = _bound(items, "batch", batch_document())
    filters = {
        "statuses": ["Ok", "Bad"],
        "ids": ("a", "b"),
        "since": 2024,
        "stray": "x",
    }

    done = _on(b, job(b, filters=filters), reply(200, {"status": "running"}))

    assert done.job.page == f"{DOCS_URL}?top=50&statuses=Ok%2CBad&id=a&id=b&since=2024"


def test_a_page_moves_its_items_and_asks_for_the_next(batch: Binding) -> None:
    """Entries move through the item lifecycle; a next link is due now."""
    got = _page(
        [{"id": "d1", "status": "working"}, {"id": "d2", "status": "waiting"}],
        following="/batches/j1/docs?p=2",
    )

    done = _on(batch, _listing(batch, items={"d1": "Waiting"}, failures=1), got)

    assert done.job.items == {"d1": "Working", "d2": "Waiting"}
    assert (done.job.page, done.job.due, done.job.phase) == (
        f"{DOCS_URL}?p=2",
        NOW,
        Phase.ITEMS,
    )
    assert (done.job.pages, done.job.listed, done.job.failures) == (1, 2, 0)
    assert done.records == (
        Record(
            kind="item_transition",
            from_state="Waiting",
            to_state="Working",
            trigger="poll",
            http_status=200,
            observed="working",
            item_id="d1",
            item_lifecycle="doc",
        ),
    )


def test_the_last_page_of_a_live_job_goes_back_to_polling(batch: Binding) -> None:
    """Listing done, job not terminal: the next poll is scheduled."""
    done = _on(batch, _listing(batch), _page([]))

    assert (done.job.phase, done.job.page, done.job.due) == (Phase.POLL, None, NOW + 2)


def test_the_last_page_of_a_finished_job_completes_it(batch: Binding) -> None:
    """Listing done, job terminal: completed with the final answer as result."""
    final = {"status": "done"}
    ended = _listing(batch, state="Done", response=final, status=200)

    done = _on(batch, ended, _page([{"id": "d1", "status": "ok"}]))

    assert (done.job.end, done.job.result) == (End.COMPLETED, final)
    assert done.job.items == {"d1": "Ok"}
    assert _kinds(done)[-1] == "completed"


def test_the_listing_stops_at_max_pages() -> None:
    """A listing reads at most max_pages pages, whatever the next links say."""
    b = _bound(
        lambda lc: lc["items"]["paging"].update(max_pages=2), "batch", batch_document()
    )

    done = _on(b, _listing(b, pages=1), _page([], following="/more"))

    assert (done.job.phase, done.job.page) == (Phase.POLL, None)


def test_a_fatal_page_ends_the_job(batch: Binding) -> None:
    """A fatal status on an items page ends the job: it is not retried until the deadline."""
    done = _on(batch, _listing(batch), _page([], status=404))

    assert (done.job.end, done.job.status) == (End.ERRORED, 404)


def test_a_transient_page_is_retried(batch: Binding) -> None:
    """A transient status on a page retries that page."""
    done = _on(batch, _listing(batch), _page([], status=503))

    assert (done.job.phase, done.job.page, done.job.failures) == (
        Phase.ITEMS,
        DOCS_URL,
        1,
    )
    assert done.job.due == NOW + 1


def test_a_page_without_an_item_list_is_retried(batch: Binding) -> None:
    """No list at items_pointer: a protocol fault, retried like any transient one."""
    done = _on(
        batch, _listing(batch), reply(200, {"value": {"not": "a list"}}, url=DOCS_URL)
    )

    assert (done.job.phase, done.job.failures) == (Phase.ITEMS, 1)
    assert done.records[0].detail is not None
    assert (
        done.records[0].detail["error"]
        == "no item list at /value from api.example.test/batches/j1/docs"
    )


def test_entries_without_a_usable_id_are_skipped(batch: Binding) -> None:
    """An entry without an id, with a null one or an object one, is not an item."""
    entries = [
        {"status": "ok"},
        {"id": None},
        {"id": {"x": 1}},
        {"id": 7, "status": "working"},
    ]

    done = _on(batch, _listing(batch), _page(entries))

    assert done.job.items == {"7": "Working"}


def test_an_item_jumping_over_states_infers_them(batch: Binding) -> None:
    """An item's skipped states are inferred under its own lifecycle."""
    done = _on(batch, _listing(batch), _page([{"id": "d1", "status": "ok"}]))

    assert [(r.to_state, r.trigger) for r in done.records] == [
        ("Working", "inferred"),
        ("Ok", "poll"),
    ]


def _item_policy(**policy: str) -> Binding:
    document = batch_document()
    lifecycle_of(document, "doc")["policy"] = policy
    return binding(document, "batch")


def test_an_items_illegal_move_is_refused_under_its_lifecycles_reject() -> None:
    """The item lifecycle's own policy decides, not the job's: reject records it only."""
    document = batch_document()
    lifecycle_of(document, "batch")["policy"] = {"illegal_transition": "fail"}
    b = binding(document, "batch")

    done = _on(
        b, _listing(b, items={"d1": "Ok"}), _page([{"id": "d1", "status": "working"}])
    )

    assert done.job.items == {"d1": "Ok"}
    assert _kinds(done) == ["illegal_transition"]
    assert done.job.end is None


def test_an_items_illegal_move_under_fail_ends_the_job() -> None:
    """Item policy illegal_transition=fail: the job ends, naming the item; items are kept."""
    b = _item_policy(illegal_transition="fail")
    got = _page([{"id": "d0", "status": "working"}, {"id": "d1", "status": "working"}])

    done = _on(b, _listing(b, items={"d1": "Ok"}), got)

    assert done.job.end is End.ERRORED
    assert _error(done)["kind"] == "illegal_transition"
    assert _error(done)["message"] == (
        "item d1: illegal transition Ok -> Working observed at api.example.test/batches/j1/docs"
    )
    assert done.job.items == {"d0": "Working", "d1": "Ok"}


def test_an_items_unknown_value_is_recorded_under_reject(batch: Binding) -> None:
    """An item value no rule maps is recorded with the item's id; the listing goes on."""
    done = _on(batch, _listing(batch), _page([{"id": "d1", "status": "??"}]))

    assert [(r.kind, r.item_id) for r in done.records] == [("unknown_state", "d1")]
    assert done.job.items == {"d1": "Waiting"}


def test_an_items_unknown_value_under_fail_ends_the_job() -> None:
    """Item policy unknown_state=fail: the job ends with kind unknown_state."""
    b = _item_policy(unknown_state="fail")

    done = _on(b, _listing(b), _page([{"id": "d1", "status": "??"}]))

    assert _error(done)["kind"] == "unknown_state"


def test_an_items_unknown_value_echoing_a_secret_is_redacted_in_the_error() -> None:
    """An item's unknown value is redacted in the job's error as well."""
    document = batch_document()
    lifecycle_of(document, "doc")["policy"] = {"unknown_state": "fail"}
    b = binding(document, "batch", secrets={"k3y-123"})

    done = _on(b, _listing(b), _page([{"id": "d1", "status": "k3y-123"}]))

    assert _error(done)["kind"] == "unknown_state"
    assert "k3y-123" not in _error(done)["message"]


def test_items_listed_at_the_end_only_wait_for_a_terminal_state() -> None:
    """refresh=at_end: a live poll schedules the next poll; no listing."""
    b = _bound(
        lambda lc: lc["items"].update(refresh="at_end"), "batch", batch_document()
    )

    done = _on(b, job(b), reply(200, {"status": "running"}))

    assert (done.job.phase, done.job.due) == (Phase.POLL, NOW + 2)


def test_a_terminal_poll_lists_the_items_before_the_result() -> None:
    """Terminal with items and a result: the listing comes first, then the result."""

    def with_result(lc: dict[str, Any]) -> None:
        lc["result"] = {"request": {"path": "/batches/{job_id}/result"}}

    b = _bound(with_result, "batch", batch_document())

    polled = _on(b, job(b, state="Running"), reply(200, {"status": "done"}))
    listed = _on(b, polled.job, _page([]))

    assert (polled.job.phase, polled.job.result_link) == (
        Phase.ITEMS,
        f"{BASE}/batches/j1/result",
    )
    assert (listed.job.phase, listed.job.due) == (Phase.RESULT, NOW)


def test_a_result_already_in_hand_is_not_fetched_again(batch: Binding) -> None:
    """A listing that ends on a job holding its result completes with it: no second fetch."""
    ended = _listing(batch, state="Done", result_link=f"{BASE}/r", result={"kept": 1})

    done = _on(batch, ended, _page([]))

    assert (done.job.end, done.job.result) == (End.COMPLETED, {"kept": 1})


# -- result -------------------------------------------------------------------------------------


def _fetching(b: Binding) -> JobState:
    return job(
        b,
        state="Done",
        phase=Phase.RESULT,
        result_link=f"{BASE}/files/r1",
        response={"status": "done"},
        status=200,
        polls=3,
    )


def test_a_fetched_result_completes_the_job(toy: Binding) -> None:
    """The result answer's body is the job's result; the job completes with its outcome."""
    done = _on(toy, _fetching(toy), reply(200, {"answer": 42}, url=f"{BASE}/files/r1"))

    assert (done.job.end, done.job.result, done.job.response) == (
        End.COMPLETED,
        {"answer": 42},
        {"status": "done"},
    )
    assert done.records == (
        Record(
            kind="completed",
            to_state="Done",
            http_status=200,
            detail={"outcome": "success", "polls": 3},
        ),
    )
    assert done.job.to_result(toy.lifecycle.state("Done").outcome).ok


def test_a_fatal_result_answer_ends_the_job_errored(toy: Binding) -> None:
    """A fatal status on the result: errored, though the remote job succeeded."""
    done = _on(toy, _fetching(toy), reply(403, None, url=f"{BASE}/files/r1"))

    assert (done.job.end, done.job.status) == (End.ERRORED, 403)


def test_a_transient_result_answer_is_retried(toy: Binding) -> None:
    """A transient status on the result retries the fetch."""
    done = _on(toy, _fetching(toy), reply(502, None, url=f"{BASE}/files/r1"))

    assert (done.job.phase, done.job.failures, done.job.due) == (
        Phase.RESULT,
        1,
        NOW + 1,
    )
    assert done.records[0].trigger == "result"


# -- cancel --------------------------------------------------------------------------------------


def _cancelling(b: Binding, state: str = "Running") -> JobState:
    return job(b, state=state, phase=Phase.CANCEL)


def _cancel_reply(status: int = 200, body: Any = None) -> Reply:
    return reply(status, body, url=f"{BASE}/regions/eu/jobs/j1")


def test_an_accepted_cancel_with_observe_applies_the_answer(toy: Binding) -> None:
    """cancel.observe: the answer's state is applied; polling goes on."""
    done = _on(toy, _cancelling(toy), _cancel_reply(200, {"status": "cancelling"}))

    assert (done.job.state, done.job.phase, done.job.due) == (
        "Cancelling",
        Phase.POLL,
        NOW + 2,
    )
    assert _kinds(done) == ["cancel_requested", "polled", "transition"]
    assert done.records[0] == Record(
        kind="cancel_requested",
        from_state="Running",
        trigger="cancel",
        http_status=200,
        detail={"accepted": True},
    )
    assert done.records[2].trigger == "cancel"


def test_an_accepted_cancel_showing_the_end_completes_the_job(toy: Binding) -> None:
    """A cancel answer already showing Cancelled ends the job (outcome cancelled)."""
    done = _on(toy, _cancelling(toy), _cancel_reply(200, {"status": "cancelled"}))

    assert (done.job.state, done.job.end) == ("Cancelled", End.COMPLETED)
    assert done.records[-1].detail == {"outcome": "cancelled", "polls": 0}


def test_an_accepted_cancel_without_a_body_enters_where_a_cancel_leads(
    toy: Binding,
) -> None:
    """An empty answer to a cancel with observe: the job enters leads_to[0] and is polled."""
    done = _on(toy, _cancelling(toy), _cancel_reply(204))

    assert (done.job.state, done.job.phase, done.job.due) == (
        "Cancelling",
        Phase.POLL,
        NOW + 2,
    )
    assert [(r.kind, r.to_state, r.trigger) for r in done.records[1:]] == [
        ("transition", "Cancelling", "cancel")
    ]


def test_an_unreadable_cancel_answer_counts_as_no_body(toy: Binding) -> None:
    """An accepted cancel whose body is not JSON enters leads_to[0] like an empty one."""
    done = _on(toy, _cancelling(toy), _cancel_reply(202, b"<ok/>"))

    assert done.job.state == "Cancelling"


def test_an_accepted_cancel_without_observe_ignores_the_body() -> None:
    """cancel.observe=false: whatever the answer says, the job enters leads_to[0]."""
    b = _bound(lambda lc: lc["cancel"].update(observe=False))

    done = _on(b, _cancelling(b), _cancel_reply(200, {"status": "running"}))

    assert done.job.state == "Cancelling"


def test_a_cancel_leading_to_a_terminal_state_completes_at_once() -> None:
    """leads_to a terminal state without observe: completed, no poll to confirm it."""

    def straight(lc: dict[str, Any]) -> None:
        lc["cancel"].update(observe=False, leads_to=["Cancelled"])
        lc["transitions"].append({"from": ["Queued", "Running"], "to": "Cancelled"})

    b = _bound(straight)

    done = _on(b, _cancelling(b), _cancel_reply(202, {"ack": True}))

    assert (done.job.state, done.job.end, done.job.status) == (
        "Cancelled",
        End.COMPLETED,
        202,
    )
    assert (done.job.response, done.job.result) == ({"ack": True}, {"ack": True})
    assert _kinds(done) == ["cancel_requested", "transition", "completed"]


def test_an_unreadable_cancel_answer_leading_to_a_result_fetches_it_at_its_path() -> (
    None
):
    """A cancel answered in plain text that ends the job looks for the result link in no body."""

    def partial(lc: dict[str, Any]) -> None:
        lc["cancel"].update(observe=False, leads_to=["Cancelled"])
        lc["transitions"].append({"from": ["Queued", "Running"], "to": "Cancelled"})
        lc["result"]["on"] = ["success", "cancelled"]

    b = _bound(partial)

    done = _on(b, _cancelling(b), _cancel_reply(202, b"Accepted"))

    assert (done.job.state, done.job.phase, done.job.end) == (
        "Cancelled",
        Phase.RESULT,
        None,
    )
    assert done.job.result_link == f"{BASE}/regions/eu/jobs/j1/result"


def test_a_cancel_of_a_job_already_where_it_leads_only_polls() -> None:
    """A job already in leads_to[0] is not moved again; the next poll is scheduled."""
    b = _bound(lambda lc: lc["cancel"].update(observe=False))

    done = _on(b, _cancelling(b, "Cancelling"), _cancel_reply(202))

    assert (done.job.state, done.job.phase) == ("Cancelling", Phase.POLL)
    assert _kinds(done) == ["cancel_requested"]


def test_a_cancel_the_lifecycle_cannot_apply_ends_the_job_under_fail() -> None:
    """Entering leads_to[0] from a state with no way there, under illegal=fail, ends the job."""

    def strict(lc: dict[str, Any]) -> None:
        lc["cancel"].update(observe=False)
        lc["policy"] = {"illegal_transition": "fail"}

    b = _bound(strict)

    done = _on(b, _cancelling(b, "Done"), _cancel_reply(202))

    assert done.job.end is End.ERRORED
    assert _error(done)["kind"] == "illegal_transition"


def test_a_refused_cancel_goes_back_to_polling(toy: Binding) -> None:
    """A refused status (409): recorded as not accepted, the job polls on unchanged."""
    done = _on(
        toy, _cancelling(toy), _cancel_reply(409, {"error": {"code": "TooLate"}})
    )

    assert (done.job.state, done.job.phase, done.job.due, done.job.end) == (
        "Running",
        Phase.POLL,
        NOW + 2,
        None,
    )
    assert done.records == (
        Record(
            kind="cancel_requested",
            from_state="Running",
            trigger="cancel",
            http_status=409,
            detail={"accepted": False},
        ),
    )


def test_a_fatal_status_on_a_cancel_counts_as_refused(toy: Binding) -> None:
    """A fatal status the cancel does not accept is a refusal, not the job's end."""
    done = _on(toy, _cancelling(toy), _cancel_reply(404))

    assert (done.job.phase, done.job.end) == (Phase.POLL, None)
    assert done.records[0].detail == {"accepted": False}


def test_a_transient_cancel_answer_is_retried(toy: Binding) -> None:
    """A transient status on the cancel retries the cancel."""
    done = _on(toy, _cancelling(toy), _cancel_reply(503))

    assert (done.job.phase, done.job.failures, done.job.due) == (
        Phase.CANCEL,
        1,
        NOW + 1,
    )
    assert done.records[0].trigger == "cancel"


def test_a_transport_error_on_a_cancel_is_retried(toy: Binding) -> None:
    """A retryable transport fault retries the cancel."""
    done = _on(toy, _cancelling(toy), _transport())

    assert (done.job.phase, done.job.failures) == (Phase.CANCEL, 1)


def test_a_hopeless_transport_error_on_a_cancel_ends_the_job(toy: Binding) -> None:
    """A transport error retrying cannot help ends the job."""
    done = _on(toy, _cancelling(toy), _transport(retryable=False))

    assert done.job.end is End.ERRORED
