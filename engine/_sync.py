"""Engine: the blocking twin of AsyncEngine for scripts and the CLI.

Each public method forwards to the async method of the same name and
signature (a test compares them, as httpcore's ``unasync --check`` would).
Jobs advance only inside its calls: the event loop runs while a call blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from typing import Any, Self, TypeVar, Unpack, overload

from statemachines import Spec

from ._engine import AsyncEngine, EngineOptions, JobRef, JobResult

__all__ = ["Engine"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class Engine:
    """Blocking twin of :class:`AsyncEngine`; takes the same options."""

    def __init__(
        self, specs: Iterable[Spec | str] = (), **options: Unpack[EngineOptions]
    ) -> None:
        """Create the core engine and the event loop runner that drives it."""
        self._runner = asyncio.Runner()
        self._core = AsyncEngine(specs, **options)

    def __enter__(self) -> Self:
        """Open the engine."""
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Close the engine."""
        self.close()

    def open(self) -> None:
        """Start the scheduler (see :meth:`AsyncEngine.open`)."""
        self._call(self._core.open)

    def close(self) -> None:
        """Close the core first, then the runner (an open runner leaks its loop)."""
        try:
            self._call(self._core.aclose)
        finally:
            self._runner.close()

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
        """Register a hook (see :meth:`AsyncEngine.on`)."""
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
        **more_inputs: Any,
    ) -> JobRef:
        """Create a job and start tracking it (see :meth:`AsyncEngine.submit`)."""
        return self._call(
            lambda: self._core.submit(
                spec, lifecycle, inputs, item_filters=item_filters, **more_inputs
            )
        )

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
                **more_inputs,
            )
        )

    def wait(self, job: JobRef, *, timeout: float | None = None) -> JobResult:
        """Block until the job ends (see :meth:`AsyncEngine.wait`)."""
        return self._call(lambda: self._core.wait(job, timeout=timeout))

    def forget(self, job: JobRef) -> None:
        """Stop tracking the job (see :meth:`AsyncEngine.forget`)."""
        return self._call(lambda: self._core.forget(job))

    def cancel(self, job: JobRef) -> bool:
        """Cancel the job (see :meth:`AsyncEngine.cancel`)."""
        return self._call(lambda: self._core.cancel(job))

    def as_completed(
        self, jobs: Iterable[JobRef] | None = None, *, timeout: float | None = None
    ) -> Iterator[JobResult]:
        """Yield each job's result as it ends (see :meth:`AsyncEngine.as_completed`)."""
        agen = self._core.as_completed(jobs, timeout=timeout)

        async def step() -> JobResult:
            return await anext(agen)

        try:
            while True:
                try:
                    yield self._call(step)
                except StopAsyncIteration:
                    return
        finally:
            self._call(agen.aclose)

    def state_of(self, job: JobRef) -> str:
        """Return the job's current state."""
        return self._core.state_of(job)

    def jobs(self) -> list[JobRef]:
        """Return every job the engine knows."""
        return self._core.jobs()

    def _call(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return self._runner.run(make())
        # Checked before the coroutine exists: asyncio.Runner would raise
        # "cannot be called from a running event loop" and leave a
        # never-awaited coroutine warning behind.
        msg = "Engine blocks; inside an event loop use AsyncEngine instead."
        raise RuntimeError(msg)
