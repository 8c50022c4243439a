"""The working state of one step, and the moves every phase of a job shares.

``Moves`` holds a job copy and the records that explain its changes; it
classifies a reply, applies an observed state (a transition, skipped states
inferred, items listed, the terminal state entered), schedules the next
request by the one timing rule, and retries, fails, times out or completes
the job. ``reading.Stepper`` builds on it with one reader per phase.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import attrs

from engine._core import timing
from engine._core.advance import advance
from engine._core.binding import Binding
from engine._core.chain import MAX_CHAIN, Chained, ChainError, chain_inputs, chain_key
from engine._core.observe import Observation, observe
from engine._core.outgoing import request_url
from engine._core.progress import new_tenth, read_progress
from engine._core.reply import NO_HEADERS, Reply, where
from engine._core.state import End, JobState, Phase, Record
from engine._core.verdict import (
    Verdict,
    classify,
    classify_reply,
    error_code,
    error_fields,
    status_error,
)
from engine._core.wire import read_values
from engine._errors import RemoteError
from statemachines import Outcome, Request, Spec

__all__ = ["ItemCursor", "Moves", "Step"]


@attrs.frozen(kw_only=True)
class Step:
    """A job's new state and the records that explain how it got there."""

    job: JobState
    records: tuple[Record, ...] = ()
    #: The job this step starts (a success state's ``then``): the driver
    #: creates it with :func:`start_chained`, in the same commit as this step.
    then: Chained | None = None


class ItemCursor:
    """An item's state while the item machine moves it (items are kept as strings)."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


class Moves:
    """The working state of one step, and the moves every phase shares.

    A job copy being changed and its records; how a reply is classified;
    applying an observed state; scheduling, retrying, failing, timing out
    and completing. ``reading.Stepper`` adds how each phase's reply is read.
    """

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
        job.page = request_url(b, job, items.request, reply=reply, extra=extra)
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
            job.result_link = request_url(b, job, result.request, reply=reply)
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

    def begin_polling(
        self, got: Reply, body: Any, *, observe: bool, trigger: str
    ) -> None:
        """Start polling a submitted job: read the answer's state, or schedule the first poll.

        The first poll's delay is jittered (jobs submitted together should not
        poll in lockstep) and honours the answer's wait hints.
        """
        if observe:
            self.apply(got, body, trigger=trigger)
        else:
            self.job.due = timing.first_poll(
                self.b.lifecycle,
                got.headers,
                now=self.now,
                scale=self.b.scale,
                deadline=self.job.deadline,
                rng=self.rng,
            )

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
        headers = reply.headers if reply is not None else NO_HEADERS
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
