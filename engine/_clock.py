"""The clock every driver schedules by: injected, so that tests need no real sleeps."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Time for scheduling; injected so tests need no real sleeps.

    ``now()`` is in seconds since the epoch and never goes backwards within a
    process: a job's due time and deadline are stored in it, so that they
    keep their meaning across a restart and between processes sharing a
    store, and an HTTP-date ``Retry-After`` compares with it directly.
    """

    def now(self) -> float:
        """Return the current time in seconds since the epoch (monotonic within a process)."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline``."""
        ...


class SystemClock:
    """The real clock: wall time at start, advanced by ``time.monotonic``.

    Anchoring the monotonic clock to the wall clock once keeps scheduling
    immune to wall-clock steps (NTP, a changed time zone) while its readings
    stay comparable with other processes' and with stored times.
    """

    __slots__ = ("_offset",)

    def __init__(self) -> None:
        """Anchor to the wall clock now."""
        self._offset = time.time() - time.monotonic()

    def now(self) -> float:
        """Return the current time in seconds since the epoch."""
        return self._offset + time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until ``deadline`` (no-op if it has passed)."""
        delay = deadline - self.now()
        if delay > 0:
            await asyncio.sleep(delay)
