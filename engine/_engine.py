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
import difflib
import itertools
import logging
import os
import random
import uuid
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

from engine._clock import Clock, SystemClock
from engine._core import step as core
from engine._core.binding import Binding, bind
from engine._core.state import JobRef, JobResult, JobState, Phase
from engine._errors import (
    CredentialError,
    EngineClosedError,
    InputError,
    WaitTimeout,
)
from engine._hooks import HookRegistry
from engine._publish import Publisher
from engine._remote import Remote, default_client
from engine._scheduler import Live, Scheduler
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
        self._rng = random.Random(seed)  # noqa: S311 - jitter, not security
        self._time_scale = time_scale
        self._specs: dict[str, Spec] = {}
        for spec in specs:
            self._spec(spec)
        self._bindings: dict[tuple[str, str, str], Binding] = {}
        self._bound: dict[tuple[object, str], Binding] = {}
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
        self._keys = itertools.count(1)
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
        self._run.open()
        if self._store is not None:
            from engine._resume import resume_stored  # noqa: PLC0415 - only with a store

            await resume_stored(self, self._store, self._audit_path)

    async def aclose(self) -> None:
        """Stop polling, close what the engine created. Live jobs stay in the store."""
        if self._state == "closed":
            return
        self._state = "closed"
        await self._run.close()
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
        submit = b.lifecycle.submit
        job = core.new_submission(
            b,
            key=self._new_key(),
            inputs=values,
            filters=item_filters,
            now=self._clock.now(),
            # Used when the spec sends a reference the caller did not give.
            client_ref=f"sp{uuid.uuid4().hex[:22]}" if submit.client_ref else None,
        )
        while True:
            out = core.submit_request(b, job, values)
            got = await self._run.send(b, out, job)
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
        live = Live(b, job)
        self._run.register(live)
        await self._run.commit(live, step)
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
            rng=self._rng,
        )
        live = Live(b, step.job)
        self._run.register(live)
        await self._run.commit(live, step)
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
        live = self._run.live(job)
        if live.handed:
            msg = f"{live.b.name} job {job.job_id}: its result was handed over already"
            raise KeyError(msg)
        if live.result is None:
            waiter = self._run.waiter(live)
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
        self._run.release(live)
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
        # A request on the wire is answered into the void: its step sees that
        # the job it was sent for is not the current one any more.
        live.job = step.job
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
        # Registering many jobs looks the same binding up again and again:
        # by the caller's own spec object or name first, then by content.
        quick = (spec if isinstance(spec, str) else id(spec), lifecycle)
        found = self._bound.get(quick)
        if found is not None:
            return found
        found = self._bound[quick] = self._binding_of(self._spec(spec), lifecycle)
        return found

    def _binding_of(self, loaded: Spec, lifecycle: str) -> Binding:
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
        self._run.slot(service.name, service.max_in_flight)
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
        while key in self._run.jobs:
            key = f"j{next(self._keys)}"
        return key

    # -- publishing a step -------------------------------------------------------------

    def _adopt_stored(self, b: Binding, job: JobState) -> Live:
        """Register a job taken from the store (see ``engine._resume``)."""
        live = Live(b, job)
        self._run.register(live)
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
