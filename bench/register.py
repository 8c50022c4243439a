"""Register 100,000 jobs on one lifecycle: time and memory per live job.

Side by side in one run: the engine's job records against the same count of
parked asyncio tasks (what a task-per-job design would hold).
Target (issue #4): <= 1 s and <= 1 KB per live job.

    python bench/register.py [--jobs 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc

from engine import AsyncEngine
from statemachines import load_spec


async def _register(n: int, *, measure_memory: bool) -> tuple[float, float]:
    engine = AsyncEngine(
        base_urls={"mindee": "http://127.0.0.1:9"}, env={"MINDEE_V2_API_KEY": "k"}
    )
    spec = load_spec("mindee")
    async with engine:
        # The first track builds the lifecycle's runtime: keep it out of the timing.
        await engine.track(spec, "inference", "warm-up")
        gc.collect()
        if measure_memory:
            tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0] if measure_memory else 0
        start = time.perf_counter()
        # Mindee waits 3 s before the first poll: nothing polls while we measure.
        for i in range(n):
            await engine.track(spec, "inference", f"job-{i:06d}")
        elapsed = time.perf_counter() - start
        used = tracemalloc.get_traced_memory()[0] - before if measure_memory else 0
        if measure_memory:
            tracemalloc.stop()
        assert len(engine.jobs()) == n + 1
    return elapsed, used / n


async def _parked_tasks(n: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(n)]
    await asyncio.sleep(0)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return used / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    n = args.jobs
    elapsed, _ = asyncio.run(_register(n, measure_memory=False))
    _, per_job = asyncio.run(_register(n, measure_memory=True))
    per_task = asyncio.run(_parked_tasks(n))
    print(
        f"register {n:,} jobs: {elapsed:.3f} s ({elapsed / n * 1e6:.2f} us/job)  target <= 1 s"
    )
    print(f"memory per live job:    {per_job:,.0f} B   target <= 1,024 B")
    print(f"memory per parked task: {per_task:,.0f} B   (a task-per-job design)")
    print(f"ratio task/job memory:  {per_task / per_job:.2f}x")


if __name__ == "__main__":
    main()
