"""Memory kept per finished job nobody waits on, with the engine's default retention.

Issue #9 measured ~8 KB kept forever per finished job (its parsed final
response and result): a 10,000-job soak grew from 57 to 140 MB RSS and
stayed there. Now a finished result leaves memory once handed over, or after
the retention (``retain_finished=1000`` results, ``retain_for=3600`` s), and
a slim record (key, state, outcome) stays so that ``state_of`` still answers.

This script tracks N jobs (default 20,000) whose final response is ~8 KB,
waits for none of them, and reports, after they all completed: the memory
``tracemalloc`` still traces per job (the engine's own retention, measured
from before the run to after it, with a warm-up run before), and the RSS
growth. The transport is in-process (``httpx.MockTransport``): the figure is
the engine's, not a socket's. Target (issue #9): <= 1.2 KB per finished job.

    python bench/retention.py [--jobs 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import time
import tracemalloc
from pathlib import Path

import httpx

from engine import AsyncEngine, Event
from statemachines import load_document

DOC = {
    "spec_version": "1",
    "service": {"name": "toy", "base_url": "https://api.example.test"},
    "lifecycles": {
        "job": {
            "states": {"Running": {"initial": True}, "Done": {"outcome": "success"}},
            "transitions": [{"from": "Running", "to": "Done"}],
            "poll": {
                "request": {"path": "/jobs/{job_id}"},
                "observe": [
                    {
                        "pointer": "/status",
                        "map": {"running": "Running", "done": "Done"},
                    }
                ],
            },
            "schedule": {"interval": 0.001},
        }
    },
}
#: About the size of a real final response: the soak kept ~8 KB per job.
BODY = {"status": "done", "payload": "x" * 8000}


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


async def _run(engine: AsyncEngine, first: int, count: int) -> None:
    """Track ``count`` jobs nobody waits on, until every one has completed."""
    ended = asyncio.Event()
    left = [count]

    def done(_: Event) -> None:
        left[0] -= 1
        if left[0] == 0:
            ended.set()

    engine.on("completed", done)
    spec = load_document(DOC, source="toy")
    for i in range(first, first + count):
        await engine.track(spec, "job", f"job-{i}")
    async with asyncio.timeout(600):
        await ended.wait()


async def main(jobs: int) -> None:
    """Measure and print."""
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=BODY))
    )
    async with client, AsyncEngine(client=client) as engine:
        await _run(engine, 0, 100)  # warm caches, bindings, the heap
        gc.collect()
        rss_before = _rss()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        await _run(engine, 100, jobs)
        took = time.perf_counter() - started
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        rss_after = _rss()
        kept = len(engine.jobs())
        with_bodies = sum(
            1 for live in engine._run.jobs.values() if live.job.response is not None
        )

    per_job = (after - before) / jobs
    print(f"CPython {platform.python_version()}, {os.cpu_count()} CPUs")
    print(
        f"{jobs:,} jobs completed in {took:.1f} s (traced), nobody waiting; defaults:"
    )
    print("  retain_finished=1000, retain_for=3600 s; final response ~8 KB each")
    print(f"  records kept: {kept:,} ({with_bodies:,} still holding their bodies)")
    print(
        f"  traced memory kept: {(after - before) / 1e6:.1f} MB = {per_job:,.0f} B per finished job"
    )
    print(f"  RSS growth: {(rss_after - rss_before) / 1e6:.1f} MB")
    verdict = "met" if per_job <= 1200 else "NOT met"
    print(f"  target <= 1,200 B per finished job: {verdict}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    asyncio.run(main(parser.parse_args().jobs))
