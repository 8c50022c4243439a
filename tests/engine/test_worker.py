"""Workers share one store's jobs: each job is driven by one at a time and completes once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import AsyncEngine, StoreError, Worker
from engine.stores._postgres import read_postgres_records
from engine.stores._sqlite import SqliteJobStore, read_sqlite_records

DOC: dict[str, Any] = {
    "spec_version": "1",
    "service": {
        "name": "toy",
        "base_url": "https://api.example.test",
        "max_in_flight": 4,
    },
    "lifecycles": {
        "job": {
            "states": {
                "Queued": {"initial": True},
                "Running": {},
                "Done": {"outcome": "success"},
            },
            "transitions": [
                {"from": "Queued", "to": "Running"},
                {"from": "Running", "to": "Done"},
            ],
            "submit": {
                "request": {"method": "POST", "path": "/jobs"},
                "job_id": {"pointer": "/id"},
            },
            "poll": {
                "request": {"path": "/jobs/{job_id}"},
                "observe": [
                    {
                        "pointer": "/status",
                        "map": {
                            "queued": "Queued",
                            "running": "Running",
                            "done": "Done",
                        },
                    }
                ],
            },
            "schedule": {"interval": 0.01},
        }
    },
}


class _Service:
    """Creates jobs on POST; a job is running for two polls, then done."""

    def __init__(self) -> None:
        self.created = 0
        self.polls: Counter[str] = Counter()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.created += 1
            return httpx.Response(200, json={"id": f"job-{self.created}"})
        job = request.url.path.rsplit("/", 1)[-1]
        self.polls[job] += 1
        status = "done" if self.polls[job] > 2 else "running"
        return httpx.Response(200, json={"status": status})


def _spec(tmp_path: Path) -> str:
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(DOC), encoding="utf-8")
    return str(path)


def _records(store_url: str) -> list[dict[str, Any]]:
    """The store's own audit records, in commit order."""
    if store_url.startswith("sqlite:///"):
        return [
            dict(r) for r in read_sqlite_records(store_url.removeprefix("sqlite:///"))
        ]
    return [dict(r) for r in read_postgres_records(store_url)]


@pytest.mark.anyio
async def test_two_workers_complete_every_enqueued_job_exactly_once(
    tmp_path: Path, store_url: str
) -> None:
    """20 enqueued jobs, two workers on one store: each job completes once, no move twice."""
    spec, store = _spec(tmp_path), store_url
    service = _Service()

    async def answer(request: httpx.Request) -> httpx.Response:
        # A few ms per answer, as a server takes: instant answers let the
        # worker that starts first drive all 20 jobs before the other claims.
        await asyncio.sleep(0.005)
        return service(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with client:
        async with AsyncEngine(client=client, store=store) as engine:
            refs = [await engine.enqueue(spec, "job") for _ in range(20)]
        workers = [
            Worker(store, client=client, concurrency=4, specs=[spec]) for _ in range(2)
        ]
        async with asyncio.timeout(20):
            await asyncio.gather(*(w.run(until_idle=True) for w in workers))

    records = _records(store)
    completed = Counter(r["job_id"] for r in records if r["kind"] == "completed")
    moves = Counter(
        (r["job_id"], r["from"], r["to"]) for r in records if r["kind"] == "transition"
    )
    assert sorted(completed) == sorted(ref.job_id for ref in refs)
    assert set(completed.values()) == {1}
    assert set(moves.values()) == {1}
    assert all(w.steps > 0 for w in workers)


@pytest.mark.anyio
async def test_wait_and_status_from_another_process_read_the_store(
    tmp_path: Path, store_url: str
) -> None:
    """An engine that enqueued a job waits on it while a worker drives it."""
    spec, store = _spec(tmp_path), store_url
    client = httpx.AsyncClient(transport=httpx.MockTransport(_Service()))
    async with client, AsyncEngine(client=client, store=store) as engine:
        ref = await engine.enqueue(spec, "job")
        before = await engine.status(ref)
        worker = Worker(store, client=client, specs=[spec])
        running = asyncio.ensure_future(worker.run(until_idle=True))
        async with asyncio.timeout(10):
            result = await engine.wait(ref)
            await running
        after = await engine.status(ref)

    assert (before.phase, before.done) == ("poll", False)
    assert result.state == "Done"
    assert (after.state, after.ended, after.done) == ("Done", "completed", True)


@pytest.mark.anyio
async def test_track_many_writes_jobs_in_batches_and_workers_drive_them(
    tmp_path: Path, store_url: str
) -> None:
    """2,500 ids adopted at once are written in batches, then driven to their end by a worker."""
    spec, service = _spec(tmp_path), _Service()
    service.polls.update({f"job-{i}": 2 for i in range(2500)})  # done at the next poll
    client = httpx.AsyncClient(transport=httpx.MockTransport(service))
    async with client:
        async with AsyncEngine(client=client, store=store_url) as engine:
            refs = await engine.track_many(
                spec, "job", (f"job-{i}" for i in range(2500))
            )
            held = len(engine.jobs())
        worker = Worker(store_url, client=client, concurrency=64, specs=[spec])
        async with asyncio.timeout(60):
            await worker.run(until_idle=True)

    records = _records(store_url)
    assert len(refs) == held == 2500
    assert sum(1 for r in records if r["kind"] == "submitted") == 2500
    assert sum(1 for r in records if r["kind"] == "completed") == 2500


@pytest.mark.anyio
async def test_track_many_without_driving_hands_every_job_to_the_workers(
    tmp_path: Path, store_url: str
) -> None:
    """drive=False: the jobs are written and let go; the engine holds none, a worker ends them."""
    spec, service = _spec(tmp_path), _Service()
    service.polls.update({f"job-{i}": 2 for i in range(1200)})
    client = httpx.AsyncClient(transport=httpx.MockTransport(service))
    seen: list[str] = []
    async with client:
        async with AsyncEngine(client=client, store=store_url) as engine:
            engine.on("submitted", lambda e: seen.append(e.job_id))
            refs = await engine.track_many(
                spec, "job", (f"job-{i}" for i in range(1200)), drive=False
            )
            one = await engine.track(spec, "job", "job-1200", drive=False)
            held = len(engine.jobs())
            before = await engine.status(one)
        polled_while_open = sum(service.polls.values()) - 2 * 1200
        worker = Worker(store_url, client=client, concurrency=64, specs=[spec])
        async with asyncio.timeout(60):
            await worker.run(until_idle=True)

    records = _records(store_url)
    assert (len(refs), held, polled_while_open) == (1200, 0, 0)
    assert len(seen) == 1201  # the adopting engine's hooks heard of each job
    assert (before.state, before.done) == ("Queued", False)
    assert sum(1 for r in records if r["kind"] == "completed") == 1201


@pytest.mark.anyio
async def test_handing_jobs_to_workers_needs_a_store() -> None:
    """track(drive=False) on an engine without a store: a StoreError that says what to do."""
    async with AsyncEngine() as engine:
        with pytest.raises(StoreError, match="create the engine with store="):
            await engine.track("mindee", "inference", "abc", drive=False)


class _FlakyStore(SqliteJobStore):
    """A SQLite store whose reads of the next due time fail twice ("database is locked")."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failures = 2

    async def next_due(self, *, now: float) -> float | None:
        if self.failures:
            self.failures -= 1
            msg = f"job store {self.path}: database is locked"
            raise StoreError(msg)
        return await super().next_due(now=now)


@pytest.mark.anyio
async def test_a_worker_rides_out_a_store_that_fails_for_a_moment(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """StoreErrors while the worker looks for due jobs are logged, not fatal: every job ends."""
    spec = _spec(tmp_path)
    service = _Service()
    store = _FlakyStore(tmp_path / "jobs.db")
    client = httpx.AsyncClient(transport=httpx.MockTransport(service))
    async with client:
        async with AsyncEngine(client=client, store=tmp_path / "jobs.db") as engine:
            refs = [await engine.enqueue(spec, "job") for _ in range(3)]
        worker = Worker(store, client=client, specs=[spec])
        async with asyncio.timeout(20):
            await worker.run(until_idle=True)
        await store.close()

    done = [
        r for r in read_sqlite_records(tmp_path / "jobs.db") if r["kind"] == "completed"
    ]
    assert sorted(r["job_id"] for r in done) == sorted(ref.job_id for ref in refs)
    assert store.failures == 0
    assert "database is locked" in caplog.text


@pytest.mark.anyio
async def test_a_sqlite_failure_inside_the_store_is_a_store_error(
    tmp_path: Path,
) -> None:
    """sqlite3's own errors never leave the store: a table gone is a StoreError naming the file."""
    path = tmp_path / "jobs.db"
    store = SqliteJobStore(path)
    await store.open("me", lease=30.0, now=0.0)
    try:
        with sqlite3.connect(path) as other:
            other.execute("DROP TABLE jobs")
        with pytest.raises(StoreError, match="no such table") as caught:
            await store.get("j1")
    finally:
        await store.close()

    assert str(path) in str(caught.value)
