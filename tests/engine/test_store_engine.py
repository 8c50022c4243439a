"""An engine with a store: jobs committed with their audit, held under a lease, taken over."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import AsyncEngine, StoreError, WaitTimeout
from engine._core.state import JobState, Phase
from engine.audit import record_hash, verify_log
from engine.stores import SqliteJobStore

DOC: dict[str, Any] = {
    "spec_version": "1",
    "service": {"name": "toy", "base_url": "https://api.example.test"},
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


def _spec_file(tmp_path: Path) -> str:
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(DOC), encoding="utf-8")
    return str(path)


def _engine(
    status: dict[str, str], **options: Any
) -> tuple[AsyncEngine, httpx.AsyncClient]:
    def handle(request: httpx.Request) -> httpx.Response:
        job = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"status": status.get(job, "running")})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return AsyncEngine(client=client, **options), client


async def _until_running(engine: AsyncEngine, refs: list[Any]) -> None:
    """Wait (bounded) until every job has been polled into Running."""
    async with asyncio.timeout(5):
        while any(engine.state_of(ref) != "Running" for ref in refs):  # noqa: ASYNC110 - polls the engine's state, bounded by the timeout
            await asyncio.sleep(0.01)


def _rows(store: Path, sql: str) -> list[Any]:
    db = sqlite3.connect(store)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


@pytest.mark.anyio
async def test_a_restarted_engine_drives_the_stores_jobs_to_their_end(
    tmp_path: Path,
) -> None:
    """Jobs left running in the store by a closed engine are taken over and completed."""
    spec = _spec_file(tmp_path)
    store = tmp_path / "jobs.db"
    status: dict[str, str] = {}
    first, client = _engine(status, store=store)
    async with client, first:
        refs = [await first.track(spec, "job", f"j{i}") for i in range(3)]
        await _until_running(first, refs)

    status.update(j0="done", j1="done", j2="done")
    second, client = _engine(status, store=store)
    async with client, second:
        resumed = second.jobs()
        results = [await second.wait(ref, timeout=5) for ref in resumed]

    kinds = [json.loads(r)["kind"] for (r,) in _rows(store, "SELECT record FROM audit")]
    assert sorted(r.job.job_id for r in results) == ["j0", "j1", "j2"]
    assert {r.state for r in results} == {"Done"}
    assert kinds.count("resumed") == 3
    assert kinds.count("completed") == 3
    assert _rows(store, "SELECT COUNT(*) FROM jobs WHERE done = 0") == [(0,)]


@pytest.mark.anyio
async def test_each_step_commits_the_state_with_its_audit_records(
    tmp_path: Path,
) -> None:
    """The job's row names the hash of its last audit record: state and log agree."""
    store = tmp_path / "jobs.db"
    engine, client = _engine({"a": "done"}, store=store)
    async with client, engine:
        await engine.wait(
            await engine.track(_spec_file(tmp_path), "job", "a"), timeout=5
        )

    [(key, head, seq, snapshot)] = _rows(
        store, "SELECT key, audit_head, audit_seq, snapshot FROM jobs"
    )
    records = [
        json.loads(r)
        for (job, r) in _rows(store, "SELECT job, record FROM audit ORDER BY id")
        if job == key
    ]
    assert json.loads(snapshot)["state"] == "Done"
    assert seq == len(records)
    assert records[-1]["hash"] == head == record_hash(records[-1])
    assert [r["jseq"] for r in records] == list(range(1, len(records) + 1))


@pytest.mark.anyio
async def test_a_live_engines_jobs_are_not_taken_by_another(tmp_path: Path) -> None:
    """A second engine opening the same store leaves the first one's held jobs alone."""
    spec = _spec_file(tmp_path)
    store = tmp_path / "jobs.db"
    first, client1 = _engine({}, store=store)
    second, client2 = _engine({}, store=store)
    async with client1, client2, first:
        await first.track(spec, "job", "held")
        async with second:
            assert second.jobs() == []
        assert [ref.job_id for ref in first.jobs()] == ["held"]


@pytest.mark.anyio
async def test_stored_jobs_that_cannot_be_resumed_are_reported_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot that is not one, a spec that is gone or changed: logged, the rest resumes."""
    spec = _spec_file(tmp_path)
    other = tmp_path / "other.json"  # another spec, removed before the restart
    other.write_text(json.dumps({**DOC, "spec_version": "2"}), encoding="utf-8")
    store = tmp_path / "jobs.db"
    first, client = _engine({}, store=store)
    async with client, first:
        refs = {
            name: await first.track(spec, "job", name)
            for name in ("ok", "bad", "changed")
        }
        refs["gone"] = await first.track(str(other), "job", "gone")
    other.unlink()
    db = sqlite3.connect(store)
    with db:
        db.execute(
            "UPDATE jobs SET snapshot = '{\"not\": 1}' WHERE key = ?",
            (refs["bad"].key,),
        )
        for name, field, value in (("changed", "spec_hash", "sha256:other"),):
            (text,) = db.execute(
                "SELECT snapshot FROM jobs WHERE key = ?", (refs[name].key,)
            ).fetchone()
            snapshot = {**json.loads(text), field: value}
            db.execute(
                "UPDATE jobs SET snapshot = ? WHERE key = ?",
                (json.dumps(snapshot), refs[name].key),
            )
    db.close()
    caplog.set_level(logging.ERROR, logger="statepoll")

    second, client = _engine({"ok": "done"}, store=store)
    async with client, second:
        resumed = [ref.job_id for ref in second.jobs()]

    assert resumed == ["ok"]
    assert caplog.text.count("cannot be read") == 1
    assert caplog.text.count("not resuming stored job") == 2


@pytest.mark.anyio
async def test_enqueue_needs_a_store(tmp_path: Path) -> None:
    """Enqueueing without a store is refused with one clear error."""
    engine, client = _engine({})
    async with client, engine:
        with pytest.raises(StoreError, match="needs a store"):
            await engine.enqueue(_spec_file(tmp_path), "job")


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    """Opening a text file as a store raises StoreError naming it."""
    path = tmp_path / "notes.txt"
    path.write_text("hello", encoding="utf-8")

    async def main() -> None:
        await SqliteJobStore(path).open("me", lease=30, now=0)

    with pytest.raises(StoreError, match="not a job store"):
        asyncio.run(main())


def test_a_snapshot_round_trips_through_the_store(tmp_path: Path) -> None:
    """What the store keeps is what it gives back."""
    job = JobState(
        key="k",
        service="toy",
        lifecycle="job",
        spec_hash="sha256:x",
        spec_source="",
        job_id="a",
        state="Queued",
        phase=Phase.POLL,
    )

    async def main() -> JobState | None:
        store = SqliteJobStore(tmp_path / "s.db")
        await store.open("me", lease=30, now=0)
        try:
            await store.add(job, (), hold=False, now=0)
            return await store.get("k")
        finally:
            await store.close()

    assert asyncio.run(main()) == job


@pytest.mark.anyio
async def test_a_wait_that_times_out_leaves_the_job_in_the_store(
    tmp_path: Path,
) -> None:
    """wait(timeout=) raises WaitTimeout; the job stays in the store and a later engine ends it."""
    spec = _spec_file(tmp_path)
    store = tmp_path / "jobs.db"
    status: dict[str, str] = {}
    first, client = _engine(status, store=store)
    async with client, first:
        ref = await first.track(spec, "job", "j1")
        with pytest.raises(WaitTimeout) as info:
            await first.wait(ref, timeout=0.05)
        after_timeout = await first.status(ref)

    status["j1"] = "done"
    second, client = _engine(status, store=store)
    async with client, second:
        result = await second.wait(ref, timeout=5)

    assert isinstance(info.value, TimeoutError)
    assert (after_timeout.done, after_timeout.ended) == (False, None)
    assert _rows(store, "SELECT COUNT(*) FROM jobs") == [(1,)]
    assert result.state == "Done"


@pytest.mark.anyio
async def test_tracking_a_finished_job_again_into_one_store_verifies_intact(
    tmp_path: Path,
) -> None:
    """The same job id tracked twice (it had finished): two sessions, verify says intact."""
    spec = _spec_file(tmp_path)
    store = tmp_path / "jobs.db"
    engine, client = _engine({"j1": "done"}, store=store)
    async with client, engine:
        for _ in range(2):
            ref = await engine.track(spec, "job", "j1")
            await engine.wait(ref, timeout=5)

    report = verify_log(store)
    kinds = [json.loads(r)["kind"] for (r,) in _rows(store, "SELECT record FROM audit")]
    assert (report.intact, report.checked) == (True, True)
    assert kinds.count("completed") == 2
