"""One job, one step at a time: what to send next, and what a reply means.

A driver asks :func:`request_for` what a job's next request is, sends it,
and hands the reply (or the classified transport error) to :func:`on_reply`
with the time; it gets back a :class:`Step`: the job's new state (a copy; the
given state is never changed), the records that explain it, and, in the new
state, the phase and due time of the next request, or the end.

The job's phase (:class:`~engine._core.state.Phase`) is the one place that
says what comes next: submit → poll ⇄ items → result → done, with cancel
taking a turn when the caller asks. Each phase's reply is read by one
function below; retries, time-outs and errors are shared by all of them.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Final

import attrs

from engine._core import timing
from engine._core.advance import advance
from engine._core.binding import Binding
from engine._core.chain import (
    MAX_CHAIN,
    Chained,
    ChainError,
    chain_inputs,
    chain_key,
    client_ref_for,
)
from engine._core.observe import Observation, observe
from engine._core.paging import next_cursor, next_page
from engine._core.progress import new_tenth, read_progress
from engine._core.reply import Reply, where
from engine._core.state import End, JobState, Phase, Record
from engine._core.verdict import (
    Verdict,
    classify,
    classify_reply,
    error_code,
    error_fields,
    status_error,
)
from engine._core.wire import (
    build_url,
    encode_body,
    locate,
    read_values,
    render_body,
    submit_links,
)
from engine._errors import CancelError, InputError, RemoteError
from statemachines import (
    MISSING,
    Conditional,
    Outcome,
    Request,
    Spec,
    resolve_pointer,
)

__all__ = [
    "Outgoing",
    "Step",
    "abort",
    "adopt",
    "begin_submit",
    "forget",
    "new_submission",
    "on_reply",
    "poll_request",
    "poll_url",
    "request_cancel",
    "request_for",
    "resume",
    "start_chained",
    "submit_request",
    "validators",
]

_NO_HEADERS: Mapping[str, str] = {}


@attrs.frozen(kw_only=True)
class Step:
    """A job's new state and the records that explain how it got there."""

    job: JobState
    records: tuple[Record, ...] = ()
    #: The job this step starts (a success state's ``then``): the driver
    #: creates it with :func:`start_chained`, in the same commit as this step.
    then: Chained | None = None


@attrs.frozen(kw_only=True)
class Outgoing:
    """A request to send: the spec's block (method, headers, redirects) and a URL."""

    request: Request
    url: str
    json_body: Any = None
    data: Mapping[str, Any] | None = None
    files: Mapping[str, Any] | None = None
    #: Headers of this request only (a submission's Idempotency-Key).
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def method(self) -> str:
        """The HTTP method."""
        return self.request.method


class _Cursor:
    """An item's state while the item machine moves it (items are kept as strings)."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


# -- starting a job -------------------------------------------------------------------


def _fresh(
    b: Binding,
    *,
    key: str,
    job_id: str,
    state: str,
    inputs: Mapping[str, Any],
    filters: Mapping[str, Any] | None,
    now: float,
    phase: Phase,
    client_ref: str | None = None,
    deadline_after: float | None = None,
    max_attempts: int | None = None,
) -> JobState:
    deadline = timing.start_deadline(
        b.lifecycle.schedule, state, now=now, scale=b.scale, own=deadline_after
    )
    return JobState(
        key=key,
        service=b.spec.name,
        lifecycle=b.lifecycle.name,
        spec_hash=b.spec.content_hash,
        spec_source=b.spec_source,
        job_id=job_id,
        state=state,
        phase=phase,
        due=now,
        deadline=deadline,
        inputs=b.keep(inputs),
        filters=dict(filters) if filters else None,
        base_url=b.base_url,
        client_ref=client_ref,
        started=now,
        deadline_after=deadline_after,
        max_attempts=max_attempts,
    )


def new_submission(
    b: Binding,
    *,
    key: str,
    inputs: Mapping[str, Any],
    filters: Mapping[str, Any] | None,
    now: float,
    client_ref: str | None = None,
    deadline_after: float | None = None,
    max_attempts: int | None = None,
) -> JobState:
    """Return the state of a job about to be submitted (phase ``submit``, no id yet).

    It keeps only the inputs later requests need: the submit body is built
    from the caller's values by :func:`submit_request` and never stored.
    When the spec sends a client reference, it is the caller's (the input
    ``submit.client_ref`` names) or else ``client_ref``, which the driver
    generates; it is stored with the intent, so that a crash while the
    request is on the wire can be resolved by the spec's lookup.
    ``deadline_after`` and ``max_attempts`` are the caller's own limits for
    this job (see :func:`~engine._core.state.check_limits`).
    """
    submit = b.lifecycle.submit
    ref = submit.client_ref if submit is not None else None
    if ref is None:
        client_ref = None
    elif ref.input is not None and inputs.get(ref.input) is not None:
        client_ref = str(inputs[ref.input])
    return _fresh(
        b,
        key=key,
        job_id="",
        state=b.initial,
        inputs=inputs,
        filters=filters,
        now=now,
        phase=Phase.SUBMIT,
        client_ref=client_ref,
        deadline_after=deadline_after,
        max_attempts=max_attempts,
    )


def submit_request(b: Binding, job: JobState, values: Mapping[str, Any]) -> Outgoing:
    """Return the submit request, its body built from the caller's ``values``."""
    submit = b.lifecycle.submit
    if submit is None:
        msg = f"{b.name} has no submit; use track() with an existing id"
        raise InputError(msg)
    ref = submit.client_ref
    headers: tuple[tuple[str, str], ...] = ()
    if ref is not None and job.client_ref is not None:
        if ref.input is not None:
            values = {**values, ref.input: job.client_ref}
        else:
            headers = ((ref.header or "Idempotency-Key", job.client_ref),)
    url = build_url(
        b.base_url,
        submit.request,
        inputs=values,
        job_id=job.job_id,
        query_inputs=b.query_inputs,
        links=None,
    )
    if submit.request.body is not None:
        # The spec's template replaces the body built from inputs.
        known = dict(values)
        if job.client_ref is not None:
            known["client_ref"] = job.client_ref
        json_body, data = render_body(submit.request.body, known)
        files = None
    else:
        json_body, data, files = encode_body(b.lifecycle, submit.body, values)
    return Outgoing(
        request=submit.request,
        url=url,
        json_body=json_body,
        data=data,
        files=files,
        headers=headers,
    )


def adopt(
    b: Binding,
    *,
    key: str,
    job_id: str,
    inputs: Mapping[str, Any],
    filters: Mapping[str, Any] | None,
    state: str | None,
    now: float,
    rng: random.Random | None = None,
    deadline_after: float | None = None,
    max_attempts: int | None = None,
) -> Step:
    """Start tracking an existing job by id (in ``state``, default the initial one).

    With ``rng`` the first poll's delay is jittered (by the schedule's jitter).
    ``deadline_after`` and ``max_attempts`` are the caller's own limits.
    """
    lifecycle = b.lifecycle
    if state is not None and state not in lifecycle.state_names:
        declared = ", ".join(lifecycle.state_names)
        msg = f"unknown state {state!r} for {b.name}; declared: {declared}"
        raise InputError(msg)
    job = _fresh(
        b,
        key=key,
        job_id=job_id,
        state=state or b.initial,
        inputs=inputs,
        filters=filters,
        now=now,
        phase=Phase.POLL,
        deadline_after=deadline_after,
        max_attempts=max_attempts,
    )
    job.due = timing.first_poll(
        lifecycle, _NO_HEADERS, now=now, scale=b.scale, deadline=job.deadline, rng=rng
    )
    record = Record(kind="submitted", to_state=job.state, trigger="track")
    return Step(job=job, records=(record,))


def start_chained(b: Binding, first: JobState, chained: Chained, *, now: float) -> Step:
    """Return the job ``first`` starts as it ends (phase ``start``: nothing sent yet).

    ``b`` is the chained lifecycle's binding. The job keeps its submit
    inputs (``pending``) until its submit is answered, and the chain of the
    jobs before it; its first record names the job that started it.
    """
    submit = b.lifecycle.submit
    job = new_submission(
        b,
        key=chained.key,
        inputs=chained.inputs,
        filters=None,
        now=now,
        client_ref=client_ref_for(chained.key)
        if submit is not None and submit.client_ref is not None
        else None,
    )
    job.phase = Phase.START
    job.pending = dict(chained.inputs)
    job.chain = (*first.chain, first.ref())
    record = Record(
        kind="chained",
        to_state=job.state,
        trigger="then",
        detail={
            "key": job.key,
            "chained_from": first.key,
            "from_lifecycle": first.lifecycle,
            "from_job_id": first.job_id,
        },
    )
    return Step(job=job, records=(record,))


def begin_submit(b: Binding, job: JobState, *, now: float) -> Step:
    """Move a chained job from ``start`` to ``submit``: its intent, committed before it is sent.

    Once this step is committed, a crash leaves the job in ``submit``: the
    spec's lookup resolves it, and it is never sent twice.
    """
    del b
    new = job.copy()
    new.phase = Phase.SUBMIT
    new.due = now
    record = Record(
        kind="intent", detail={"client_ref": new.client_ref, "key": new.key}
    )
    return Step(job=new, records=(record,))


def resume(b: Binding, job: JobState, *, now: float) -> Step:
    """Take a stored job over after a restart: it goes on from its stored phase and due time.

    A job whose submit was never answered (phase ``submit``: the process died
    with the request on the wire) is not re-sent blindly: it ends as an
    unresolved submission for a person to check.
    """
    new = job.copy()
    if new.phase is Phase.SUBMIT:
        if b.lifecycle.lookup is not None and new.client_ref is not None:
            # Ask the service whether the submission arrived, by its reference.
            new.phase = Phase.LOOKUP
            new.due = now
            record = Record(
                kind="resumed",
                to_state=new.state,
                trigger="resume",
                detail={"client_ref": new.client_ref, "phase": "lookup"},
            )
            return Step(job=new, records=(record,))
        stepper = _Stepper(b, new, now, random.Random(0))  # noqa: S311 - no jitter drawn here
        stepper.unresolved(
            "was sent but never answered before a restart, and the spec has no "
            "lookup to find it again: check the service before resubmitting"
        )
        return stepper.step()
    record = Record(kind="resumed", to_state=new.state, trigger="resume")
    return Step(job=new, records=(record,))


def abort(b: Binding, job: JobState, error: RemoteError, *, now: float) -> Step:
    """End ``job`` with ``error`` (a driver's last resort: the step itself failed)."""
    stepper = _Stepper(b, job.copy(), now, random.Random(0))  # noqa: S311 - no jitter drawn here
    stepper.fail(error, None)
    return stepper.step()


def forget(b: Binding, job: JobState, *, now: float) -> Step:
    """Stop tracking ``job`` on the caller's request (nothing is sent to the service)."""
    del b
    new = job.copy()
    if new.done:
        return Step(job=new)
    new.phase = Phase.DONE
    new.end = End.FORGOTTEN
    new.reason = "forgotten"
    new.due = now
    record = Record(kind="forgotten", from_state=new.state, detail={"polls": new.polls})
    return Step(job=new, records=(record,))


def request_cancel(b: Binding, job: JobState, *, now: float) -> JobState | None:
    """Return the job with its cancel request due now, or ``None`` when it is too late.

    Too late: the job ended, or is in a terminal state (fetching its result or
    final items).

    Raises:
        CancelError: the lifecycle cannot cancel, or not from this state.
    """
    cancel = b.lifecycle.cancel
    if cancel is None:
        msg = f"{b.name} cannot be cancelled (the spec has no cancel)"
        raise CancelError(msg)
    if job.done or job.state in b.terminal:
        return None
    if job.phase in {Phase.START, Phase.SUBMIT}:
        msg = f"{b.name}: the job has not been submitted yet; nothing to cancel"
        raise CancelError(msg)
    if job.state not in cancel.from_states:
        allowed = ", ".join(cancel.from_states)
        msg = f"cannot cancel from state {job.state!r}; allowed from: {allowed}"
        raise CancelError(msg)
    new = job.copy()
    new.phase = Phase.CANCEL
    new.page = None
    new.page_cursor = None
    new.due = now
    return new


# -- what to send -----------------------------------------------------------------------


def poll_url(b: Binding, job: JobState) -> str:
    """Return the URL of the job's next poll.

    Drivers may keep it while ``job.poll_link`` is unchanged: it is built from
    the job's id, inputs and submit links, which do not change otherwise.

    Raises:
        RemoteError: (protocol, not retryable) the path cannot be built: the
            service's id is refused by a ``{+name}`` in it, say.
    """
    try:
        return build_url(
            b.base_url,
            b.lifecycle.poll.request,
            inputs=_known(job),
            job_id=job.job_id,
            query_inputs=b.query_inputs,
            links=job.links,
            link=job.poll_link,
        )
    except InputError as exc:
        msg = f"{b.name} job {job.job_id}: {exc}"
        raise RemoteError(msg, kind="protocol", retryable=False) from None


def poll_request(b: Binding, job: JobState, url: str) -> Outgoing:
    """Return the job's next poll, sent to ``url`` (:func:`poll_url`, which drivers may keep).

    A conditional poll sends the last answer's validators back.

    Raises:
        RemoteError: (protocol) the body cannot be built.
    """
    out = _outgoing(b, job, b.lifecycle.poll.request, url)
    if job.validators:
        return attrs.evolve(out, headers=tuple(job.validators.items()))
    return out


def request_for(b: Binding, job: JobState) -> Outgoing:
    """Return the job's next request (for phases poll, items, result, cancel and lookup).

    Raises:
        RemoteError: (protocol) the request cannot be built.
    """
    lifecycle = b.lifecycle
    phase = job.phase
    if phase is Phase.POLL:
        return poll_request(b, job, poll_url(b, job))
    if phase is Phase.SUBMIT and job.pending is not None:
        # A chained job: its driver sends the submit (after its intent).
        try:
            return submit_request(b, job, job.pending)
        except InputError as exc:
            msg = f"{b.name}: {exc}"
            raise RemoteError(msg, kind="protocol", retryable=False) from None
    if phase is Phase.ITEMS and lifecycle.items is not None and job.page:
        cursor = {"cursor": job.page_cursor} if job.page_cursor is not None else None
        return _outgoing(b, job, lifecycle.items.request, job.page, extra=cursor)
    if phase is Phase.RESULT and lifecycle.result is not None and job.result_link:
        return _outgoing(b, job, lifecycle.result.request, job.result_link)
    if phase is Phase.CANCEL and lifecycle.cancel is not None:
        request = lifecycle.cancel.request
        return _outgoing(b, job, request, _url(b, job, request))
    if phase is Phase.LOOKUP and lifecycle.lookup is not None:
        request = lifecycle.lookup.request
        return _outgoing(b, job, request, _url(b, job, request))
    msg = f"{b.name} job {job.job_id}: nothing to send in phase {phase.value}"
    raise RemoteError(msg, kind="protocol", retryable=False)


def _known(job: JobState) -> Mapping[str, Any]:
    """Return the job's inputs and the values it read from responses, for templates."""
    if not job.values:
        return job.inputs
    return {**job.inputs, **job.values}


def _outgoing(
    b: Binding,
    job: JobState,
    request: Request,
    url: str,
    *,
    extra: Mapping[str, Any] | None = None,
) -> Outgoing:
    """Return ``request`` to ``url``, with its body (when it has one) filled for ``job``."""
    if request.body is None:
        return Outgoing(request=request, url=url)
    known = {**_known(job), "job_id": job.job_id, **(extra or {})}
    if job.client_ref is not None:
        known["client_ref"] = job.client_ref
    try:
        json_body, data = render_body(request.body, known)
    except InputError as exc:
        msg = f"{b.name} job {job.job_id}: {exc}"
        raise RemoteError(msg, kind="protocol", retryable=False) from None
    return Outgoing(request=request, url=url, json_body=json_body, data=data)


def _url(
    b: Binding,
    job: JobState,
    request: Request,
    *,
    reply: Reply | None = None,
    extra: Mapping[str, str | list[str]] | None = None,
) -> str:
    try:
        return build_url(
            b.base_url,
            request,
            inputs=_known(job),
            job_id=job.job_id,
            query_inputs=b.query_inputs,
            links=job.links,
            reply=reply,
            extra=extra,
            client_ref=job.client_ref,
        )
    except InputError as exc:
        msg = f"{b.name} job {job.job_id}: {exc}"
        raise RemoteError(msg, kind="protocol", retryable=False) from None


# -- what a reply means --------------------------------------------------------------------


def on_reply(
    b: Binding,
    job: JobState,
    got: Reply | RemoteError,
    *,
    now: float,
    rng: random.Random,
) -> Step:
    """Read the reply to the job's current request (or the error that replaced it).

    A reply that arrives for a job that has ended meanwhile changes nothing.
    """
    if job.done:
        return Step(job=job)
    stepper = _Stepper(b, job.copy(), now, rng)
    read = getattr(stepper, _READERS[job.phase])
    try:
        read(got)
    except RemoteError as exc:
        # Building a follow-up request failed (a template the job cannot fill,
        # a link to nowhere): retrying cannot help.
        stepper.fail(exc, got if isinstance(got, Reply) else None)
    return stepper.step()


_NOT_MODIFIED: Final = 304


def validators(
    conditional: Conditional, headers: Mapping[str, str]
) -> dict[str, str] | None:
    """Return the headers a conditional poll sends back, from an answer's ``headers``.

    ``ETag`` goes back as ``If-None-Match`` and ``Last-Modified`` as
    ``If-Modified-Since``, each when the spec's ``conditional`` asks for it;
    ``None`` when the answer has neither.
    """
    found: dict[str, str] = {}
    etag = headers.get("etag")
    if conditional.etag and etag:
        found["If-None-Match"] = etag
    modified = headers.get("last-modified")
    if conditional.last_modified and modified:
        found["If-Modified-Since"] = modified
    return found or None


#: The _Stepper method that reads the reply of each phase's request.
_READERS: Final = {
    Phase.SUBMIT: "submitted",
    Phase.POLL: "polled",
    Phase.ITEMS: "paged",
    Phase.RESULT: "fetched",
    Phase.CANCEL: "cancelled",
    Phase.LOOKUP: "looked_up",
}


class _Stepper:
    """The working state of one step: a job copy being changed and its records."""

    __slots__ = ("b", "job", "now", "records", "rng", "then")

    def __init__(
        self, b: Binding, job: JobState, now: float, rng: random.Random
    ) -> None:
        self.b = b
        self.job = job
        self.now = now
        self.rng = rng
        self.records: list[Record] = []
        self.then: Chained | None = None

    def step(self) -> Step:
        return Step(job=self.job, records=tuple(self.records), then=self.then)

    # -- classification ----------------------------------------------------------------

    def verdict(
        self, request: Request, got: Reply | RemoteError
    ) -> tuple[Verdict, Any, RemoteError | None]:
        """Return ``(verdict, body, error)`` for a reply to ``request``."""
        if isinstance(got, RemoteError):
            return ("transient" if got.retryable else "fatal"), None, got
        errors = self.b.lifecycle.errors
        accepted = request.accepts(got.status)
        verdict = classify_reply(got, errors, accepted=accepted)
        if (
            verdict == "observe"
            and not accepted
            and request is not self.b.lifecycle.poll.request
        ):
            # Only a poll's observe rules read an error reply as a state; a
            # submit, listing or result has no rules to read it by.
            verdict = classify(got.status, errors, accepted=False)
        if verdict != "observe":
            error = status_error(
                got, errors, self.b.redactor.text, retryable=verdict == "transient"
            )
            return verdict, None, error
        try:
            body = got.json()
        except RemoteError as exc:
            if not accepted:
                # Observed only because an error rule says so: an XML or HTML
                # error page is read by its status and error code, bodiless.
                return "observe", None, None
            # Malformed or hostile (truncated, a nesting bomb): by the error
            # policy, like any answer that cannot be read.
            return "transient", None, exc
        return "observe", body, None

    # -- the phases --------------------------------------------------------------------

    def submitted(self, got: Reply | RemoteError) -> None:
        self.read_submit(got)
        if self.job.phase is not Phase.SUBMIT:
            # Sent and answered (or failed): a chained job's inputs go.
            self.job.pending = None

    def read_submit(self, got: Reply | RemoteError) -> None:
        b, job = self.b, self.job
        submit = b.lifecycle.submit
        assert submit is not None  # noqa: S101 - only submissions reach this phase
        if isinstance(got, RemoteError):
            # The request may or may not have reached the service: never re-sent
            # blindly. The caller sees the error; a store keeps the intent.
            self.fail(got, None)
            return
        verdict, body, error = self.verdict(submit.request, got)
        if error is not None:
            # Only the statuses the spec names are safe to send again: anything
            # else (a 5xx, an unreadable 202) may have created the job.
            if verdict == "transient" and got.status in submit.retry_status:
                self.retry(error, got)
            else:
                self.fail(error, got)
            return
        job_id = locate(submit.job_id, got, None)
        if not job_id:
            msg = f"no job id in the submit response from {where(got.url)}"
            self.fail(
                RemoteError(msg, kind="protocol", status=got.status, retryable=False),
                got,
            )
            return
        job.job_id = job_id
        job.links = submit_links(b.lifecycle, got)
        if b.values_from["submit"]:
            job.values = read_values(b.values_from["submit"], got, job.values)
        job.failures = 0
        job.phase = Phase.POLL
        self.records.append(
            Record(
                kind="submitted",
                to_state=job.state,
                trigger="submit",
                http_status=got.status,
                # A chained job's earlier records (no job id yet) join it by key.
                detail={"key": job.key} if job.chain else None,
            )
        )
        if submit.observe:
            self.apply(got, body, trigger="submit")
        else:
            job.due = timing.first_poll(
                b.lifecycle,
                got.headers,
                now=self.now,
                scale=b.scale,
                deadline=job.deadline,
                rng=self.rng,
            )

    def polled(self, got: Reply | RemoteError) -> None:
        conditional = self.b.lifecycle.poll.conditional
        if (
            conditional is not None
            and isinstance(got, Reply)
            and got.status == _NOT_MODIFIED
        ):
            self.not_modified(got)
            return
        verdict, body, error = self.verdict(self.b.lifecycle.poll.request, got)
        if error is not None:
            self.failed(verdict, error, got)
            return
        assert isinstance(got, Reply)  # noqa: S101 - errors were handled above
        job = self.job
        if conditional is not None:
            # An answer without validators makes the next poll unconditional.
            job.validators = validators(conditional, got.headers)
        job.polls += 1
        job.polls_in_state += 1
        job.failures = 0
        later = tuple(
            loc for loc in self.b.lifecycle.poll.request.url if loc.response == "last"
        )
        if later:
            # Only the link is kept, not the reply: an idle job stays small.
            job.poll_link = locate(later, got, None) or job.poll_link
        self.apply(got, body, trigger="poll")

    def not_modified(self, got: Reply) -> None:
        """A conditional poll answered '304 Not Modified': no change, no attempt used."""
        b, job = self.b, self.job
        conditional = b.lifecycle.poll.conditional
        assert conditional is not None  # noqa: S101 - only conditional polls get here
        job.failures = 0
        job.not_modified += 1
        # A 304 may carry fresher validators (RFC 9110 15.4.5); keep the old otherwise.
        job.validators = validators(conditional, got.headers) or job.validators
        self.records.append(
            Record(
                kind="polled",
                trigger="poll",
                http_status=got.status,
                detail={"changed": False, "not_modified": True},
            )
        )
        self.schedule_poll(got.headers)

    def paged(self, got: Reply | RemoteError) -> None:
        b, job = self.b, self.job
        items = b.lifecycle.items
        item = b.item
        assert items is not None  # noqa: S101 - only lifecycles with items list them
        assert item is not None  # noqa: S101 - bound with the lifecycle
        verdict, body, error = self.verdict(items.request, got)
        if error is not None:
            self.failed(verdict, error, got)
            return
        assert isinstance(got, Reply)  # noqa: S101 - errors were handled above
        entries = resolve_pointer(body, items.items_pointer)
        if not isinstance(entries, list):
            msg = f"no item list at {items.items_pointer} from {where(got.url)}"
            self.retry(RemoteError(msg, kind="protocol", status=got.status), got)
            return
        states = dict(job.items or {})
        for entry in entries:
            if not self.item_seen(item, items.id_pointer, entry, states, got):
                return
        job.items = states
        # A good page proves the service answers: a long listing must not use
        # up the retry budget on faults spread across its pages.
        job.failures = 0
        job.pages += 1
        job.listed += len(entries)
        if b.body_cursor:
            # The cursor goes in the body: the next page is asked at the same URL.
            job.page_cursor = next_cursor(
                items.paging,
                body,
                sent=job.page_cursor,
                url=got.url,
                status=got.status,
                headers=got.headers,
            )
            following = job.page if job.page_cursor is not None else None
        else:
            following = next_page(
                items.paging,
                body,
                url=got.url,
                base_url=b.base_url,
                listed=job.listed,
                count=len(entries),
                status=got.status,
                headers=got.headers,
            )
        if following is not None and job.pages < items.paging.max_pages:
            job.page = following
            job.due = self.now
            return
        job.page = None
        job.page_cursor = None
        if job.state in b.terminal:
            self.finish_terminal()
        else:
            job.phase = Phase.POLL
            self.schedule_poll(got.headers)

    def item_seen(
        self,
        item: Binding,
        id_pointer: str,
        entry: Any,
        states: dict[str, str],
        reply: Reply,
    ) -> bool:
        """Move one item; return False when its policy ended the job."""
        item_id = resolve_pointer(entry, id_pointer)
        if item_id is MISSING or item_id is None or isinstance(item_id, (dict, list)):
            return True
        item_id = str(item_id)
        lifecycle = item.lifecycle
        seen = observe(
            lifecycle.poll.observe,
            200,
            _NO_HEADERS,
            entry,
            default_policy=lifecycle.policy.unknown_state,
        )
        cursor = _Cursor(states.get(item_id, item.initial))
        moved = advance(
            item.machine,
            lifecycle,
            cursor,
            seen,
            trigger="poll",
            http_status=reply.status,
            item_id=item_id,
        )
        self.records.extend(moved.records)
        states[item_id] = cursor.state
        if moved.failure is not None:
            self.job.items = states
            kind, message = moved.failure
            # The id and the value are the service's text: redacted like its messages.
            msg = item.redactor.text(
                f"item {item_id}: {message} observed at {where(reply.url)}"
            )
            self.fail(
                RemoteError(msg, kind=kind, status=reply.status, retryable=False),
                reply,
            )
            return False
        return True

    def fetched(self, got: Reply | RemoteError) -> None:
        result = self.b.lifecycle.result
        assert result is not None  # noqa: S101 - only lifecycles with a result fetch one
        verdict, body, error = self.verdict(result.request, got)
        if error is not None:
            self.failed(verdict, error, got)
            return
        self.job.result = body
        self.complete()

    def cancelled(self, got: Reply | RemoteError) -> None:
        b, job = self.b, self.job
        cancel = b.lifecycle.cancel
        assert cancel is not None  # noqa: S101 - only cancellable lifecycles reach this phase
        if isinstance(got, RemoteError):
            self.failed("transient" if got.retryable else "fatal", got, None)
            return
        accepted = cancel.request.accepts(got.status)
        refused = got.status in cancel.refused_status or not accepted
        if refused and got.status not in cancel.refused_status:
            verdict = classify_reply(got, b.lifecycle.errors, accepted=False)
            if verdict == "transient":
                error = status_error(
                    got, b.lifecycle.errors, b.redactor.text, retryable=True
                )
                self.retry(error, got)
                return
        self.records.append(
            Record(
                kind="cancel_requested",
                from_state=job.state,
                trigger="cancel",
                http_status=got.status,
                detail={"accepted": not refused},
            )
        )
        job.phase = Phase.POLL
        job.failures = 0
        if refused:
            self.schedule_poll(got.headers)
            return
        body: Any = None
        try:
            body = got.json()
        except RemoteError:
            body = None
        if cancel.observe and body is not None:
            self.apply(got, body, trigger="cancel")
            return
        first = cancel.leads_to[0]
        if job.state != first:
            self.move(Observation(first, None), got, trigger="cancel")
            if job.done:
                return
        if job.state in b.terminal:
            # The cancel itself ended the job: no poll to confirm what the
            # spec says the cancel leads to.
            self.enter_terminal(got, body)
        else:
            self.schedule_poll(got.headers)

    def looked_up(self, got: Reply | RemoteError) -> None:
        b, job = self.b, self.job
        lookup = b.lifecycle.lookup
        assert lookup is not None  # noqa: S101 - only lifecycles with a lookup reach this phase
        ref = job.client_ref
        if isinstance(got, Reply) and got.status in lookup.not_found_status:
            self.records.append(
                Record(
                    kind="lookup",
                    http_status=got.status,
                    detail={"client_ref": ref, "found": False},
                )
            )
            absent = RemoteError(
                f"{b.name} submission {ref} never reached the service "
                f"({where(got.url)} answered {got.status}): safe to submit again",
                kind="submission",
                code="not_submitted",
                status=got.status,
                retryable=False,
            )
            self.fail(absent, got)
            return
        verdict, body, error = self.verdict(lookup.request, got)
        if error is not None:
            budget = b.lifecycle.errors.retry_budget
            if verdict == "transient" and job.failures < budget:
                self.retry(error, got if isinstance(got, Reply) else None)
            else:
                self.unresolved(f"could not be looked up ({error})")
            return
        assert isinstance(got, Reply)  # noqa: S101 - errors were handled above
        job_id = locate(lookup.job_id, got, None)
        if not job_id:
            self.unresolved(
                f"was found, but no job id is in the answer of {where(got.url)}"
            )
            return
        job.job_id = job_id
        job.failures = 0
        job.phase = Phase.POLL
        self.records.append(
            Record(
                kind="lookup",
                http_status=got.status,
                detail={"client_ref": ref, "found": True},
            )
        )
        self.records.append(
            Record(
                kind="submitted",
                to_state=job.state,
                trigger="lookup",
                http_status=got.status,
                detail={"client_ref": ref},
            )
        )
        if lookup.observe:
            self.apply(got, body, trigger="lookup")
        else:
            job.due = timing.first_poll(
                b.lifecycle,
                got.headers,
                now=self.now,
                scale=b.scale,
                deadline=job.deadline,
            )

    def unresolved(self, why: str) -> None:
        """End a submission whose fate cannot be known: a person must check the service."""
        ref = self.job.client_ref or self.job.key
        error = RemoteError(
            f"{self.b.name} submission {ref} {why}",
            kind="submission",
            code="unresolved",
            retryable=False,
        )
        self.fail(error, None, kind="unresolved_submission")

    # -- shared moves ----------------------------------------------------------------------

    def apply(self, reply: Reply, body: Any, *, trigger: str) -> None:
        """Read the state ``reply`` shows, move the job, and decide what comes next."""
        lifecycle = self.b.lifecycle
        if self.b.values_from["last"]:
            self.job.values = read_values(
                self.b.values_from["last"], reply, self.job.values
            )
        seen = observe(
            lifecycle.poll.observe,
            reply.status,
            reply.headers,
            body,
            default_policy=lifecycle.policy.unknown_state,
            code=error_code(reply, lifecycle.errors),
        )
        detail: dict[str, Any] = {
            "changed": seen.state is not None and seen.state != self.job.state
        }
        reading = read_progress(lifecycle.poll.progress, body)
        if reading is not None:
            detail["progress"] = reading
        self.records.append(
            Record(
                kind="polled",
                trigger=trigger,
                http_status=reply.status,
                observed=seen.raw,
                detail=detail,
            )
        )
        if new_tenth(self.job.progress, reading):
            self.records.append(
                Record(
                    kind="progress",
                    http_status=reply.status,
                    detail={"progress": reading},
                )
            )
        if reading is not None:
            self.job.progress = reading
        self.move(seen, reply, trigger=trigger)
        job = self.job
        if job.done:
            return
        if job.state in self.b.terminal:
            self.enter_terminal(reply, body)
            return
        items = lifecycle.items
        if items is not None and items.refresh == "each_poll":
            self.start_listing(reply)
            return
        self.schedule_poll(reply.headers)

    def move(self, seen: Observation, reply: Reply, *, trigger: str) -> None:
        """Apply ``seen`` through the machine; end the job when its policy says so."""
        b, job = self.b, self.job
        moved = advance(
            b.machine, b.lifecycle, job, seen, trigger=trigger, http_status=reply.status
        )
        self.records.extend(moved.records)
        if moved.failure is not None:
            kind, message = moved.failure
            # An unknown value is the service's text: redacted like its messages.
            msg = b.redactor.text(f"{message} observed at {where(reply.url)}")
            self.fail(
                RemoteError(msg, kind=kind, status=reply.status, retryable=False),
                reply,
            )
            return
        schedule = b.lifecycle.schedule
        for state in moved.entered:
            job.polls_in_state = 0
            job.not_modified = 0
            override = schedule.for_state(state)
            if override is not None and override.deadline is not None:
                # A state with its own deadline (a provisional state re-checked
                # for hours) replaces the job's: it is why the job waits there.
                job.deadline = self.now + override.deadline * b.scale

    def start_listing(self, reply: Reply) -> None:
        b, job = self.b, self.job
        items = b.lifecycle.items
        assert items is not None  # noqa: S101 - callers checked
        paging = items.paging
        extra: dict[str, str | list[str]] = {}
        if paging.page_size_param and paging.page_size:
            extra[paging.page_size_param] = str(paging.page_size)
        declared = {f.name: f for f in items.filters}
        for name, value in (job.filters or {}).items():
            spec_filter = declared.get(name)
            if spec_filter is None:
                continue  # refused when the job was registered
            if isinstance(value, (list, tuple)):
                values = [str(v) for v in value]
                extra[spec_filter.param] = (
                    values if spec_filter.format == "repeat" else ",".join(values)
                )
            else:
                extra[spec_filter.param] = str(value)
        job.phase = Phase.ITEMS
        job.page = _url(b, job, items.request, reply=reply, extra=extra)
        job.page_cursor = None
        job.pages = 0
        job.listed = 0
        job.due = self.now

    def enter_terminal(self, reply: Reply, body: Any) -> None:
        """The job reached a terminal state: keep its last answer, then items, result, end."""
        b, job = self.b, self.job
        job.response = body
        job.status = reply.status
        if b.values_from["final"]:
            job.values = read_values(b.values_from["final"], reply, job.values)
        result = b.lifecycle.result
        outcome = b.lifecycle.state(job.state).outcome
        if result is not None and outcome in result.on:
            job.result_link = _url(b, job, result.request, reply=reply)
        if b.lifecycle.items is not None:
            self.start_listing(reply)
            return
        self.finish_terminal()

    def finish_terminal(self) -> None:
        job = self.job
        if job.result_link is not None and job.result is None:
            job.phase = Phase.RESULT
            job.due = self.now
            return
        if job.result is None:
            job.result = job.response
        self.complete()

    def schedule_poll(self, headers: Mapping[str, str]) -> None:
        b, job = self.b, self.job
        job.phase = Phase.POLL
        plan = timing.next_poll(
            b.lifecycle,
            job.state,
            job.polls,
            job.polls_in_state,
            job.deadline,
            headers,
            now=self.now,
            scale=b.scale,
            rng=self.rng,
            not_modified=job.not_modified,
            max_attempts=job.max_attempts,
        )
        if plan.due is None:
            self.time_out(plan.give_up or "gave up")
        else:
            job.due = plan.due

    # -- failing, retrying, ending ----------------------------------------------------------

    def failed(
        self, verdict: Verdict, error: RemoteError, reply: Reply | RemoteError | None
    ) -> None:
        answer = reply if isinstance(reply, Reply) else None
        if verdict == "transient":
            self.retry(error, answer)
        else:
            self.fail(error, answer)

    def retry(self, error: RemoteError, reply: Reply | None) -> None:
        b, job = self.b, self.job
        errors = b.lifecycle.errors
        job.failures += 1
        if job.failures > errors.retry_budget:
            self.fail(error, reply, exhausted=True)
            return
        headers = reply.headers if reply is not None else _NO_HEADERS
        plan = timing.next_retry(
            b.lifecycle,
            job.failures,
            job.deadline,
            headers,
            now=self.now,
            scale=b.scale,
        )
        if plan.due is None:
            self.time_out(f"{plan.give_up} ({error})")
            return
        job.due = plan.due
        self.records.append(
            Record(
                kind="retrying",
                from_state=job.state,
                trigger=job.phase.value,
                http_status=reply.status if reply is not None else None,
                detail={
                    "kind": error.kind,
                    "error": str(error),
                    "delay": round(plan.due - self.now, 3),
                    "failures": job.failures,
                    "budget": errors.retry_budget,
                },
            )
        )

    def fail(
        self,
        error: RemoteError,
        reply: Reply | None,
        *,
        exhausted: bool = False,
        kind: str = "errored",
    ) -> None:
        job = self.job
        fields = error_fields(error)
        if exhausted:
            fields["message"] = (
                f"{fields['message']} (after {job.failures - 1} retries)"
            )
        job.error = fields
        job.phase = Phase.DONE
        job.end = End.ERRORED
        job.reason = kind
        job.due = self.now
        if reply is not None:
            job.status = reply.status
            try:
                job.response = reply.json()
            except RemoteError:
                job.response = None
        self.records.append(
            Record(
                kind=kind,
                from_state=job.state,
                http_status=error.status,
                detail={
                    "kind": error.kind,
                    "code": error.code,
                    "message": error.remote_message or fields["message"],
                },
            )
        )

    def time_out(self, reason: str) -> None:
        job = self.job
        job.phase = Phase.DONE
        job.end = End.TIMED_OUT
        job.reason = reason
        job.due = self.now
        self.records.append(
            Record(
                kind="timed_out",
                from_state=job.state,
                detail={"reason": reason, "polls": job.polls},
            )
        )

    def complete(self) -> None:
        b, job = self.b, self.job
        state = b.lifecycle.state(job.state)
        outcome = state.outcome
        detail: dict[str, Any] = {
            "outcome": outcome.value if outcome else None,
            "polls": job.polls,
        }
        then = state.then if outcome is Outcome.SUCCESS else None
        if then is not None:
            if then.spec is None or then.spec == b.spec.name:
                target: Spec | None = b.spec
            else:
                target = b.chained.get(then.spec)
            try:
                if target is None or then.lifecycle not in target.lifecycle_names:
                    msg = f"no lifecycle {then.lifecycle!r} of spec {then.spec!r} here"
                    raise ChainError(msg)  # noqa: TRY301 - reported like the others
                if len(job.chain) + 2 > MAX_CHAIN:
                    msg = f"a chain has at most {MAX_CHAIN} jobs"
                    raise ChainError(msg)  # noqa: TRY301 - reported like the others
                inputs = chain_inputs(then, target.lifecycle(then.lifecycle), job)
            except ChainError as exc:
                msg = f"{b.name} job {job.job_id}: cannot start {then.lifecycle}: {exc}"
                self.fail(RemoteError(msg, kind="protocol", retryable=False), None)
                return
            job.next_key = chain_key(job)
            self.then = Chained(
                spec=target.name,
                lifecycle=then.lifecycle,
                key=job.next_key,
                inputs=inputs,
            )
            detail["then"] = {
                "spec": target.name,
                "lifecycle": then.lifecycle,
                "key": job.next_key,
            }
        job.phase = Phase.DONE
        job.end = End.COMPLETED
        job.due = self.now
        self.records.append(
            Record(
                kind="completed",
                to_state=job.state,
                http_status=job.status,
                detail=detail,
            )
        )
