"""An in-process driver's side of a store: its owner row, its heartbeat, and taking jobs over.

An ``AsyncEngine`` with a store holds every job it drives (in memory, on its
heap) under one owner whose lease it renews in the background. When it
opens, it takes over every job of the store that no live driver holds: jobs
a crashed process left behind, jobs enqueued for anyone. When it closes, it
lets its jobs go, and a worker or another engine takes them from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Final

from engine._bindings import Bindings
from engine._clock import Clock
from engine._core import step as core
from engine._core.state import JobState
from engine._scheduler import Live, Scheduler
from engine.stores import JobStore, StoreError, new_owner
from statemachines import Outcome, StatepollError

if TYPE_CHECKING:
    from engine._core.state import JobResult

__all__ = ["Holder"]

logger = logging.getLogger("statepoll.engine")

#: Jobs taken over per claim when a driver opens.
_TAKE: Final = 500


class Holder:
    """The owner an in-process driver holds its stored jobs as."""

    def __init__(
        self, store: JobStore, *, clock: Clock, lease: float, bindings: Bindings
    ) -> None:
        """Hold jobs of ``store`` under a new owner, with a lease of ``lease`` seconds."""
        self.store = store
        self.owner = new_owner()
        self._clock = clock
        self._lease = lease
        self._bindings = bindings
        self._beat: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Register the owner and start renewing its lease (every third of it)."""
        await self.store.open(self.owner, lease=self._lease, now=self._clock.now())
        self._beat = asyncio.get_running_loop().create_task(
            self._heartbeat(), name="statepoll-heartbeat"
        )

    async def close(self) -> None:
        """Stop the heartbeat and let every held job go."""
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
        try:
            await self.store.release()
        except StoreError:
            # The jobs are freed anyway when the lease lapses.
            logger.exception("cannot release jobs held in %s", self.store.url)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                await self.store.heartbeat(now=self._clock.now())
            except StoreError:
                logger.exception("cannot renew the lease in %s", self.store.url)

    async def take_over(self, run: Scheduler) -> int:
        """Take every job no live driver holds, and drive it; return how many.

        A job whose spec cannot be found (its file changed or went away) is
        reported and let go at once, for a driver that has the spec.
        """
        taken = 0
        refused: set[str] = set()
        while True:
            now = self._clock.now()
            claimed = await self.store.claim(now=now, limit=_TAKE, due_only=False)
            if not claimed or {job.key for job, _ in claimed} <= refused:
                return taken
            for job, lease in claimed:
                if job.key in refused:
                    continue
                try:
                    b = self._bindings.for_stored(job)
                except (StatepollError, OSError) as exc:
                    logger.error("not resuming stored job %s: %s", job.key, exc)  # noqa: TRY400 - reported, not raised
                    refused.add(job.key)
                    await self.store.commit(job, (), lease, hold=False, now=now)
                    continue
                step = core.resume(b, job, now=now)
                live = Live(b, step.job, lease)
                run.register(live)
                await run.commit(live, step)
                taken += 1

    async def stored(self, key: str) -> JobState | None:
        """Return a job as the store last saw it (a job another driver drives)."""
        return await self.store.get(key)

    def result_of(self, job: JobState) -> JobResult:
        """Return the result of a stored job that ended (its lifecycle gives the outcome)."""
        outcome: Outcome | None = None
        with contextlib.suppress(StatepollError, OSError, KeyError):
            b = self._bindings.for_stored(job)
            outcome = b.lifecycle.state(job.state).outcome
        return job.to_result(outcome)
