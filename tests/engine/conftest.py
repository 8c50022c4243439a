"""Fixtures of the engine's tests: a virtual clock for schedules without real sleeps."""

from __future__ import annotations

import asyncio
import heapq
import itertools


class VirtualClock:
    """Time that moves only when every task is waiting for it.

    ``sleep_until`` parks the caller; once the event loop has run everything
    runnable (a bounded number of turns), the earliest sleeper's time becomes
    ``now`` and it wakes. A schedule of minutes runs in milliseconds, and the
    gaps between polls are exact. Meant for in-process transports
    (``httpx.MockTransport``), whose replies need no real I/O.
    """

    #: Loop turns given to runnable tasks before time moves.
    SETTLE = 50

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        """Start at ``start`` (an epoch time, as the engine's clocks give)."""
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._advancer: asyncio.Task[None] | None = None

    def now(self) -> float:
        """Return the virtual time."""
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        """Return once virtual time reaches ``deadline``."""
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        if self._advancer is None or self._advancer.done():
            self._advancer = asyncio.get_running_loop().create_task(self._advance())
        await future

    async def _advance(self) -> None:
        while self._sleepers:
            for _ in range(self.SETTLE):
                await asyncio.sleep(0)
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue  # the sleeper was cancelled (woken by something earlier)
            self._now = max(self._now, deadline)
            future.set_result(None)
