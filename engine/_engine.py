"""AsyncEngine: one scheduler that submits, polls and moves every job.

The core is a heap of due times and a bounded number of requests in flight
(global and per service), not a task per job: a job is a small slotted record
that only gets a task while one of its requests is in flight. State changes go
through the lifecycle's shared ``transitions`` machine; a poll that observes no
change never touches it. Hooks run after the change is committed, and each
change is written to the audit log before the job store (so a restart can
reconcile the two; see :meth:`AsyncEngine.open`).
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
import string
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, TypedDict, TypeVar, overload
from urllib.parse import urljoin, urlsplit

import attrs

from statemachines import (
    MISSING,
    Input,
    Lifecycle,
    LifecycleMachine,
    Locator,
    Outcome,
    Paging,
    Request,
    Spec,
    build_machine,
    load_spec,
    resolve_pointer,
)

from . import _events as ev
from ._errors import (
    CancelError,
    CredentialError,
    EngineClosedError,
    InputError,
    JobError,
    JobTimedOut,
    RemoteError,
    WaitTimeout,
)
from ._hooks import HookRegistry
from ._observe import Observation, observe
from ._policy import (
    clamp_retry_after,
    classify,
    jittered,
    next_poll_delay,
    parse_retry_after,
    retry_delay,
)
from ._remote import Remote, Reply, default_client, encode_path_value, origin, where
from ._scheduler import Clock, DueHeap, SystemClock
from .stores import JobStore, open_store

if TYPE_CHECKING:
    import httpx

    from .audit import AuditEntry, AuditSink, Redactor

__all__ = ["AsyncEngine", "EngineOptions", "JobRef", "JobResult"]

logger = logging.getLogger("statepoll.engine")
# A library does not print: without the application's own logging set up,
# records go nowhere (instead of Python's last-resort stderr handler).
logging.getLogger("statepoll").addHandler(logging.NullHandler())

F = TypeVar("F", bound=Callable[..., Any])
_MAX_REDIRECTS = 5
#: Key in a job's links of the poll URL taken from the previous poll's response.
_NEXT_POLL = "poll:last"
_Phase = Literal["poll", "items", "result", "cancel"]


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
    for a job that reached a terminal state with a body.
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

    @property
    def ok(self) -> bool:
        """Whether the job ended in a success state."""
        return self.outcome is Outcome.SUCCESS

    def raise_for_outcome(self) -> JobResult:
        """Return self on success; raise the job's error or ``JobFailed`` otherwise."""
        from ._errors import JobFailed  # noqa: PLC0415 - avoid a cycle at import time

        if self.error is not None:
            raise self.error
        if self.outcome is not Outcome.SUCCESS:
            outcome = self.outcome.value if self.outcome else "none"
            job = self.job
            msg = f"{job.service}/{job.lifecycle} job {job.job_id} ended {self.state} ({outcome})"
            raise JobFailed(msg, outcome=outcome, job=self.job, last_state=self.state)
        return self


@attrs.define(eq=False)
class _ServiceSlot:
    """In-flight accounting for one service."""

    limit: int
    in_flight: int = 0
    waiting: deque[_Job] = attrs.field(factory=deque)


@attrs.define(eq=False)
class _Runtime:
    """Everything shared by the jobs of one (spec, lifecycle)."""

    scale: float
    spec: Spec
    lifecycle: Lifecycle
    machine: LifecycleMachine
    base_url: str
    origin: tuple[str, str, int | None]
    auth: tuple[str, str] | None = attrs.field(repr=False)
    headers: dict[str, str]
    #: Only built when an audit log is configured.
    redactor: Redactor | None = attrs.field(repr=False)
    slot: _ServiceSlot
    item: _Runtime | None = None
    #: Derived once: the per-job hot path must not recompute them.
    initial: str = attrs.field(init=False)
    declared: dict[str, Input] = attrs.field(init=False, repr=False)
    defaults: dict[str, Any] = attrs.field(init=False, repr=False)
    required: tuple[str, ...] = attrs.field(init=False, repr=False)
    query_inputs: tuple[Input, ...] = attrs.field(init=False, repr=False)
    #: "scheme://netloc/" of the base URL: a URL starting with it is the spec's own.
    prefix: str = attrs.field(init=False, repr=False)
    _headers: dict[tuple[int, bool], tuple[tuple[str, str], ...]] = attrs.field(
        init=False, factory=dict, repr=False
    )

    def request_headers(
        self, request: Request, *, own: bool
    ) -> tuple[tuple[str, str], ...]:
        """Return the headers of ``request``: the credential only when ``own``."""
        key = (id(request), own)  # requests live as long as the spec this holds
        headers = self._headers.get(key)
        if headers is None:
            merged = {**self.headers, **dict(request.headers)}
            if own and self.auth is not None:
                merged[self.auth[0]] = self.auth[1]
            headers = self._headers[key] = tuple(merged.items())
        return headers

    def __attrs_post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        self.prefix = f"{parts.scheme}://{parts.netloc}/"
        self.initial = self.lifecycle.initial
        self.declared = {i.name: i for i in self.lifecycle.inputs}
        self.defaults = {
            i.name: i.default for i in self.lifecycle.inputs if i.default is not None
        }
        self.required = tuple(i.name for i in self.lifecycle.inputs if i.required)
        self.query_inputs = tuple(
            i for i in self.lifecycle.inputs if i.where == "query"
        )


class _Item:
    """One item of a job (an Azure document); fired through the item machine."""

    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


class _Job:
    """A live job. Slotted and small: 100,000 idle jobs must stay cheap."""

    __slots__ = (
        "attempts",
        "audit_seq",
        "cancel_waiter",
        "deadline",
        "done",
        "due",
        "failures",
        "generation",
        "in_flight",
        "inputs",
        "item_filters",
        "items",
        "job_id",
        "key",
        "last",
        "links",
        "phase",
        "poll_url",
        "result",
        "rt",
        "state",
        "state_attempts",
        "waiter",
    )

    def __init__(
        self, key: str, rt: _Runtime, job_id: str, inputs: dict[str, Any]
    ) -> None:
        self.key = key
        self.rt = rt
        self.job_id = job_id
        self.inputs = inputs
        self.state = rt.initial
        self.attempts = 0
        self.state_attempts = 0
        self.failures = 0
        self.deadline: float | None = None
        self.due = 0.0
        self.generation = 0
        self.done = False
        self.in_flight = False
        self.phase: _Phase = "poll"
        self.links: dict[str, str] | None = None
        self.poll_url: str | None = None
        self.items: dict[str, _Item] | None = None
        self.item_filters: dict[str, Any] | None = None
        self.last: Reply | None = None
        self.result: JobResult | None = None
        self.waiter: asyncio.Future[JobResult] | None = None
        self.cancel_waiter: asyncio.Future[bool] | None = None
        self.audit_seq = 0

    def ref(self) -> JobRef:
        return JobRef(self.key, self.rt.spec.name, self.rt.lifecycle.name, self.job_id)


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


class AsyncEngine:
    """Track asynchronous jobs of any spec'd service by polling.

    Usage::

        async with AsyncEngine(base_urls={"mindee": url}) as engine:
            job = await engine.submit("mindee", "inference", model_id=..., file="a.pdf")
            result = await engine.wait(job, timeout=600)

    Args:
        specs: specs (objects, built-in names or paths) to preload.
        client: an ``httpx.AsyncClient`` to use; the caller keeps ownership.
        clock: monotonic clock (tests inject a fake one).
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
    ) -> None:
        """Configure the engine; nothing runs until it is opened or first used."""
        self._owns_client = client is None
        self._client = client if client is not None else default_client(max_in_flight)
        self._remote = Remote(
            self._client, **({"max_body": max_body} if max_body else {})
        )
        self._clock: Clock = clock or SystemClock()
        self._audit_path = (
            None
            if audit is None or not isinstance(audit, (str, os.PathLike))
            else Path(audit)
        )
        self._owns_audit = self._audit_path is not None
        self._audit_arg = audit
        self._audit: AuditSink | None = None
        self._store_arg = store
        self._owns_store = isinstance(store, (str, os.PathLike))
        self._store: JobStore | None = None
        self._base_urls = dict(base_urls or {})
        self._env = env if env is not None else os.environ
        self._max_in_flight = max_in_flight
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not security
        self._specs: dict[str, Spec] = {}
        for spec in specs:
            self._spec(spec)
        self._runtimes: dict[tuple[str, str], _Runtime] = {}
        self._slots: dict[str, _ServiceSlot] = {}
        self._jobs: dict[str, _Job] = {}
        self._heap: DueHeap[_Job] = DueHeap(self._jobs)
        self._hooks = HookRegistry()
        self._keys = itertools.count(1)
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._driver: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        #: A job scheduled before this wakes the driver (see _drive).
        self._wake_before = math.inf
        self._state: Literal["unopened", "opened", "closed"] = "unopened"
        self._secrets: set[str] = set()
        self._time_scale = time_scale

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
            from .audit import open_audit  # noqa: PLC0415 - the audit module loads only when used

            self._audit = (
                open_audit(self._audit_arg, secrets=())
                if isinstance(self._audit_arg, (str, os.PathLike))
                else self._audit_arg
            )
        if self._store_arg is not None:
            self._store = (
                open_store(self._store_arg)
                if isinstance(self._store_arg, (str, os.PathLike))
                else self._store_arg
            )
            await self._resume_stored()
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
        for job in self._jobs.values():
            if not job.done and job.waiter is not None and not job.waiter.done():
                job.waiter.cancel()
        if self._owns_client:
            await self._client.aclose()
        if self._audit is not None and self._owns_audit:
            self._audit.close()
        if self._store is not None and self._owns_store:
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
        it to a service, lifecycle or state. Hooks run in registration order.
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
        ``(filename, content, content_type)`` tuple.

        Raises:
            InputError: a missing, unknown or ill-typed input.
            CredentialError: the spec's credential variable is unset.
            RemoteError: the service refused the submission.
        """
        await self._ensure_open("submit")
        rt = self._runtime(spec, lifecycle)
        submit = rt.lifecycle.submit
        if submit is None:
            msg = f"{_name(rt)} has no submit; use track() with an existing id"
            raise InputError(msg)
        values = self._inputs(rt, {**(inputs or {}), **more_inputs})
        _check_filters(rt, item_filters)
        reply = await self._send_submit(rt, values)
        job_id = self._locate(submit.job_id, reply, None)
        if not job_id:
            msg = f"no job id in the submit response from {where(reply.url)}"
            raise RemoteError(msg, kind="protocol", status=reply.status)
        job = self._new_job(rt, job_id, values, item_filters)
        job.links = self._submit_links(rt.lifecycle, reply)
        await self._started(job, adopted=False, reply=reply)
        if submit.observe:
            await self._apply(job, reply, trigger="submit")
        if not job.done:
            self._schedule(job, rt.lifecycle.schedule.initial_delay * rt.scale)
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
        rt = self._runtime(spec, lifecycle)
        values = self._inputs(rt, {**(inputs or {}), **more_inputs}, for_submit=False)
        _check_filters(rt, item_filters)
        job = self._new_job(rt, str(job_id), values, item_filters)
        if state is not None:
            if state not in rt.lifecycle.state_names:
                declared = ", ".join(rt.lifecycle.state_names)
                msg = f"unknown state {state!r} for {_name(rt)}; declared: {declared}"
                raise InputError(msg)
            job.state = state
        await self._started(job, adopted=True, reply=None)
        self._schedule(job, rt.lifecycle.schedule.initial_delay * rt.scale)
        return job.ref()

    async def wait(self, job: JobRef, *, timeout: float | None = None) -> JobResult:
        """Wait until ``job`` ends and return how it ended.

        A terminal state of any outcome returns a :class:`JobResult` (see
        ``raise_for_outcome``). ``timeout`` bounds this wait only: when it
        expires, :class:`WaitTimeout` is raised and the job goes on by its
        spec (wait again, :meth:`cancel` or :meth:`forget` it).

        Raises:
            WaitTimeout: ``timeout`` expired first; the job is still running.
            JobTimedOut: the spec's deadline or attempts ran out.
            RemoteError: the job ended with a classified remote error.
        """
        record = self._job(job)
        if not record.done:
            waiter = self._waiter(record)
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(waiter)
            except TimeoutError:
                if not record.done:
                    msg = (
                        f"{self._describe(record)} still in {record.state} after "
                        f"wait(timeout={timeout}); it goes on"
                    )
                    raise WaitTimeout(
                        msg, job=record.ref(), state=record.state
                    ) from None
        result = record.result
        assert result is not None  # noqa: S101 - done jobs always carry a result
        if result.error is not None:
            raise result.error
        return result

    async def forget(self, job: JobRef) -> None:
        """Stop tracking ``job``: no more polls, and it leaves the store.

        The service is not told (use :meth:`cancel` for that). Waiters get
        :class:`JobTimedOut` with the reason ``forgotten``.
        """
        record = self._job(job)
        if not record.done:
            await self._time_out(record, "forgotten", reply=None)

    async def as_completed(
        self, jobs: Iterable[JobRef] | None = None, *, timeout: float | None = None
    ) -> AsyncGenerator[JobResult, None]:
        """Yield each job's result as it ends (errors as results with ``error`` set).

        Raises:
            TimeoutError: if ``timeout`` expires first (jobs keep going).
        """
        records = (
            [self._job(j) for j in jobs]
            if jobs is not None
            else list(self._jobs.values())
        )
        pending = {self._waiter(r) for r in records if not r.done}
        for record in records:
            if record.done and record.result is not None:
                yield record.result
        async with asyncio.timeout(timeout):
            while pending:
                done, pending = await asyncio.wait(
                    pending, return_when=asyncio.FIRST_COMPLETED
                )
                for future in done:
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
        record = self._job(job)
        cancel = record.rt.lifecycle.cancel
        if cancel is None:
            msg = f"{_name(record.rt)} cannot be cancelled (the spec has no cancel)"
            raise CancelError(msg)
        if record.done or record.rt.lifecycle.state(record.state).terminal:
            # Ended, or ending (fetching its result or final items): too late.
            return False
        if record.state not in cancel.from_states:
            allowed = ", ".join(cancel.from_states)
            msg = f"cannot cancel from state {record.state!r}; allowed from: {allowed}"
            raise CancelError(msg)
        if record.cancel_waiter is None:
            record.cancel_waiter = asyncio.get_running_loop().create_future()
            record.phase = "cancel"
            if not record.in_flight:
                self._schedule_at(record, self._clock.now())
        return await asyncio.shield(record.cancel_waiter)

    def state_of(self, job: JobRef) -> str:
        """Return the job's current state."""
        return self._job(job).state

    def jobs(self) -> list[JobRef]:
        """Return every job the engine knows, live or finished."""
        return [j.ref() for j in self._jobs.values()]

    # -- internals: specs, runtimes, inputs -------------------------------------------

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

    def _runtime(self, spec: Spec | str, lifecycle: str) -> _Runtime:
        loaded = self._spec(spec)
        key = (loaded.content_hash or loaded.name, lifecycle)
        rt = self._runtimes.get(key)
        if rt is None:
            rt = self._build_runtime(loaded, lifecycle)
            self._runtimes[key] = rt
        return rt

    def _build_runtime(self, spec: Spec, lifecycle_name: str) -> _Runtime:
        try:
            lifecycle = spec.lifecycle(lifecycle_name)
        except KeyError as exc:
            raise InputError(str(exc.args[0])) from None
        service = spec.service
        base = self._base_urls.get(service.name)
        if base is None and service.base_url_env:
            base = self._env.get(service.base_url_env) or None
        base = (base or service.base_url).rstrip("/")
        auth: tuple[str, str] | None = None
        if service.auth is not None:
            value = self._env.get(service.auth.env)
            if value:
                scheme = service.auth.scheme
                auth = (service.auth.header, f"{scheme} {value}" if scheme else value)
                self._secrets.add(value)
            elif service.auth.required:
                raise CredentialError(service.name, service.auth.env)
        slot = self._slots.get(service.name)
        if slot is None:
            slot = self._slots[service.name] = _ServiceSlot(service.max_in_flight)
        scale = self._time_scale
        if not isinstance(scale, (int, float)):
            scale = scale.get(service.name, 1.0)
        rt = _Runtime(
            scale=float(scale),
            spec=spec,
            lifecycle=lifecycle,
            machine=build_machine(lifecycle),
            base_url=base,
            origin=origin(base),
            auth=auth,
            headers=dict(service.headers),
            redactor=self._redactor(spec),
            slot=slot,
        )
        if lifecycle.items is not None:
            rt.item = self._build_runtime(spec, lifecycle.items.lifecycle)
        return rt

    def _redactor(self, spec: Spec) -> Redactor | None:
        if self._audit is None:
            return None
        from .audit import Redactor  # noqa: PLC0415 - only jobs with an audit log need it

        return Redactor.for_spec(spec, self._secrets)

    def _inputs(
        self, rt: _Runtime, given: Mapping[str, Any], *, for_submit: bool = True
    ) -> dict[str, Any]:
        declared = rt.declared
        if not given and not (for_submit and rt.required):
            # The common case of adopting many jobs: every job shares one
            # read-only defaults dict instead of building its own.
            return rt.defaults
        unknown = [name for name in given if name not in declared]
        if unknown:
            name = unknown[0]
            close = difflib.get_close_matches(name, list(declared), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            names = ", ".join(declared) or "none"
            msg = f"unknown input {name!r} for {_name(rt)}{hint} Declared: {names}"
            raise InputError(msg)
        values: dict[str, Any] = {}
        for name, spec_input in declared.items():
            if name in given and given[name] is not None:
                values[name] = given[name]
            elif spec_input.default is not None:
                values[name] = spec_input.default
            elif spec_input.required and for_submit:
                msg = f"missing required input {name!r} for {_name(rt)}: {spec_input.description}"
                raise InputError(msg)
        return values

    def _new_job(
        self,
        rt: _Runtime,
        job_id: str,
        inputs: dict[str, Any],
        item_filters: Mapping[str, Any] | None,
    ) -> _Job:
        key = f"j{next(self._keys)}"
        while key in self._jobs:
            key = f"j{next(self._keys)}"
        job = _Job(key, rt, job_id, inputs)
        if item_filters:
            job.item_filters = dict(item_filters)
        deadline = rt.lifecycle.schedule.deadline
        if deadline is not None:
            job.deadline = self._clock.now() + deadline * rt.scale
        self._jobs[key] = job
        return job

    async def _started(self, job: _Job, *, adopted: bool, reply: Reply | None) -> None:
        self._record(
            job,
            "submitted",
            trigger="track" if adopted else "submit",
            http_status=reply.status if reply else None,
            to_state=job.state,
        )
        self._persist(job)
        if self._hooks.wants("submitted"):
            await self._emit(ev.Submitted(**self._base(job, reply), adopted=adopted))

    # -- internals: scheduling ---------------------------------------------------------

    def _schedule(self, job: _Job, delay: float) -> None:
        now = self._clock.now()
        due = now + max(0.0, delay)
        if job.deadline is not None and due > job.deadline:
            # Shorten the last wait so one poll happens at the deadline (as
            # Smithy waiters do) instead of giving up without a last look.
            due = max(now, job.deadline)
        self._schedule_at(job, due)

    def _schedule_at(self, job: _Job, due: float) -> None:
        job.due = due
        job.generation += 1
        self._heap.push(due, job)
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
                job = self._heap.pop_due(now)
                if job is None:
                    break
                if job.done or job.in_flight:
                    continue
                self._start(job)
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
                    await self._race(wake, due)
            else:
                await asyncio.sleep(0)

    async def _race(self, wake: asyncio.Event, due: float) -> None:
        sleeper = asyncio.ensure_future(self._clock.sleep_until(due))
        waiter = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waiter):
                task.cancel()

    def _claim(self, job: _Job) -> bool:
        """Count ``job`` in flight, or queue it behind its service's limit."""
        slot = job.rt.slot
        if slot.in_flight >= slot.limit:
            slot.waiting.append(job)
            return False
        slot.in_flight += 1
        self._in_flight += 1
        job.in_flight = True
        return True

    def _start(self, job: _Job) -> None:
        if self._claim(job):
            task = asyncio.get_running_loop().create_task(self._work(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _work(self, job: _Job | None) -> None:
        """Run ``job``'s step, then every job due meanwhile, in this one task.

        While polls are due back to back, a finished request goes straight on
        to the next due job: no task is created and the driver is not woken
        per poll (measured: a fifth of the engine's own time per poll at 50
        in flight). When nothing is due, the task ends, and the driver, woken,
        starts one again when something is.
        """
        while job is not None:
            await self._step(job)
            # Yield between steps, as a task per poll did: the callbacks and
            # tasks already ready run first. Without it, over httpx's own
            # pool at 200 in flight, workers starved the pool's waiting
            # requests and polls fell to ~20/s (bench/throughput.py).
            await asyncio.sleep(0)
            job = self._next_due()
        if self._wake is not None:
            self._wake.set()  # in-flight capacity was freed

    def _next_due(self) -> _Job | None:
        if self._state != "opened" or self._in_flight >= self._max_in_flight:
            return None
        now = self._clock.now()
        while (job := self._heap.pop_due(now)) is not None:
            if not job.done and not job.in_flight and self._claim(job):
                return job
        return None

    async def _step(self, job: _Job) -> None:
        phase = job.phase
        try:
            # A job can end (a wait() timeout, say) after this step's task was
            # created and before it ran: then nothing more goes on the wire.
            if not job.done:
                await self._run_phase(job)
        except RemoteError as exc:
            if exc.retryable:
                await self._transient(job, exc, None)
            else:
                await self._finish_error(job, exc, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # An engine bug must not take other jobs down: end this one loudly.
            logger.exception("internal error on %s", self._describe(job))
            await self._finish_error(
                job,
                RemoteError(
                    f"internal error: {type(exc).__name__}: {exc}", kind="protocol"
                ),
                None,
            )
        finally:
            job.in_flight = False
            if phase != "cancel" and job.phase == "cancel" and not job.done:
                # cancel() arrived while this step's request was on the wire:
                # send the cancel next, whatever this step scheduled.
                self._schedule_at(job, self._clock.now())
            slot = job.rt.slot
            slot.in_flight -= 1
            self._in_flight -= 1
            while slot.waiting and slot.in_flight < slot.limit:
                waiting = slot.waiting.popleft()
                if not waiting.done and not waiting.in_flight:
                    self._start(waiting)

    async def _run_phase(self, job: _Job) -> None:
        if job.phase == "cancel":
            await self._do_cancel(job)
        elif job.phase == "result":
            await self._complete(job, job.last)
        elif job.phase == "items":
            await self._refresh_items(job)
            if not job.done and job.phase == "items":
                await self._complete(job, job.last)
        else:
            await self._poll(job)

    # -- internals: one poll -------------------------------------------------------------

    async def _poll(self, job: _Job) -> None:
        lifecycle = job.rt.lifecycle
        reply = await self._fetch(job, lifecycle.poll.request, None)
        if reply is None:
            return
        reply.json()  # a malformed body is transient: raises RemoteError(protocol)
        job.failures = 0
        job.attempts += 1
        job.state_attempts += 1
        self._remember_poll_link(job, reply)
        await self._apply(job, reply, trigger="poll")
        if job.done or job.phase != "poll":
            return
        items = lifecycle.items
        if items is not None and items.refresh == "each_poll":
            await self._refresh_items(job)
        self._schedule_next(job, reply)

    async def _fetch(
        self, job: _Job, request: Request, links: Reply | None
    ) -> Reply | None:
        """Send ``request`` and classify the reply.

        Returns the reply when it is to be read; ``None`` when a retryable or
        fatal status was already handled (the job rescheduled or ended), or
        when the job ended while the request was on the wire (what it answered
        is not applied to a finished job).
        """
        url = self._url(job, request, links)
        reply = await self._send(job, request, url, self._params(job, request))
        if job.done:
            return None
        errors = job.rt.lifecycle.errors
        verdict = classify(reply.status, errors, accepted=request.accepts(reply.status))
        if verdict == "observe":
            return reply
        error = self._status_error(job, reply, transient=verdict == "transient")
        if verdict == "transient":
            await self._transient(job, error, reply)
        else:
            await self._finish_error(job, error, reply)
        return None

    async def _apply(self, job: _Job, reply: Reply, *, trigger: str) -> None:
        """Read the state a response says and move the job (or report why not)."""
        lifecycle = job.rt.lifecycle
        seen = observe(
            lifecycle.poll.observe,
            reply.status,
            reply.headers,
            reply.json(),
            default_policy=lifecycle.policy.unknown_state,
        )
        if seen.state is None:
            await self._unknown(job, seen, reply)
            return
        changed = seen.state != job.state
        if self._hooks.wants("polled"):
            await self._emit(
                ev.Polled(**self._base(job, reply), observed=seen.raw, changed=changed)
            )
        if changed:
            await self._advance(job, seen, reply, trigger=trigger)
        if not job.done and job.rt.lifecycle.state(job.state).terminal:
            await self._reach_terminal(job, reply)

    async def _advance(
        self, job: _Job, seen: Observation, reply: Reply, *, trigger: str
    ) -> None:
        rt = job.rt
        dest = seen.state
        assert dest is not None  # noqa: S101 - checked by the caller
        if rt.lifecycle.policy.skipped_states == "infer":
            path = rt.machine.path(job.state, dest)
        else:
            path = (dest,) if rt.machine.is_legal(job.state, dest) else None
        if path is None:
            await self._illegal(job, dest, seen, reply)
            return
        for index, step in enumerate(path):
            inferred = index < len(path) - 1
            source = job.state
            self._record(
                job,
                "transition",
                from_state=source,
                to_state=step,
                trigger="inferred" if inferred else trigger,
                http_status=reply.status,
                observed=seen.raw,
            )
            rt.machine.fire(job, step)
            job.state_attempts = 0
            override = rt.lifecycle.schedule.for_state(step)
            if override is not None and override.deadline is not None:
                job.deadline = self._clock.now() + override.deadline * rt.scale
            self._persist(job)
            logger.info(
                "%s: %s -> %s%s",
                self._describe(job),
                source,
                step,
                " (inferred)" if inferred else "",
                extra=self._extra(job),
            )
            if self._hooks.wants("transition"):
                await self._emit(
                    ev.TransitionEvent(
                        **self._base(job, reply),
                        source=source,
                        dest=step,
                        trigger="inferred" if inferred else trigger,
                        inferred=inferred,
                    )
                )
            if self._hooks.wants("entered"):
                state = rt.lifecycle.state(step)
                await self._emit(
                    ev.Entered(**self._base(job, reply), provisional=state.provisional)
                )

    async def _illegal(
        self, job: _Job, dest: str, seen: Observation, reply: Reply
    ) -> None:
        policy = job.rt.lifecycle.policy.illegal_transition
        self._record(
            job,
            "illegal_transition",
            from_state=job.state,
            to_state=dest,
            trigger="poll",
            http_status=reply.status,
            observed=seen.raw,
            detail={"policy": policy},
        )
        logger.warning(
            "%s: illegal transition %s -> %s refused (%s)",
            self._describe(job),
            job.state,
            dest,
            policy,
            extra=self._extra(job),
        )
        if self._hooks.wants("illegal_transition"):
            await self._emit(
                ev.IllegalTransition(
                    **self._base(job, reply),
                    dest=dest,
                    observed=seen.raw,
                    policy=policy,
                )
            )
        if policy == "fail":
            msg = f"illegal transition {job.state} -> {dest} observed at {where(reply.url)}"
            await self._finish_error(
                job,
                RemoteError(msg, kind="illegal_transition", status=reply.status),
                reply,
            )

    async def _unknown(self, job: _Job, seen: Observation, reply: Reply) -> None:
        policy = seen.unknown or "reject"
        self._record(
            job,
            "unknown_state",
            from_state=job.state,
            trigger="poll",
            http_status=reply.status,
            observed=seen.raw,
            detail={"policy": policy},
        )
        logger.warning(
            "%s: unknown state value %r (%s)",
            self._describe(job),
            seen.raw,
            policy,
            extra=self._extra(job),
        )
        if self._hooks.wants("unknown_state"):
            await self._emit(
                ev.UnknownState(
                    **self._base(job, reply), observed=seen.raw, policy=policy
                )
            )
        if policy == "fail":
            msg = f"unknown state value {seen.raw!r} from {where(reply.url)}"
            await self._finish_error(
                job, RemoteError(msg, kind="unknown_state", status=reply.status), reply
            )

    def _schedule_next(self, job: _Job, reply: Reply | None) -> None:
        lifecycle = job.rt.lifecycle
        schedule = lifecycle.schedule
        now = self._clock.now()
        override = schedule.for_state(job.state)
        if (
            schedule.max_attempts is not None
            and job.attempts >= schedule.max_attempts
            and (override is None or override.max_attempts is None)
        ):
            self._later(
                self._time_out(job, f"{job.attempts} polls (max_attempts)", reply)
            )
            return
        if (
            override is not None
            and override.max_attempts is not None
            and job.state_attempts >= override.max_attempts
        ):
            self._later(
                self._time_out(job, f"{job.state_attempts} polls in {job.state}", reply)
            )
            return
        if job.deadline is not None and now >= job.deadline:
            self._later(self._time_out(job, "deadline reached", reply))
            return
        scale = job.rt.scale
        base = next_poll_delay(lifecycle, job.state, job.state_attempts - 1) * scale
        delay = jittered(base, schedule, self._rng)
        if reply is not None and schedule.retry_after.honour:
            asked = parse_retry_after(
                reply.headers.get("retry-after"), now_wall=time.time()
            )
            if asked is not None and asked > 0:
                delay = max(delay, clamp_retry_after(asked, schedule, scale))
        self._schedule(job, delay)

    def _later(self, coro: Coroutine[Any, Any, None]) -> None:
        # Ending a job from the poll path must not recurse into it: run it next.
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _transient(
        self, job: _Job, error: RemoteError, reply: Reply | None
    ) -> None:
        if job.done:
            return
        lifecycle = job.rt.lifecycle
        job.failures += 1
        if job.failures > lifecycle.errors.retry_budget:
            error.last_state = job.state
            await self._finish_error(job, error, reply)
            return
        delay = retry_delay(lifecycle.errors, job.failures) * job.rt.scale
        asked = None
        if reply is not None and lifecycle.schedule.retry_after.honour:
            asked = parse_retry_after(
                reply.headers.get("retry-after"), now_wall=time.time()
            )
            if asked is not None:
                delay = clamp_retry_after(asked, lifecycle.schedule, job.rt.scale)
        self._record(
            job,
            "retry_after" if asked is not None else "retry",
            from_state=job.state,
            trigger=job.phase,
            http_status=reply.status if reply else None,
            detail={
                "kind": error.kind,
                "error": str(error),
                "delay": round(delay, 3),
                "failures": job.failures,
            },
        )
        if self._hooks.wants("retrying"):
            await self._emit(
                ev.Retrying(
                    **self._base(job, reply),
                    kind=error.kind,
                    error=str(error),
                    delay=delay,
                    failures=job.failures,
                    budget=lifecycle.errors.retry_budget,
                )
            )
        logger.info(
            "%s: %s; retry %d/%d in %.3gs",
            self._describe(job),
            error,
            job.failures,
            lifecycle.errors.retry_budget,
            delay,
            extra=self._extra(job),
        )
        now = self._clock.now()
        if job.deadline is not None and now >= job.deadline:
            await self._time_out(
                job, f"deadline reached while retrying ({error})", reply
            )
            return
        self._schedule(job, delay)

    # -- internals: items ------------------------------------------------------------------

    async def _refresh_items(self, job: _Job) -> None:
        rt = job.rt
        items = rt.lifecycle.items
        item_rt = rt.item
        if items is None or item_rt is None:
            return
        paging = items.paging
        url: str | None = self._url(job, items.request, None)
        params = self._params(job, items.request) or {}
        if paging.page_size_param and paging.page_size:
            params[paging.page_size_param] = str(paging.page_size)
        for flt in (job.item_filters or {}).items():
            name, value = flt
            declared = next(f for f in items.filters if f.name == name)
            if isinstance(value, (list, tuple)):
                value = ",".join(str(v) for v in value)
            params[declared.param] = str(value)
        skip = 0
        pages = 0
        if job.items is None:
            job.items = {}
        while url is not None and pages < paging.max_pages:
            reply = await self._send(job, items.request, url, params)
            if job.done:
                return  # ended while this page was on the wire (see _poll)
            verdict = classify(
                reply.status,
                rt.lifecycle.errors,
                accepted=items.request.accepts(reply.status),
            )
            if verdict != "observe":
                raise self._status_error(job, reply, transient=verdict == "transient")
            body = reply.json()
            entries = resolve_pointer(body, items.items_pointer)
            if not isinstance(entries, list):
                msg = f"no item list at {items.items_pointer} from {where(reply.url)}"
                raise RemoteError(msg, kind="protocol", status=reply.status)
            for entry in entries:
                await self._item_seen(job, item_rt, entry, reply)
            # A good page proves the service answers: a long listing must not
            # use up the retry budget on faults spread across its pages.
            job.failures = 0
            pages += 1
            skip += len(entries)
            url, params = self._next_page(
                rt, paging, body, reply, params, skip, len(entries)
            )

    @staticmethod
    def _next_page(  # noqa: PLR0917 - a private helper fed straight from one loop
        rt: _Runtime,
        paging: Paging,
        body: Any,
        reply: Reply,
        params: dict[str, str],
        skip: int,
        count: int,
    ) -> tuple[str | None, dict[str, str]]:
        """Return the next page's URL and query (``None`` when this was the last)."""
        if paging.kind == "next_link":
            for pointer in paging.next_pointers:
                link = resolve_pointer(body, pointer)
                if isinstance(link, str) and link:
                    # The link carries its own query (skip, top, filters).
                    return urljoin(rt.base_url + "/", link), {}
            return None, params
        base = reply.url.split("?", 1)[0]
        if paging.kind == "skip":
            full = paging.page_size is None or count >= paging.page_size
            if count and full and paging.skip_param:
                return base, {**params, paging.skip_param: str(skip)}
            return None, params
        for pointer in paging.next_pointers:
            token = resolve_pointer(body, pointer)
            if isinstance(token, str) and token and paging.cursor_param:
                return base, {**params, paging.cursor_param: token}
        return None, params

    async def _item_seen(
        self, job: _Job, item_rt: _Runtime, entry: Any, reply: Reply
    ) -> None:
        items = job.rt.lifecycle.items
        assert items is not None  # noqa: S101 - caller checked
        assert job.items is not None  # noqa: S101 - caller checked
        item_id = resolve_pointer(entry, items.id_pointer)
        if item_id is MISSING or item_id is None:
            return
        item_id = str(item_id)
        lifecycle = item_rt.lifecycle
        seen = observe(
            lifecycle.poll.observe,
            200,
            {},
            entry,
            default_policy=lifecycle.policy.unknown_state,
        )
        record = job.items.get(item_id)
        if record is None:
            record = job.items[item_id] = _Item(lifecycle.initial)
        if seen.state is None:
            self._record(
                job,
                "unknown_state",
                item_id=item_id,
                lifecycle=lifecycle.name,
                observed=seen.raw,
            )
            return
        if seen.state == record.state:
            return
        path = item_rt.machine.path(record.state, seen.state)
        if path is None:
            self._record(
                job,
                "illegal_transition",
                item_id=item_id,
                lifecycle=lifecycle.name,
                from_state=record.state,
                to_state=seen.state,
                observed=seen.raw,
                detail={"policy": "reject"},
            )
            return
        for index, step in enumerate(path):
            inferred = index < len(path) - 1
            source = record.state
            self._record(
                job,
                "item_transition",
                item_id=item_id,
                lifecycle=lifecycle.name,
                from_state=source,
                to_state=step,
                trigger="inferred" if inferred else "poll",
                http_status=reply.status,
                observed=seen.raw,
            )
            item_rt.machine.fire(record, step)
            if self._hooks.wants("item_transition"):
                await self._emit(
                    ev.ItemTransition(
                        **self._base(job, reply),
                        item_id=item_id,
                        item_lifecycle=lifecycle.name,
                        source=source,
                        dest=step,
                        inferred=inferred,
                    )
                )
        self._persist(job)

    # -- internals: ending ------------------------------------------------------------------

    async def _reach_terminal(self, job: _Job, reply: Reply) -> None:
        job.last = reply
        items = job.rt.lifecycle.items
        if items is not None:
            job.phase = "items"
            await self._refresh_items(job)
        await self._complete(job, reply)

    async def _complete(self, job: _Job, reply: Reply | None) -> None:
        lifecycle = job.rt.lifecycle
        state = lifecycle.state(job.state)
        outcome = state.outcome
        result_body: Any = reply.json() if reply is not None else None
        spec_result = lifecycle.result
        if spec_result is not None and outcome in spec_result.on:
            job.phase = "result"
            fetched = await self._fetch(job, spec_result.request, reply)
            if fetched is None:
                return
            result_body = fetched.json()
        result = JobResult(
            job=job.ref(),
            state=job.state,
            outcome=outcome,
            status=reply.status if reply else None,
            response=reply.json() if reply is not None else None,
            result=result_body,
            attempts=job.attempts,
            items={k: v.state for k, v in (job.items or {}).items()},
        )
        self._record(
            job,
            "completed",
            to_state=job.state,
            http_status=reply.status if reply else None,
            detail={
                "outcome": outcome.value if outcome else None,
                "polls": job.attempts,
            },
        )
        logger.info(
            "%s: completed %s (%s)",
            self._describe(job),
            job.state,
            outcome,
            extra=self._extra(job),
        )
        await self._finish(job, result)
        if self._hooks.wants("completed"):
            await self._emit(
                ev.Completed(
                    **self._base(job, reply), outcome=outcome.value if outcome else ""
                )
            )

    async def _time_out(self, job: _Job, reason: str, reply: Reply | None) -> None:
        if job.done:
            return
        self._record(
            job,
            "timed_out",
            from_state=job.state,
            detail={"reason": reason, "polls": job.attempts},
        )
        logger.warning(
            "%s: timed out in %s: %s",
            self._describe(job),
            job.state,
            reason,
            extra=self._extra(job),
        )
        error = JobTimedOut(
            f"{self._describe(job)} timed out in state {job.state}: {reason}",
            job=job.ref(),
            last_state=job.state,
        )
        await self._finish(job, self._error_result(job, error, reply))
        if self._hooks.wants("timed_out"):
            await self._emit(ev.TimedOut(**self._base(job, reply), reason=reason))

    async def _finish_error(
        self, job: _Job, error: RemoteError, reply: Reply | None
    ) -> None:
        if job.done:
            return
        error.job = job.ref()
        error.last_state = job.state
        self._record(
            job,
            "errored",
            from_state=job.state,
            http_status=error.status,
            detail={
                "kind": error.kind,
                "code": error.code,
                "message": error.remote_message or str(error),
            },
        )
        logger.error("%s: %s", self._describe(job), error, extra=self._extra(job))
        await self._finish(job, self._error_result(job, error, reply))
        if self._hooks.wants("errored"):
            await self._emit(
                ev.Errored(
                    **self._base(job, reply),
                    kind=error.kind,
                    code=error.code,
                    message=error.remote_message or str(error),
                )
            )

    def _error_result(
        self, job: _Job, error: JobError, reply: Reply | None
    ) -> JobResult:
        response = None
        if reply is not None:
            with contextlib.suppress(RemoteError):
                response = reply.json()
        return JobResult(
            job=job.ref(),
            state=job.state,
            outcome=None,
            status=reply.status if reply else None,
            response=response,
            attempts=job.attempts,
            items={k: v.state for k, v in (job.items or {}).items()},
            error=error,
        )

    async def _finish(self, job: _Job, result: JobResult) -> None:
        job.done = True
        job.generation += 1
        job.result = result
        job.last = None
        if job.waiter is not None and not job.waiter.done():
            job.waiter.set_result(result)
        if job.cancel_waiter is not None and not job.cancel_waiter.done():
            job.cancel_waiter.set_result(False)
        if self._store is not None:
            self._store.remove(job.key)

    # -- internals: cancel ----------------------------------------------------------------------

    async def _do_cancel(self, job: _Job) -> None:
        cancel = job.rt.lifecycle.cancel
        waiter = job.cancel_waiter
        assert cancel is not None  # noqa: S101 - set by cancel()
        assert waiter is not None  # noqa: S101 - set by cancel()
        request = cancel.request
        url = self._url(job, request, None)
        reply = await self._send(job, request, url, self._params(job, request))
        accepted = request.accepts(reply.status)
        self._record(
            job,
            "cancel_requested",
            from_state=job.state,
            trigger="cancel",
            http_status=reply.status,
            detail={"accepted": accepted},
        )
        job.phase = "poll"
        if reply.status in cancel.refused_status or not accepted:
            if not waiter.done():
                waiter.set_result(False)
            if reply.status not in cancel.refused_status:
                verdict = classify(
                    reply.status, job.rt.lifecycle.errors, accepted=False
                )
                if verdict == "transient":
                    job.phase = "cancel"
                    await self._transient(
                        job, self._status_error(job, reply, transient=True), reply
                    )
                    return
            self._schedule_next(job, reply)
            return
        if not waiter.done():
            waiter.set_result(True)
        if cancel.observe:
            await self._apply(job, reply, trigger="cancel")
        elif job.state != cancel.leads_to[0]:
            await self._advance(
                job, Observation(cancel.leads_to[0], None), reply, trigger="cancel"
            )
        if not job.done:
            self._schedule_next(job, reply)

    # -- internals: HTTP -----------------------------------------------------------------------

    def _template_values(self, job: _Job) -> dict[str, str]:
        values = {
            k: encode_path_value(v)
            for k, v in job.inputs.items()
            if not isinstance(v, (bytes, tuple))
        }
        values["job_id"] = encode_path_value(job.job_id)
        return values

    def _remember_poll_link(self, job: _Job, reply: Reply) -> None:
        """Keep the next poll's URL when the spec takes it from each poll's response.

        Only the link is kept, not the reply: an idle job must stay small.
        """
        request = job.rt.lifecycle.poll.request
        last = tuple(loc for loc in request.url if loc.response == "last")
        if not last:
            return
        link = self._locate(last, reply, None)
        if link:
            job.links = {**(job.links or {}), _NEXT_POLL: link}

    def _url(self, job: _Job, request: Request, reply: Reply | None) -> str:
        if request is job.rt.lifecycle.poll.request:
            if job.links and _NEXT_POLL in job.links:
                return urljoin(job.rt.base_url + "/", job.links[_NEXT_POLL])
            if reply is None:
                # Built from the job's id, inputs and submit links, none of
                # which change once it is scheduled: built once, not per poll.
                if job.poll_url is None:
                    job.poll_url = self._build_url(job, request, None)
                return job.poll_url
        return self._build_url(job, request, reply)

    def _build_url(self, job: _Job, request: Request, reply: Reply | None) -> str:
        if request.url:
            link = self._locate(request.url, reply, job)
            if link:
                return urljoin(job.rt.base_url + "/", link)
        if request.path is None:
            msg = f"{self._describe(job)}: no link for this request and no path to fall back on"
            raise RemoteError(msg, kind="protocol")
        try:
            path = request.path.format_map(_Strict(self._template_values(job)))
        except KeyError as exc:
            msg = f"{self._describe(job)}: input {exc.args[0]!r} is needed by path {request.path}"
            raise InputError(msg) from None
        return job.rt.base_url + path

    def _params(self, job: _Job, request: Request) -> dict[str, str] | None:
        if not request.query and not job.rt.query_inputs:
            return None
        params: dict[str, str] = {}
        raw = {
            k: str(v) for k, v in job.inputs.items() if isinstance(v, (str, int, float))
        }
        for name, template in request.query:
            params[name] = string.Formatter().vformat(template, (), _Strict(raw))
        for spec_input in job.rt.query_inputs:
            if spec_input.name in job.inputs:
                params[spec_input.wire_name] = str(job.inputs[spec_input.name])
        return params

    def _locate(
        self, locators: tuple[Locator, ...], reply: Reply | None, job: _Job | None
    ) -> str | None:
        for locator in locators:
            if locator.response == "submit" and job is not None:
                value: Any = (job.links or {}).get(locator.location)
            elif reply is None:
                continue
            elif locator.header is not None:
                value = reply.headers.get(locator.header.lower())
            else:
                value = resolve_pointer(reply.json(), locator.pointer or "")
            if value is MISSING or value is None or value == "":
                continue
            text = str(value)
            if locator.pattern is not None:
                import re  # noqa: PLC0415 - patterns are rare; compiled once by re's cache

                match = re.search(locator.pattern, text)
                if match is None:
                    continue
                groups = match.groupdict()
                text = groups.get("id") or (
                    match.group(1) if match.groups() else match.group(0)
                )
            return text
        return None

    def _submit_links(
        self, lifecycle: Lifecycle, reply: Reply
    ) -> dict[str, str] | None:
        links: dict[str, str] = {}
        requests = [lifecycle.poll.request]
        for block in (lifecycle.result, lifecycle.cancel, lifecycle.items):
            if block is not None:
                requests.append(block.request)
        for request in requests:
            for locator in request.url:
                if locator.response == "submit":
                    value = self._locate(
                        (attrs.evolve(locator, response="last"),), reply, None
                    )
                    if value:
                        links[locator.location] = value
        return links or None

    async def _send(
        self, job: _Job, request: Request, url: str, params: Mapping[str, str] | None
    ) -> Reply:
        return await self._send_rt(job.rt, request, url, params)

    async def _send_rt(
        self,
        rt: _Runtime,
        request: Request,
        url: str,
        params: Mapping[str, str] | None,
        *,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
    ) -> Reply:
        method = request.method
        for _hop in range(_MAX_REDIRECTS + 1):
            # The prefix test settles the common case without parsing the URL:
            # whatever follows "scheme://host:port/" cannot change the origin.
            own = url.startswith(rt.prefix) or origin(url) == rt.origin
            if not own and rt.lifecycle.policy.foreign_links == "refuse":
                host = rt.origin[1]
                msg = f"refused a link to a foreign host ({where(url)}); the spec's is {host}"
                raise RemoteError(msg, kind="protocol", retryable=False)
            # else: anonymous; credentials only ever go to the spec's own host.
            reply = await self._remote.send(
                method,
                url,
                headers=rt.request_headers(request, own=own),
                params=params or None,
                json_body=json_body,
                data=data,
                files=files,
                timeout=rt.lifecycle.errors.timeout,
            )
            location = reply.headers.get("location")
            if not (
                request.follow_redirects and 300 <= reply.status < 400 and location
            ):
                return reply
            url = urljoin(reply.url, location)
            params = None
            if reply.status == 303 or (reply.status in (301, 302) and method == "POST"):
                method, json_body, data, files = "GET", None, None, None
        msg = f"too many redirects from {where(url)}"
        raise RemoteError(msg, kind="protocol")

    async def _send_submit(self, rt: _Runtime, values: dict[str, Any]) -> Reply:
        submit = rt.lifecycle.submit
        assert submit is not None  # noqa: S101 - caller checked
        probe = _Job("submit", rt, "", values)
        request = submit.request
        url = self._url(probe, request, None)
        params = self._params(probe, request)
        json_body, data, files = _encode_body(rt.lifecycle, submit.body, values)
        failures = 0
        while True:
            reply = await self._send_rt(
                rt, request, url, params, json_body=json_body, data=data, files=files
            )
            if request.accepts(reply.status):
                return reply
            error = self._status_error(probe, reply, transient=False)
            if (
                reply.status not in submit.retry_status
                or failures >= rt.lifecycle.errors.retry_budget
            ):
                raise error
            failures += 1
            delay = retry_delay(rt.lifecycle.errors, failures) * rt.scale
            asked = parse_retry_after(
                reply.headers.get("retry-after"), now_wall=time.time()
            )
            if asked is not None:
                delay = clamp_retry_after(asked, rt.lifecycle.schedule, rt.scale)
            logger.info(
                "%s/%s submit: HTTP %d, retry in %.3gs",
                rt.spec.name,
                rt.lifecycle.name,
                reply.status,
                delay,
            )
            await self._clock.sleep_until(self._clock.now() + delay)

    def _status_error(self, job: _Job, reply: Reply, *, transient: bool) -> RemoteError:
        errors = job.rt.lifecycle.errors
        code: str | None = None
        message: str | None = None
        body: Any = None
        with contextlib.suppress(RemoteError):
            body = reply.json()
        if body is not None:
            for pointer in errors.code_pointers:
                found = resolve_pointer(body, pointer)
                if found is not MISSING and found is not None:
                    code = str(found)
                    break
            for pointer in errors.message_pointers:
                found = resolve_pointer(body, pointer)
                if found is not MISSING and found is not None:
                    message = str(found)
                    break
        detail = f" {code}" if code else ""
        text = f": {message}" if message else ""
        kind = "retryable" if transient else "fatal"
        msg = f"HTTP {reply.status}{detail} from {where(reply.url)} ({kind}){text}"
        return RemoteError(
            msg, kind="status", status=reply.status, code=code, remote_message=message
        )

    # -- internals: events, audit, store ------------------------------------------------------

    def _base(self, job: _Job, reply: Reply | None) -> dict[str, Any]:
        return {
            "service": job.rt.spec.name,
            "lifecycle": job.rt.lifecycle.name,
            "job_id": job.job_id,
            "state": job.state,
            "attempt": job.attempts,
            "http_status": reply.status if reply is not None else None,
            "time": time.time(),
        }

    async def _emit(self, event: ev.Event) -> None:
        failures = await self._hooks.dispatch(event)
        for failure in failures:
            self._record_raw(
                kind="hook_failed",
                service=failure.service,
                lifecycle=failure.lifecycle,
                job_id=failure.job_id,
                detail={
                    "hook": failure.hook,
                    "event": failure.event,
                    "error": failure.error,
                },
            )

    def _record(
        self,
        job: _Job,
        kind: str,
        *,
        from_state: str | None = None,
        to_state: str | None = None,
        trigger: str | None = None,
        http_status: int | None = None,
        observed: Any = None,
        detail: Mapping[str, Any] | None = None,
        item_id: str | None = None,
        lifecycle: str | None = None,
    ) -> None:
        if self._audit is None:
            return
        from .audit import AuditEntry  # noqa: PLC0415 - see open()

        rt = job.rt
        redactor = rt.redactor
        if redactor is None:
            redactor = rt.redactor = self._redactor(rt.spec)
        assert redactor is not None  # noqa: S101 - an audit log exists here
        entry = AuditEntry(
            kind=kind,
            service=rt.spec.name,
            lifecycle=lifecycle or rt.lifecycle.name,
            job_id=job.job_id,
            spec_hash=rt.spec.content_hash,
            spec_source=rt.spec.source,
            item_id=item_id,
            from_state=from_state,
            to_state=to_state,
            trigger=trigger,
            attempt=job.attempts,
            http_status=http_status,
            observed=redactor.redact(observed),
            detail=redactor.redact(dict(detail or {})),
        )
        self._append(entry)
        job.audit_seq += 1

    def _record_raw(self, **fields: Any) -> None:
        if self._audit is None:
            return
        from .audit import AuditEntry  # noqa: PLC0415 - see open()

        rt = next(
            (r for r in self._runtimes.values() if r.spec.name == fields["service"]),
            None,
        )
        entry = AuditEntry(
            spec_hash=rt.spec.content_hash if rt else "",
            spec_source=rt.spec.source if rt else "",
            **fields,
        )
        self._append(entry)

    def _append(self, entry: AuditEntry) -> None:
        assert self._audit is not None  # noqa: S101 - checked by callers
        try:
            self._audit.append(entry)
        except OSError:
            # Reported, never silently dropped: the log is the audit trail, so
            # the operator must know it has a hole.
            logger.exception(
                "audit sink failed to write a %s record for %s",
                entry.kind,
                entry.job_id,
            )

    def _persist(self, job: _Job) -> None:
        if self._store is None or job.done:
            return
        rt = job.rt
        now_mono = self._clock.now()
        now_wall = time.time()
        self._store.put(
            job.key,
            {
                "service": rt.spec.name,
                "spec_source": rt.spec.source,
                "spec_hash": rt.spec.content_hash,
                "lifecycle": rt.lifecycle.name,
                "job_id": job.job_id,
                "state": job.state,
                "attempts": job.attempts,
                "state_attempts": job.state_attempts,
                "deadline_wall": None
                if job.deadline is None
                else now_wall + (job.deadline - now_mono),
                "due_wall": now_wall + (job.due - now_mono),
                "links": job.links,
                "inputs": {k: v for k, v in job.inputs.items() if _jsonable(v)},
                "items": {k: v.state for k, v in (job.items or {}).items()},
                "item_filters": job.item_filters,
                "base_url": rt.base_url,
            },
        )

    async def _resume_stored(self) -> None:
        store = self._store
        assert store is not None  # noqa: S101 - caller checked
        latest = self._audit_positions()
        for key, snap in list(store.unfinished()):
            if snap.get("base_url"):
                self._base_urls.setdefault(snap["service"], snap["base_url"])
            try:
                rt = self._runtime(
                    snap["spec_source"].removeprefix("builtin:"), snap["lifecycle"]
                )
            except Exception:
                logger.exception(
                    "cannot resume stored job %s (%s)", key, snap.get("job_id")
                )
                continue
            if rt.spec.content_hash != snap["spec_hash"]:
                logger.error(
                    "not resuming %s job %s: its spec changed since it was stored",
                    snap["service"],
                    snap["job_id"],
                )
                continue
            ident = (snap["service"], snap["lifecycle"], snap["job_id"])
            audited = latest.get(ident)
            if audited is not None and audited[1]:
                # The log says the job already ended: the store missed the removal.
                store.remove(key)
                continue
            job = _Job(key, rt, snap["job_id"], dict(snap.get("inputs") or {}))
            job.state = (
                audited[0] if audited is not None and audited[0] else snap["state"]
            )
            job.attempts = snap.get("attempts", 0)
            job.state_attempts = snap.get("state_attempts", 0)
            job.links = snap.get("links")
            job.item_filters = snap.get("item_filters")
            items = snap.get("items") or {}
            for (
                service,
                lifecycle,
                job_id,
                item_id,
            ), item_state in self._audited_items(ident).items():
                del service, lifecycle, job_id
                items[item_id] = item_state
            job.items = {k: _Item(v) for k, v in items.items()} if items else None
            deadline_wall = snap.get("deadline_wall")
            if deadline_wall is not None:
                job.deadline = self._clock.now() + (deadline_wall - time.time())
            self._jobs[key] = job
            self._record(job, "resumed", to_state=job.state, trigger="resume")
            due_wall = snap.get("due_wall")
            wait = 0.0 if due_wall is None else max(0.0, due_wall - time.time())
            self._schedule_at(job, self._clock.now() + wait)
            self._persist(job)
        keys = [int(k[1:]) for k in self._jobs if k[1:].isdigit()]
        self._keys = itertools.count(max(keys, default=0) + 1)

    def _audit_positions(self) -> dict[tuple[str, str, str], tuple[str | None, bool]]:
        """Last audited state of every job and whether it completed."""
        self._audited_item_states: dict[tuple[str, str, str, str], str] = {}
        positions: dict[tuple[str, str, str], tuple[str | None, bool]] = {}
        if self._audit_path is None or not self._audit_path.exists():
            return positions
        from .audit import read_records  # noqa: PLC0415 - see open()

        lifecycles: dict[tuple[str, str], str] = {}
        for record in read_records(self._audit_path):
            kind = record.get("kind")
            key = (record["service"], record["lifecycle"], record["job_id"])
            if kind == "transition":
                positions[key] = (record["to"], False)
            elif kind in ("completed", "timed_out", "errored"):
                positions[key] = (positions.get(key, (None, False))[0], True)
            elif kind == "item_transition":
                parent = lifecycles.get((record["service"], record["job_id"]))
                if parent is not None:
                    self._audited_item_states[
                        (record["service"], parent, record["job_id"], record["item_id"])
                    ] = record["to"]
            elif kind == "submitted":
                lifecycles[(record["service"], record["job_id"])] = record["lifecycle"]
                positions.setdefault(key, (record.get("to"), False))
        return positions

    def _audited_items(
        self, ident: tuple[str, str, str]
    ) -> dict[tuple[str, str, str, str], str]:
        states = getattr(self, "_audited_item_states", {})
        return {k: v for k, v in states.items() if k[:3] == ident}

    # -- internals: lookups -------------------------------------------------------------------

    def _job(self, ref: JobRef) -> _Job:
        job = self._jobs.get(ref.key)
        if job is None:
            msg = f"unknown job {ref!r}: not tracked by this engine"
            raise KeyError(msg)
        return job

    def _waiter(self, job: _Job) -> asyncio.Future[JobResult]:
        if job.waiter is None:
            job.waiter = asyncio.get_running_loop().create_future()
            if job.done and job.result is not None:
                job.waiter.set_result(job.result)
        return job.waiter

    @staticmethod
    def _describe(job: _Job) -> str:
        return f"{job.rt.spec.name}/{job.rt.lifecycle.name} job {job.job_id}"

    @staticmethod
    def _extra(job: _Job) -> dict[str, str]:
        return {
            "service": job.rt.spec.name,
            "lifecycle": job.rt.lifecycle.name,
            "job_id": job.job_id,
        }


def _check_filters(rt: _Runtime, filters: Mapping[str, Any] | None) -> None:
    """Refuse unknown item filters before anything is sent (a typo must not widen a listing)."""
    if not filters:
        return
    items = rt.lifecycle.items
    if items is None:
        msg = f"{_name(rt)} has no items to filter"
        raise InputError(msg)
    declared = [f.name for f in items.filters]
    for name in filters:
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ";"
            names = ", ".join(declared)
            msg = (
                f"unknown item filter {name!r} for {_name(rt)}{hint} Declared: {names}"
            )
            raise InputError(msg)


def _name(rt: _Runtime) -> str:
    return f"{rt.spec.name}/{rt.lifecycle.name}"


class _Strict(dict[str, str]):
    """format_map mapping that raises KeyError for a missing field."""

    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


def _encode_body(
    lifecycle: Lifecycle, kind: str, values: Mapping[str, Any]
) -> tuple[Any, dict[str, Any] | None, dict[str, Any] | None]:
    """Return ``(json, data, files)`` for the submit request."""
    if kind == "none":
        return None, None, None
    if kind == "json":
        body = {
            i.wire_name: values[i.name]
            for i in lifecycle.inputs
            if i.where == "body" and i.name in values
        }
        return body, None, None
    data: dict[str, Any] = {}
    files: dict[str, Any] = {}
    for spec_input in lifecycle.inputs:
        if spec_input.name not in values:
            continue
        value = values[spec_input.name]
        if spec_input.where in ("form", "body"):
            data[spec_input.wire_name] = _form_value(value)
        elif spec_input.where == "file":
            files[spec_input.wire_name] = _file_part(value)
    if kind == "form":
        return None, data, None
    return None, data, files or None


def _form_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return [_form_value(v) for v in value]
    return str(value)


def _file_part(value: Any) -> Any:
    if isinstance(value, tuple):
        return value
    if isinstance(value, bytes):
        return ("upload", value, "application/octet-stream")
    path = Path(value)
    return (path.name, path.read_bytes(), "application/octet-stream")
