"""One driver of stores.py, in a process of its own: adopt jobs into a store, or drive them.

    python bench/_stores_child.py adopt --store URL --spec PATH --jobs N
        --time-scale X --anchor T
    python bench/_stores_child.py worker --store URL --spec PATH --time-scale X
        --server URL [--anchor T] [--concurrency 64] [--sample 5] [--profile FILE]
    python bench/_stores_child.py engine --store URL|none --spec PATH --jobs N
        --time-scale X --server URL [--concurrency 64]

``adopt`` writes N jobs into the store with ``AsyncEngine.track_many`` and
closes the engine (which lets them go), then prints one JSON line: how long
opening, adopting and letting go took, its CPU time and peak RSS. Its clock
stands still at ``--anchor``: every job's first poll falls due at the anchor
plus the spec's initial delay (jittered), however long the adoption takes,
and the engine itself polls none of them meanwhile.

``worker`` runs ``Worker(store).run()``; ``engine`` adopts its N jobs with
``track_many`` and lets the engine poll them (``--store none``: in memory).
Each prints ``{"ready": ...}`` once it is driving jobs, then reads one line
``T0 T1`` (epoch seconds) from standard input, measures between those two
times (polls, its own CPU time, lateness, RSS), waits for one more line (the
parent has taken its own readings at T1), stops, and prints one JSON line of
results. A worker's clock starts at ``--anchor`` when given (it runs
at the real rate), so that it meets the jobs' due times as if it had started
when they were adopted.

Only public names: ``AsyncEngine``, ``Worker`` (its ``steps`` and
``lateness``), ``AsyncEngine.status``, a ``Clock``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from _stores_proc import percentile, rss_kb

from engine import AsyncEngine, Worker

#: A driver that has not polled within this many seconds of starting is reported as stuck.
_READY_WITHIN = 120.0


class _FrozenClock:
    """A clock that stands still: every due time is computed from the same instant."""

    def __init__(self, at: float) -> None:
        self.at = at

    def now(self) -> float:
        return self.at

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.at))


class _AnchoredClock:
    """The real clock's rate, started at ``at``: a driver that meets due times written earlier."""

    def __init__(self, at: float) -> None:
        self._offset = at - time.monotonic()

    def now(self) -> float:
        return self._offset + time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.now()
        if delay > 0:
            await asyncio.sleep(delay)


class _Problems(logging.Handler):
    """Counts the engine's warnings and errors (a failed step is logged, not raised)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 3:
            self.first.append(record.getMessage()[:300])


def _emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload), flush=True)


async def _from_parent() -> str:
    return await asyncio.to_thread(sys.stdin.readline)


async def _window() -> tuple[float, float]:
    """Read ``T0 T1`` from the parent; sleep until T0."""
    start, end = map(float, (await _from_parent()).split())
    await asyncio.sleep(max(0.0, start - time.time()))
    return start, end


def _ids(count: int, progress: list[tuple[int, float]]) -> Iterator[str]:
    """Yield job ids, noting when each 10 % of them has been handed over."""
    step = max(1, count // 10)
    started = time.perf_counter()
    for i in range(count):
        if i and i % step == 0:
            progress.append((i, time.perf_counter() - started))
        yield f"job-{i:07d}"


async def adopt(args: argparse.Namespace) -> None:
    engine = AsyncEngine(
        store=args.store,
        clock=_FrozenClock(args.anchor),
        time_scale=args.time_scale,
    )
    cpu0, t0 = time.process_time(), time.perf_counter()
    await engine.open()
    t1 = time.perf_counter()
    progress: list[tuple[int, float]] = []
    # drive=False: the jobs are written to the store and left to the workers;
    # the adopting engine holds none of them (holding a million took 1 GB).
    refs = await engine.track_many(
        args.spec, "job", _ids(args.jobs, progress), drive=False
    )
    t2 = time.perf_counter()
    _, hwm = rss_kb()
    await engine.aclose()
    t3 = time.perf_counter()
    _emit(
        {
            "jobs": len(refs),
            "open_s": t1 - t0,
            "adopt_s": t2 - t1,
            "release_s": t3 - t2,
            "cpu": time.process_time() - cpu0,
            "hwm_kb": hwm,
            "progress": progress,
        }
    )


async def drive_worker(args: argparse.Namespace, problems: _Problems) -> None:
    worker = Worker(
        args.store,
        specs=[args.spec],
        base_urls={"bench": args.server},
        time_scale=args.time_scale,
        concurrency=args.concurrency,
        clock=_AnchoredClock(args.anchor) if args.anchor is not None else None,
    )
    run = asyncio.get_running_loop().create_task(worker.run())
    async with asyncio.timeout(_READY_WITHIN):
        # Worker has no event for its first step: watch its public counter.
        while worker.steps == 0 and not run.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    if run.done():
        await run  # raises what stopped it
    _emit({"ready": worker.steps, "rss_kb": rss_kb()[0]})
    start, end = await _window()
    profiler = cProfile.Profile() if args.profile else None
    # Worker.lateness is a bounded deque: drain it at each sample and keep our own.
    worker.lateness.clear()
    lateness: list[float] = []
    steps0, cpu0, wall0 = worker.steps, time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    samples = []
    last_steps = steps0
    while (now := time.time()) < end:
        await asyncio.sleep(min(args.sample, end - now))
        rss, _ = rss_kb()
        late = list(worker.lateness)
        worker.lateness.clear()
        lateness.extend(late)
        samples.append(
            {
                "t": time.time() - start,
                "rss_kb": rss,
                "steps": worker.steps - last_steps,
                "late_p99": percentile(late, 0.99),
            }
        )
        last_steps = worker.steps
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    steps1, cpu1, wall1 = worker.steps, time.process_time(), time.perf_counter()
    lateness.extend(worker.lateness)
    # Until the parent has measured the window: the database's processes of
    # this worker's connections must still run when it reads their CPU time.
    await _from_parent()
    worker.stop()
    async with asyncio.timeout(60):
        await run
    rss, hwm = rss_kb()
    _emit(
        {
            "polls": steps1 - steps0,
            "cpu": cpu1 - cpu0,
            "wall": wall1 - wall0,
            "claims": len(lateness),
            "late_p50": percentile(lateness, 0.5),
            "late_p99": percentile(lateness, 0.99),
            "late_max": max(lateness, default=None),
            "samples": samples,
            "rss_kb": rss,
            "hwm_kb": hwm,
            "problems": problems.count,
            "first_problems": problems.first,
        }
    )


async def drive_engine(args: argparse.Namespace, problems: _Problems) -> None:
    engine = AsyncEngine(
        store=None if args.store == "none" else args.store,
        base_urls={"bench": args.server},
        time_scale=args.time_scale,
        max_in_flight=args.concurrency,
    )
    async with engine:
        refs = await engine.track_many(
            args.spec, "job", (f"job-{i:07d}" for i in range(args.jobs))
        )

        async def polls() -> int:
            return sum([(await engine.status(ref)).polls for ref in refs])

        _emit({"ready": len(refs), "rss_kb": rss_kb()[0]})
        _, end = await _window()
        polls0, cpu0, wall0 = await polls(), time.process_time(), time.perf_counter()
        await asyncio.sleep(max(0.0, end - time.time()))
        cpu1, wall1 = time.process_time(), time.perf_counter()
        polls1 = await polls()
        rss, hwm = rss_kb()
        await _from_parent()  # the parent has measured the window
    _emit(
        {
            "polls": polls1 - polls0,
            "cpu": cpu1 - cpu0,
            "wall": wall1 - wall0,
            "rss_kb": rss,
            "hwm_kb": hwm,
            "problems": problems.count,
            "first_problems": problems.first,
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["adopt", "worker", "engine"])
    parser.add_argument("--store", required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--time-scale", type=float, required=True)
    parser.add_argument("--jobs", type=int, default=0)
    parser.add_argument("--anchor", type=float, default=None)
    parser.add_argument("--server", default="http://127.0.0.1:9")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sample", type=float, default=5.0)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--cpus", default=None, help="CPUs to run on, e.g. 0,1")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    problems = _Problems()
    logging.getLogger().addHandler(problems)
    logging.basicConfig(level=logging.WARNING)
    if args.mode == "adopt":
        asyncio.run(adopt(args))
    elif args.mode == "worker":
        asyncio.run(drive_worker(args, problems))
    else:
        asyncio.run(drive_engine(args, problems))


if __name__ == "__main__":
    main()
