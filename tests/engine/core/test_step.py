"""step: starting, resuming, forgetting and cancelling a job, and what to send next.

What a reply means, phase by phase (``on_reply``), is in ``test_step_on_reply.py``.
"""

from __future__ import annotations

import os

import attrs
import pytest

from engine._core import step
from engine._core.binding import Binding, bind
from engine._core.state import End, JobState, Phase, Record
from engine._errors import CancelError, InputError, RemoteError
from statemachines import load_builtin
from tests.engine.core.conftest import (
    BASE,
    POLL_URL,
    batch_document,
    binding,
    job,
    lifecycle_of,
    load,
    toy_document,
)

NOW = 10.0


def _submission(b: Binding, **inputs: object) -> JobState:
    return step.new_submission(
        b,
        key="k1",
        inputs={"region": "eu", "text": "hello", **inputs},
        filters=None,
        now=NOW,
        client_ref="ref-1",
    )


# -- starting a job ------------------------------------------------------------------------


def test_a_new_submission_waits_in_phase_submit_without_an_id(toy: Binding) -> None:
    """A job about to be submitted has no id, the initial state and is due now."""
    new = _submission(toy)

    assert (new.phase, new.job_id, new.state, new.due) == (
        Phase.SUBMIT,
        "",
        "Queued",
        NOW,
    )
    assert (new.key, new.client_ref, new.started) == ("k1", None, NOW)
    assert (new.service, new.lifecycle, new.base_url) == ("toy", "job", BASE)
    assert new.spec_hash == toy.spec.content_hash


def test_a_new_submission_keeps_only_the_inputs_later_requests_need(
    toy: Binding,
) -> None:
    """The submit body's inputs are never stored; path and query inputs are."""
    new = _submission(toy, tag="t")

    assert new.inputs == {"region": "eu", "tag": "t"}


def test_a_new_submissions_deadline_is_the_specs_scaled(toy: Binding) -> None:
    """The deadline is now + the spec's deadline times the binding's scale."""
    assert _submission(binding(scale=0.5)).deadline == NOW + 50
    assert _submission(toy).deadline == NOW + 100


def test_a_lifecycle_without_deadline_gives_jobs_none() -> None:
    """No deadline in the spec: the job has none."""
    document = toy_document()
    del lifecycle_of(document)["schedule"]["deadline"]

    assert _submission(binding(document)).deadline is None


def test_filters_are_copied_and_empty_filters_are_none(batch: Binding) -> None:
    """Item filters are kept as a copy; none given (or empty) is None."""
    filters = {"statuses": ["Ok"]}

    kept = step.new_submission(batch, key="k", inputs={}, filters=filters, now=NOW)
    empty = step.new_submission(batch, key="k", inputs={}, filters={}, now=NOW)

    assert kept.filters == filters
    assert kept.filters is not filters
    assert empty.filters is None


def test_spec_source_of_a_builtin_is_its_name() -> None:
    """A built-in spec is found again by 'builtin:NAME'."""
    spec = load_builtin("mindee")
    b = bind(spec, "inference", base_url=BASE, scale=1.0, auth=None, secrets=set())

    assert b.spec_source == "builtin:mindee"


def test_spec_source_of_a_file_is_its_absolute_path() -> None:
    """A spec file's relative path is made absolute, so a restart elsewhere finds it."""
    spec = attrs.evolve(load(toy_document()), source="specs/toy.json")
    b = bind(spec, "job", base_url=BASE, scale=1.0, auth=None, secrets=set())

    assert b.spec_source == os.path.abspath("specs/toy.json")  # noqa: PTH100 - as the core does


def test_spec_source_of_an_unnamed_spec_is_empty() -> None:
    """A spec with no source has none to record."""
    spec = attrs.evolve(load(toy_document()), source="")
    b = bind(spec, "job", base_url=BASE, scale=1.0, auth=None, secrets=set())

    assert b.spec_source == ""


def test_the_submit_request_is_built_from_the_callers_values(toy: Binding) -> None:
    """URL from the path template and query inputs, body from the body inputs."""
    new = _submission(toy)

    out = step.submit_request(toy, new, {"region": "eu", "text": "hello", "tag": "t"})

    assert (out.method, out.url) == ("POST", f"{BASE}/regions/eu/jobs?tag=t")
    assert (out.json_body, out.data, out.files) == ({"text": "hello"}, None, None)


def test_a_lifecycle_without_submit_cannot_submit() -> None:
    """No submit block: InputError pointing at track()."""
    document = toy_document()
    del lifecycle_of(document)["submit"]
    b = binding(document)

    with pytest.raises(InputError, match="has no submit; use track"):
        step.submit_request(b, _submission(b), {})


def test_a_submit_missing_a_path_input_is_an_input_error(toy: Binding) -> None:
    """A submit whose path needs an input the caller left out is refused before sending."""
    with pytest.raises(InputError, match="'region'"):
        step.submit_request(toy, _submission(toy), {"text": "x"})


def test_adopting_a_job_starts_polling_it_in_the_initial_state(toy: Binding) -> None:
    """track(): phase poll, the initial state, first poll after the initial delay."""
    adopted = step.adopt(
        toy,
        key="k1",
        job_id="j9",
        inputs={"region": "eu", "text": "dropped"},
        filters=None,
        state=None,
        now=NOW,
    )

    assert (adopted.job.phase, adopted.job.state, adopted.job.job_id) == (
        Phase.POLL,
        "Queued",
        "j9",
    )
    assert adopted.job.inputs == {"region": "eu"}
    assert adopted.job.due == NOW
    assert adopted.records == (
        Record(kind="submitted", to_state="Queued", trigger="track"),
    )


def test_adopting_waits_the_initial_delay() -> None:
    """An adopted job's first poll waits the spec's initial delay (scaled)."""
    document = toy_document()
    lifecycle_of(document)["schedule"]["initial_delay"] = 4
    b = binding(document, scale=0.5)

    adopted = step.adopt(
        b, key="k", job_id="j", inputs={}, filters=None, state=None, now=NOW
    )

    assert adopted.job.due == NOW + 2


def test_adopting_a_job_in_a_given_state(toy: Binding) -> None:
    """A caller who knows the state adopts the job in it."""
    adopted = step.adopt(
        toy, key="k", job_id="j", inputs={}, filters=None, state="Running", now=NOW
    )

    assert adopted.job.state == "Running"


def test_adopting_in_an_undeclared_state_is_an_input_error(toy: Binding) -> None:
    """A state the lifecycle does not declare is refused, naming those it does."""
    with pytest.raises(
        InputError, match=r"unknown state 'Runing'.*declared: Queued, Running"
    ):
        step.adopt(
            toy, key="k", job_id="j", inputs={}, filters=None, state="Runing", now=NOW
        )


# -- resume, abort, forget ------------------------------------------------------------------


def test_resume_goes_on_from_the_stored_phase_and_due_time(toy: Binding) -> None:
    """A stored live job resumes as it was, with a 'resumed' record."""
    stored = job(toy, state="Running", phase=Phase.POLL, due=55.0)

    resumed = step.resume(toy, stored, now=NOW)

    assert resumed.job == stored
    assert resumed.job is not stored
    assert resumed.records == (
        Record(kind="resumed", to_state="Running", trigger="resume"),
    )


def test_resume_of_an_unanswered_submission_ends_it_unresolved(toy: Binding) -> None:
    """A submit that was on the wire at a crash is not re-sent: it ends for a person to check."""
    stored = _submission(toy)

    resumed = step.resume(toy, stored, now=NOW + 1)

    assert resumed.job.end is End.ERRORED
    assert resumed.job.reason == "unresolved_submission"
    assert resumed.job.phase is Phase.DONE
    assert [r.kind for r in resumed.records] == ["unresolved_submission"]
    error = resumed.job.job_error()
    assert isinstance(error, RemoteError)
    assert (error.kind, error.retryable) == ("submission", False)
    assert "submission k1 was sent but never answered" in str(error)


def test_an_unresolved_submission_without_client_ref_is_named_by_its_key(
    toy: Binding,
) -> None:
    """Without a client reference the message names the engine's key."""
    stored = attrs.evolve(_submission(toy), client_ref=None)

    resumed = step.resume(toy, stored, now=NOW)

    assert "submission k1 was sent" in str(resumed.job.job_error())


def test_abort_ends_the_job_with_the_drivers_error(toy: Binding) -> None:
    """A driver's last resort ends the job errored with the error it gives."""
    error = RemoteError("internal error: KeyError", kind="protocol", retryable=False)

    aborted = step.abort(toy, job(toy), error, now=NOW)

    assert (aborted.job.end, aborted.job.reason, aborted.job.due) == (
        End.ERRORED,
        "errored",
        NOW,
    )
    assert aborted.job.error is not None
    assert aborted.job.error["message"] == "internal error: KeyError"
    assert [r.kind for r in aborted.records] == ["errored"]


def test_forget_ends_a_live_job_without_telling_the_service(toy: Binding) -> None:
    """Forgetting ends the job (forgotten) and records it; nothing is sent."""
    live = job(toy, state="Running", polls=3)

    forgotten = step.forget(toy, live, now=NOW)

    assert (forgotten.job.phase, forgotten.job.end, forgotten.job.reason) == (
        Phase.DONE,
        End.FORGOTTEN,
        "forgotten",
    )
    assert forgotten.records == (
        Record(kind="forgotten", from_state="Running", detail={"polls": 3}),
    )
    assert live.phase is Phase.POLL


def test_forgetting_an_ended_job_changes_nothing(toy: Binding) -> None:
    """A job that already ended stays as it ended, with no record."""
    ended = job(toy, phase=Phase.DONE, end=End.COMPLETED, state="Done")

    forgotten = step.forget(toy, ended, now=NOW)

    assert forgotten.job == ended
    assert forgotten.records == ()


# -- request_cancel -----------------------------------------------------------------------------


def test_request_cancel_makes_the_cancel_due_now(toy: Binding) -> None:
    """A cancellable job gets phase cancel, due now; the given state is not changed."""
    live = job(toy, state="Running", due=60.0)

    due = step.request_cancel(toy, live, now=NOW)

    assert due is not None
    assert (due.phase, due.due, due.page) == (Phase.CANCEL, NOW, None)
    assert (live.phase, live.due) == (Phase.POLL, 60.0)


def test_request_cancel_abandons_an_item_listing(batch: Binding) -> None:
    """A job listing items stops listing to send its cancel."""
    document = batch_document()
    lifecycle_of(document, "batch")["cancel"] = {
        "request": {"method": "DELETE", "path": "/batches/{job_id}"},
        "from": ["Running"],
        "leads_to": ["Failed"],
    }
    b = binding(document, "batch")
    listing = job(b, state="Running", phase=Phase.ITEMS, page=f"{BASE}/batches/j1/docs")

    due = step.request_cancel(b, listing, now=NOW)

    assert due is not None
    assert (due.phase, due.page) == (Phase.CANCEL, None)


def test_request_cancel_without_a_cancel_in_the_spec_is_refused(batch: Binding) -> None:
    """A lifecycle that cannot cancel raises CancelError."""
    with pytest.raises(CancelError, match="cannot be cancelled"):
        step.request_cancel(batch, job(batch), now=NOW)


def test_request_cancel_of_an_ended_job_is_too_late(toy: Binding) -> None:
    """An ended job: None, nothing to send."""
    ended = job(toy, phase=Phase.DONE, end=End.TIMED_OUT, state="Running")

    assert step.request_cancel(toy, ended, now=NOW) is None


def test_request_cancel_in_a_terminal_state_is_too_late(toy: Binding) -> None:
    """A job fetching its result (terminal state) is not cancelled: None."""
    fetching = job(toy, phase=Phase.RESULT, state="Done")

    assert step.request_cancel(toy, fetching, now=NOW) is None


def test_request_cancel_before_the_submit_was_answered_is_refused(toy: Binding) -> None:
    """Nothing to cancel yet: CancelError."""
    with pytest.raises(CancelError, match="not been submitted yet"):
        step.request_cancel(toy, _submission(toy), now=NOW)


def test_request_cancel_from_a_state_the_spec_does_not_allow_is_refused(
    toy: Binding,
) -> None:
    """Cancelling from a state outside cancel.from raises CancelError listing the allowed."""
    with pytest.raises(
        CancelError, match="from state 'Cancelling'; allowed from: Queued, Running"
    ):
        step.request_cancel(toy, job(toy, state="Cancelling"), now=NOW)


# -- what to send ------------------------------------------------------------------------


def test_the_poll_goes_to_the_path_template(toy: Binding) -> None:
    """A job without a poll link is polled at its path, with the spec's query."""
    out = step.request_for(toy, job(toy))

    assert (out.method, out.url) == ("GET", POLL_URL)
    assert out.request is toy.lifecycle.poll.request


def test_the_poll_goes_to_the_link_the_last_poll_gave(toy: Binding) -> None:
    """A poll link located in the last poll's answer wins over the path."""
    linked = job(toy, poll_link=f"{BASE}/ops/7?sig=x")

    assert step.poll_url(toy, linked) == f"{BASE}/ops/7?sig=x&v=1"


def test_a_poll_path_the_id_cannot_fill_is_a_protocol_error() -> None:
    """An id a {+job_id} refuses ('../admin') gets RemoteError(protocol), not InputError."""
    document = toy_document()
    lifecycle_of(document)["poll"]["request"]["path"] = "/v1/{+job_id}"
    b = binding(document)

    with pytest.raises(
        RemoteError, match=r"toy/job job \.\./admin: .*'\.\.' path segment"
    ) as info:
        step.poll_url(b, job(b, job_id="../admin"))

    assert (info.value.kind, info.value.retryable) == ("protocol", False)


def test_the_items_request_goes_to_the_page_to_read(batch: Binding) -> None:
    """Listing items reads the page URL the job holds."""
    page = f"{BASE}/batches/j1/docs?p=2"

    out = step.request_for(batch, job(batch, phase=Phase.ITEMS, page=page))

    assert out.url == page


def test_the_result_request_goes_to_the_result_link(toy: Binding) -> None:
    """Fetching the result reads the link located when the job ended."""
    fetching = job(toy, phase=Phase.RESULT, state="Done", result_link=f"{BASE}/r/1")

    assert step.request_for(toy, fetching).url == f"{BASE}/r/1"


def test_the_cancel_request_is_the_specs(toy: Binding) -> None:
    """The cancel goes to its own path with its own method."""
    out = step.request_for(toy, job(toy, state="Running", phase=Phase.CANCEL))

    assert (out.method, out.url) == ("DELETE", f"{BASE}/regions/eu/jobs/j1")


def test_a_cancel_that_cannot_be_built_is_a_protocol_error(toy: Binding) -> None:
    """A job missing the input the cancel path needs gets RemoteError, not InputError."""
    missing = job(toy, state="Running", phase=Phase.CANCEL, inputs={})

    with pytest.raises(
        RemoteError, match="toy/job job j1: input 'region' is needed"
    ) as info:
        step.request_for(toy, missing)

    assert (info.value.kind, info.value.retryable) == ("protocol", False)


@pytest.mark.parametrize(
    "changes",
    [
        {"phase": Phase.DONE},
        {"phase": Phase.SUBMIT},
        {"phase": Phase.ITEMS},
        {"phase": Phase.ITEMS, "page": f"{BASE}/p"},
        {"phase": Phase.RESULT},
    ],
    ids=[
        "done",
        "submit",
        "items-without-page",
        "items-without-items",
        "result-without-link",
    ],
)
def test_nothing_to_send_is_a_protocol_error(
    toy: Binding, changes: dict[str, object]
) -> None:
    """A phase with nothing to send (or what it needs missing) raises RemoteError(protocol)."""
    with pytest.raises(RemoteError, match="nothing to send in phase") as info:
        step.request_for(toy, job(toy, **changes))

    assert info.value.retryable is False


def test_adopting_a_job_in_a_state_with_its_own_deadline_uses_that_deadline() -> None:
    """track(state=…) in a provisional state re-checked for hours gets that state's deadline."""
    document = toy_document()
    schedule = lifecycle_of(document)["schedule"]
    schedule["deadline"] = 60
    schedule["per_state"] = {"Running": {"deadline": 3600}}
    b = binding(document)

    adopted = step.adopt(
        b, key="k", job_id="j", inputs={}, filters=None, state="Running", now=NOW
    )

    assert adopted.job.deadline == NOW + 3600
