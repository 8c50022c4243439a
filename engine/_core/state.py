"""What a job is, as plain data: its state, the step it is at, and how it ended.

:class:`JobState` is the store's snapshot and what a restarted driver resumes
from: every field is JSON (``to_json``/``from_json``), times are seconds on the
driver's clock (epoch-anchored, see ``engine.SystemClock``), and nothing in it
is a secret: credentials live in the binding, and only the inputs that later
requests need are kept after the submit (an Azure batch's source and target
URLs, SAS signatures included, are sent once and never stored).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

from engine._errors import (
    InputError,
    JobError,
    JobFailed,
    JobTimedOut,
    RemoteError,
    RemoteKind,
)
from statemachines import Outcome

__all__ = [
    "End",
    "JobRef",
    "JobResult",
    "JobState",
    "JobStatus",
    "Phase",
    "Record",
    "check_limits",
]


class Phase(enum.StrEnum):
    """What a job's next request is (or that it has none).

    This is the second machine every job runs, made explicit: the lifecycle
    says which state the remote job is in; the phase says what the engine
    does next about it.
    """

    #: Started by the job before it in a chain (``then``): its submit is not
    #: sent yet; its intent is committed first, as the phase moves on to ``submit``.
    START = "start"
    #: The submit request is about to be sent or on the wire (its intent is stored).
    SUBMIT = "submit"
    #: Finding a submission again by its client reference, after a crash.
    LOOKUP = "lookup"
    #: Polling the job's state.
    POLL = "poll"
    #: Reading the pages of the job's items (after a poll, or at the end).
    ITEMS = "items"
    #: Fetching the result of a job in a terminal state.
    RESULT = "result"
    #: Sending the cancel request the caller asked for.
    CANCEL = "cancel"
    #: Ended: nothing more is sent.
    DONE = "done"


class End(enum.StrEnum):
    """How a job ended (``JobState.end``)."""

    #: A terminal state of the lifecycle (any outcome).
    COMPLETED = "completed"
    #: The spec's deadline or attempts ran out.
    TIMED_OUT = "timed_out"
    #: A fatal error, or transient ones past the retry budget.
    ERRORED = "errored"
    #: The caller asked the engine to stop tracking it.
    FORGOTTEN = "forgotten"


@attrs.frozen
class JobRef:
    """A handle on a job: what ``submit``/``track`` return and the other calls take."""

    key: str
    service: str
    lifecycle: str
    job_id: str


@attrs.frozen(kw_only=True)
class JobResult:
    """How a job ended.

    ``response`` is the final poll response body, ``result`` the fetched result
    (the final response body when the spec fetches none); neither is ``None``
    for a job that reached a terminal state with a body. In a chain of
    lifecycles (``then``), ``chained_from`` names the jobs that led to this
    one, the first one first, and ``chain`` is every job of it, this one last.
    """

    job: JobRef
    state: str
    outcome: Outcome | None
    status: int | None = None
    response: Any = None
    result: Any = None
    attempts: int = 0
    items: Mapping[str, str] = attrs.field(factory=dict)
    error: JobError | None = None
    chained_from: tuple[JobRef, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the job ended in a success state."""
        return self.outcome is Outcome.SUCCESS

    @property
    def chain(self) -> tuple[JobRef, ...]:
        """Every job of the chain that ended here, the first one first (or this one alone)."""
        return (*self.chained_from, self.job)

    def raise_for_outcome(self) -> JobResult:
        """Return self on success; raise the job's error or ``JobFailed`` otherwise."""
        if self.error is not None:
            raise self.error
        if self.outcome is not Outcome.SUCCESS:
            outcome = self.outcome.value if self.outcome else "none"
            job = self.job
            msg = f"{job.service}/{job.lifecycle} job {job.job_id} ended {self.state} ({outcome})"
            raise JobFailed(msg, outcome=outcome, job=self.job, last_state=self.state)
        return self


@attrs.frozen(kw_only=True)
class JobStatus:
    """Where a job is now: its state, what is sent next and when, and how it ended.

    ``phase`` is ``start`` (a chained job not sent yet), ``submit``,
    ``lookup``, ``poll``, ``items``, ``result``,
    ``cancel`` or ``done``; ``ended`` is ``None`` while the job is live, else
    ``completed``, ``timed_out``, ``errored`` or ``forgotten``. ``progress``
    is the last fraction done (0..1) the service reported, where the spec
    reads one (``poll.progress``).
    """

    job: JobRef
    state: str
    phase: str
    ended: str | None
    polls: int
    due: float | None
    error: str | None = None
    progress: float | None = None

    @property
    def done(self) -> bool:
        """Whether the job has ended."""
        return self.ended is not None


@attrs.frozen(kw_only=True)
class Record:
    """One fact a step established: the audit log, hooks and logs are made from these.

    The core says what happened; the publish path decides where it goes (an
    audit record, an event for hooks, a log line) and redacts it on the way.
    ``kind`` is an audit kind (``transition``, ``retrying``, …) or ``polled``
    (an event only, never audited).
    """

    kind: str
    from_state: str | None = None
    to_state: str | None = None
    trigger: str | None = None
    http_status: int | None = None
    observed: Any = None
    detail: Mapping[str, Any] | None = None
    item_id: str | None = None
    item_lifecycle: str | None = None


#: JobState fields stored as they are (scalars); the containers are copied by hand.
_PLAIN: Final = (
    "key",
    "service",
    "lifecycle",
    "spec_hash",
    "spec_source",
    "job_id",
    "state",
    "due",
    "deadline",
    "polls",
    "polls_in_state",
    "failures",
    "poll_link",
    "result_link",
    "page",
    "pages",
    "listed",
    "base_url",
    "client_ref",
    "started",
    "reason",
    "status",
)


@attrs.define(slots=True, kw_only=True, eq=True)
class JobState:
    """A job as the core sees it: JSON-able, free of secrets, owned by one driver at a time.

    The core never changes a state it is given: each step works on a
    :meth:`copy` and returns it. Containers (``links``, ``items``,
    ``inputs``…) are replaced, never mutated in place, so a copy may share them.
    """

    key: str
    service: str
    lifecycle: str
    spec_hash: str
    spec_source: str
    job_id: str
    state: str
    phase: Phase = Phase.POLL
    #: When the next request is due (seconds on the driver's clock).
    due: float = 0.0
    #: When the job gives up (the spec's deadline, or a state's own).
    deadline: float | None = None
    #: Polls answered, in all, and since the job entered its current state.
    polls: int = 0
    polls_in_state: int = 0
    #: Consecutive transient failures (the retry budget counts these).
    failures: int = 0
    #: Values located in the submit response (links to poll, cancel, list…), by locator.
    links: Mapping[str, str] | None = None
    #: The next poll's URL, when the spec takes it from each poll's response.
    poll_link: str | None = None
    #: Where the result is, located when the job reached its terminal state.
    result_link: str | None = None
    #: Item id → item state (an Azure batch's documents).
    items: Mapping[str, str] | None = None
    #: While listing items: the next page's URL, pages and entries read so far.
    page: str | None = None
    pages: int = 0
    listed: int = 0
    #: The inputs later requests need (never the submit body's).
    inputs: Mapping[str, Any] = attrs.field(factory=dict)
    filters: Mapping[str, Any] | None = None
    base_url: str = ""
    #: The caller's or the engine's reference for the submission (idempotency).
    client_ref: str | None = None
    started: float = 0.0
    #: How the job ended (``None`` while live), why, and the last HTTP status.
    end: End | None = None
    reason: str | None = None
    status: int | None = None
    #: A classified error: kind, status, code, message (all redacted).
    error: Mapping[str, Any] | None = None
    #: The final poll body and the fetched result (kept until handed over).
    response: Any = None
    result: Any = None
    #: Values read from responses (the spec's ``values``) that later requests
    #: use, by name; like inputs, only those are kept.
    values: Mapping[str, Any] | None = None
    #: Conditional polling: the headers sending the last poll answer's validators
    #: back (``If-None-Match``, ``If-Modified-Since``).
    validators: Mapping[str, str] | None = None
    #: ``304 Not Modified`` answers since the job entered its state: they grow
    #: the backoff like polls, but use no attempt.
    not_modified: int = 0
    #: While listing items whose request body sends ``{cursor}``: the cursor
    #: of the page to ask for next (its URL is ``page``).
    page_cursor: str | None = None
    #: The caller's own limits for this job, in place of the spec's (``None``:
    #: the spec's): seconds after the start, and polls in all.
    deadline_after: float | None = None
    max_attempts: int | None = None
    #: The last fraction done (0..1) the service reported (``poll.progress``).
    progress: float | None = None
    #: A chain of lifecycles (``then``): the jobs that led to this one (the
    #: first one first), the key of the job this one started when it ended,
    #: and, until its submit is answered, a chained job's submit inputs.
    chain: tuple[JobRef, ...] = ()
    next_key: str | None = None
    pending: Mapping[str, Any] | None = None

    @property
    def done(self) -> bool:
        """Whether the job has ended."""
        return self.phase is Phase.DONE

    def ref(self) -> JobRef:
        """Return the caller's handle on this job."""
        return JobRef(self.key, self.service, self.lifecycle, self.job_id)

    def copy(self) -> JobState:
        """Return a shallow copy (containers are shared; steps replace them)."""
        # Slot by slot: attrs.evolve runs __init__ with every field by name,
        # the largest cost of a plain poll's step after the HTTP layer.
        new = object.__new__(JobState)
        for name in _SLOTS:
            object.__setattr__(new, name, getattr(self, name))
        return new

    def to_json(self) -> dict[str, Any]:
        """Return the snapshot as JSON-able data (what stores keep)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _PLAIN}
        data["phase"] = self.phase.value
        data["end"] = self.end.value if self.end is not None else None
        data["links"] = dict(self.links) if self.links is not None else None
        data["items"] = dict(self.items) if self.items is not None else None
        data["inputs"] = dict(self.inputs)
        data["filters"] = dict(self.filters) if self.filters is not None else None
        data["error"] = dict(self.error) if self.error is not None else None
        data["response"] = self.response
        data["result"] = self.result
        data["values"] = dict(self.values) if self.values is not None else None
        data["validators"] = (
            dict(self.validators) if self.validators is not None else None
        )
        data["not_modified"] = self.not_modified
        data["page_cursor"] = self.page_cursor
        data["deadline_after"] = self.deadline_after
        data["max_attempts"] = self.max_attempts
        data["progress"] = self.progress
        data["chain"] = [attrs.astuple(ref) for ref in self.chain]
        data["next_key"] = self.next_key
        data["pending"] = dict(self.pending) if self.pending is not None else None
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobState:
        """Rebuild a state from :meth:`to_json`'s output.

        Snapshots written before a field existed load with its default.

        Raises:
            ValueError: for a snapshot that is not one (missing field, bad phase).
        """
        try:
            fields = {name: data[name] for name in _PLAIN}
            return cls(
                **fields,
                phase=Phase(data["phase"]),
                end=End(data["end"]) if data.get("end") is not None else None,
                links=data.get("links"),
                items=data.get("items"),
                inputs=data.get("inputs") or {},
                filters=data.get("filters"),
                error=data.get("error"),
                response=data.get("response"),
                result=data.get("result"),
                # Snapshots written before these fields existed have none.
                values=data.get("values"),
                validators=data.get("validators"),
                not_modified=int(data.get("not_modified") or 0),
                page_cursor=data.get("page_cursor"),
                deadline_after=data.get("deadline_after"),
                max_attempts=data.get("max_attempts"),
                progress=data.get("progress"),
                chain=tuple(JobRef(*ref) for ref in data.get("chain") or ()),
                next_key=data.get("next_key"),
                pending=data.get("pending"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            # ValueError: a phase or an end the core does not know.
            msg = f"not a job snapshot: {exc!r}"
            raise ValueError(msg) from exc

    def where(self) -> JobStatus:
        """Return where this job is, for callers (no bodies, nothing secret)."""
        return JobStatus(
            job=self.ref(),
            state=self.state,
            phase=self.phase.value,
            ended=self.end.value if self.end is not None else None,
            polls=self.polls,
            due=None if self.done else self.due,
            error=None if self.error is None else str(self.error.get("message")),
            progress=self.progress,
        )

    def to_result(self, outcome: Outcome | None) -> JobResult:
        """Return how this (ended) job ended, for callers and hooks.

        ``outcome`` is the lifecycle's outcome of the job's state (the
        state itself does not know its lifecycle).
        """
        return JobResult(
            job=self.ref(),
            state=self.state,
            outcome=outcome if self.end is End.COMPLETED else None,
            status=self.status,
            response=self.response,
            result=self.result if self.end is End.COMPLETED else None,
            attempts=self.polls,
            items=dict(self.items or {}),
            error=self.job_error(),
            chained_from=self.chain,
        )

    def job_error(self) -> JobError | None:
        """Return the error a caller gets for a job that ended without completing."""
        if self.end in (None, End.COMPLETED):
            return None
        where = f"{self.service}/{self.lifecycle} job {self.job_id}"
        if self.end is not End.ERRORED:
            msg = f"{where} timed out in state {self.state}: {self.reason}"
            return JobTimedOut(msg, job=self.ref(), last_state=self.state)
        error = self.error or {}
        kind: RemoteKind = error.get("kind", "protocol")
        return RemoteError(
            str(error.get("message") or self.reason or "error"),
            kind=kind,
            status=error.get("status"),
            code=error.get("code"),
            remote_message=error.get("remote_message"),
            job=self.ref(),
            last_state=self.state,
            retryable=bool(error.get("retryable", False)),
        )


def check_limits(
    deadline: object, max_attempts: object
) -> tuple[float | None, int | None]:
    """Return a caller's own deadline and attempts for a job, once checked.

    A deadline is a positive, finite number of seconds; attempts a whole
    number of at least 1 (a bool is neither). ``None`` keeps the spec's.
    Typed ``object``: the values come from callers, unchecked.

    Raises:
        InputError: naming the bad value.
    """
    seconds: float | None = None
    if deadline is not None:
        if (
            not isinstance(deadline, (int, float))
            or isinstance(deadline, bool)
            or not math.isfinite(deadline)
            or deadline <= 0
        ):
            msg = f"deadline must be a positive, finite number of seconds, not {deadline!r}"
            raise InputError(msg)
        seconds = float(deadline)
    attempts: int | None = None
    if max_attempts is not None:
        if (
            not isinstance(max_attempts, int)
            or isinstance(max_attempts, bool)
            or max_attempts < 1
        ):
            msg = f"max_attempts must be a whole number of at least 1, not {max_attempts!r}"
            raise InputError(msg)
        attempts = max_attempts
    return seconds, attempts


#: Every field of a job state, in order (what ``JobState.copy`` carries over).
_SLOTS: Final = tuple(field.name for field in attrs.fields(JobState))
