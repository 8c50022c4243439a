"""Worker: drives the due jobs of a store, in one of many processes on many machines.

Idle jobs live in the store, not in a worker's memory. A worker claims the
due ones in batches (under its owner's lease; each claim bumps the job's
fencing token), runs each one's step through the core (a request, the core's
reading of the reply), commits the new state with its audit records, and
lets the job go until its next due time, when any worker may claim it. A
step that is followed at once (the next page of items, the result of a
finished job) stays with the same worker. Hooks run in the worker that
applied the step.

It holds only what it has claimed: a million tracked jobs cost rows in the
database, not memory here. On ``stop()`` (SIGTERM in ``statepoll worker``) it
takes no new job, finishes the requests in flight, commits them, lets every
job go and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

import attrs

from engine._bindings import Bindings
from engine._clock import Clock, SystemClock
from engine._core import step as core
from engine._core.state import JobState, Phase
from engine._errors import RemoteError
from engine._exchange import send
from engine._hooks import HookRegistry
from engine._publish import LeaseLost, Publisher
from engine._remote import Remote, default_client
from engine.stores import JobStore, Lease, StoreError, new_owner, open_store
from statemachines import Spec, StatepollError

if TYPE_CHECKING:
    import httpx

    from engine._core.binding import Binding
    from engine.audit import AuditSink

__all__ = ["Worker"]

logger = logging.getLogger("statepoll.worker")

F = TypeVar("F", bound=Callable[..., Any])

#: A step due this soon after the last one stays with the worker (no release).
_SOON: Final = 0.05
#: A claim that took every due job is followed by the next one no sooner than
#: this: one claim takes the jobs that fell due meanwhile, not one at a time.
_GATHER: Final = 0.02
#: The longest a worker sleeps without looking at the store again.
_IDLE: Final = 1.0
#: A job this worker cannot drive (its spec is not at hand) is left alone this long.
_SHELVE: Final = 60.0


class Worker:
    """Drive every due job of a store until stopped.

    Usage::

        worker = Worker("postgresql://app@db:5432/jobs", concurrency=64)
        await worker.run()          # until worker.stop() (or SIGTERM, in the CLI)

    Args:
        store: a job store, or a store URL (a path or ``sqlite:///…``,
            ``postgresql://…``).
        specs: specs to use besides the built-in ones and those at the
            sources the jobs record (matched by content hash).
        client, clock, env, base_urls, time_scale, seed, max_body: as for
            :class:`AsyncEngine`.
        concurrency: jobs stepped at once (requests in flight), across services;
            each service's own ``max_in_flight`` also holds.
        lease: seconds the store lets this worker's jobs be before another
            worker may take them (renewed every third of it).
        audit: a sink (or a path) that receives a copy of the records.
    """

    def __init__(
        self,
        store: JobStore | str | os.PathLike[str],
        *,
        specs: Iterable[Spec | str] = (),
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        base_urls: Mapping[str, str] | None = None,
        concurrency: int = 32,
        lease: float = 30.0,
        time_scale: float | Mapping[str, float] = 1.0,
        audit: AuditSink | str | os.PathLike[str] | None = None,
        seed: int | None = None,
        max_body: int | None = None,
    ) -> None:
        """Configure the worker; nothing runs until :meth:`run`."""
        self._store_arg = store
        self.store: JobStore = (
            open_store(store) if isinstance(store, (str, os.PathLike)) else store
        )
        self.owner = new_owner()
        self._owns_client = client is None
        self._client = client if client is not None else default_client(concurrency)
        self._remote = Remote(
            self._client, **({"max_body": max_body} if max_body else {})
        )
        self._clock: Clock = clock or SystemClock()
        self._audit_arg = audit
        self._concurrency = concurrency
        self._lease = lease
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not security
        self._secrets: set[str] = set()
        self._hooks = HookRegistry()
        self._publisher = Publisher(audit=None, store=self.store, hooks=self._hooks)
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._bind = Bindings(
            specs,
            base_urls=base_urls or {},
            env=env if env is not None else os.environ,
            time_scale=time_scale,
            secrets=self._secrets,
            on_service=self._limit_service,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._claimed_at = -math.inf
        self._drained = False
        self._stopping = asyncio.Event()
        #: Steps committed, and how late each recently claimed job was
        #: (seconds past due; the last ten thousand).
        self.steps = 0
        self.lateness: deque[float] = deque(maxlen=10_000)

    def _limit_service(self, spec: Spec) -> None:
        self._limits.setdefault(
            spec.name, asyncio.Semaphore(spec.service.max_in_flight)
        )

    # -- hooks --------------------------------------------------------------------------

    @overload
    def on(
        self,
        event: str,
        fn: None = None,
        *,
        service: str | None = None,
        lifecycle: str | None = None,
        state: str | None = None,
    ) -> Callable[[F], F]: ...

    @overload
    def on(
        self,
        event: str,
        fn: F,
        *,
        service: str | None = None,
        lifecycle: str | None = None,
        state: str | None = None,
    ) -> F: ...

    def on(
        self,
        event: str,
        fn: F | None = None,
        *,
        service: str | None = None,
        lifecycle: str | None = None,
        state: str | None = None,
    ) -> F | Callable[[F], F]:
        """Register a hook (see :meth:`AsyncEngine.on`); it runs in this worker."""
        if fn is None:

            def decorator(func: F) -> F:
                self._hooks.add(
                    event, func, service=service, lifecycle=lifecycle, state=state
                )
                return func

            return decorator
        self._hooks.add(event, fn, service=service, lifecycle=lifecycle, state=state)
        return fn

    # -- running ------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Jobs this worker is stepping now."""
        return len(self._tasks)

    def stop(self) -> None:
        """Ask the worker to stop: no new claims; in-flight steps finish and are committed."""
        self._stopping.set()

    async def run(self, *, until_idle: bool = False) -> None:
        """Claim and drive due jobs until :meth:`stop` (or ``until_idle``: until none is left).

        ``until_idle`` returns once the store holds no unfinished job that is
        free or held by this worker (jobs other live drivers hold are theirs).
        """
        if self._audit_arg is not None:
            from engine.audit import open_audit  # noqa: PLC0415 - only with a copy to write

            self._publisher.audit = (
                open_audit(self._audit_arg, secrets=self._secrets)
                if isinstance(self._audit_arg, (str, os.PathLike))
                else self._audit_arg
            )
        await self.store.open(self.owner, lease=self._lease, now=self._clock.now())
        beat = asyncio.get_running_loop().create_task(self._heartbeat())
        try:
            await self._loop(until_idle=until_idle)
        finally:
            self._stopping.set()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await self._close()

    async def _close(self) -> None:
        try:
            await self.store.release()
        except StoreError:
            logger.exception("cannot release jobs held in %s", self.store.url)
        if isinstance(self._store_arg, (str, os.PathLike)):
            await self.store.close()
        if self._owns_client:
            await self._client.aclose()
        audit = self._publisher.audit
        if audit is not None and isinstance(self._audit_arg, (str, os.PathLike)):
            audit.close()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self.store.heartbeat(now=self._clock.now())
            except StoreError:
                logger.exception("cannot renew the lease in %s", self.store.url)

    async def _loop(self, *, until_idle: bool) -> None:
        while not self._stopping.is_set():
            free = self._concurrency - len(self._tasks)
            claimed: list[tuple[JobState, Lease]] = []
            if free > 0:
                now = self._clock.now()
                try:
                    claimed = await self.store.claim(now=now, limit=free)
                except StoreError:
                    logger.exception("cannot claim jobs from %s", self.store.url)
                self._claimed_at = now
                self._drained = len(claimed) < free
                for job, lease in claimed:
                    self.lateness.append(max(0.0, now - job.due))
                    task = asyncio.get_running_loop().create_task(
                        self._drive(job, lease)
                    )
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            if claimed and len(claimed) == free:
                await asyncio.sleep(0)  # more may be due: claim again at once
                continue
            if until_idle and not self._tasks and await self._idle():
                return
            await self._wait()

    async def _idle(self) -> bool:
        """Whether no unfinished job is free now or later (those held elsewhere aside)."""
        try:
            return await self.store.next_due(now=self._clock.now()) is None
        except StoreError:
            logger.exception("cannot read %s", self.store.url)
            return False  # not known to be idle: look again

    async def _wait(self) -> None:
        """Sleep until a step ends, a job falls due, the store changes, or stop() is called."""
        now = self._clock.now()
        try:
            due = await self.store.next_due(now=now)
        except StoreError:
            # A store busy or gone for a moment (SQLite "database is locked"
            # past its timeout): the worker waits and tries again.
            logger.exception("cannot read %s", self.store.url)
            due = now + _IDLE
        delay = _IDLE if due is None else min(_IDLE, max(0.0, due - now))
        if self._drained:
            # The last claim took every due job: gather the next ones.
            delay = max(delay, self._claimed_at + _GATHER - now)
        full = len(self._tasks) >= self._concurrency
        if delay <= 0 and not full:
            await asyncio.sleep(0)
            return
        waiters = [
            asyncio.ensure_future(self.store.wait_changed(delay)),
            asyncio.ensure_future(self._stopping.wait()),
        ]
        if full:
            # A step that ends frees a slot: claim again. With slots free, a
            # step's end changes nothing; the next due time does.
            waiters.extend(self._tasks)
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters[:2]:
                waiter.cancel()
        watch = waiters[0]
        if watch.done() and not watch.cancelled() and watch.exception() is not None:
            logger.error("cannot watch %s: %s", self.store.url, watch.exception())

    # -- one job -------------------------------------------------------------------------

    async def _drive(self, job: JobState, lease: Lease) -> None:
        """Step one claimed job until its next step is not due at once; then let it go."""
        try:
            b = self._bind.for_stored(job)
        except (StatepollError, OSError) as exc:
            logger.error("cannot drive stored job %s: %s", job.key, exc)  # noqa: TRY400 - reported, not raised
            await self._let_go(job, lease, later=_SHELVE)
            return
        limit = self._limits.get(b.spec.name)
        try:
            if job.phase is Phase.SUBMIT:
                # Its submitter died with the request on the wire: resolve it
                # (the spec's lookup), never send it again.
                step = core.resume(b, job, now=self._clock.now())
                job, lease = await self._commit(b, step, lease, hold=True)
            elif job.phase is Phase.START:
                # A chained job: its intent is committed before it is sent.
                step = core.begin_submit(b, job, now=self._clock.now())
                job, lease = await self._commit(b, step, lease, hold=True)
            while not job.done:
                async with limit or contextlib.nullcontext():
                    step = await self._step(b, job)
                soon = not step.job.done and step.job.due <= self._clock.now() + _SOON
                job, lease = await self._commit(b, step, lease, hold=soon)
                if not soon:
                    return
        except LeaseLost:
            logger.warning(
                "%s job %s was taken over by another driver; this worker lets it go",
                job.service,
                job.job_id,
            )
        except (StoreError, RemoteError):
            logger.exception("cannot step %s job %s", job.service, job.job_id)
            await self._let_go(job, lease)

    async def _step(self, b: Binding, job: JobState) -> core.Step:
        try:
            out = core.request_for(b, job)
        except RemoteError as exc:
            return core.abort(b, job, exc, now=self._clock.now())
        got = await send(self._remote, b, out, job, now=self._clock.now())
        try:
            return core.on_reply(b, job, got, now=self._clock.now(), rng=self._rng)
        except Exception as exc:
            # An engine bug must not take other jobs down: end this one loudly.
            logger.exception("internal error on %s job %s", b.name, job.job_id)
            error = RemoteError(
                f"internal error: {type(exc).__name__}",
                kind="protocol",
                retryable=False,
            )
            return core.abort(b, job, error, now=self._clock.now())

    async def _commit(
        self, b: Binding, step: core.Step, lease: Lease, *, hold: bool
    ) -> tuple[JobState, Lease]:
        job = step.job
        now = self._clock.now()
        chained: tuple[Binding, core.Step] | None = None
        if step.then is not None:
            # The next job of a chain is written with this step, free for any
            # worker (this one's loop claims it like any other due job).
            nb = self._bind.chained(b, step.then.spec, step.then.lifecycle)
            new = core.start_chained(nb, job, step.then, now=now)
            moved, _ = await self._publisher.persist_chained(
                b,
                (job, step.records),
                lease,
                (nb, new.job, new.records),
                hold_new=False,
                now=now,
            )
            chained = (nb, new)
        else:
            moved = await self._publisher.persist(
                b, job, step.records, lease, hold=hold, now=now, always=True
            )
        assert moved is not None  # noqa: S101 - a worker always has a store
        self.steps += 1
        result = (
            job.to_result(b.lifecycle.state(job.state).outcome) if job.done else None
        )
        failed = await self._publisher.announce(b, job, step.records, result=result)
        if failed:
            moved = await self._publisher.persist(
                b, job, failed, moved, hold=hold, now=now, always=True
            )
            assert moved is not None  # noqa: S101 - as above
        if chained is not None:
            await self._publisher.announce(
                chained[0], chained[1].job, chained[1].records
            )
        return job, moved

    async def _let_go(self, job: JobState, lease: Lease, *, later: float = 0.0) -> None:
        """Release a job unchanged (due ``later`` s from now: for a driver with its spec)."""
        now = self._clock.now()
        if later:
            job = attrs.evolve(job, due=max(job.due, now + later))
        with contextlib.suppress(StoreError):
            await self.store.commit(job, (), lease, hold=False, now=now)
