"""The clock and the due-time heap that drive every job.

One heap of ``(due, seq, generation, key)`` for all jobs instead of a sleeping
task per job: an idle job costs one heap entry (~136 B, against ~1.17 KB for a
parked asyncio task; DESIGN). Entries are never removed in place; a job that
was rescheduled carries a new ``generation`` and its stale entries are skipped
when popped.

An entry names its job by key instead of holding it: a tuple of a float, two
ints and a str is untracked by CPython's garbage collector after its first
young collection, so the entry each poll pushes (and which lives until the
next poll, a minute later) never reaches the oldest generation. Holding the
job instead made one long-lived tracked object per poll, and the 25 % growth
rule then ran a full collection over every live job about once a minute:
~100 ms stalls with 100,000 jobs (``bench/lateness.py``).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Mapping
from typing import Generic, Protocol, TypeVar

__all__ = ["Clock", "DueHeap", "SystemClock"]


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


class _Scheduled(Protocol):
    key: str
    generation: int


T = TypeVar("T", bound=_Scheduled)


class DueHeap(Generic[T]):
    """Items ordered by due time, looked up by key; stale entries are skipped lazily."""

    __slots__ = ("_counter", "_heap", "_items")

    def __init__(self, items: Mapping[str, T]) -> None:
        """Start empty; ``items`` maps each key pushed to its item (not copied)."""
        self._heap: list[tuple[float, int, int, str]] = []
        self._counter = itertools.count()
        self._items = items

    def __len__(self) -> int:
        """Return the number of entries (stale ones included)."""
        return len(self._heap)

    def push(self, due: float, item: T) -> None:
        """Schedule ``item`` at ``due`` (its current generation)."""
        heapq.heappush(
            self._heap, (due, next(self._counter), item.generation, item.key)
        )

    def _live(self, entry: tuple[float, int, int, str]) -> T | None:
        item = self._items.get(entry[3])
        if item is None or item.generation != entry[2]:
            return None
        return item

    def next_due(self) -> float | None:
        """Return the earliest live due time, dropping stale entries on the way."""
        heap = self._heap
        while heap and self._live(heap[0]) is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> T | None:
        """Pop the earliest live item due at or before ``now``, or ``None``."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            item = self._live(heapq.heappop(heap))
            if item is not None:
                return item
        return None
