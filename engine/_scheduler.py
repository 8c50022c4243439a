"""The in-process driver's machinery: the due heap, in-flight limits, and one step at a time.

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

A job only gets a worker while one of its requests is in flight; the task
that finishes a step goes straight on to the next due job. For each step the
:class:`Scheduler` asks the core for the request, sends it, hands the reply
to the core with the time, and publishes the step: it decides nothing.

What a written step does to the jobs held (waiters, cancels, chains,
retention), and :class:`Live`, each job's handle, are in
``engine._scheduler_jobs``; :class:`Scheduler` builds on its ``_HeldJobs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Mapping
from typing import Generic, Literal, Protocol, TypeVar

from engine._clock import Clock, SystemClock
from engine._core import step as core
from engine._core.binding import Binding
from engine._core.reply import Reply
from engine._core.state import JobState, Phase
from engine._errors import RemoteError
from engine._exchange import send
from engine._publish import Publisher
from engine._remote import Remote
from engine._scheduler_jobs import Live, _HeldJobs

__all__ = ["DueHeap", "Live", "Scheduler", "ServiceSlot"]

logger = logging.getLogger("statepoll.engine")


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


class ServiceSlot:
    """In-flight accounting for one service."""

    __slots__ = ("in_flight", "limit", "waiting")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.waiting: deque[Live] = deque()


class Scheduler(_HeldJobs):
    """Drives the jobs of one process: due heap, in-flight limits, steps, retention."""

    def __init__(
        self,
        *,
        clock: Clock,
        remote: Remote,
        publisher: Publisher,
        rng: random.Random,
        max_in_flight: int,
        retain: int,
        retain_for: float,
    ) -> None:
        """Drive with ``remote`` on ``clock``; publish through ``publisher``."""
        self.clock = clock
        self.remote = remote
        self.publisher = publisher
        self.rng = rng
        self.max_in_flight = max_in_flight
        self.retain = retain
        self.retain_for = retain_for
        self.jobs: dict[str, Live] = {}
        self.slots: dict[str, ServiceSlot] = {}
        self.state: Literal["unopened", "opened", "closed"] = "unopened"
        self._heap: DueHeap[Live] = DueHeap(self.jobs)
        self._finished: deque[tuple[float, str]] = deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._driver: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        #: A job scheduled before this wakes the driver (see drive).
        self._wake_before = math.inf
        #: The driver waits for in-flight capacity: a worker that ends wakes it.
        self._wants_capacity = False
        #: Binds the next lifecycle of a chain like the job that starts it
        #: (set by the engine, which holds the bindings).
        self.bind_chained: Callable[[Binding, str, str], Binding] | None = None

    def slot(self, service: str, limit: int) -> None:
        """Declare ``service``'s in-flight limit (the first declaration holds)."""
        if service not in self.slots:
            self.slots[service] = ServiceSlot(limit)

    def open(self) -> None:
        """Start driving (in the running loop)."""
        self.state = "opened"
        self._wake = asyncio.Event()
        self._driver = asyncio.get_running_loop().create_task(
            self.drive(), name="statepoll-driver"
        )
        for live in self.jobs.values():
            self.schedule(live)

    async def close(self) -> None:
        """Stop driving: cancel the driver and every worker, and every waiter."""
        self.state = "closed"
        if self._driver is not None:
            self._driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._driver
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for live in self.jobs.values():
            for future in (live.waiter, live.cancel_waiter):
                if future is not None and not future.done():
                    future.cancel()

    # -- scheduling --------------------------------------------------------------------

    def schedule(self, live: Live) -> None:
        if live.job.done or self.state == "closed":
            return
        due = live.job.due
        live.generation += 1
        self._heap.push(due, live)
        if due < self._wake_before and self._wake is not None:
            self._wake.set()

    async def drive(self) -> None:
        wake = self._wake
        assert wake is not None  # noqa: S101 - set by open()
        loop = asyncio.get_running_loop()
        system_clock = isinstance(self.clock, SystemClock)
        while True:
            wake.clear()
            self._wake_before = -math.inf  # running: it looks at the heap anyway
            now = self.clock.now()
            while self._in_flight < self.max_in_flight:
                live = self._heap.pop_due(now)
                if live is None:
                    break
                if live.job.done or live.in_flight:
                    continue
                self.start(live)
            self.evict(now)
            due = self._heap.next_due()
            if due is not None and self._in_flight >= self.max_in_flight:
                # At capacity: a worker that stops for want of due jobs wakes
                # us; until then no new due time can be acted on.
                self._wants_capacity = True
                await wake.wait()
                self._wants_capacity = False
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
                    await self.sleep_or_wake(wake, due)
            else:
                await asyncio.sleep(0)

    async def sleep_or_wake(self, wake: asyncio.Event, due: float) -> None:
        """Sleep on the injected clock until ``due``, or until something earlier is scheduled."""
        sleeper = asyncio.ensure_future(self.clock.sleep_until(due))
        waiter = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waiter):
                task.cancel()

    def claim(self, live: Live) -> bool:
        """Count ``live`` in flight, or queue it behind its service's limit."""
        slot = self.slots[live.b.spec.name]
        if slot.in_flight >= slot.limit:
            slot.waiting.append(live)
            return False
        slot.in_flight += 1
        self._in_flight += 1
        live.in_flight = True
        return True

    def start(self, live: Live) -> None:
        """Start a worker task on ``live`` (never once the scheduler is closing)."""
        if self.state != "opened":
            return
        if self.claim(live):
            task = asyncio.get_running_loop().create_task(self.work(live))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def work(self, live: Live | None) -> None:
        """Run ``live``'s step, then every job due meanwhile, in this one task.

        While requests are due back to back, a finished request goes straight
        on to the next due job: no task is created and the driver is not woken
        per poll. When nothing is due, the task ends, and the driver, woken,
        starts one again when something is.
        """
        while live is not None:
            await self.step(live)
            # Yield between steps, as a task per poll did: over httpx's own
            # pool at 200 in flight, workers that never yielded starved the
            # pool's waiting requests (bench/throughput.py).
            await asyncio.sleep(0)
            live = self.next_due()
        if self._wants_capacity and self._wake is not None:
            # Capacity was freed, and the driver waits for it. Otherwise it
            # sleeps until the next due time, which this changes nothing of:
            # waking it would cost a loop turn per poll for nothing.
            self._wake.set()

    def next_due(self) -> Live | None:
        if self.state != "opened" or self._in_flight >= self.max_in_flight:
            return None
        now = self.clock.now()
        while (live := self._heap.pop_due(now)) is not None:
            if not live.job.done and not live.in_flight and self.claim(live):
                return live
        return None

    async def step(self, live: Live) -> None:
        """Send ``live``'s due request and commit the core's reading of the reply."""
        job = live.job
        b = live.b
        try:
            # A job can end (forgotten, say) after this step was claimed and
            # before it ran: then nothing more goes on the wire.
            if job.done:
                return
            if job.phase is Phase.START:
                # A chained job: its intent is committed before its submit is
                # sent (the next step sends it, due at once).
                await self.commit(live, core.begin_submit(b, job, now=self.clock.now()))
                return
            try:
                out = self.outgoing(live)
            except RemoteError as exc:
                # The core could not build the request (a template this job
                # cannot fill, a link to nowhere): a classified end, not a bug.
                await self.commit(live, core.abort(b, job, exc, now=self.clock.now()))
                return
            live.sending = asyncio.current_task()
            try:
                got = await self.send(b, out, job)
            except asyncio.CancelledError:
                if live.job is job:
                    raise  # the engine is closing
                # abandon(): the job was forgotten while its request was out.
                # Its slot is freed now, not when a stalled server lets go.
                _uncancel()
                return
            finally:
                live.sending = None
            if live.job is not job:
                return  # forgotten (or taken over) while the request was out
            step = core.on_reply(b, job, got, now=self.clock.now(), rng=self.rng)
            await self.commit(live, step)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # An engine bug must not take other jobs down: end this one loudly.
            logger.exception("internal error on %s job %s", b.name, job.job_id)
            error = RemoteError(
                f"internal error: {type(exc).__name__}",
                kind="protocol",
                retryable=False,
            )
            if not live.job.done:
                step = core.abort(b, live.job, error, now=self.clock.now())
                await self.commit(live, step)
        finally:
            live.in_flight = False
            slot = self.slots[b.spec.name]
            slot.in_flight -= 1
            self._in_flight -= 1
            while slot.waiting and slot.in_flight < slot.limit:
                waiting = slot.waiting.popleft()
                if not waiting.job.done and not waiting.in_flight:
                    self.start(waiting)

    def abandon(self, live: Live) -> None:
        """Give up ``live``'s request on the wire, if any: its answer would go nowhere.

        Call after replacing ``live.job``: the step sending the request then
        returns at once and frees its slots.
        """
        if live.sending is not None:
            live.sending.cancel()

    def outgoing(self, live: Live) -> core.Outgoing:
        job = live.job
        if job.phase is Phase.POLL:
            # The poll URL depends only on the job's id, inputs and links:
            # built once, and again only when a poll's answer moves the link.
            if live.poll_url is None or live.poll_link != job.poll_link:
                live.poll_url = core.poll_url(live.b, job)
                live.poll_link = job.poll_link
            return core.poll_request(live.b, job, live.poll_url)
        return core.request_for(live.b, job)

    async def send(
        self, b: Binding, out: core.Outgoing, job: JobState
    ) -> Reply | RemoteError:
        """Send ``out``; return the reply, or the classified error that replaced it."""
        return await send(self.remote, b, out, job, now=self.clock.now())


def _uncancel() -> None:
    """Take back the cancellation ``Scheduler.abandon`` asked for: the task goes on."""
    task = asyncio.current_task()
    if task is not None:
        task.uncancel()
