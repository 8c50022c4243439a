"""One contender's run inside its own process: start the jobs, watch them end, measure.

A contender sets itself up (sessions, clients, engines: not measured), then
calls ``Run.begin()``, starts each job at its time through ``start_async`` or
``start_threads``, waits with ``wait_async``/``wait_threads`` until it has seen
every job end or the timeline's deadline passes, and calls ``Run.end()``.
Between ``begin`` and ``end`` the harness measures:

- the process's CPU time (every thread, ``time.process_time``), divided later
  by the status polls the server answered over the same span;
- the resident set: before the first job starts, and its peak (``VmHWM``);
- the peak number of OS threads (``/proc/self/status``, sampled every 0.2 s by
  one sampler thread, which is not counted);
- when each job was seen terminal (``Run.saw_terminal``, wall clock), for the
  detection lag against the server's terminal time;
- errors the contender saw (exceptions, non-200 answers, jobs that ended
  otherwise), besides the error answers the server counted.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _peers_workload as work

_SAMPLE_EVERY = 0.2
#: The first job starts this long after the server is told the run's start.
_LEAD_IN = 0.2


def _status_fields() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in {"Threads", "VmRSS", "VmHWM"}:
            fields[key] = int(value.split()[0])
    return fields


def control(url: str, target: str) -> dict[str, Any]:
    """Send one control request to the server (blocking, its own connection); return its JSON."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    body = b"".join(chunks).split(b"\r\n\r\n", 1)[1]
    return json.loads(body)


def _percentile(values: list[float], share: float) -> float | None:
    """Return the nearest-rank percentile of sorted ``values`` (``None`` when empty)."""
    if not values:
        return None
    rank = max(1, round(share * len(values)))
    return values[min(rank, len(values)) - 1]


class Run:
    """The shared state of one run: its parameters, what was seen, the measurements."""

    def __init__(
        self, url: str, jobs: int, in_flight: int, timeline: work.Timeline
    ) -> None:
        self.url = url
        self.jobs = jobs
        self.in_flight = in_flight
        self.timeline = timeline
        #: Wall-clock time each job was seen terminal (0.0: not seen).
        self.seen = [0.0] * jobs
        self.finished = 0
        self.errors = 0
        self.t0 = 0.0
        self.notes: list[str] = []
        self._lock = threading.Lock()
        self._all_seen = threading.Event()
        self._wake: Callable[[], None] | None = None
        self._async_wake: asyncio.Event | None = None
        self._sampling = threading.Event()
        self._threads_peak = 0
        self._rss0 = 0
        self._cpu0 = 0.0
        self._result: dict[str, Any] = {}

    # -- what contenders call ----------------------------------------------------

    def saw_terminal(self, i: int) -> None:
        """Record that job ``i`` was seen in a terminal state (the first time counts)."""
        if self.seen[i]:
            return
        self.seen[i] = time.time()
        with self._lock:
            self.finished += 1
            last = self.finished == self.jobs
        if last:
            self._all_seen.set()
            if self._wake is not None:
                self._wake()

    def error(self) -> None:
        """Count one error the contender saw (thread-safe: errors are rare)."""
        with self._lock:
            self.errors += 1

    def url_of(self, i: int) -> str:
        """Return job ``i``'s status URL without the query."""
        return self.url + work.status_path(i)

    @property
    def deadline(self) -> float:
        """Return the wall-clock time after which the contender stops waiting."""
        return self.t0 + self.timeline.deadline

    def begin(self) -> None:
        """Start the run on the server, wait for its start time, take the first readings."""
        fields = _status_fields()
        self._rss0 = fields["VmRSS"]
        self._threads_peak = fields["Threads"]
        threading.Thread(target=self._sample, name="peers-sampler", daemon=True).start()
        self.t0 = time.time() + _LEAD_IN
        control(
            self.url,
            f"/__start?jobs={self.jobs}&t0={self.t0!r}&{self.timeline.query()}",
        )
        time.sleep(max(0.0, self.t0 - time.time()))
        self._cpu0 = time.process_time()

    def end(self) -> None:
        """Take the last readings; ask the server what it answered."""
        cpu = time.process_time() - self._cpu0
        wall = time.time() - self.t0
        server = control(self.url, "/__stats")
        self._sampling.set()
        fields = _status_fields()
        threads_peak = (
            max(self._threads_peak, fields["Threads"]) - 1
        )  # less the sampler
        lags = sorted(
            seen - self.t0 - self.timeline.terminal_offset(i)
            for i, seen in enumerate(self.seen)
            if seen
        )
        self._result = {
            "cpu": cpu,
            "wall": wall,
            "polls": server["polls"],
            "bad": server["bad"],
            "connections": server["connections"],
            "server_cpu": server["cpu"],
            "server_wall": server["wall"],
            "errors": self.errors,
            "finished": self.finished,
            "lag_p50": _percentile(lags, 0.50),
            "lag_p99": _percentile(lags, 0.99),
            "lag_max": lags[-1] if lags else None,
            "lag_min": lags[0] if lags else None,
            "rss0_kb": self._rss0,
            "hwm_kb": fields["VmHWM"],
            "threads": threads_peak,
        }

    def result(self) -> dict[str, Any]:
        """Return the measurements (after ``end``), with any notes."""
        return {**self._result, "notes": self.notes}

    # -- starting and waiting ---------------------------------------------------------

    async def start_async(self, start: Callable[[int], Awaitable[Any] | None]) -> None:
        """Start each job at its time on the event loop (``start`` may be a coroutine function)."""
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        self._wake = lambda: loop.call_soon_threadsafe(wake.set)
        self._async_wake = wake
        for i in range(self.jobs):
            delay = self.t0 + self.timeline.start_offset(i, self.jobs) - time.time()
            if delay > 0.001:
                await asyncio.sleep(delay)
            elif self._past_deadline(i):
                return
            started = start(i)
            if started is not None:
                await started

    async def wait_async(self) -> None:
        """Wait until every job was seen terminal or the deadline passed."""
        remaining = self.deadline - time.time()
        if self.finished < self.jobs and remaining > 0:
            try:
                assert self._async_wake is not None
                async with asyncio.timeout(remaining):
                    await self._async_wake.wait()
            except TimeoutError:
                self.notes.append("deadline reached")

    def start_threads(self, start: Callable[[int], None]) -> None:
        """Start each job at its time from this thread; stop starting if starting fails."""
        for i in range(self.jobs):
            delay = self.t0 + self.timeline.start_offset(i, self.jobs) - time.time()
            if delay > 0.001:
                time.sleep(delay)
            elif self._past_deadline(i):
                return
            try:
                start(i)
            except RuntimeError as exc:  # "can't start new thread"
                self.notes.append(f"job {i}: {exc}; {self.jobs - i} jobs not started")
                return

    def wait_threads(self) -> None:
        """Wait until every job was seen terminal or the deadline passed."""
        if not self._all_seen.wait(max(0.0, self.deadline - time.time())):
            self.notes.append("deadline reached")

    def _past_deadline(self, i: int) -> bool:
        """Whether starting job ``i`` is too late to count (noted once, when it is)."""
        if time.time() < self.deadline:
            return False
        self.notes.append(f"{self.jobs - i:,} jobs not started by the deadline")
        return True

    def _sample(self) -> None:
        while not self._sampling.wait(_SAMPLE_EVERY):
            self._threads_peak = max(self._threads_peak, _status_fields()["Threads"])
