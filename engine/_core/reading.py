"""What a reply means, phase by phase: submit, poll, items, result, cancel, lookup.

:func:`on_reply` hands a reply (or the classified error that replaced it) to
the ``Stepper`` reader of the job's phase; the moves they share (applying a
state, retrying, failing, completing) are ``moves.Moves``'s.
"""

from __future__ import annotations

import random
from typing import Any, Final

from engine._core.advance import advance
from engine._core.binding import Binding
from engine._core.moves import ItemCursor, Moves, Step
from engine._core.observe import Observation, observe
from engine._core.outgoing import validators
from engine._core.paging import next_cursor, next_page
from engine._core.reply import NO_HEADERS, Reply, where
from engine._core.state import JobState, Phase, Record
from engine._core.verdict import classify_reply, status_error
from engine._core.wire import locate, read_values, submit_links
from engine._errors import RemoteError
from statemachines import MISSING, resolve_pointer

__all__ = ["Stepper", "on_reply"]

_NOT_MODIFIED: Final = 304

#: The Stepper method that reads the reply of each phase's request.
_READERS: Final = {
    Phase.SUBMIT: "submitted",
    Phase.POLL: "polled",
    Phase.ITEMS: "paged",
    Phase.RESULT: "fetched",
    Phase.CANCEL: "cancelled",
    Phase.LOOKUP: "looked_up",
}


class Stepper(Moves):
    """A step's working state, with a reader for each phase's reply."""

    __slots__ = ()

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
        self.begin_polling(got, body, observe=submit.observe, trigger="submit")

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
            NO_HEADERS,
            entry,
            default_policy=lifecycle.policy.unknown_state,
        )
        cursor = ItemCursor(states.get(item_id, item.initial))
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
        # Found again after a crash: polling starts as after the submit.
        self.begin_polling(got, body, observe=lookup.observe, trigger="lookup")


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
    stepper = Stepper(b, job.copy(), now, rng)
    read = getattr(stepper, _READERS[job.phase])
    try:
        read(got)
    except RemoteError as exc:
        # Building a follow-up request failed (a template the job cannot fill,
        # a link to nowhere): retrying cannot help.
        stepper.fail(exc, got if isinstance(got, Reply) else None)
    return stepper.step()
