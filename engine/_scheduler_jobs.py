"""The jobs a Scheduler holds: each one's handle (:class:`Live`), and what a written step does.

A step the core returns is written here (a chain's last step with the job it
starts, in one commit) and then acted on: it is announced, waiters and cancel
waiters are settled, a job that ended keeps its result until a caller takes
it or retention evicts it, and a job another driver took over is let go.
The due heap, the in-flight limits and the steps themselves are
``engine._scheduler``'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import attrs

from engine._clock import Clock
from engine._core import step as core
from engine._core.binding import Binding
from engine._core.state import JobRef, JobResult, JobState, Record
from engine._errors import CancelError
from engine._publish import LeaseLost, Publisher
from engine.stores import Lease, StoreError

__all__ = ["Live"]

logger = logging.getLogger("statepoll.engine")

#: A step the store failed to write is tried again this much later.
_STORE_RETRY: Final = 5.0


class Live:
    """The driver's handle on a live job: its state, and what only this process has."""

    __slots__ = (
        "b",
        "cancel_pending",
        "cancel_waiter",
        "generation",
        "handed",
        "in_flight",
        "job",
        "key",
        "lease",
        "poll_link",
        "poll_url",
        "result",
        "sending",
        "waiter",
    )

    def __init__(self, b: Binding, job: JobState, lease: Lease | None = None) -> None:
        self.b = b
        self.job = job
        self.key = job.key
        #: The store's hold on the job (``None`` without a store).
        self.lease = lease
        self.generation = 0
        self.in_flight = False
        self.cancel_pending = False
        self.poll_url: str | None = None
        self.poll_link: str | None = None
        self.result: JobResult | None = None
        #: The result was handed over: only a slim record is left, until evicted.
        self.handed = False
        self.waiter: asyncio.Future[JobResult] | None = None
        self.cancel_waiter: asyncio.Future[bool] | None = None
        #: The task awaiting this job's request on the wire, while it does.
        self.sending: asyncio.Task[Any] | None = None


class _HeldJobs:
    """Hold a scheduler's jobs and act on their written steps (see the module docstring).

    :class:`~engine._scheduler.Scheduler` builds on this class and sets the
    state declared here in its ``__init__``.
    """

    clock: Clock
    publisher: Publisher
    retain: int
    retain_for: float
    jobs: dict[str, Live]
    _finished: deque[tuple[float, str]]
    bind_chained: Callable[[Binding, str, str], Binding] | None
    #: Puts a job on the due heap (``Scheduler.schedule``).
    schedule: Callable[[Live], None]

    def register(self, live: Live) -> None:
        """Hold ``live`` (a new job, or one taken from a store)."""
        self.jobs[live.key] = live

    async def begin(self, live: Live, step: core.Step) -> None:
        """Hold a new job: write it with its first records, announce them, schedule it."""
        job = step.job
        live.lease = await self.publisher.add(
            live.b, job, step.records, hold=True, now=self.clock.now()
        )
        self.register(live)
        await self.after(live, step)

    async def begin_many(self, b: Binding, steps: list[core.Step]) -> None:
        """Hold many new jobs of one binding: one write for all, then announce and schedule."""
        leases = await self.publisher.add_many(
            b,
            [(step.job, step.records) for step in steps],
            hold=True,
            now=self.clock.now(),
        )
        for step, lease in zip(steps, leases, strict=True):
            live = Live(b, step.job, lease)
            self.register(live)
            await self.after(live, step)

    async def commit(self, live: Live, step: core.Step) -> None:
        """Write ``step`` and act on it: resolve waiters, apply a pending cancel, schedule.

        When the store refuses the step (another driver holds the job now),
        the job leaves this driver. When the store fails, the step is not
        applied: the job is tried again a little later.
        """
        job = step.job
        b = live.b
        chained: tuple[Live, core.Step] | None = None
        try:
            if step.then is not None and self.bind_chained is not None:
                chained = await self.commit_chained(live, step, self.bind_chained)
            else:
                live.lease = await self.publisher.persist(
                    b, job, step.records, live.lease, hold=True, now=self.clock.now()
                )
        except LeaseLost:
            self.lost(live)
            return
        except StoreError:
            logger.exception("cannot write %s job %s to its store", b.name, job.job_id)
            live.job = attrs.evolve(live.job, due=self.clock.now() + _STORE_RETRY)
            self.schedule(live)
            return
        if chained is not None:
            # Held before the first job's waiters hear of its end: wait()
            # goes on to the next job of the chain.
            self.register(chained[0])
        await self.after(live, step)
        if chained is not None:
            await self.after(*chained)

    async def commit_chained(
        self, live: Live, step: core.Step, bind: Callable[[Binding, str, str], Binding]
    ) -> tuple[Live, core.Step]:
        """Write a job's last step with the job it starts, in one commit; return the new job."""
        assert step.then is not None  # noqa: S101 - callers checked
        now = self.clock.now()
        nb = bind(live.b, step.then.spec, step.then.lifecycle)
        new = core.start_chained(nb, step.job, step.then, now=now)
        live.lease, lease = await self.publisher.persist_chained(
            live.b,
            (step.job, step.records),
            live.lease,
            (nb, new.job, new.records),
            hold_new=True,
            now=now,
        )
        return Live(nb, new.job, lease), new

    async def after(self, live: Live, step: core.Step) -> None:
        """Act on a written step: announce it, settle waiters, schedule what comes next."""
        job = step.job
        live.job = job
        b = live.b
        result = None
        if job.done:
            result = job.to_result(b.lifecycle.state(job.state).outcome)
        failed = await self.publisher.announce(b, job, step.records, result=result)
        if failed:
            await self.record(live, failed)
        waiter = live.cancel_waiter
        for record in step.records:
            if record.kind == "cancel_requested" and waiter is not None:
                if not waiter.done():
                    waiter.set_result(bool((record.detail or {}).get("accepted")))
                live.cancel_waiter = None
        if result is not None:
            self.ended(live, result)
            return
        if live.cancel_pending and live.job is job:
            live.cancel_pending = False
            try:
                due = core.request_cancel(b, job, now=self.clock.now())
            except CancelError:
                due = None  # the state moved on while the request was out
            if due is None:
                self.settle_cancel(live, accepted=False)
            else:
                live.job = due
        self.schedule(live)

    async def record(self, live: Live, records: list[Record]) -> None:
        """Write records that change nothing in the job (a hook's failure)."""
        try:
            live.lease = await self.publisher.persist(
                live.b, live.job, records, live.lease, hold=True, now=self.clock.now()
            )
        except LeaseLost:
            self.lost(live)
        except StoreError:
            logger.exception("cannot record %s for %s", records[0].kind, live.b.name)

    def lost(self, live: Live) -> None:
        """The job was taken over by another driver (this one lapsed): let it go."""
        logger.warning(
            "%s job %s was taken over by another driver; this one lets it go",
            live.b.name,
            live.job.job_id,
        )
        live.generation += 1
        if self.jobs.get(live.key) is live:
            del self.jobs[live.key]
        # A waiter goes on reading the store (see AsyncEngine.wait).
        if live.waiter is not None and not live.waiter.done():
            live.waiter.set_exception(LeaseLost())
        self.settle_cancel(live, accepted=False)

    def ended(self, live: Live, result: JobResult) -> None:
        live.result = result
        live.generation += 1
        if live.waiter is not None and not live.waiter.done():
            live.waiter.set_result(result)
        self.settle_cancel(live, accepted=False)
        # Kept until a wait() or as_completed() takes it, within the
        # retention bounds. A completed hook does not count as taking it:
        # the CLI's progress hook, for one, runs before its own wait().
        now = self.clock.now()
        self._finished.append((now, live.key))
        self.evict(now)

    def settle_cancel(self, live: Live, *, accepted: bool) -> None:
        waiter = live.cancel_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(accepted)
        live.cancel_waiter = None

    def release(self, live: Live) -> None:
        """Drop what a finished job holds once its result was handed over.

        A slim record stays (its state, for ``state_of``) until retention
        evicts it with the others.
        """
        if live.result is None or live.handed:
            return
        live.handed = True
        live.result = None
        live.job = attrs.evolve(live.job, response=None, result=None, items=None)

    def evict(self, now: float) -> None:
        """Drop the oldest unclaimed results beyond the retention count or age."""
        finished = self._finished
        while finished and (
            len(finished) > self.retain or now - finished[0][0] > self.retain_for
        ):
            _, key = finished.popleft()
            live = self.jobs.get(key)
            if live is not None and live.job.done and live.waiter is None:
                del self.jobs[key]

    # -- lookups -------------------------------------------------------------------------

    def live(self, ref: JobRef) -> Live:
        live = self.jobs.get(ref.key)
        if live is None or live.job.job_id != ref.job_id:
            msg = (
                f"unknown job {ref.service}/{ref.lifecycle} {ref.job_id} ({ref.key}): not "
                "tracked by this engine, or finished and handed over already"
            )
            raise KeyError(msg)
        return live

    def waiter(self, live: Live) -> asyncio.Future[JobResult]:
        if live.waiter is None:
            live.waiter = asyncio.get_running_loop().create_future()
            if live.result is not None:
                live.waiter.set_result(live.result)
        return live.waiter
