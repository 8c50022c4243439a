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
import contextlib
import difflib
import itertools
import logging
import math
import os
import random
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from pathlib import Path
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

import attrs

from engine._core import step as core
from engine._core.binding import Binding, bind
from engine._core.state import JobRef, JobResult, JobState, Phase
from engine._errors import (
    CancelError,
    CredentialError,
    EngineClosedError,
    InputError,
    RemoteError,
    WaitTimeout,
)
from engine._exchange import exchange
from engine._hooks import HookRegistry
from engine._publish import Publisher
from engine._remote import Remote, default_client
from engine._scheduler import Clock, DueHeap, SystemClock
from engine.stores import JobStore, open_store
from statemachines import Spec, load_spec

if TYPE_CHECKING:
    import httpx

    from engine.audit import AuditSink

__all__ = ["AsyncEngine", "EngineOptions", "JobRef", "JobResult"]

logger = logging.getLogger("statepoll.engine")
# A library does not print: without the application's own logging set up,
# records go nowhere (instead of Python's last-resort stderr handler).
logging.getLogger("statepoll").addHandler(logging.NullHandler())

F = TypeVar("F", bound=Callable[..., Any])

#: A request of a job whose deadline has passed gets this long (at most, times the
#: service's time scale) to finish: the last look at the deadline needs an answer.
_GRACE: Final = 5.0
_EMPTY: Final[Mapping[str, Any]] = {}


class _Live:
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
        "poll_link",
        "poll_url",
        "result",
        "waiter",
    )

    def __init__(self, b: Binding, job: JobState) -> None:
        self.b = b
        self.job = job
        self.key = job.key
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


class _ServiceSlot:
    """In-flight accounting for one service."""

    __slots__ = ("in_flight", "limit", "waiting")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.waiting: deque[_Live] = deque()


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
        store: a job store, or a path for the SQLite one; when given, open()
            resumes every unfinished job it holds.
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
    ) -> None:
        """Configure the engine; nothing runs until it is opened or first used."""
        self._owns_client = client is None
        self._client = client if client is not None else default_client(max_in_flight)
        self._remote = Remote(
            self._client, **({"max_body": max_body} if max_body else {})
        )
        self._clock: Clock = clock or SystemClock()
        self._audit_arg = audit
        self._audit_path = (
            Path(audit) if isinstance(audit, (str, os.PathLike)) else None
        )
        self._store_arg = store
        self._audit: AuditSink | None = None
        self._store: JobStore | None = None
        self._base_urls = dict(base_urls or {})
        self._env = env if env is not None else os.environ
        self._max_in_flight = max_in_flight
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not security
        self._time_scale = time_scale
        self._retain = retain_finished
        self._retain_for = retain_for
        self._specs: dict[str, Spec] = {}
        for spec in specs:
            self._spec(spec)
        self._bindings: dict[tuple[str, str, str], Binding] = {}
        self._slots: dict[str, _ServiceSlot] = {}
        self._jobs: dict[str, _Live] = {}
        self._finished: deque[tuple[float, str]] = deque()
        self._heap: DueHeap[_Live] = DueHeap(self._jobs)
        self._hooks = HookRegistry()
        self._publisher = Publisher(audit=None, store=None, hooks=self._hooks)
        self._keys = itertools.count(1)
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._driver: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        #: A job scheduled before this wakes the driver (see _drive).
        self._wake_before = math.inf
        self._state: Literal["unopened", "opened", "closed"] = "unopened"
        #: Every credential read so far: every redactor blanks them all.
        self._secrets: set[str] = set()

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
        self._wake = asyncio.Event()
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
        self._publisher.audit = self._audit
        self._publisher.store = self._store
        if self._store is not None:
            from engine._resume import resume_stored  # noqa: PLC0415 - only with a store

            await resume_stored(self, self._store, self._audit_path)
        self._driver = asyncio.get_running_loop().create_task(
            self._drive(), name="statepoll-driver"
        )

    async def aclose(self) -> None:
        """Stop polling, close what the engine created. Live jobs stay in the store."""
        if self._state == "closed":
            return
        self._state = "closed"
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for live in self._jobs.values():
            for future in (live.waiter, live.cancel_waiter):
                if future is not None and not future.done():
                    future.cancel()
        if self._owns_client:
            await self._client.aclose()
        if self._audit is not None and isinstance(self._audit_arg, (str, os.PathLike)):
            self._audit.close()
        if self._store is not None and isinstance(self._store_arg, (str, os.PathLike)):
            self._store.close()

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
        **more_inputs: Any,
    ) -> JobRef:
        """Create a job on the service and start tracking it.

        Inputs are the lifecycle's declared inputs (``inputs`` and keyword
        arguments merge); a ``file`` input takes a path, bytes, or a
        ``(filename, content, content_type)`` tuple. Statuses the spec marks
        safe to repeat (``submit.retry_status``, e.g. 429) are retried on the
        spec's schedule; anything else that fails is raised.

        Raises:
            InputError: a missing, unknown or ill-typed input.
            CredentialError: the spec's credential variable is unset.
            RemoteError: the service refused the submission.
        """
        await self._ensure_open("submit")
        b = self._binding(spec, lifecycle)
        if b.lifecycle.submit is None:
            msg = f"{b.name} has no submit; use track() with an existing id"
            raise InputError(msg)
        values = _inputs(b, {**(inputs or {}), **more_inputs}, for_submit=True)
        _check_filters(b, item_filters)
        job = core.new_submission(
            b,
            key=self._new_key(),
            inputs=values,
            filters=item_filters,
            now=self._clock.now(),
        )
        while True:
            out = core.submit_request(b, job, values)
            got = await self._send(b, out, job)
            step = core.on_reply(b, job, got, now=self._clock.now(), rng=self._rng)
            job = step.job
            if job.phase is not Phase.SUBMIT:
                break
            await self._publisher.publish(
                b, job, step.records
            )  # the retry's event and log
            await self._clock.sleep_until(job.due)
        if not job.job_id:
            await self._publisher.publish(b, job, step.records)
            error = job.job_error()
            assert error is not None  # noqa: S101 - a submission without an id has failed
            raise error
        live = _Live(b, job)
        self._jobs[job.key] = live
        await self._commit(live, step)
        return job.ref()

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
        **more_inputs: Any,
    ) -> JobRef:
        """Adopt an existing job by id and start tracking it.

        ``state`` is the state the job is believed to be in (default: initial).

        Raises:
            InputError: a missing or unknown input, or an undeclared state.
            CredentialError: the spec's credential variable is unset.
        """
        await self._ensure_open("track")
        b = self._binding(spec, lifecycle)
        values = _inputs(b, {**(inputs or {}), **more_inputs}, for_submit=False)
        _check_filters(b, item_filters)
        step = core.adopt(
            b,
            key=self._new_key(),
            job_id=str(job_id),
            inputs=values,
            filters=item_filters,
            state=state,
            now=self._clock.now(),
        )
        live = _Live(b, step.job)
        self._jobs[live.key] = live
        await self._commit(live, step)
        return step.job.ref()

    async def wait(self, job: JobRef, *, timeout: float | None = None) -> JobResult:
        """Wait until ``job`` ends and return how it ended.

        A terminal state of any outcome returns a :class:`JobResult` (see
        ``raise_for_outcome``). ``timeout`` bounds this wait only: when it
        expires, :class:`WaitTimeout` is raised and the job goes on by its
        spec (wait again, :meth:`cancel` or :meth:`forget` it). Once
        returned, the result is the caller's: the engine keeps no copy.

        Raises:
            WaitTimeout: ``timeout`` expired first; the job is still running.
            JobTimedOut: the spec's deadline or attempts ran out.
            RemoteError: the job ended with a classified remote error.
        """
        live = self._live(job)
        if live.handed:
            msg = f"{live.b.name} job {job.job_id}: its result was handed over already"
            raise KeyError(msg)
        if live.result is None:
            waiter = self._waiter(live)
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(waiter)
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
        self._release(live)
        if result.error is not None:
            raise result.error
        return result

    async def as_completed(
        self, jobs: Iterable[JobRef] | None = None, *, timeout: float | None = None
    ) -> AsyncGenerator[JobResult, None]:
        """Yield each job's result as it ends (errors as results with ``error`` set).

        Raises:
            TimeoutError: if ``timeout`` expires first (jobs keep going).
        """
        records = (
            [self._live(j) for j in jobs]
            if jobs is not None
            else list(self._jobs.values())
        )
        pending: dict[asyncio.Future[JobResult], _Live] = {}
        for live in records:
            if live.handed:
                continue
            result = live.result
            if result is not None:
                self._release(live)
                yield result
            else:
                pending[self._waiter(live)] = live
        async with asyncio.timeout(timeout):
            while pending:
                done, _ = await asyncio.wait(
                    pending, return_when=asyncio.FIRST_COMPLETED
                )
                for future in done:
                    self._release(pending.pop(future))
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
        live = self._live(job)
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
                self._schedule(live)
        return await asyncio.shield(live.cancel_waiter)

    async def forget(self, job: JobRef) -> None:
        """Stop tracking ``job``: no more requests, and it leaves the store.

        The service is not told (use :meth:`cancel` for that). Waiters get
        :class:`JobTimedOut` with the reason ``forgotten``.
        """
        live = self._live(job)
        if live.job.done:
            return
        step = core.forget(live.b, live.job, now=self._clock.now())
        # A request on the wire is answered into the void: its step sees that
        # the job it was sent for is not the current one any more.
        live.job = step.job
        await self._commit(live, step)

    def state_of(self, job: JobRef) -> str:
        """Return the job's current state."""
        return self._live(job).job.state

    def jobs(self) -> list[JobRef]:
        """Return every job the engine holds: live ones, and finished ones still retained."""
        # list() copies the values in one step under the GIL: the blocking
        # twin reads this from its caller's thread while the loop runs.
        return [live.job.ref() for live in list(self._jobs.values())]

    # -- specs, bindings, keys ------------------------------------------------------

    def _spec(self, spec: Spec | str) -> Spec:
        if isinstance(spec, Spec):
            self._specs.setdefault(spec.name, spec)
            return spec
        cached = self._specs.get(spec)
        if cached is None:
            cached = load_spec(spec)
            self._specs[spec] = cached
            self._specs.setdefault(cached.name, cached)
        return cached

    def _binding(self, spec: Spec | str, lifecycle: str) -> Binding:
        loaded = self._spec(spec)
        service = loaded.service
        base = self._base_urls.get(service.name)
        if base is None and service.base_url_env:
            base = self._env.get(service.base_url_env) or None
        base = base or service.base_url
        key = (loaded.content_hash or loaded.name, lifecycle, base)
        found = self._bindings.get(key)
        if found is None:
            found = self._bindings[key] = self._bind(loaded, lifecycle, base)
        return found

    def _bind(self, spec: Spec, lifecycle: str, base_url: str) -> Binding:
        service = spec.service
        auth: tuple[str, str] | None = None
        if service.auth is not None:
            value = self._env.get(service.auth.env)
            if value:
                scheme = service.auth.scheme
                auth = (service.auth.header, f"{scheme} {value}" if scheme else value)
                self._secrets.add(value)
                self._secrets.add(auth[1])
            elif service.auth.required:
                raise CredentialError(service.name, service.auth.env)
        scale = self._time_scale
        if not isinstance(scale, (int, float)):
            scale = scale.get(service.name, 1.0)
        if service.name not in self._slots:
            self._slots[service.name] = _ServiceSlot(service.max_in_flight)
        return bind(
            spec,
            lifecycle,
            base_url=base_url,
            scale=float(scale),
            auth=auth,
            secrets=self._secrets,
        )

    def _new_key(self) -> str:
        key = f"j{next(self._keys)}"
        while key in self._jobs:
            key = f"j{next(self._keys)}"
        return key

    # -- publishing a step -------------------------------------------------------------

    async def _commit(self, live: _Live, step: core.Step) -> None:
        """Publish ``step`` and act on it: resolve waiters, apply a pending cancel, schedule."""
        job = step.job
        live.job = job
        b = live.b
        result = None
        if job.done:
            result = job.to_result(b.lifecycle.state(job.state).outcome)
        await self._publisher.publish(b, job, step.records, result=result)
        waiter = live.cancel_waiter
        for record in step.records:
            if record.kind == "cancel_requested" and waiter is not None:
                if not waiter.done():
                    waiter.set_result(bool((record.detail or {}).get("accepted")))
                live.cancel_waiter = None
        if result is not None:
            self._ended(live, result)
            return
        if live.cancel_pending and live.job is job:
            live.cancel_pending = False
            try:
                due = core.request_cancel(b, job, now=self._clock.now())
            except CancelError:
                due = None  # the state moved on while the request was out
            if due is None:
                self._settle_cancel(live, accepted=False)
            else:
                live.job = due
        self._schedule(live)

    def _ended(self, live: _Live, result: JobResult) -> None:
        live.result = result
        live.generation += 1
        if live.waiter is not None and not live.waiter.done():
            live.waiter.set_result(result)
        self._settle_cancel(live, accepted=False)
        # Kept until a wait() or as_completed() takes it, within the
        # retention bounds. A completed hook does not count as taking it:
        # the CLI's progress hook, for one, runs before its own wait().
        now = self._clock.now()
        self._finished.append((now, live.key))
        self._evict(now)

    def _settle_cancel(self, live: _Live, *, accepted: bool) -> None:
        waiter = live.cancel_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(accepted)
        live.cancel_waiter = None

    def _release(self, live: _Live) -> None:
        """Drop what a finished job holds once its result was handed over.

        A slim record stays (its state, for ``state_of``) until retention
        evicts it with the others.
        """
        if live.result is None or live.handed:
            return
        live.handed = True
        live.result = None
        live.job = attrs.evolve(live.job, response=None, result=None, items=None)

    def _evict(self, now: float) -> None:
        """Drop the oldest unclaimed results beyond the retention count or age."""
        finished = self._finished
        while finished and (
            len(finished) > self._retain or now - finished[0][0] > self._retain_for
        ):
            _, key = finished.popleft()
            live = self._jobs.get(key)
            if live is not None and live.job.done and live.waiter is None:
                del self._jobs[key]

    # -- scheduling --------------------------------------------------------------------

    def _schedule(self, live: _Live) -> None:
        if live.job.done or self._state == "closed":
            return
        due = live.job.due
        live.generation += 1
        self._heap.push(due, live)
        if due < self._wake_before and self._wake is not None:
            self._wake.set()

    async def _drive(self) -> None:
        wake = self._wake
        assert wake is not None  # noqa: S101 - set by open()
        loop = asyncio.get_running_loop()
        system_clock = isinstance(self._clock, SystemClock)
        while True:
            wake.clear()
            self._wake_before = -math.inf  # running: it looks at the heap anyway
            now = self._clock.now()
            while self._in_flight < self._max_in_flight:
                live = self._heap.pop_due(now)
                if live is None:
                    break
                if live.job.done or live.in_flight:
                    continue
                self._start(live)
            self._evict(now)
            due = self._heap.next_due()
            if due is not None and self._in_flight >= self._max_in_flight:
                # At capacity: a worker that stops for want of due jobs wakes
                # us; until then no new due time can be acted on.
                await wake.wait()
                continue
            self._wake_before = math.inf if due is None else due
            if due is None:
                await wake.wait()
            elif due > now:
                if system_clock:
                    # A timer handle instead of a sleeping task: cheap to cancel
                    # when an earlier job arrives.
                    handle = loop.call_at(loop.time() + (due - now), wake.set)
                    await wake.wait()
                    handle.cancel()
                else:
                    await self._sleep_or_wake(wake, due)
            else:
                await asyncio.sleep(0)

    async def _sleep_or_wake(self, wake: asyncio.Event, due: float) -> None:
        """Sleep on the injected clock until ``due``, or until something earlier is scheduled."""
        sleeper = asyncio.ensure_future(self._clock.sleep_until(due))
        waiter = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waiter):
                task.cancel()

    def _claim(self, live: _Live) -> bool:
        """Count ``live`` in flight, or queue it behind its service's limit."""
        slot = self._slots[live.b.spec.name]
        if slot.in_flight >= slot.limit:
            slot.waiting.append(live)
            return False
        slot.in_flight += 1
        self._in_flight += 1
        live.in_flight = True
        return True

    def _start(self, live: _Live) -> None:
        if self._claim(live):
            task = asyncio.get_running_loop().create_task(self._work(live))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self, live: _Live | None) -> None:
        """Run ``live``'s step, then every job due meanwhile, in this one task.

        While requests are due back to back, a finished request goes straight
        on to the next due job: no task is created and the driver is not woken
        per poll. When nothing is due, the task ends, and the driver, woken,
        starts one again when something is.
        """
        while live is not None:
            await self._step(live)
            # Yield between steps, as a task per poll did: over httpx's own
            # pool at 200 in flight, workers that never yielded starved the
            # pool's waiting requests (bench/throughput.py).
            await asyncio.sleep(0)
            live = self._next_due()
        if self._wake is not None:
            self._wake.set()  # in-flight capacity was freed

    def _next_due(self) -> _Live | None:
        if self._state != "opened" or self._in_flight >= self._max_in_flight:
            return None
        now = self._clock.now()
        while (live := self._heap.pop_due(now)) is not None:
            if not live.job.done and not live.in_flight and self._claim(live):
                return live
        return None

    async def _step(self, live: _Live) -> None:
        """Send ``live``'s due request and commit the core's reading of the reply."""
        job = live.job
        b = live.b
        try:
            # A job can end (forgotten, say) after this step was claimed and
            # before it ran: then nothing more goes on the wire.
            if job.done:
                return
            got = await self._send(b, self._outgoing(live), job)
            if live.job is not job:
                return  # forgotten (or taken over) while the request was out
            step = core.on_reply(b, job, got, now=self._clock.now(), rng=self._rng)
            await self._commit(live, step)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # An engine bug must not take other jobs down: end this one loudly.
            logger.exception("internal error on %s job %s", b.name, job.job_id)
            error = RemoteError(
                f"internal error: {type(exc).__name__}",
                kind="protocol",
                retryable=False,
            )
            if not live.job.done:
                step = core.abort(b, live.job, error, now=self._clock.now())
                await self._commit(live, step)
        finally:
            live.in_flight = False
            slot = self._slots[b.spec.name]
            slot.in_flight -= 1
            self._in_flight -= 1
            while slot.waiting and slot.in_flight < slot.limit:
                waiting = slot.waiting.popleft()
                if not waiting.job.done and not waiting.in_flight:
                    self._start(waiting)

    def _outgoing(self, live: _Live) -> core.Outgoing:
        job = live.job
        if job.phase is Phase.POLL:
            # The poll URL depends only on the job's id, inputs and links:
            # built once, and again only when a poll's answer moves the link.
            if live.poll_url is None or live.poll_link != job.poll_link:
                live.poll_url = core.poll_url(live.b, job)
                live.poll_link = job.poll_link
            return core.Outgoing(
                request=live.b.lifecycle.poll.request, url=live.poll_url
            )
        return core.request_for(live.b, job)

    async def _send(self, b: Binding, out: core.Outgoing, job: JobState) -> Any:
        """Send ``out``; return the reply, or the classified error that replaced it."""
        timeout = b.lifecycle.errors.timeout
        if job.deadline is not None:
            # The job's own deadline holds while its request is out: a stalled
            # server gets until then, plus a grace for the last look.
            left = max(0.0, job.deadline - self._clock.now())
            timeout = min(timeout, left + min(timeout, _GRACE * b.scale))
        try:
            return await exchange(self._remote, b, out, timeout=max(timeout, 0.001))
        except RemoteError as exc:
            return exc

    # -- lookups -------------------------------------------------------------------------

    def _live(self, ref: JobRef) -> _Live:
        live = self._jobs.get(ref.key)
        if live is None or live.job.job_id != ref.job_id:
            msg = (
                f"unknown job {ref.service}/{ref.lifecycle} {ref.job_id} ({ref.key}): not "
                "tracked by this engine, or finished and handed over already"
            )
            raise KeyError(msg)
        return live

    def _waiter(self, live: _Live) -> asyncio.Future[JobResult]:
        if live.waiter is None:
            live.waiter = asyncio.get_running_loop().create_future()
            if live.result is not None:
                live.waiter.set_result(live.result)
        return live.waiter

    def _adopt_stored(self, b: Binding, job: JobState) -> _Live:
        """Register a job taken from the store (see ``engine._resume``)."""
        live = _Live(b, job)
        self._jobs[job.key] = live
        number = job.key[1:]
        if job.key.startswith("j") and number.isdigit():
            self._keys = itertools.count(max(int(number) + 1, next(self._keys)))
        return live


def _inputs(
    b: Binding, given: Mapping[str, Any], *, for_submit: bool
) -> dict[str, Any]:
    """Check the caller's inputs against the lifecycle's and fill in defaults.

    Every problem is reported at once: unknown names (with a did-you-mean)
    and every missing required input.

    Raises:
        InputError: naming what is wrong.
    """
    declared = b.declared
    if not given and not (for_submit and b.required):
        # The common case of adopting many jobs: every job shares one
        # read-only defaults dict instead of building its own.
        return b.defaults
    problems = []
    names = ", ".join(declared) or "none"
    for name in given:
        if name not in declared:
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown input {name!r}{hint}")
    missing = [
        name
        for name in b.required
        if for_submit and given.get(name) is None and declared[name].default is None
    ]
    if missing:
        problems.append("missing required input(s): " + ", ".join(missing))
    if problems:
        msg = f"{b.name}: " + "; ".join(problems) + f". Declared: {names}"
        raise InputError(msg)
    values: dict[str, Any] = {}
    for name, spec_input in declared.items():
        if given.get(name) is not None:
            values[name] = given[name]
        elif spec_input.default is not None:
            values[name] = spec_input.default
    return values or dict(_EMPTY)


def _check_filters(b: Binding, filters: Mapping[str, Any] | None) -> None:
    """Refuse unknown item filters before anything is sent (a typo must not widen a listing)."""
    if not filters:
        return
    items = b.lifecycle.items
    if items is None:
        msg = f"{b.name} has no items to filter"
        raise InputError(msg)
    declared = [f.name for f in items.filters]
    for name in filters:
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ";"
            names = ", ".join(declared)
            msg = f"unknown item filter {name!r} for {b.name}{hint} Declared: {names}"
            raise InputError(msg)
