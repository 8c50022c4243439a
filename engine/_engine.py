"""AsyncEngine: the in-process driver. It owns the loop, the heap and the client; the core decides.

The driver keeps a heap of due times and a bounded number of requests in
flight (globally and per service), not a task per job: a job is a small
record that only gets a worker while one of its requests is in flight. For
each due job it asks the core for the next request, sends it, hands the
reply to the core with the time, and publishes the step the core returns
(``engine._publish``). It holds no decision of its own about what a reply
means, when to poll again, or whether an error is fatal.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Literal,
    Self,
    TypedDict,
    TypeVar,
    overload,
)

from engine._bindings import Bindings, check_filters, check_inputs
from engine._clock import Clock, SystemClock
from engine._core import step as core
from engine._core.state import (
    JobRef,
    JobResult,
    JobStatus,
    Phase,
    Record,
    check_limits,
)
from engine._errors import (
    EngineClosedError,
    InputError,
    WaitTimeout,
)
from engine._holder import Holder
from engine._hooks import HookRegistry
from engine._publish import LeaseLost, Publisher
from engine._remote import Remote, default_client
from engine._scheduler import Live, Scheduler
from engine.stores import JobStore, StoreError, open_store
from statemachines import Spec

if TYPE_CHECKING:
    import httpx

    from engine._core.binding import Binding
    from engine.audit import AuditSink

__all__ = ["AsyncEngine", "EngineOptions", "JobRef", "JobResult"]

logger = logging.getLogger("statepoll.engine")
# A library does not print: without the application's own logging set up,
# records go nowhere (instead of Python's last-resort stderr handler).
logging.getLogger("statepoll").addHandler(logging.NullHandler())

F = TypeVar("F", bound=Callable[..., Any])
#: Jobs written per transaction by track_many.
_BATCH: Final = 1000

_EMPTY: Final[Mapping[str, Any]] = {}


class EngineOptions(TypedDict, total=False):
    """The keyword options of :class:`AsyncEngine` and :class:`Engine` (documented there).

    ``Engine(**options: Unpack[EngineOptions])`` forwards them untouched; a
    test checks that these keys are exactly ``AsyncEngine``'s keyword options.
    """

    client: httpx.AsyncClient | None
    clock: Clock | None
    audit: AuditSink | str | os.PathLike[str] | None
    store: JobStore | str | os.PathLike[str] | None
    base_urls: Mapping[str, str] | None
    env: Mapping[str, str] | None
    max_in_flight: int
    seed: int | None
    max_body: int | None
    time_scale: float | Mapping[str, float]
    retain_finished: int
    retain_for: float
    lease: float
    take_over: bool


class AsyncEngine:
    """Track asynchronous jobs of any spec'd service by polling.

    Usage::

        async with AsyncEngine(base_urls={"mindee": url}) as engine:
            job = await engine.submit("mindee", "inference", model_id=..., file="a.pdf")
            result = await engine.wait(job, timeout=600)

    A finished job's result leaves memory once it has been handed over
    (``wait``, ``as_completed``); results nobody takes are kept for the
    ``retain_finished`` most recent jobs and at most ``retain_for`` seconds.
    A slim record of a finished job (its state) stays within the same bounds.

    Args:
        specs: specs (objects, built-in names or paths) to preload.
        client: an ``httpx.AsyncClient`` to use; the caller keeps ownership.
        clock: the clock (tests inject a fake one); see :class:`Clock`.
        audit: an audit sink, or a path for one (JSON Lines, or SQLite for
            ``.db``/``.sqlite``); owned and closed by the engine when a path.
        store: a job store, or a store URL (a path or ``sqlite:///…`` for
            SQLite, ``postgresql://…``). With a store, every job and step is
            committed there with its audit records (the store's audit table
            is the log; ``audit`` then writes a copy), the engine holds its
            jobs under a lease, and open() takes over every job no live
            driver holds.
        base_urls: service name → base URL (else the spec's ``base_url_env``
            variable, else the spec's ``base_url``).
        env: where credentials are read (default ``os.environ``).
        max_in_flight: requests in flight at once, across services.
        seed: seeds the jitter's random numbers (reproducible schedules).
        max_body: response bodies over this many bytes are refused.
        time_scale: multiplies every duration a spec gives (delays, caps,
            deadlines), for all services or per service name; pairs with the
            simulators' ``--time-scale`` in tests and the demo.
        retain_finished: how many finished jobs' results are kept when nobody
            takes them.
        retain_for: how long (seconds) such a result is kept at most.
        lease: seconds a store lets this engine's jobs be before another
            driver may take them (renewed every third of it while open).
        take_over: with a store, take over every job no live driver holds
            when opened (``False``: drive only the jobs this engine starts).
    """

    def __init__(
        self,
        specs: Iterable[Spec | str] = (),
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        audit: AuditSink | str | os.PathLike[str] | None = None,
        store: JobStore | str | os.PathLike[str] | None = None,
        base_urls: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        max_in_flight: int = 64,
        seed: int | None = None,
        max_body: int | None = None,
        time_scale: float | Mapping[str, float] = 1.0,
        retain_finished: int = 1000,
        retain_for: float = 3600.0,
        lease: float = 30.0,
        take_over: bool = True,
    ) -> None:
        """Configure the engine; nothing runs until it is opened or first used."""
        self._owns_client = client is None
        self._client = client if client is not None else default_client(max_in_flight)
        self._remote = Remote(
            self._client, **({"max_body": max_body} if max_body else {})
        )
        self._clock: Clock = clock or SystemClock()
        self._audit_arg = audit
        self._store_arg = store
        self._audit: AuditSink | None = None
        self._store: JobStore | None = None
        self._holder: Holder | None = None
        self._lease = lease
        self._take_over = take_over
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not security
        #: Every credential read so far: every redactor blanks them all.
        self._secrets: set[str] = set()
        self._hooks = HookRegistry()
        self._publisher = Publisher(audit=None, store=None, hooks=self._hooks)
        self._run = Scheduler(
            clock=self._clock,
            remote=self._remote,
            publisher=self._publisher,
            rng=self._rng,
            max_in_flight=max_in_flight,
            retain=retain_finished,
            retain_for=retain_for,
        )
        self._bind = Bindings(
            specs,
            base_urls=base_urls or {},
            env=env if env is not None else os.environ,
            time_scale=time_scale,
            secrets=self._secrets,
            on_service=lambda spec: self._run.slot(
                spec.name, spec.service.max_in_flight
            ),
        )
        self._run.bind_chained = self._bind.chained
        self._keys = itertools.count(1)
        self._state: Literal["unopened", "opened", "closed"] = "unopened"

    # -- lifecycle of the engine -------------------------------------------------

    async def __aenter__(self) -> Self:
        """Open the engine."""
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        """Close the engine."""
        await self.aclose()

    async def open(self) -> None:
        """Start the scheduler, open sinks and resume stored jobs (idempotent).

        Raises:
            EngineClosedError: if the engine was closed (engines do not reopen).
        """
        if self._state == "opened":
            return
        if self._state == "closed":
            msg = "Cannot open: the engine has been closed; create a new one."
            raise EngineClosedError(msg)
        self._state = "opened"
        if self._audit_arg is not None:
            from engine.audit import open_audit  # noqa: PLC0415 - loaded only when used

            self._audit = (
                open_audit(self._audit_arg, secrets=self._secrets)
                if isinstance(self._audit_arg, (str, os.PathLike))
                else self._audit_arg
            )
        if self._store_arg is not None:
            self._store = (
                open_store(self._store_arg)
                if isinstance(self._store_arg, (str, os.PathLike))
                else self._store_arg
            )
            self._holder = Holder(
                self._store, clock=self._clock, lease=self._lease, bindings=self._bind
            )
            await self._holder.open()
        self._publisher.audit = self._audit
        self._publisher.store = self._store
        self._run.open()
        if self._holder is not None and self._take_over:
            await self._holder.take_over(self._run)

    async def aclose(self) -> None:
        """Stop polling, close what the engine created. Live jobs stay in the store."""
        if self._state == "closed":
            return
        self._state = "closed"
        await self._run.close()
        if self._holder is not None:
            await self._holder.close()
        if self._owns_client:
            await self._client.aclose()
        if self._audit is not None and isinstance(self._audit_arg, (str, os.PathLike)):
            self._audit.close()
        if self._store is not None and isinstance(self._store_arg, (str, os.PathLike)):
            await self._store.close()

    def _check_open(self, action: str) -> None:
        if self._state == "closed":
            msg = f"Cannot {action}: the engine has been closed."
            raise EngineClosedError(msg)

    async def _ensure_open(self, action: str) -> None:
        self._check_open(action)
        if self._state == "unopened":
            await self.open()

    # -- hooks ---------------------------------------------------------------------

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
        """Register a hook for ``event`` (``"*"`` for all); usable as a decorator.

        ``fn`` may be sync or async; it gets the event object. Filters narrow
        it to a service, lifecycle or state. Hooks run in registration order,
        on the engine's event loop, after the step they report is committed.
        """
        if fn is None:

            def decorator(func: F) -> F:
                self._hooks.add(
                    event, func, service=service, lifecycle=lifecycle, state=state
                )
                return func

            return decorator
        self._hooks.add(event, fn, service=service, lifecycle=lifecycle, state=state)
        return fn

    # -- public operations -----------------------------------------------------------

    async def submit(
        self,
        spec: Spec | str,
        lifecycle: str,
        /,
        inputs: Mapping[str, Any] | None = None,
        *,
        item_filters: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        max_attempts: int | None = None,
        **more_inputs: Any,
    ) -> JobRef:
        """Create a job on the service and start tracking it.

        Inputs are the lifecycle's declared inputs (``inputs`` and keyword
        arguments merge); a ``file`` input takes a path, bytes, or a
        ``(filename, content, content_type)`` tuple. Statuses the spec marks
        safe to repeat (``submit.retry_status``, e.g. 429) are retried on the
        spec's schedule; anything else that fails is raised.

        ``deadline`` (seconds after the submit) and ``max_attempts`` (polls)
        are this job's own limits, in place of the spec's ``schedule`` ones
        (times the time scale, as the spec's); inputs of those names go in
        ``inputs``.

        Raises:
            InputError: a missing, unknown or ill-typed input, or a limit
                that is not positive.
            CredentialError: the spec's credential variable is unset.
            RemoteError: the service refused the submission.
        """
        await self._ensure_open("submit")
        live, step = await self._submit(
            spec,
            lifecycle,
            {**(inputs or {}), **more_inputs},
            item_filters,
            check_limits(deadline, max_attempts),
        )
        self._run.register(live)
        await self._run.commit(live, step)
        return step.job.ref()

    async def enqueue(
        self,
        spec: Spec | str,
        lifecycle: str,
        /,
        inputs: Mapping[str, Any] | None = None,
        *,
        item_filters: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        max_attempts: int | None = None,
        **more_inputs: Any,
    ) -> JobRef:
        """Create a job on the service and leave it in the store for any driver to track.

        The submit is sent (crash-safe, as :meth:`submit`), its job id and
        first state committed to the store, and the job let go at once: a
        ``Worker`` (or another engine with the same store) drives it from
        there. :meth:`wait` and :meth:`status` work on it from any process
        that opens the store. ``deadline`` and ``max_attempts`` are kept with
        the job: every driver applies them (see :meth:`submit`).

        Raises:
            StoreError: the engine has no store to leave the job in.
            InputError: a missing, unknown or ill-typed input, or a limit
                that is not positive.
            CredentialError: the spec's credential variable is unset.
            RemoteError: the service refused the submission.
        """
        await self._ensure_open("enqueue")
        if self._store is None:
            msg = "enqueue needs a store: create the engine with store=…"
            raise StoreError(msg)
        live, step = await self._submit(
            spec,
            lifecycle,
            {**(inputs or {}), **more_inputs},
            item_filters,
            check_limits(deadline, max_attempts),
        )
        lease = await self._publisher.persist(
            live.b,
            step.job,
            step.records,
            live.lease,
            hold=False,
            now=self._clock.now(),
        )
        del lease  # let go: the job is the workers' now
        await self._publisher.announce(live.b, step.job, step.records)
        return step.job.ref()

    async def _submit(
        self,
        spec: Spec | str,
        lifecycle: str,
        given: Mapping[str, Any],
        item_filters: Mapping[str, Any] | None,
        limits: tuple[float | None, int | None],
    ) -> tuple[Live, core.Step]:
        """Send a submission (retried as the spec allows) and return its first step.

        With a store, the intent (the job's key and client reference) is
        committed before the request is sent: a crash while it is on the wire
        leaves a record to resolve (the spec's lookup), never a lost job.
        """
        b = self._bind.binding(spec, lifecycle)
        submit = b.lifecycle.submit
        if submit is None:
            msg = f"{b.name} has no submit; use track() with an existing id"
            raise InputError(msg)
        values = check_inputs(b, given, for_submit=True)
        check_filters(b, item_filters)
        now = self._clock.now()
        job = core.new_submission(
            b,
            key=self._new_key(),
            inputs=values,
            filters=item_filters,
            now=now,
            # Used when the spec sends a reference the caller did not give.
            client_ref=f"sp{uuid.uuid4().hex[:22]}" if submit.client_ref else None,
            deadline_after=limits[0],
            max_attempts=limits[1],
        )
        live = Live(b, job)
        if self._store is not None:
            intent = Record(kind="intent", detail={"client_ref": job.client_ref})
            live.lease = await self._publisher.add(b, job, [intent], hold=True, now=now)
        while True:
            out = core.submit_request(b, job, values)
            got = await self._run.send(b, out, job)
            step = core.on_reply(b, job, got, now=self._clock.now(), rng=self._rng)
            job = step.job
            if job.phase is not Phase.SUBMIT:
                break
            # A retry the spec allows (a 429): written, logged, announced.
            live.lease = await self._publisher.persist(
                b, job, step.records, live.lease, hold=True, now=self._clock.now()
            )
            await self._publisher.announce(b, job, step.records)
            await self._clock.sleep_until(job.due)
        if not job.job_id:
            live.lease = await self._publisher.persist(
                b, job, step.records, live.lease, hold=False, now=self._clock.now()
            )
            await self._publisher.announce(b, job, step.records)
            error = job.job_error()
            assert error is not None  # noqa: S101 - a submission without an id has failed
            raise error
        if live.lease is None:
            # No store: the job's first write is this step.
            live.lease = await self._publisher.add(
                b, job, (), hold=True, now=self._clock.now()
            )
        live.job = job
        return live, step

    async def track(
        self,
        spec: Spec | str,
        lifecycle: str,
        job_id: str,
        /,
        inputs: Mapping[str, Any] | None = None,
        *,
        item_filters: Mapping[str, Any] | None = None,
        state: str | None = None,
        drive: bool = True,
        deadline: float | None = None,
        max_attempts: int | None = None,
        **more_inputs: Any,
    ) -> JobRef:
        """Adopt an existing job by id and start tracking it.

        ``state`` is the state the job is believed to be in (default: initial).
        With ``drive=False`` the job is written to the store and let go at
        once, for a :class:`Worker` to drive (as :meth:`enqueue` does).
        ``deadline`` (seconds from now) and ``max_attempts`` are this job's
        own limits (see :meth:`submit`).

        Raises:
            InputError: a missing or unknown input, an undeclared state, or a
                limit that is not positive.
            CredentialError: the spec's credential variable is unset.
            StoreError: ``drive=False`` on an engine without a store.
        """
        if not drive:
            (ref,) = await self.track_many(
                spec,
                lifecycle,
                (job_id,),
                inputs,
                item_filters=item_filters,
                state=state,
                drive=False,
                deadline=deadline,
                max_attempts=max_attempts,
                **more_inputs,
            )
            return ref
        await self._ensure_open("track")
        limits = check_limits(deadline, max_attempts)
        b = self._bind.binding(spec, lifecycle)
        values = check_inputs(b, {**(inputs or {}), **more_inputs}, for_submit=False)
        check_filters(b, item_filters)
        step = core.adopt(
            b,
            key=self._new_key(),
            job_id=str(job_id),
            inputs=values,
            filters=item_filters,
            state=state,
            now=self._clock.now(),
            rng=self._rng,
            deadline_after=limits[0],
            max_attempts=limits[1],
        )
        await self._run.begin(Live(b, step.job), step)
        return step.job.ref()

    async def track_many(
        self,
        spec: Spec | str,
        lifecycle: str,
        job_ids: Iterable[str],
        /,
        inputs: Mapping[str, Any] | None = None,
        *,
        item_filters: Mapping[str, Any] | None = None,
        state: str | None = None,
        drive: bool = True,
        deadline: float | None = None,
        max_attempts: int | None = None,
        **more_inputs: Any,
    ) -> list[JobRef]:
        """Adopt many existing jobs at once, all with the same inputs and limits.

        With a store, the jobs are written in batches of a thousand, one
        transaction each (a million ids take minutes, not hours). With
        ``drive=False`` they are let go as they are written, for workers to
        drive: this engine holds none of them (a million cost rows, not
        memory here). ``deadline`` and ``max_attempts`` are each job's own
        limits (see :meth:`submit`).

        Raises:
            InputError: a missing or unknown input, an undeclared state, or a
                limit that is not positive.
            CredentialError: the spec's credential variable is unset.
            StoreError: ``drive=False`` on an engine without a store.
        """
        await self._ensure_open("track")
        if not drive and self._store is None:
            msg = (
                "track(drive=False) hands jobs to workers through a store: "
                "create the engine with store=…"
            )
            raise StoreError(msg)
        limits = check_limits(deadline, max_attempts)
        b = self._bind.binding(spec, lifecycle)
        values = check_inputs(b, {**(inputs or {}), **more_inputs}, for_submit=False)
        check_filters(b, item_filters)
        refs: list[JobRef] = []
        batch: list[core.Step] = []
        for job_id in job_ids:
            batch.append(
                core.adopt(
                    b,
                    key=self._new_key(),
                    job_id=str(job_id),
                    inputs=values,
                    filters=item_filters,
                    state=state,
                    now=self._clock.now(),
                    rng=self._rng,
                    deadline_after=limits[0],
                    max_attempts=limits[1],
                )
            )
            if len(batch) >= _BATCH:
                await self._adopt(b, batch, drive=drive)
                refs.extend(step.job.ref() for step in batch)
                batch = []
        if batch:
            await self._adopt(b, batch, drive=drive)
            refs.extend(step.job.ref() for step in batch)
        return refs

    async def _adopt(self, b: Binding, steps: list[core.Step], *, drive: bool) -> None:
        if drive:
            await self._run.begin_many(b, steps)
            return
        pairs = [(step.job, step.records) for step in steps]
        await self._publisher.add_many(b, pairs, hold=False, now=self._clock.now())
        for step in steps:
            await self._publisher.announce(b, step.job, step.records)

    async def wait(self, job: JobRef, *, timeout: float | None = None) -> JobResult:
        """Wait until ``job`` ends and return how it ended.

        A terminal state of any outcome returns a :class:`JobResult` (see
        ``raise_for_outcome``). ``timeout`` bounds this wait only: when it
        expires, :class:`WaitTimeout` is raised and the job goes on by its
        spec (wait again, :meth:`cancel` or :meth:`forget` it). Once
        returned, the result is the caller's: the engine keeps no copy.

        When the job starts another (a success state's ``then``), the wait
        goes on to the last job of the chain and returns its result: its
        ``chain`` names every job, the first one first. ``timeout`` bounds
        the whole wait.

        Raises:
            WaitTimeout: ``timeout`` expired first; the job is still running.
            JobTimedOut: the spec's deadline or attempts ran out.
            RemoteError: the job ended with a classified remote error.
        """
        loop = asyncio.get_running_loop()
        until = None if timeout is None else loop.time() + timeout
        live = self._run.jobs.get(job.key)
        if live is None and self._holder is not None:
            result, following = await self._wait_stored(job, timeout)
        else:
            result, following = await self._wait_live(self._run.live(job), timeout)
        while following is not None:
            left = None if until is None else max(0.0, until - loop.time())
            result, following = await self._wait_next(following, left)
        if result.error is not None:
            raise result.error
        return result

    async def _wait_next(
        self, key: str, timeout: float | None
    ) -> tuple[JobResult, str | None]:
        """Wait for the next job of a chain, by its key (held here, or in the store)."""
        live = self._run.jobs.get(key)
        if live is not None:
            return await self._wait_live(live, timeout)
        if self._holder is not None:
            state = await self._holder.stored(key)
            if state is not None:
                return await self._wait_stored(state.ref(), timeout)
        msg = f"the next job of a chain ({key}) is neither held here nor stored"
        raise KeyError(msg)

    async def _wait_live(
        self, live: Live, timeout: float | None
    ) -> tuple[JobResult, str | None]:
        """Wait for a job held here; return its result and the key of the job it started."""
        job = live.job.ref()
        if live.handed:
            msg = f"{live.b.name} job {job.job_id}: its result was handed over already"
            raise KeyError(msg)
        if live.result is None:
            waiter = self._run.waiter(live)
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(waiter)
            except LeaseLost:
                # Another driver took the job over: it reports through the store.
                return await self._wait_stored(job, timeout)
            except TimeoutError:
                if live.result is None:
                    state = live.job.state
                    msg = (
                        f"{live.b.name} job {live.job.job_id} still in {state} "
                        f"after wait(timeout={timeout}); it goes on"
                    )
                    raise WaitTimeout(msg, job=job, state=state) from None
        result = live.result
        assert result is not None  # noqa: S101 - set when the job ended
        following = live.job.next_key
        self._run.release(live)
        return result, following

    async def _wait_stored(
        self, job: JobRef, timeout: float | None
    ) -> tuple[JobResult, str | None]:
        """Wait for a job another driver drives, reading the store until it ends."""
        holder = self._holder
        assert holder is not None  # noqa: S101 - callers checked
        last = "?"
        try:
            async with asyncio.timeout(timeout):
                while True:
                    state = await holder.stored(job.key)
                    if state is None:
                        msg = f"unknown job {job.job_id} ({job.key}): not in {holder.store.url}"
                        raise KeyError(msg)
                    last = state.state
                    if state.done:
                        return holder.result_of(state), state.next_key
                    await holder.store.wait_changed(1.0)
        except TimeoutError:
            msg = (
                f"{job.service}/{job.lifecycle} job {job.job_id} still in "
                f"{last} after wait(timeout={timeout}); it goes on"
            )
            raise WaitTimeout(msg, job=job, state=last) from None

    async def status(self, job: JobRef) -> JobStatus:
        """Return where ``job`` is now: held here, or (with a store) as last committed.

        Raises:
            KeyError: the job is neither held here nor in the store.
        """
        live = self._run.jobs.get(job.key)
        if live is not None and live.job.job_id == job.job_id:
            return live.job.where()
        if self._holder is not None:
            state = await self._holder.stored(job.key)
            if state is not None:
                return state.where()
        msg = f"unknown job {job.service}/{job.lifecycle} {job.job_id} ({job.key})"
        raise KeyError(msg)

    async def as_completed(
        self, jobs: Iterable[JobRef] | None = None, *, timeout: float | None = None
    ) -> AsyncGenerator[JobResult, None]:
        """Yield each job's result as it ends (errors as results with ``error`` set).

        Raises:
            TimeoutError: if ``timeout`` expires first (jobs keep going).
        """
        records = (
            [self._run.live(j) for j in jobs]
            if jobs is not None
            else list(self._run.jobs.values())
        )
        pending: dict[asyncio.Future[JobResult], Live] = {}
        for live in records:
            if live.handed:
                continue
            result = live.result
            if result is not None:
                self._run.release(live)
                yield result
            else:
                pending[self._run.waiter(live)] = live
        async with asyncio.timeout(timeout):
            while pending:
                done, _ = await asyncio.wait(
                    pending, return_when=asyncio.FIRST_COMPLETED
                )
                for future in done:
                    self._run.release(pending.pop(future))
                    yield future.result()

    async def cancel(self, job: JobRef) -> bool:
        """Ask the service to cancel ``job``; return whether it accepted.

        The job keeps being polled through the states the spec's cancel leads
        to (Azure: Cancelling → Cancelled). ``False`` means the service said it
        was too late (a ``refused_status``) or the job had already ended.

        Raises:
            CancelError: the lifecycle cannot cancel, or not from this state.
        """
        await self._ensure_open("cancel")
        live = self._run.live(job)
        if live.job.done:
            return False
        if live.cancel_waiter is None:
            due = core.request_cancel(live.b, live.job, now=self._clock.now())
            if due is None:
                return False
            live.cancel_waiter = asyncio.get_running_loop().create_future()
            if live.in_flight:
                # Sent once the request on the wire is answered (see _step).
                live.cancel_pending = True
            else:
                live.job = due
                self._run.schedule(live)
        return await asyncio.shield(live.cancel_waiter)

    async def forget(self, job: JobRef) -> None:
        """Stop tracking ``job``: no more requests, and it leaves the store.

        The service is not told (use :meth:`cancel` for that). Waiters get
        :class:`JobTimedOut` with the reason ``forgotten``.
        """
        live = self._run.live(job)
        if live.job.done:
            return
        step = core.forget(live.b, live.job, now=self._clock.now())
        # A request on the wire is given up: its step sees that the job it
        # was sent for is not the current one any more, and frees its slot.
        live.job = step.job
        self._run.abandon(live)
        await self._run.commit(live, step)

    def state_of(self, job: JobRef) -> str:
        """Return the job's current state."""
        return self._run.live(job).job.state

    def jobs(self) -> list[JobRef]:
        """Return every job the engine holds: live ones, and finished ones still retained."""
        # list() copies the values in one step under the GIL: the blocking
        # twin reads this from its caller's thread while the loop runs.
        return [live.job.ref() for live in list(self._run.jobs.values())]

    # -- specs, bindings, keys ------------------------------------------------------

    def _new_key(self) -> str:
        if self._store is not None:
            # Unique across every process sharing the store.
            return f"j{uuid.uuid4().hex[:16]}"
        key = f"j{next(self._keys)}"
        while key in self._run.jobs:
            key = f"j{next(self._keys)}"
        return key

    # -- publishing a step -------------------------------------------------------------
