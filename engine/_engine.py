"""AsyncEngine: the in-process driver. It owns the loop, the heap and the client; the core decides.

The driver keeps a heap of due times and a bounded number of requests in
flight (globally and per service), not a task per job: a job is a small
record that only gets a worker while one of its requests is in flight. For
each due job it asks the core for the next request, sends it, hands the
reply to the core with the time, and publishes the step the core returns
(``engine._publish``). It holds no decision of its own about what a reply
means, when to poll again, or whether an error is fatal.

The class is put together from parts, each in a module of its own:
``engine._engine_lifecycle`` holds the state they all share, and opening and
closing; ``engine._engine_jobs`` creating and adopting jobs;
``engine._engine_results`` waiting and results. :class:`AsyncEngine` here
keeps its options, its hooks, and the calls that steer a running job.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
from collections.abc import Callable, Iterable, Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    Final,
    Literal,
    TypedDict,
    TypeVar,
    overload,
)

from engine._bindings import Bindings
from engine._clock import Clock, SystemClock
from engine._core import step as core
from engine._core.state import JobRef, JobResult
from engine._engine_jobs import _JobCreation
from engine._engine_results import _Results
from engine._holder import Holder
from engine._hooks import HookRegistry
from engine._publish import Publisher
from engine._remote import Remote, default_client
from engine._scheduler import Scheduler
from engine.stores import JobStore
from statemachines import Spec

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
    lease: float
    take_over: bool


class AsyncEngine(_JobCreation, _Results):
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

    # -- steering a running job ------------------------------------------------------

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
                # Sent once the request on the wire is answered (see Scheduler.step).
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
