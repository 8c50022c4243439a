"""Engine: the blocking twin of AsyncEngine for scripts and the CLI.

The async core runs on one background event-loop thread (anyio's blocking
portal), so jobs keep moving between the caller's calls, as azure-core's
poller thread does: a job submitted before ``time.sleep(3)`` has been polled
meanwhile. Each public method forwards to the async method of the same name
and signature (a test compares them, as httpcore's ``unasync --check``
would). Hooks run on that background thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Self, TypeVar, Unpack, overload

from anyio.from_thread import BlockingPortal, start_blocking_portal

from engine._core.state import JobStatus
from engine._engine import AsyncEngine, EngineOptions, JobRef, JobResult
from engine._errors import EngineClosedError
from statemachines import Spec

__all__ = ["Engine"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Engine:
    """Blocking twin of :class:`AsyncEngine`; takes the same options.

    The engine's event loop runs on a background thread from the first call
    (or :meth:`open`) until :meth:`close`: jobs move between calls, and hooks
    run on that thread.
    """

    def __init__(
        self, specs: Iterable[Spec | str] = (), **options: Unpack[EngineOptions]
    ) -> None:
        """Create the core engine; its loop thread starts on first use."""
        self._core = AsyncEngine(specs, **options)
        self._portal_cm: contextlib.AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._closed = False

    def __enter__(self) -> Self:
        """Open the engine."""
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Close the engine."""
        self.close()

    def open(self) -> None:
        """Start the loop thread and the scheduler (see :meth:`AsyncEngine.open`)."""
        self._call(self._core.open)

    def close(self) -> None:
        """Close the core, then stop the loop thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._portal is None:
            return
        try:
            self._portal.call(self._core.aclose)
        finally:
            cm, self._portal_cm, self._portal = self._portal_cm, None, None
            if cm is not None:
                cm.__exit__(None, None, None)

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
        """Register a hook (see :meth:`AsyncEngine.on`); it runs on the loop thread."""
        if fn is None:
            return self._core.on(
                event, service=service, lifecycle=lifecycle, state=state
            )
        return self._core.on(
            event, fn, service=service, lifecycle=lifecycle, state=state
        )

    def submit(
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
        """Create a job and start tracking it (see :meth:`AsyncEngine.submit`)."""
        return self._call(
            lambda: self._core.submit(
                spec,
                lifecycle,
                inputs,
                item_filters=item_filters,
                deadline=deadline,
                max_attempts=max_attempts,
                **more_inputs,
            )
        )

    def enqueue(
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
        """Create a job and leave it in the store (see :meth:`AsyncEngine.enqueue`)."""
        return self._call(
            lambda: self._core.enqueue(
                spec,
                lifecycle,
                inputs,
                item_filters=item_filters,
                deadline=deadline,
                max_attempts=max_attempts,
                **more_inputs,
            )
        )

    def status(self, job: JobRef) -> JobStatus:
        """Return where the job is now (see :meth:`AsyncEngine.status`)."""
        return self._call(lambda: self._core.status(job))

    def track(
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
        """Adopt an existing job (see :meth:`AsyncEngine.track`)."""
        return self._call(
            lambda: self._core.track(
                spec,
                lifecycle,
                job_id,
                inputs,
                item_filters=item_filters,
                state=state,
                drive=drive,
                deadline=deadline,
                max_attempts=max_attempts,
                **more_inputs,
            )
        )

    def track_many(
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
        """Adopt many existing jobs at once (see :meth:`AsyncEngine.track_many`)."""
        return self._call(
            lambda: self._core.track_many(
                spec,
                lifecycle,
                job_ids,
                inputs,
                item_filters=item_filters,
                state=state,
                drive=drive,
                deadline=deadline,
                max_attempts=max_attempts,
                **more_inputs,
            )
        )

    def wait(self, job: JobRef, *, timeout: float | None = None) -> JobResult:
        """Block until the job ends (see :meth:`AsyncEngine.wait`)."""
        return self._call(lambda: self._core.wait(job, timeout=timeout))

    def cancel(self, job: JobRef) -> bool:
        """Cancel the job (see :meth:`AsyncEngine.cancel`)."""
        return self._call(lambda: self._core.cancel(job))

    def forget(self, job: JobRef) -> None:
        """Stop tracking the job (see :meth:`AsyncEngine.forget`)."""
        return self._call(lambda: self._core.forget(job))

    def as_completed(
        self, jobs: Iterable[JobRef] | None = None, *, timeout: float | None = None
    ) -> Iterator[JobResult]:
        """Yield each job's result as it ends (see :meth:`AsyncEngine.as_completed`).

        ``timeout`` bounds the whole iteration, measured on the caller's side:
        :class:`TimeoutError` is raised when it expires (jobs keep going).
        """
        ends = None if timeout is None else time.monotonic() + timeout
        stream: AsyncGenerator[JobResult, None] = self._call(
            lambda: _started(self._core.as_completed(jobs))
        )
        try:
            while True:
                left = None if ends is None else ends - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                try:
                    yield self._call(lambda left=left: _next(stream, left))  # type: ignore[misc] # bound per iteration
                except StopAsyncIteration:
                    return
        finally:
            if self._portal is not None:
                self._portal.call(stream.aclose)

    def state_of(self, job: JobRef) -> str:
        """Return the job's current state (a read: safe from any thread)."""
        return self._core.state_of(job)

    def jobs(self) -> list[JobRef]:
        """Return every job the engine holds (a read: safe from any thread)."""
        return self._core.jobs()

    def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run ``make()`` on the loop thread and return its result."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            # Checked before the coroutine exists, so no never-awaited
            # coroutine is left behind: blocking a running loop deadlocks it.
            msg = "Engine blocks; inside an event loop use AsyncEngine instead."
            raise RuntimeError(msg)
        return self._running().call(make)

    def _running(self) -> BlockingPortal:
        if self._closed:
            msg = "Cannot use the engine: it has been closed."
            raise EngineClosedError(msg)
        if self._portal is None:
            cm = start_blocking_portal("asyncio", name="statepoll-engine")
            self._portal = cm.__enter__()
            self._portal_cm = cm
        return self._portal


async def _started(stream: T) -> T:
    return stream


async def _next(
    stream: AsyncGenerator[JobResult, None], left: float | None
) -> JobResult:
    async with asyncio.timeout(left):
        return await anext(stream)
