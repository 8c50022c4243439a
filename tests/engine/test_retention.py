"""Finished jobs leave memory: once handed over, or by a bounded retention."""

from __future__ import annotations

import asyncio
import copy
import gc
import tracemalloc
from typing import Any

import httpx
import pytest

from engine import AsyncEngine, Event
from statemachines import Spec, load_document

DOC: dict[str, Any] = {
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


def _spec() -> Spec:
    return load_document(copy.deepcopy(DOC), source="toy")


def _engine(**options: Any) -> tuple[AsyncEngine, httpx.AsyncClient]:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda _: httpx.Response(200, json=BODY))
    )
    return AsyncEngine(client=client, **options), client


async def _run(engine: AsyncEngine, count: int) -> None:
    """Track ``count`` jobs nobody waits on, until every one has completed."""
    ended = asyncio.Event()
    left = {"n": count}

    def done(_: Event) -> None:
        left["n"] -= 1
        if left["n"] == 0:
            ended.set()

    engine.on("completed", done)
    spec = _spec()
    for i in range(count):
        await engine.track(spec, "job", f"job-{i}")
    async with asyncio.timeout(30):
        await ended.wait()


@pytest.mark.anyio
async def test_results_nobody_takes_are_kept_within_the_retention_count() -> None:
    """2,000 jobs nobody waits on: at most retain_finished of them stay, ≤ 1.2 KB per job."""
    engine, client = _engine(retain_finished=100, max_in_flight=32)
    async with client, engine:
        await _run(engine, 50)  # warm up caches, bindings and the heap
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            await _run(engine, 2000)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

        assert len(engine.jobs()) <= 100
        assert (after - before) / 2000 < 1200


@pytest.mark.anyio
async def test_a_waited_result_leaves_a_slim_record_only() -> None:
    """After wait() hands a result over, the job's state is still readable, its bodies are gone."""
    engine, client = _engine()
    async with client, engine:
        job = await engine.track(_spec(), "job", "a")
        result = await engine.wait(job, timeout=5)

        assert result.response == BODY
        assert engine.state_of(job) == "Done"
        assert engine._run.jobs[job.key].job.response is None
        with pytest.raises(KeyError, match="handed over"):
            await engine.wait(job)


@pytest.mark.anyio
async def test_results_older_than_retain_for_are_dropped() -> None:
    """A finished result nobody took is dropped once older than retain_for."""
    engine, client = _engine(retain_for=0.05)
    async with client, engine:
        await _run(engine, 1)
        await asyncio.sleep(0.1)
        await _run(engine, 1)  # the driver runs again, and evicts the old one

        assert [ref.job_id for ref in engine.jobs()] == ["job-0"]
        assert engine.jobs()[0].key == "j2"


@pytest.mark.anyio
async def test_results_yielded_by_as_completed_leave_slim_records() -> None:
    """as_completed hands each result over: the engine keeps its state, not its bodies."""
    engine, client = _engine()
    async with client, engine:
        spec = _spec()
        jobs = [await engine.track(spec, "job", f"job-{i}") for i in range(5)]
        async with asyncio.timeout(5):
            results = [result async for result in engine.as_completed(jobs)]

        assert [r.response for r in results] == [BODY] * 5
        assert {engine.state_of(job) for job in jobs} == {"Done"}
        assert all(engine._run.jobs[job.key].job.response is None for job in jobs)


@pytest.mark.anyio
async def test_a_completed_hook_is_not_a_hand_over_wait_still_returns_the_result() -> (
    None
):
    """A hook that sees `completed` does not take the result: a later wait() still gets it."""
    engine, client = _engine()
    seen = asyncio.Event()
    async with client, engine:
        engine.on("completed", lambda _: seen.set())
        job = await engine.track(_spec(), "job", "a")
        async with asyncio.timeout(5):
            await seen.wait()
        result = await engine.wait(job, timeout=5)

    assert result.response == BODY
