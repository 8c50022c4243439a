"""The one publish path: a step's records → redacted audit records → store → log lines → hooks.

Nothing else writes an audit record, commits a job to the store, logs a job's
move or calls a hook. Every value on the way out goes through the binding's
redactor, which knows the live secrets and the spec's sensitive pointers and
query parameters: the audit log, the store, the log lines and the events all
get the redacted copy.

Order matters: the step is committed first (with a store, its records and
the job's new state in one transaction; else the records to the audit
sink), then the log lines, then hooks, which see only what is committed. A
hook's failure is itself recorded, by the driver, as one more commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import attrs

from engine import _events as ev
from engine._core.binding import Binding
from engine._core.state import JobResult, JobState, Record
from engine._hooks import HookRegistry
from engine.audit import AuditEntry, AuditSink, AuditWriteError, spec_entry
from engine.stores import JobStore, Lease

__all__ = ["LeaseLost", "Publisher"]

logger = logging.getLogger("statepoll.engine")

#: Record kinds that are events only, never audited.
_NOT_AUDITED = frozenset({"polled"})


class LeaseLost(Exception):  # noqa: N818 - a signal between the publish path and its driver
    """The job was claimed by another driver since this one took it: the step was not written."""


class Publisher:
    """Publishes steps for one driver (its store, its audit sink and its hooks).

    With a store, a step's audit records and the job's new state are one
    commit; an audit sink given too receives a copy of the records (the
    store's own audit table is the log). Without a store, the sink is the log.
    """

    def __init__(
        self,
        *,
        audit: AuditSink | None,
        store: JobStore | None,
        hooks: HookRegistry,
    ) -> None:
        """Publish to ``store`` and ``audit`` (each optional) and ``hooks``."""
        self.audit = audit
        self.store = store
        self.hooks = hooks
        #: Audit writes that failed (each also logged): the log has a hole.
        self.audit_failures = 0
        #: Specs whose document this publisher wrote into the audit log.
        self._specs_written: set[str] = set()

    async def add(
        self,
        b: Binding,
        job: JobState,
        records: Sequence[Record],
        *,
        hold: bool,
        now: float,
    ) -> Lease | None:
        """Write a new job (an intent, a submission, an adoption) and its first records.

        Returns its lease with a store (``None`` without one).
        """
        entries = self._entries(b, job, records)
        lease = None
        if self.store is not None:
            lease = await self.store.add(_stored(b, job), entries, hold=hold, now=now)
        self._copy(b, job, entries)
        return lease

    async def add_many(
        self,
        b: Binding,
        steps: Sequence[tuple[JobState, Sequence[Record]]],
        *,
        hold: bool,
        now: float,
    ) -> list[Lease | None]:
        """Write many new jobs of one binding with their first records, in one commit."""
        batch = [(job, self._entries(b, job, records)) for job, records in steps]
        leases: list[Lease | None] = [None] * len(batch)
        if self.store is not None:
            stored = [(_stored(b, job), entries) for job, entries in batch]
            leases = list(await self.store.add_many(stored, hold=hold, now=now))
        for job, entries in batch:
            self._copy(b, job, entries)
        return leases

    async def persist(
        self,
        b: Binding,
        job: JobState,
        records: Sequence[Record],
        lease: Lease | None,
        *,
        hold: bool,
        now: float,
        always: bool = False,
    ) -> Lease | None:
        """Write one step: its redacted records and the job's new state, in one commit.

        A step that changed nothing but the due time (a plain poll) is not
        committed unless ``always`` (a store-leased worker commits every
        step: the store holds the due time). Returns the lease to use next.

        Raises:
            LeaseLost: the job was claimed by another driver; nothing was written.
        """
        entries = self._entries(b, job, records)
        if (
            self.store is not None
            and lease is not None
            and (entries or always or job.done)
        ):
            moved = await self.store.commit(
                _stored(b, job), entries, lease, hold=hold and not job.done, now=now
            )
            if moved is None:
                raise LeaseLost
            lease = moved
        self._copy(b, job, entries)
        return lease

    async def persist_chained(
        self,
        b: Binding,
        step: tuple[JobState, Sequence[Record]],
        lease: Lease | None,
        new: tuple[Binding, JobState, Sequence[Record]],
        *,
        hold_new: bool,
        now: float,
    ) -> tuple[Lease | None, Lease | None]:
        """Write a job's last step and the job it starts (a chain), in one commit.

        With a store, both or neither are written (see
        ``JobStore.commit_and_add``); returns both leases.

        Raises:
            LeaseLost: the job was claimed by another driver; nothing was written.
        """
        job, records = step
        nb, new_job, new_records = new
        entries = self._entries(b, job, records)
        new_entries = self._entries(nb, new_job, new_records)
        new_lease: Lease | None = None
        if self.store is not None and lease is not None:
            written = await self.store.commit_and_add(
                _stored(b, job),
                entries,
                lease,
                (new_job, new_entries),
                hold_new=hold_new,
                now=now,
            )
            if written is None:
                raise LeaseLost
            lease, new_lease = written
        self._copy(b, job, entries)
        self._copy(nb, new_job, new_entries)
        return lease, new_lease

    async def announce(
        self,
        b: Binding,
        job: JobState,
        records: Sequence[Record],
        *,
        result: JobResult | None = None,
    ) -> list[Record]:
        """Write the step's log lines and call its hooks; return hook failures to record.

        ``result`` is the job's result when the step ended it (handed to
        ``completed`` hooks). Hook failures come back as ``hook_failed``
        records (already redacted) for the caller to persist.
        """
        wanted = self.hooks.wanted
        failed: list[Record] = []
        for record in records:
            _log(b, job, record)
            if wanted and not wanted.isdisjoint(
                _EVENTS_OF.get(record.kind, (record.kind,))
            ):
                failed.extend(await self._dispatch(b, job, record, result))
        return failed

    def _entries(
        self, b: Binding, job: JobState, records: Sequence[Record]
    ) -> list[AuditEntry]:
        """Return the redacted audit entries of a step (a spec entry first, once per spec)."""
        entries: list[AuditEntry] = []
        for record in records:
            if record.kind in _NOT_AUDITED:
                continue
            spec = b.spec
            if spec.content_hash not in self._specs_written:
                # The spec itself, once per session: verify can then check
                # every move even after the spec file moved, changed or went.
                self._specs_written.add(spec.content_hash)
                entries.append(b.redactor.entry(spec_entry(spec, spec.document)))
            entries.append(b.redactor.entry(self._entry(b, job, record)))
        return entries

    def _copy(self, b: Binding, job: JobState, entries: Sequence[AuditEntry]) -> None:
        """Append ``entries`` to the audit sink, if there is one."""
        if self.audit is None:
            return
        for entry in entries:
            try:
                self.audit.append(entry)
            except (AuditWriteError, OSError):
                # Reported, never silently dropped: the log is the audit
                # trail, so the operator must know it has a hole.
                self.audit_failures += 1
                logger.exception(
                    "audit sink failed to write a %s record for %s/%s job %s",
                    entry.kind,
                    b.spec.name,
                    b.lifecycle.name,
                    job.job_id,
                )

    def _entry(self, b: Binding, job: JobState, record: Record) -> AuditEntry:
        return AuditEntry(
            kind=record.kind,
            service=b.spec.name,
            lifecycle=record.item_lifecycle or b.lifecycle.name,
            job_id=job.job_id,
            spec_hash=b.spec.content_hash,
            spec_source=b.spec.source,
            item_id=record.item_id,
            from_state=record.from_state,
            to_state=record.to_state,
            trigger=record.trigger,
            attempt=job.polls,
            http_status=record.http_status,
            observed=record.observed,
            detail=dict(record.detail or {}),
        )

    async def _dispatch(
        self, b: Binding, job: JobState, record: Record, result: JobResult | None
    ) -> list[Record]:
        redact = b.redactor.redact
        failed: list[Record] = []
        for event in _events(b, job, record, result, redact):
            if event.name not in self.hooks.wanted:
                continue
            for failure in await self.hooks.dispatch(event, b.redactor.text):
                failed.append(
                    Record(
                        kind="hook_failed",
                        detail={
                            "hook": failure.hook,
                            "event": failure.event,
                            "error": failure.error,
                        },
                    )
                )
        return failed


def _stored(b: Binding, job: JobState) -> JobState:
    """Return ``job`` as a store keeps it: bodies redacted by the spec's pointers."""
    if job.response is None and job.result is None:
        return job
    redact = b.redactor.redact
    return attrs.evolve(job, response=redact(job.response), result=redact(job.result))


#: The events a record kind stands for, where it is not just the one of its name.
_EVENTS_OF: dict[str, tuple[str, ...]] = {
    "transition": ("transition", "entered"),
    "unresolved_submission": ("errored",),
}


def _events(
    b: Binding,
    job: JobState,
    record: Record,
    result: JobResult | None,
    redact: Any,
) -> list[ev.Event]:
    """Return the events a record stands for (a transition is also an ``entered``)."""
    own = record.item_id is None
    base: dict[str, Any] = {
        "service": b.spec.name,
        "lifecycle": b.lifecycle.name,
        "job_id": job.job_id,
        "state": (record.to_state or record.from_state or job.state)
        if own
        else job.state,
        "attempt": job.polls,
        "http_status": record.http_status,
        "time": time.time(),
    }
    detail = record.detail or {}
    kind = record.kind
    if kind == "transition":
        dest = record.to_state or job.state
        inferred = record.trigger == "inferred"
        state = b.lifecycle.state(dest)
        return [
            ev.TransitionEvent(
                **base,
                source=record.from_state or "",
                dest=dest,
                trigger=record.trigger or "poll",
                inferred=inferred,
            ),
            ev.Entered(**base, provisional=state.provisional),
        ]
    if kind == "polled":
        base["state"] = job.state
        return [
            ev.Polled(
                **base,
                observed=redact(record.observed),
                changed=bool(detail.get("changed")),
                progress=detail.get("progress"),
            )
        ]
    simple = _SIMPLE.get(kind)
    if simple is None:
        return []
    return [simple(base, record, detail, result, redact)]


def _submitted(base: dict[str, Any], record: Record, *_: Any) -> ev.Event:
    return ev.Submitted(**base, adopted=record.trigger == "track")


def _item(base: dict[str, Any], record: Record, *_: Any) -> ev.Event:
    # ``state`` is the job's (hooks filter by the job's state); the item's is ``dest``.
    return ev.ItemTransition(
        **base,
        item_id=record.item_id or "",
        item_lifecycle=record.item_lifecycle or "",
        source=record.from_state or "",
        dest=record.to_state or "",
        inferred=record.trigger == "inferred",
    )


def _retrying(
    base: dict[str, Any], record: Record, detail: Any, _result: Any, redact: Any
) -> ev.Event:
    del record
    return ev.Retrying(
        **base,
        kind=str(detail.get("kind")),
        error=redact(str(detail.get("error"))),
        delay=float(detail.get("delay") or 0.0),
        failures=int(detail.get("failures") or 0),
        budget=int(detail.get("budget") or 0),
    )


def _illegal(
    base: dict[str, Any], record: Record, detail: Any, _result: Any, redact: Any
) -> ev.Event:
    if record.item_id is None:
        base["state"] = record.from_state or base["state"]
    return ev.IllegalTransition(
        **base,
        dest=record.to_state or "",
        observed=redact(record.observed),
        policy=str(detail.get("policy")),
        item_id=record.item_id,
    )


def _unknown(
    base: dict[str, Any], record: Record, detail: Any, _result: Any, redact: Any
) -> ev.Event:
    return ev.UnknownState(
        **base,
        observed=redact(record.observed),
        policy=str(detail.get("policy")),
        item_id=record.item_id,
    )


def _completed(
    base: dict[str, Any], record: Record, detail: Any, result: Any, _redact: Any
) -> ev.Event:
    del record
    outcome = result.outcome if result is not None else detail.get("outcome")
    return ev.Completed(**base, outcome=outcome, result=result)


def _timed_out(base: dict[str, Any], record: Record, detail: Any, *_: Any) -> ev.Event:
    del record
    return ev.TimedOut(**base, reason=str(detail.get("reason")))


def _errored(
    base: dict[str, Any], record: Record, detail: Any, _result: Any, redact: Any
) -> ev.Event:
    del record
    code = detail.get("code")
    return ev.Errored(
        **base,
        kind=str(detail.get("kind")),
        code=None if code is None else redact(str(code)),
        message=redact(str(detail.get("message") or "")),
    )


_SIMPLE: dict[str, Any] = {
    "submitted": _submitted,
    "item_transition": _item,
    "retrying": _retrying,
    "illegal_transition": _illegal,
    "unknown_state": _unknown,
    "completed": _completed,
    "timed_out": _timed_out,
    "errored": _errored,
    "unresolved_submission": _errored,
}


def _log(b: Binding, job: JobState, record: Record) -> None:
    """Write the log line a record deserves (plain polls and item moves write none)."""
    kind = record.kind
    if kind in ("polled", "item_transition", "submitted", "progress"):
        return
    who = f"{b.spec.name}/{b.lifecycle.name} job {job.job_id}"
    extra = {
        "service": b.spec.name,
        "lifecycle": b.lifecycle.name,
        "job_id": job.job_id,
    }
    detail = record.detail or {}
    text = b.redactor.text
    item = f" item {record.item_id}" if record.item_id else ""
    if kind == "transition":
        inferred = " (inferred)" if record.trigger == "inferred" else ""
        logger.info(
            "%s: %s -> %s%s",
            who,
            record.from_state,
            record.to_state,
            inferred,
            extra=extra,
        )
    elif kind == "retrying":
        logger.info(
            "%s: %s; retry %s/%s in %.3gs",
            who,
            text(str(detail.get("error"))),
            detail.get("failures"),
            detail.get("budget"),
            detail.get("delay") or 0.0,
            extra=extra,
        )
    elif kind in ("illegal_transition", "unknown_state"):
        logger.warning(
            "%s:%s %s %r -> %r (%s)",
            who,
            item,
            kind.replace("_", " "),
            record.from_state,
            text(repr(record.observed))[:200],
            detail.get("policy"),
            extra=extra,
        )
    elif kind == "completed":
        logger.info(
            "%s: completed %s (%s)",
            who,
            record.to_state,
            detail.get("outcome"),
            extra=extra,
        )
    elif kind == "timed_out":
        logger.warning(
            "%s: timed out in %s: %s",
            who,
            record.from_state,
            detail.get("reason"),
            extra=extra,
        )
    elif kind in ("errored", "unresolved_submission"):
        logger.error(
            "%s: %s (%s)",
            who,
            text(str(detail.get("message"))),
            detail.get("kind"),
            extra=extra,
        )
    else:
        logger.info("%s: %s", who, kind.replace("_", " "), extra=extra)
