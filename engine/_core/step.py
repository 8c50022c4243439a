"""One job, one step at a time: what to send next, and what a reply means.

A driver asks :func:`request_for` what a job's next request is, sends it,
and hands the reply (or the classified transport error) to :func:`on_reply`
with the time; it gets back a :class:`Step`: the job's new state (a copy; the
given state is never changed), the records that explain it, and, in the new
state, the phase and due time of the next request, or the end.

The job's phase (:class:`~engine._core.state.Phase`) is the one place that
says what comes next: submit → poll ⇄ items → result → done, with cancel
taking a turn when the caller asks. Each phase's reply is read by one
method of ``reading.Stepper``; retries, time-outs and errors are shared by
all of them (``moves.Moves``). What to send is ``outgoing``'s.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from engine._core import timing
from engine._core.binding import Binding
from engine._core.chain import Chained, client_ref_for
from engine._core.moves import Step
from engine._core.outgoing import (
    Outgoing,
    poll_request,
    poll_url,
    request_for,
    submit_request,
    validators,
)
from engine._core.reading import Stepper, on_reply
from engine._core.reply import NO_HEADERS
from engine._core.state import End, JobState, Phase, Record
from engine._errors import CancelError, InputError, RemoteError

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
        lifecycle, NO_HEADERS, now=now, scale=b.scale, deadline=job.deadline, rng=rng
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
        stepper = Stepper(b, new, now, random.Random(0))  # noqa: S311 - no jitter drawn here
        stepper.unresolved(
            "was sent but never answered before a restart, and the spec has no "
            "lookup to find it again: check the service before resubmitting"
        )
        return stepper.step()
    record = Record(kind="resumed", to_state=new.state, trigger="resume")
    return Step(job=new, records=(record,))


def abort(b: Binding, job: JobState, error: RemoteError, *, now: float) -> Step:
    """End ``job`` with ``error`` (a driver's last resort: the step itself failed)."""
    stepper = Stepper(b, job.copy(), now, random.Random(0))  # noqa: S311 - no jitter drawn here
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
