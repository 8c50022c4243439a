"""Register 100,000 jobs on one lifecycle: the time it takes and memory per live job.

``track()`` 100,000 jobs (ids ``job-000001``...) of the bench lifecycle with
the engine's ``time_scale`` stretching its 1 ms initial delay to one hour, so
that nothing polls while we measure. Each figure comes from its own pass in a
fresh engine: wall time and RSS growth in one, ``tracemalloc`` (which slows
allocation down) in another. Side by side, in the same run: the same count of
parked asyncio tasks (what a task-per-job design holds) and of models
``add_model``-ed to a ``transitions`` machine (what a model-per-job design
holds; quadratic, so measured on fewer).

The engine's figure is what it holds per job: the job record, its key, its
entry in the job table and its heap entry. The ``JobRef`` handles ``track``
returns are dropped, as a caller that keeps only ids would; one costs ~100 B.

Target (issue #4): <= 1 s and <= 1 KB per live job.

    python bench/register.py [--quick] [--jobs 100000] [--models 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import linecache
import os
import platform
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from transitions import Machine

from engine import AsyncEngine
from statemachines import load_spec

SPEC = Path(__file__).with_name("bench_spec.json")
#: Makes the bench lifecycle's 1 ms initial delay one hour.
HOUR_SCALE = 3600 / 0.001


def _rss() -> int:
    """Return this process's resident set size in bytes."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class _Measure:
    """Time, RSS growth and (optionally) traced memory of one block of work."""

    def __init__(self, *, trace: bool) -> None:
        self.trace = trace
        self.seconds = 0.0
        self.rss = 0
        self.traced = 0
        self.snapshot: tracemalloc.Snapshot | None = None

    async def run(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        gc.collect()
        if self.trace:
            tracemalloc.start()
        traced0 = tracemalloc.get_traced_memory()[0] if self.trace else 0
        rss0 = _rss()
        start = time.perf_counter()
        await work()
        self.seconds = time.perf_counter() - start
        self.rss = _rss() - rss0
        if self.trace:
            self.traced = tracemalloc.get_traced_memory()[0] - traced0
            self.snapshot = tracemalloc.take_snapshot()
            tracemalloc.stop()


async def _engine_pass(n: int, *, trace: bool) -> _Measure:
    spec = load_spec(str(SPEC))
    measure = _Measure(trace=trace)
    async with AsyncEngine(
        time_scale=HOUR_SCALE, base_urls={"bench": "http://127.0.0.1:9"}
    ) as engine:
        # The first track builds the lifecycle's runtime (its machine): not per job.
        await engine.track(spec, "job", "job-000000")

        async def work() -> None:
            for i in range(1, n + 1):
                await engine.track(spec, "job", f"job-{i:06d}")

        await measure.run(work)
        assert len(engine.jobs()) == n + 1
        # Nothing polled: the hour-long initial delay held every job back.
        assert all(live.job.polls == 0 for live in engine._run.jobs.values())
    return measure


async def _tasks_pass(n: int, *, trace: bool) -> _Measure:
    measure = _Measure(trace=trace)
    tasks: list[asyncio.Task[None]] = []

    async def work() -> None:
        tasks.extend(asyncio.create_task(asyncio.sleep(3600)) for _ in range(n))
        await asyncio.sleep(0)  # let every task start and park on its timer

    await measure.run(work)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return measure


class _Model:
    """A per-job model for ``add_model``: a plain class, transitions setattrs on it."""


async def _models_pass(n: int, *, trace: bool) -> _Measure:
    spec = load_spec(str(SPEC))
    lifecycle = spec.lifecycle("job")
    machine = Machine(
        model=None,
        states=list(lifecycle.state_names),
        initial=lifecycle.initial,
        auto_transitions=False,
    )
    for t in lifecycle.transitions:
        machine.add_transition(f"to_{t.dest}", t.source, t.dest)
    measure = _Measure(trace=trace)
    models: list[_Model] = []

    async def work() -> None:
        for _ in range(n):
            model = _Model()
            machine.add_model(model)
            models.append(model)

    await measure.run(work)
    return measure


def _top_lines(snapshot: tracemalloc.Snapshot | None, n: int, count: int) -> list[str]:
    if snapshot is None:
        return []
    lines = []
    for stat in snapshot.statistics("lineno")[:count]:
        frame = stat.traceback[0]
        where = f"{Path(frame.filename).name}:{frame.lineno}"
        code = linecache.getline(frame.filename, frame.lineno).strip()
        lines.append(f"    {stat.size / n:7,.0f} B/job  {where:<18} {code}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument(
        "--models",
        type=int,
        default=10_000,
        help="add_model-ed models (quadratic: keep small)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="models 3,000 (< 30 s in all)"
    )
    args = parser.parse_args()
    if args.quick:
        args.models = min(args.models, 3_000)
    n, m = args.jobs, args.models
    started = time.perf_counter()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs"
    )

    timed = asyncio.run(_engine_pass(n, trace=False))
    traced = asyncio.run(_engine_pass(n, trace=True))
    tasks_timed = asyncio.run(_tasks_pass(n, trace=False))
    tasks_traced = asyncio.run(_tasks_pass(n, trace=True))
    models_timed = asyncio.run(_models_pass(m, trace=False)) if m else None
    models_traced = asyncio.run(_models_pass(m, trace=True)) if m else None

    print(
        f"\n{'':<36}{'count':>9}{'time':>10}{'per item':>11}{'traced/item':>13}{'RSS/item':>10}"
    )
    rows = [("engine.track() (statepoll jobs)", n, timed, traced)]
    rows.append(("parked asyncio tasks (sleep 3600)", n, tasks_timed, tasks_traced))
    if models_timed is not None and models_traced is not None:
        rows.append(
            ("transitions add_model (per-job model)", m, models_timed, models_traced)
        )
    for label, count, t, tr in rows:
        print(
            f"  {label:<34}{count:>9,}{t.seconds:>9.3f}s{t.seconds / count * 1e6:>9.2f}us"
            f"{tr.traced / count:>11,.0f} B{t.rss / count:>8,.0f} B"
        )
    print(
        f"\nregister {n:,} jobs: {timed.seconds:.3f} s   target <= 1 s: "
        f"{'met' if timed.seconds <= 1 else 'NOT met'}"
    )
    per_job = traced.traced / n
    print(
        f"memory per live job: {per_job:,.0f} B traced, {timed.rss / n:,.0f} B RSS   "
        f"target <= 1,024 B: {'met' if max(per_job, timed.rss / n) <= 1024 else 'NOT met'}"
    )
    print(f"a parked task costs {tasks_traced.traced / n / per_job:.1f}x a job record")
    if models_timed is not None and models_traced is not None:
        quadratic = models_timed.seconds * (n / m) ** 2
        print(
            f"add_model: {models_traced.traced / m / per_job:.1f}x a job record; "
            f"{n:,} adds would take ~{quadratic:,.0f} s if quadratic"
        )
    print("\nwhere a job's bytes are (tracemalloc, top lines):")
    print("\n".join(_top_lines(traced.snapshot, n, 6)))
    print(f"\n(ran {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
