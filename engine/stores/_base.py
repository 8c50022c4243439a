"""What every job store offers: jobs owned by one driver at a time, state and audit in one commit.

A store is the source of truth for live jobs. Drivers (an ``AsyncEngine``
with a store, a ``Worker``) take jobs with a **lease**: each driver is an
*owner* that heartbeats its own row, and a job whose owner's heartbeat has
lapsed is free to claim again. Every claim bumps the job's **fencing
token**; every commit names the token it holds and is refused when the job
was claimed since (a driver paused past its lease cannot write over its
successor). A step's audit records and the job's new state are committed
together or not at all.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from engine._core.state import JobState
from engine.audit import GENESIS, AuditEntry, build_chained_record
from statemachines import StatepollError

__all__ = [
    "AuditChain",
    "JobStore",
    "Lease",
    "StoreError",
    "new_owner",
    "owner_gone",
    "shown_url",
    "SHELVE",
    "compact_json",
    "read_claimed",
    "snapshot_json",
]

logger = logging.getLogger("statepoll.store")

#: A job whose snapshot cannot be read is left alone this long.
SHELVE = 3600.0


class StoreError(StatepollError, ValueError):
    """A store could not be opened or used (not a store, an unsupported URL, a newer schema)."""


@attrs.frozen
class Lease:
    """A driver's hold on one job: the fencing token, and the head of the job's audit chain."""

    key: str
    token: int
    #: Records in the job's audit chain so far, and the hash of the last one.
    jseq: int
    jhead: str


@attrs.define
class AuditChain:
    """One writer's audit chain in a store: its name and last record.

    Every record a writer commits is chained twice: after the writer's own
    last record (``wseq``, ``wprev``: no global lock, several writers append
    at once) and after the job's (the ``Lease``'s ``jseq``, ``jhead``).
    """

    name: str
    wseq: int = 0
    wprev: str = GENESIS

    def chain(
        self,
        entries: Sequence[AuditEntry],
        lease: Lease,
        before: Sequence[dict[str, Any]] = (),
    ) -> tuple[list[dict[str, Any]], Lease]:
        """Chain ``entries`` after this writer's (and ``before``'s) and the job's last records.

        Nothing moves until ``advance``: the records are not committed yet.
        """
        rows = []
        if before:
            wseq, wprev = before[-1]["wseq"], before[-1]["hash"]
        else:
            wseq, wprev = self.wseq, self.wprev
        jseq, jhead = lease.jseq, lease.jhead
        for entry in entries:
            own = entry.kind != "spec"
            record = build_chained_record(
                entry,
                writer=self.name,
                wseq=wseq + 1,
                wprev=wprev,
                job=lease.key if own else None,
                jseq=jseq + 1 if own else None,
                jprev=jhead if own else None,
            )
            rows.append(record)
            wseq, wprev = wseq + 1, record["hash"]
            if own:
                jseq, jhead = jseq + 1, record["hash"]
        return rows, Lease(lease.key, lease.token, jseq, jhead)

    def first(
        self,
        jobs: Sequence[tuple[JobState, Sequence[AuditEntry]]],
        *,
        owner: str | None,
        now: float,
        after: Sequence[dict[str, Any]] = (),
    ) -> tuple[list[Lease], list[dict[str, Any]], list[tuple[Any, ...]]]:
        """Chain new jobs' first records; return their leases, the records and the jobs' rows.

        The records follow ``after`` (records of the same commit, not yet
        written) or else this writer's last. A job's row is ``(key, service,
        lifecycle, job_id, phase, done, due, owner, audit_seq, audit_head,
        snapshot, updated)``; its token is 1.
        """
        leases: list[Lease] = []
        rows: list[dict[str, Any]] = []
        values: list[tuple[Any, ...]] = []
        for job, entries in jobs:
            chained, lease = self.chain(
                entries, Lease(job.key, 1, 0, GENESIS), rows or after
            )
            rows.extend(chained)
            leases.append(lease)
            values.append(
                (
                    job.key,
                    job.service,
                    job.lifecycle,
                    job.job_id,
                    job.phase.value,
                    job.done,
                    job.due,
                    owner,
                    lease.jseq,
                    lease.jhead,
                    snapshot_json(job),
                    now,
                )
            )
        return leases, rows, values

    def advance(self, rows: Sequence[dict[str, Any]]) -> None:
        """Move past ``rows``, once they are committed."""
        if rows:
            self.wseq = rows[-1]["wseq"]
            self.wprev = rows[-1]["hash"]


def read_claimed(key: str, snapshot: str, where: str) -> JobState | None:
    """Return a claimed job's snapshot as a ``JobState``, or ``None`` when it cannot be read.

    Not a snapshot this code can read (written by a newer statepoll, or
    damaged): reported here; the store then shelves the job for ``SHELVE``
    seconds rather than hand it from driver to driver.
    """
    try:
        return JobState.from_json(json.loads(snapshot))
    except ValueError as exc:
        logger.error("job %s in %s cannot be read: %s", key, where, exc)  # noqa: TRY400 - reported, not raised
        return None


def snapshot_json(job: JobState) -> str:
    """Return a job's snapshot as stores keep it: compact JSON."""
    return compact_json(job.to_json())


def compact_json(value: Any) -> str:
    """Return ``value`` as compact JSON (no spaces; non-ASCII kept)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def shown_url(url: str) -> str:
    """Return a store URL as messages show it: without its password, if it has one."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    who, _, where = rest.rpartition("@")
    return f"{scheme}://{who.split(':', 1)[0]}@{where}"


def new_owner() -> str:
    """Return an owner name unique to this process: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_gone(owner: str) -> bool:
    """Whether ``owner`` is a process of this host that no longer runs.

    A driver killed with SIGKILL leaves its lease to run out; on its own
    host a restarted driver can tell at once that it is gone, and need not
    wait. Owners of other hosts, and processes that run (or whose pid was
    reused), are not gone: their leases run their course.
    """
    host, _, rest = owner.partition(":")
    pid, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it runs, as another user
    return False


class JobStore(Protocol):
    """Where jobs live between steps, owned by one driver at a time."""

    #: Where the store is, for messages (never a password).
    url: str

    async def open(self, owner: str, *, lease: float, now: float) -> None:
        """Connect, create or migrate the schema, and register ``owner`` with a lease."""
        ...

    async def close(self) -> None:
        """Release the connection (not the jobs: see :meth:`release`)."""
        ...

    async def heartbeat(self, *, now: float) -> None:
        """Extend the owner's lease to ``now`` plus the lease length."""
        ...

    async def release(self) -> None:
        """Give up every job the owner holds (they become free at their due time)."""
        ...

    async def add(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        *,
        hold: bool,
        now: float,
    ) -> Lease:
        """Insert a new job and its first records; held by the owner when ``hold``."""
        ...

    async def add_many(
        self,
        jobs: Sequence[tuple[JobState, Sequence[AuditEntry]]],
        *,
        hold: bool,
        now: float,
    ) -> list[Lease]:
        """Insert many new jobs and their first records in one transaction (bulk tracking)."""
        ...

    async def commit(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        lease: Lease,
        *,
        hold: bool,
        now: float,
    ) -> Lease | None:
        """Write a step: the job's new state and its records, in one transaction.

        Returns the lease to use next (its audit chain moved on), or ``None``
        when the job was claimed by another driver since ``lease`` was given
        (nothing is written). Without ``hold`` the job is released.
        """
        ...

    async def commit_and_add(
        self,
        job: JobState,
        entries: Sequence[AuditEntry],
        lease: Lease,
        new: tuple[JobState, Sequence[AuditEntry]],
        *,
        hold_new: bool,
        now: float,
    ) -> tuple[Lease, Lease] | None:
        """Write a job's step (it ended: released) and insert the job it starts, in one transaction.

        A chain's next job exists exactly when the step that starts it is
        written: a crash cannot lose it, and a fenced step (``None``: the job
        has another owner) adds nothing. The new job is held by the owner
        when ``hold_new``; returns both leases.
        """
        ...

    async def claim(
        self, *, now: float, limit: int, due_only: bool = True
    ) -> list[tuple[JobState, Lease]]:
        """Take up to ``limit`` free, unfinished jobs (those due by ``now`` when ``due_only``)."""
        ...

    async def get(self, key: str) -> JobState | None:
        """Return the job called ``key`` as last committed, or ``None``."""
        ...

    async def next_due(self, *, now: float) -> float | None:
        """Return the earliest due time of a job free at ``now`` (``None``: there is none)."""
        ...

    async def wait_changed(self, timeout: float) -> None:
        """Return when another driver may have added or advanced a job, or after ``timeout``."""
        ...
