"""Poll throughput: the engine against bare polling loops, same server, same limits.

One cheap HTTP/1.1 keep-alive server (``_server.py``: raw asyncio, its own
process, pinned to its own CPU) answers every GET with ``{"status":"Running"}``.
1,000 jobs; for each in-flight limit (1, 50, 200) the contenders run one after
the other in one process, each for a fixed window after a short warm-up,
repeated in interleaved rounds (the median is reported):

- bare httpx: 1,000 coroutines over one ``httpx.AsyncClient(limits=...)``,
  bounded by a semaphore, once with httpx's default transport and once with
  ``httpx_aiohttp.AiohttpTransport`` (the ``fast`` extra);
- the engine over a client built the same way (``AsyncEngine(client=...,
  max_in_flight=N)``, 1,000 jobs ``track``-ed, polls counted from the jobs'
  attempt counters, which costs nothing per poll); and once more over the
  aiohttp transport with a ``polled`` hook counting the polls, to show what
  a hook costs;
- raw aiohttp: the same loop on ``aiohttp.ClientSession``, no httpx.

Every contender parses the JSON body. The server's CPU use is reported for
each window, and its ceiling measured with a raw asyncio client, to show that
the server is not what limits the figures. Then one engine window and one bare
httpx window (aiohttp transport) are profiled with cProfile, and the time per
poll is split by package.

Targets (issue #4): engine / bare httpx >= 0.9 on each transport;
engine (aiohttp transport) / raw aiohttp >= 0.5.

    python bench/throughput.py [--quick] [--jobs 1000] [--in-flight 1 50 200]
        [--seconds 3] [--rounds 3] [--no-pin] [--no-profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import os
import platform
import pstats
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import _server
import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from engine import AsyncEngine
from engine._remote import Remote, Reply
from statemachines import load_spec

SPEC = Path(__file__).with_name("bench_spec.json")
#: A contender, started: a context manager yielding "polls so far".
Factory = Callable[
    [str, int, int], contextlib.AbstractAsyncContextManager[Callable[[], int]]
]


def _client(transport: str, in_flight: int) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=in_flight, max_keepalive_connections=in_flight
    )
    if transport == "aiohttp":
        return httpx.AsyncClient(
            transport=AiohttpTransport(limits=limits), limits=limits
        )
    return httpx.AsyncClient(limits=limits)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel polling loops (requests in flight too: a slow pool must not hold us up)."""
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            raise result


@contextlib.asynccontextmanager
async def _polling(
    poll_forever: Callable[[str], Coroutine[Any, Any, None]],
    url: str,
    jobs: int,
    polls: Callable[[], int],
) -> AsyncIterator[Callable[[], int]]:
    """Run one ``poll_forever`` loop per job; yield ``polls``; stop them all."""
    tasks = [
        asyncio.create_task(poll_forever(f"{url}/jobs/job-{i:06d}"))
        for i in range(1, jobs + 1)
    ]
    try:
        yield polls
    finally:
        await _stop(tasks)


def _bare_httpx(transport: str) -> Factory:
    @contextlib.asynccontextmanager
    async def run(
        url: str, jobs: int, in_flight: int
    ) -> AsyncIterator[Callable[[], int]]:
        client = _client(transport, in_flight)
        gate = asyncio.Semaphore(in_flight)
        count = 0

        async def poll_forever(path: str) -> None:
            nonlocal count
            while True:
                async with gate:
                    response = await client.get(path)
                    if response.json()["status"] == "Running":
                        count += 1

        async with client, _polling(poll_forever, url, jobs, lambda: count) as polls:
            yield polls

    return run


def _engine(transport: str, *, hook: bool = False) -> Factory:
    @contextlib.asynccontextmanager
    async def run(
        url: str, jobs: int, in_flight: int
    ) -> AsyncIterator[Callable[[], int]]:
        client = _client(transport, in_flight)
        # The spec polls every 1 ms: as often as the engine can.
        engine = AsyncEngine(
            client=client, max_in_flight=in_flight, base_urls={"bench": url}
        )
        spec = load_spec(str(SPEC))
        hooked = 0

        def count_poll(_event: object) -> None:
            nonlocal hooked
            hooked += 1

        if hook:
            engine.on("polled", count_poll, service="bench")
        async with client, engine:
            for i in range(1, jobs + 1):
                await engine.track(spec, "job", f"job-{i:06d}")
            records = list(engine._run.jobs.values())
            if hook:
                yield lambda: hooked
            else:
                # The engine's own per-job counters: nothing added per poll.
                yield lambda: sum(live.job.polls for live in records)

    return run


def _raw_aiohttp() -> Factory:
    @contextlib.asynccontextmanager
    async def run(
        url: str, jobs: int, in_flight: int
    ) -> AsyncIterator[Callable[[], int]]:
        gate = asyncio.Semaphore(in_flight)
        count = 0
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=in_flight)
        ) as session:

            async def poll_forever(path: str) -> None:
                nonlocal count
                while True:
                    async with gate, session.get(path) as response:
                        if (await response.json())["status"] == "Running":
                            count += 1

            async with _polling(poll_forever, url, jobs, lambda: count) as polls:
                yield polls

    return run


def _prototype(kind: str) -> Factory:
    """The engine with ``Remote.send`` replaced for the window: what a thinner layer would give.

    Not the engine as shipped: evidence for where its time goes. ``transport``
    builds an ``httpx.Request`` and calls the client's transport directly,
    skipping ``AsyncClient.send`` (auth and redirect generators, cookie
    extraction, URL merging); ``aiohttp`` sends through an
    ``aiohttp.ClientSession`` with no httpx at all.
    """
    engine_run = _engine("aiohttp")

    @contextlib.asynccontextmanager
    async def run(
        url: str, jobs: int, in_flight: int
    ) -> AsyncIterator[Callable[[], int]]:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight))

        async def via_transport(
            remote: Remote,
            method: str,
            url: str,
            *,
            headers: tuple[tuple[str, str], ...],
            **_: Any,
        ) -> Reply:
            request = httpx.Request(method, url, headers=headers)
            response = await remote.client._transport.handle_async_request(request)
            try:
                body = await response.aread()
            finally:
                await response.aclose()
            return Reply(response.status_code, response.headers, body, url)

        async def via_aiohttp(
            _remote: Remote,
            method: str,
            url: str,
            *,
            headers: tuple[tuple[str, str], ...],
            **_: Any,
        ) -> Reply:
            async with session.request(
                method, url, headers=headers, allow_redirects=False
            ) as response:
                body = await response.read()
            return Reply(response.status, response.headers, body, url)

        shipped = Remote.send
        Remote.send = via_transport if kind == "transport" else via_aiohttp  # type: ignore[assignment,method-assign]
        try:
            async with engine_run(url, jobs, in_flight) as polls:
                yield polls
        finally:
            Remote.send = shipped  # type: ignore[method-assign]
            await session.close()

    return run


PROTOTYPES: dict[str, Factory] = {
    "proto: engine, httpx transport direct": _prototype("transport"),
    "proto: engine, aiohttp, no httpx": _prototype("aiohttp"),
}
CONTENDERS: dict[str, Factory] = {
    "bare httpx, default transport": _bare_httpx("default"),
    "engine, default transport": _engine("default"),
    "bare httpx, aiohttp transport": _bare_httpx("aiohttp"),
    "engine, aiohttp transport": _engine("aiohttp"),
    "engine, aiohttp transport + hook": _engine("aiohttp", hook=True),
    "raw aiohttp": _raw_aiohttp(),
}


async def _window(
    factory: Factory,
    url: str,
    args: argparse.Namespace,
    in_flight: int,
    *,
    server_pid: int,
    seconds: float | None = None,
    profiler: cProfile.Profile | None = None,
) -> tuple[float, float, float]:
    """Return ``(polls/s, server CPU share, client CPU share)`` over one window."""
    seconds = seconds or args.seconds
    async with factory(url, args.jobs, in_flight) as polls:
        await asyncio.sleep(args.warmup)
        count0, t0 = polls(), time.perf_counter()
        cpu0, own0 = _server.cpu_seconds(server_pid), time.process_time()
        if profiler is not None:
            profiler.enable()
        await asyncio.sleep(seconds)
        if profiler is not None:
            profiler.disable()
        count1, t1 = polls(), time.perf_counter()
        cpu1, own1 = _server.cpu_seconds(server_pid), time.process_time()
    elapsed = t1 - t0
    return (count1 - count0) / elapsed, (cpu1 - cpu0) / elapsed, (own1 - own0) / elapsed


class _Ceiling(asyncio.Protocol):
    """A minimal client connection: one GET in flight, sent again on each answer."""

    request = b"GET /jobs/x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answers = 0

    def __init__(self) -> None:
        self.pending = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.pending += len(data)
        done, self.pending = divmod(self.pending, len(_server.RESPONSE))
        if done:
            _Ceiling.answers += done
            assert self.transport is not None
            self.transport.write(self.request * done)


async def _ceiling(
    url: str, connections: int, seconds: float, server_pid: int
) -> tuple[float, float]:
    """Return the server's rate under a client that does almost nothing, and its CPU share."""
    loop = asyncio.get_running_loop()
    port = int(url.rsplit(":", 1)[1])
    transports = [
        (await loop.create_connection(_Ceiling, "127.0.0.1", port))[0]
        for _ in range(connections)
    ]
    await asyncio.sleep(0.2)
    count0, cpu0, t0 = (
        _Ceiling.answers,
        _server.cpu_seconds(server_pid),
        time.perf_counter(),
    )
    await asyncio.sleep(seconds)
    count1, cpu1, t1 = (
        _Ceiling.answers,
        _server.cpu_seconds(server_pid),
        time.perf_counter(),
    )
    for transport in transports:
        transport.close()
    return (count1 - count0) / (t1 - t0), (cpu1 - cpu0) / (t1 - t0)


def _package(filename: str) -> str:
    """Name the package a profiled function belongs to."""
    if filename == "~" or filename.startswith("<"):
        return "C built-ins (json, sockets, ...)"
    for marker, name in (
        ("/engine/", "statepoll engine"),
        ("/statemachines/", "statepoll statemachines"),
        ("/httpx_aiohttp/", "httpx_aiohttp"),
        ("/httpx/", "httpx"),
        ("/httpcore/", "httpcore"),
        ("/aiohttp/", "aiohttp"),
        ("/yarl/", "yarl, multidict"),
        ("/multidict/", "yarl, multidict"),
        ("/asyncio/", "asyncio"),
        ("/bench/", "benchmark loop"),
    ):
        if marker in filename:
            return name
    return "other stdlib/3rd party"


def _by_package(profiler: cProfile.Profile, polls: float) -> dict[str, float]:
    """Return own time per poll (us) by package."""
    stats: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    totals: dict[str, float] = {}
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        package = _package(filename)
        totals[package] = totals.get(package, 0.0) + tottime
    return {
        k: v / polls * 1e6 for k, v in sorted(totals.items(), key=lambda kv: -kv[1])
    }


async def _profile(url: str, args: argparse.Namespace, server_pid: int) -> None:
    in_flight = 50 if 50 in args.in_flight else args.in_flight[-1]
    profiles: dict[str, tuple[cProfile.Profile, float]] = {}
    for name in ("bare httpx, aiohttp transport", "engine, aiohttp transport"):
        profiler = cProfile.Profile()
        rate, _, _ = await _window(
            CONTENDERS[name],
            url,
            args,
            in_flight,
            server_pid=server_pid,
            seconds=args.profile_seconds,
            profiler=profiler,
        )
        profiles[name] = (profiler, rate * args.profile_seconds)
    print(
        f"\nProfile (cProfile, {in_flight} in flight, {args.profile_seconds:g} s each; "
        "profiling slows everything, compare shares, not rates):"
    )
    split = {name: _by_package(p, polls) for name, (p, polls) in profiles.items()}
    packages = sorted(
        {k for s in split.values() for k in s},
        key=lambda k: -split["engine, aiohttp transport"].get(k, 0.0),
    )
    print(
        f"  own time per poll (us)            {'bare httpx':>11} {'engine':>8}  (aiohttp transport)"
    )
    for package in packages:
        bare = split["bare httpx, aiohttp transport"].get(package, 0.0)
        eng = split["engine, aiohttp transport"].get(package, 0.0)
        print(f"  {package:<33} {bare:11.1f} {eng:8.1f}")
    totals = [sum(s.values()) for s in split.values()]
    print(f"  {'total':<33} {totals[0]:11.1f} {totals[1]:8.1f}")
    profiler, polls = profiles["engine, aiohttp transport"]
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(order).print_stats(args.profile_top)
        body = out.getvalue()
        start = body.find("   ncalls")
        print(
            f"\nengine window, top {args.profile_top} by {order} ({polls:,.0f} polls):"
        )
        print(body[start:].rstrip())


async def _measure(url: str, args: argparse.Namespace, server_pid: int) -> None:
    rates: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    own: dict[tuple[str, int], list[float]] = {}
    for round_no in range(args.rounds):
        for in_flight in args.in_flight:
            # Alternate the order from round to round: no contender always
            # runs first (or right after the slowest) at a given limit.
            names = (
                list(CONTENDERS) if round_no % 2 == 0 else list(reversed(CONTENDERS))
            )
            for name in names:
                rate, share, mine = await _window(
                    CONTENDERS[name], url, args, in_flight, server_pid=server_pid
                )
                rates.setdefault((name, in_flight), []).append(rate)
                cpu.setdefault((name, in_flight), []).append(share)
                own.setdefault((name, in_flight), []).append(mine)
    med = {key: statistics.median(values) for key, values in rates.items()}
    levels = args.in_flight
    print(
        f"\n{args.jobs:,} jobs; median polls/s of {args.rounds} x {args.seconds:g} s windows "
        "(min-max in brackets); CPU used by the client and the server (share of one CPU)"
    )
    header = "".join(f"{f'{n} in flight':>22}" for n in levels)
    print(f"  {'contender':<40}{header}   client CPU / server CPU")
    for name in CONTENDERS:
        cells = "".join(
            f"{med[name, n]:>9,.0f} [{min(rates[name, n]):,.0f}-{max(rates[name, n]):,.0f}]".rjust(
                22
            )
            for n in levels
        )
        shares = "  ".join(
            f"{statistics.median(own[name, n]):.0%}/{statistics.median(cpu[name, n]):.0%}"
            for n in levels
        )
        print(f"  {name:<40}{cells}   {shares}")
    print()
    ratios = (
        (
            "engine / bare httpx, default transport",
            "engine, default transport",
            "bare httpx, default transport",
            0.9,
        ),
        (
            "engine / bare httpx, aiohttp transport",
            "engine, aiohttp transport",
            "bare httpx, aiohttp transport",
            0.9,
        ),
        (
            "engine + hook / bare httpx, aiohttp",
            "engine, aiohttp transport + hook",
            "bare httpx, aiohttp transport",
            None,
        ),
        (
            "engine (aiohttp transport) / raw aiohttp",
            "engine, aiohttp transport",
            "raw aiohttp",
            0.5,
        ),
        (
            "bare httpx (aiohttp) / raw aiohttp",
            "bare httpx, aiohttp transport",
            "raw aiohttp",
            None,
        ),
        (
            "proto: httpx transport direct / raw aiohttp",
            "proto: engine, httpx transport direct",
            "raw aiohttp",
            None,
        ),
        (
            "proto: aiohttp, no httpx / raw aiohttp",
            "proto: engine, aiohttp, no httpx",
            "raw aiohttp",
            None,
        ),
    )
    for label, num, den, target in ratios:
        if (num, levels[0]) not in med:
            continue
        values = "  ".join(f"{med[num, n] / med[den, n]:5.2f}" for n in levels)
        verdict = ""
        if target is not None:
            met = [med[num, n] / med[den, n] >= target for n in levels]
            verdict = f"  target >= {target}: " + " ".join(
                "met" if m else "NOT met" for m in met
            )
        print(f"  {label:<42} {values}{verdict}")
    print(f"  {'(columns: in flight)':<42} " + "  ".join(f"{n:>5}" for n in levels))


async def _main(args: argparse.Namespace) -> None:
    with _server.running(pin=args.pin, lifetime=args.lifetime) as (
        url,
        pid,
        server_cpu,
    ):
        where = f"server pid {pid} on CPU {server_cpu}, client on CPU {sorted(os.sched_getaffinity(0))}"
        print(
            f"{platform.python_implementation()} {platform.python_version()}, "
            f"{os.cpu_count()} CPUs; {where if server_cpu is not None else 'not pinned'}; "
            f"httpx {httpx.__version__}, aiohttp {aiohttp.__version__}"
        )
        rate, share = await _ceiling(url, args.ceiling_connections, args.seconds, pid)
        print(
            f"server ceiling (raw asyncio client, {args.ceiling_connections} connections): "
            f"{rate:,.0f} req/s at {share:.0%} of a CPU"
        )
        await _measure(url, args, pid)
        if args.profile:
            await _profile(url, args, pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--seconds", type=float, default=3.0, help="window length")
    parser.add_argument("--warmup", type=float, default=0.5, help="before each window")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ceiling-connections", type=int, default=200)
    parser.add_argument("--profile-seconds", type=float, default=3.0)
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument(
        "--prototypes",
        action="store_true",
        help="also run the engine with Remote.send replaced (what a thinner HTTP layer gives)",
    )
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin server and client to CPUs",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 round of 0.5 s windows (< 30 s in all)"
    )
    args = parser.parse_args()
    if args.prototypes:
        CONTENDERS.update(PROTOTYPES)
    if args.quick:
        args.seconds, args.warmup, args.rounds, args.profile_seconds = 0.5, 0.2, 1, 0.5
    windows = len(CONTENDERS) * len(args.in_flight) * args.rounds + 2
    args.lifetime = windows * (args.seconds + args.warmup + 5) + 120
    started = time.perf_counter()
    asyncio.run(_main(args))
    print(f"\n(ran {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
