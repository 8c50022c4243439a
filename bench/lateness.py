"""p99 lateness of polls against their due time with 100,000 live jobs.

100,000 jobs of the bench lifecycle, polled every 60 s (the engine's
``time_scale`` stretches the spec's 1 ms interval), their due times spread
evenly over one interval: ~1,667 polls/s. Lateness = when the engine starts a
poll minus when it was due, measured for ~20 s.

The polls are answered by an in-process ``httpx.MockTransport`` (default), so
that the scheduler is measured rather than a network stack; ``--transport
loopback`` sends them to ``_server.py`` over 127.0.0.1 through httpx-aiohttp's
transport instead (the server in its own process, on its own CPU).

Side by side in one run: with Python's default garbage collector, and with
``gc.freeze()`` once the jobs are loaded (generation-2 collections otherwise
walk every live job record; the collector's pauses are reported too).

Target (issue #4): p99 <= 50 ms.

    python bench/lateness.py [--quick] [--jobs 100000] [--seconds 20]
        [--interval 60] [--transport mock|loopback|both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _server
import httpx
from httpx_aiohttp import AiohttpTransport

from engine import AsyncEngine
from statemachines import load_spec

SPEC = Path(__file__).with_name("bench_spec.json")
BODY = b'{"status":"Running"}'
#: The bench lifecycle's delays are 1 ms: time_scale = interval / 0.001.
SPEC_INTERVAL = 0.001
#: The first polls fall due this long after the jobs are loaded.
LEAD = 1.0
MAX_IN_FLIGHT = 64


class _Pauses:
    """The garbage collector's pauses, by generation, via ``gc.callbacks``."""

    def __init__(self) -> None:
        self.started = 0.0
        #: Seconds a forced full collection took, right after the window.
        self.full_collection = 0.0
        self.by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].append(
                time.perf_counter() - self.started
            )

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        gc.callbacks.append(self)
        try:
            yield
        finally:
            gc.callbacks.remove(self)


def _client(transport: str, url: str | None) -> httpx.AsyncClient:
    if transport == "mock":

        def answer(_request: httpx.Request) -> httpx.Response:
            return httpx.Response(
                200, content=BODY, headers={"content-type": "application/json"}
            )

        return httpx.AsyncClient(transport=httpx.MockTransport(answer))
    assert url is not None
    limits = httpx.Limits(
        max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT
    )
    return httpx.AsyncClient(transport=AiohttpTransport(limits=limits), limits=limits)


async def _run(
    args: argparse.Namespace, *, transport: str, url: str | None, freeze: bool
) -> tuple[list[float], float, _Pauses]:
    """Return (lateness of each poll in seconds, measured seconds, GC pauses)."""
    client = _client(transport, url)
    engine = AsyncEngine(
        client=client,
        max_in_flight=MAX_IN_FLIGHT,
        base_urls={"bench": url or "http://127.0.0.1:9"},
        time_scale=args.interval / SPEC_INTERVAL,
    )
    spec = load_spec(str(SPEC))
    lateness: list[float] = []
    # A benchmark may look inside: it times the scheduler's private claim
    # step, the moment a due job's poll is started (by the driver or by a
    # worker going on to the next due job), against the job's due time.
    clock = engine._clock
    run = engine._run
    claim = run.claim

    def timed_claim(live: Any) -> bool:
        started = claim(live)
        if started:
            lateness.append(clock.now() - live.job.due)
        return started

    run.claim = timed_claim  # type: ignore[method-assign]
    pauses = _Pauses()
    async with client, engine:
        for i in range(1, args.jobs + 1):
            await engine.track(spec, "job", f"job-{i:06d}")
        # Spread the first polls evenly over one interval, as a system that
        # has been running for a while would have them (private: the public
        # API schedules the first poll at the initial delay).
        first = clock.now() + LEAD
        step = args.interval / args.jobs
        for i, live in enumerate(list(run.jobs.values())):
            live.job.due = first + i * step
            run.schedule(live)
        if freeze:
            # Long-lived job records need not be walked by every generation-2
            # collection: move everything alive now to the permanent generation.
            gc.collect()
            gc.freeze()
        await clock.sleep_until(first)
        lateness.clear()
        begun = time.perf_counter()
        with pauses.watching():
            await asyncio.sleep(args.seconds)
        measured = time.perf_counter() - begun
        polls = list(lateness)
        # What one full collection costs with every job alive (the collector
        # runs one by itself about once a minute at this poll rate; measured after the
        # window so as not to move the collector's own schedule inside it).
        collect_start = time.perf_counter()
        gc.collect()
        pauses.full_collection = time.perf_counter() - collect_start
    if freeze:
        gc.unfreeze()
    # Free this run's jobs now (after unfreeze they are garbage in generation
    # 2): the next run's collections must not walk them.
    gc.collect()
    return polls, measured, pauses


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _report(
    label: str, polls: list[float], seconds: float, pauses: _Pauses, jobs: int
) -> bool:
    ms = sorted(x * 1000 for x in polls)
    if not ms:
        print(f"{label}: no polls in {seconds:.1f} s")
        return False
    p99 = _percentile(ms, 0.99)
    print(
        f"{label}: {jobs:,} live jobs, {len(ms):,} polls in {seconds:.1f} s "
        f"({len(ms) / seconds:,.0f}/s)\n"
        f"  lateness p50 {_percentile(ms, 0.5):.2f} ms, p90 {_percentile(ms, 0.9):.2f} ms, "
        f"p99 {p99:.2f} ms, p99.9 {_percentile(ms, 0.999):.2f} ms, max {ms[-1]:.2f} ms   "
        f"target p99 <= 50 ms: {'met' if p99 <= 50 else 'NOT met'}"
    )
    parts = []
    for generation, durations in pauses.by_generation.items():
        if durations:
            parts.append(
                f"gen {generation}: {len(durations)} x, max {max(durations) * 1000:.1f} ms, "
                f"total {sum(durations) * 1000:.0f} ms"
            )
    print(f"  GC pauses in the window: {'; '.join(parts) or 'none'}")
    print(
        f"  one full collection (gc.collect()) right after: {pauses.full_collection * 1000:.1f} ms"
    )
    return p99 <= 50


async def _main(args: argparse.Namespace) -> None:
    transports = ["mock", "loopback"] if args.transport == "both" else [args.transport]
    for transport in transports:
        with contextlib.ExitStack() as stack:
            url = None
            where = "in-process httpx.MockTransport"
            if transport == "loopback":
                url, _pid, cpu = stack.enter_context(_server.running(pin=args.pin))
                where = f"_server.py over 127.0.0.1 (server on CPU {cpu}), httpx-aiohttp transport"
            print(
                f"\n== {where}; polls every {args.interval:g} s, {MAX_IN_FLIGHT} in flight at most"
            )
            for label, freeze in (
                ("default GC", False),
                ("gc.freeze() after loading", True),
            ):
                polls, seconds, pauses = await _run(
                    args, transport=transport, url=url, freeze=freeze
                )
                _report(label, polls, seconds, pauses, args.jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument(
        "--interval", type=float, default=60.0, help="poll interval (s)"
    )
    parser.add_argument(
        "--transport", choices=["mock", "loopback", "both"], default="mock"
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="loopback: do not pin to CPUs",
    )
    parser.add_argument(
        "--quick", action="store_true", help="5 s windows (< 30 s in all)"
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 5.0)
    if args.seconds >= args.interval:
        parser.error("--seconds must be shorter than --interval (each job polls once)")
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    started = time.perf_counter()
    asyncio.run(_main(args))
    print(f"\n(ran {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
