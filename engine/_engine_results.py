"""AsyncEngine's waiting and results: wait, as_completed, status, state_of, jobs.

A job held here is waited for on its scheduler future; a job another driver
holds (or that was taken over meanwhile) is read from the store until it
ends. A result handed over leaves memory (``Scheduler.release``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable

from engine._core.state import JobRef, JobResult, JobStatus
from engine._engine_lifecycle import _EngineLifecycle
from engine._errors import WaitTimeout
from engine._publish import LeaseLost
from engine._scheduler import Live


class _Results(_EngineLifecycle):
    """Wait for jobs, take their results, and say where they are."""

    # -- waiting and results ---------------------------------------------------------

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

    def state_of(self, job: JobRef) -> str:
        """Return the job's current state."""
        return self._run.live(job).job.state

    def jobs(self) -> list[JobRef]:
        """Return every job the engine holds: live ones, and finished ones still retained."""
        # list() copies the values in one step under the GIL: the blocking
        # twin reads this from its caller's thread while the loop runs.
        return [live.job.ref() for live in list(self._run.jobs.values())]
