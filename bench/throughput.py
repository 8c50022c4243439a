"""Poll throughput: the engine against bare polling loops, same server, same limits.

One cheap HTTP/1.1 keep-alive server (raw asyncio, its own process, so it is not
the bottleneck) answers every GET with ``{"status":"Running"}``. Contenders,
interleaved in one run, each for a fixed window, 1,000 jobs, N requests in flight:

- bare httpx loop, httpx's default transport
- the engine over the same kind of client
- bare httpx loop over httpx-aiohttp's transport (the ``fast`` extra)
- the engine over that client
- a raw aiohttp loop

Targets (issue #4): engine / bare httpx >= 0.9 on each transport;
engine (aiohttp transport) / raw aiohttp >= 0.5.

    python bench/throughput.py [--jobs 1000] [--in-flight 50] [--seconds 3] [--rounds 2] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from engine import AsyncEngine
from statemachines import load_spec

SPEC = Path(__file__).with_name("bench_spec.json")

_SERVER = r"""
import asyncio, sys
BODY = b'{"status":"Running"}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
class P(asyncio.Protocol):
    def connection_made(self, t): self.t = t; self.buf = b""
    def data_received(self, data):
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.t.write(RESPONSE * n)
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(float(sys.argv[1]))
asyncio.run(main())
"""


async def _window(
    seconds: float, run: Callable[[asyncio.Event], Awaitable[int]]
) -> float:
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await task / seconds


def _bare_httpx(
    url: str, jobs: int, in_flight: int, transport: str
) -> Callable[[asyncio.Event], Awaitable[int]]:
    async def run(stop: asyncio.Event) -> int:
        limits = httpx.Limits(
            max_connections=in_flight, max_keepalive_connections=in_flight
        )
        client = (
            httpx.AsyncClient(transport=AiohttpTransport(limits=limits))
            if transport == "aiohttp"
            else httpx.AsyncClient(limits=limits)
        )
        count = 0
        gate = asyncio.Semaphore(in_flight)

        async def job(i: int) -> None:
            nonlocal count
            while not stop.is_set():
                async with gate:
                    response = await client.get(f"{url}/jobs/job-{i:04d}")
                    if response.json()["status"] == "Running":
                        count += 1
                await asyncio.sleep(0)

        async with client:
            await asyncio.gather(*(job(i) for i in range(jobs)))
        return count

    return run


def _engine(
    url: str, jobs: int, in_flight: int, transport: str
) -> Callable[[asyncio.Event], Awaitable[int]]:
    async def run(stop: asyncio.Event) -> int:
        limits = httpx.Limits(
            max_connections=in_flight, max_keepalive_connections=in_flight
        )
        client = (
            httpx.AsyncClient(transport=AiohttpTransport(limits=limits))
            if transport == "aiohttp"
            else httpx.AsyncClient(limits=limits)
        )
        spec = load_spec(str(SPEC))
        # Poll as often as the engine can: the interval is what a spec would
        # say for a job checked continuously.
        engine = AsyncEngine(
            client=client,
            max_in_flight=in_flight,
            base_urls={"bench": url},
            time_scale=1e-6,
        )
        async with client, engine:
            refs = [
                await engine.track(spec, "job", f"job-{i:04d}") for i in range(jobs)
            ]
            await stop.wait()
            return sum(engine._jobs[r.key].attempts for r in refs)

    return run


def _raw_aiohttp(
    url: str, jobs: int, in_flight: int
) -> Callable[[asyncio.Event], Awaitable[int]]:
    async def run(stop: asyncio.Event) -> int:
        count = 0
        gate = asyncio.Semaphore(in_flight)
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def job(i: int) -> None:
                nonlocal count
                while not stop.is_set():
                    async with gate, session.get(f"{url}/jobs/job-{i:04d}") as response:
                        if (await response.json())["status"] == "Running":
                            count += 1
                    await asyncio.sleep(0)

            await asyncio.gather(*(job(i) for i in range(jobs)))
        return count

    return run


async def _measure(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    contenders = {
        "bare httpx (default transport)": _bare_httpx(
            url, args.jobs, args.in_flight, "default"
        ),
        "engine (default transport)": _engine(
            url, args.jobs, args.in_flight, "default"
        ),
        "bare httpx (aiohttp transport)": _bare_httpx(
            url, args.jobs, args.in_flight, "aiohttp"
        ),
        "engine (aiohttp transport)": _engine(
            url, args.jobs, args.in_flight, "aiohttp"
        ),
        "raw aiohttp": _raw_aiohttp(url, args.jobs, args.in_flight),
    }
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, run in contenders.items():
            rates[name].append(await _window(args.seconds, run))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--profile", action="store_true", help="profile one engine window"
    )
    args = parser.parse_args()
    lifetime = args.rounds * 5 * (args.seconds + 2) + 60
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(lifetime)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        rates = asyncio.run(_measure(url, args))
        med = {name: statistics.median(values) for name, values in rates.items()}
        print(
            f"{args.jobs} jobs, {args.in_flight} in flight, {args.rounds} x {args.seconds:g} s windows, median polls/s:"
        )
        for name, value in med.items():
            print(f"  {name:<32} {value:8,.0f}")
        print(
            f"engine / bare httpx, default transport: {med['engine (default transport)'] / med['bare httpx (default transport)']:.2f}  (target >= 0.9)"
        )
        print(
            f"engine / bare httpx, aiohttp transport: {med['engine (aiohttp transport)'] / med['bare httpx (aiohttp transport)']:.2f}  (target >= 0.9)"
        )
        print(
            f"engine (aiohttp transport) / raw aiohttp: {med['engine (aiohttp transport)'] / med['raw aiohttp']:.2f}  (target >= 0.5)"
        )
        if args.profile:
            profiler = cProfile.Profile()

            async def profiled() -> float:
                profiler.enable()
                try:
                    return await _window(
                        args.seconds, _engine(url, args.jobs, args.in_flight, "aiohttp")
                    )
                finally:
                    profiler.disable()

            asyncio.run(profiled())
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
            print(out.getvalue())
    finally:
        server.terminate()
        server.wait(timeout=10)
    time.sleep(0)


if __name__ == "__main__":
    main()
