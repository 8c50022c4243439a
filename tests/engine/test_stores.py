"""Job stores, SQLite and PostgreSQL alike: leases, fencing, claims, and state with its audit."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from engine._core.state import JobState, Phase
from engine.audit import AuditEntry
from engine.stores import JobStore, open_store

pytestmark = pytest.mark.anyio


def _job(key: str, *, due: float = 0.0) -> JobState:
    return JobState(
        key=key,
        service="toy",
        lifecycle="job",
        spec_hash="sha256:x",
        spec_source="",
        job_id=key,
        state="Queued",
        phase=Phase.POLL,
        due=due,
    )


def _entry(kind: str, job_id: str) -> AuditEntry:
    return AuditEntry(
        kind=kind, service="toy", lifecycle="job", job_id=job_id, spec_hash="sha256:x"
    )


@pytest.fixture
async def stores(store_url: str) -> AsyncIterator[Callable[[str], Any]]:
    """Open stores on one URL, each under its own owner; close them all after the test."""
    opened: list[JobStore] = []

    async def open_as(owner: str, *, now: float = 0.0) -> JobStore:
        store = open_store(store_url)
        await store.open(owner, lease=30, now=now)
        opened.append(store)
        return store

    yield open_as
    for store in opened:
        await store.close()


async def test_a_driver_whose_lease_lapsed_cannot_commit_over_its_successor(
    stores: Any,
) -> None:
    """A claims; its lease lapses; B claims (new token); A's commit is refused, B's lands."""
    a, b = await stores("a"), await stores("b")
    await a.add(_job("k"), (), hold=False, now=0)
    [(job, held_by_a)] = await a.claim(now=1, limit=10)
    # A pauses past its lease (SIGSTOP, a long GC): at 40 it has lapsed.
    [(_, held_by_b)] = await b.claim(now=40, limit=10)
    moved = job.copy()
    moved.state = "Running"

    refused = await a.commit(
        moved, [_entry("transition", "k")], held_by_a, hold=False, now=41
    )
    accepted = await b.commit(
        moved, [_entry("transition", "k")], held_by_b, hold=False, now=41
    )

    assert held_by_b.token == held_by_a.token + 1
    assert refused is None
    assert accepted is not None
    assert accepted.jseq == 1  # the refused commit wrote no record


async def test_a_held_job_is_not_claimed_while_its_owner_lives(stores: Any) -> None:
    """Claims skip jobs whose owner's heartbeat is current, and take them once it lapses."""
    a, b = await stores("a"), await stores("b")
    await a.add(_job("k"), (), hold=True, now=0)

    while_alive = await b.claim(now=10, limit=10)
    await a.heartbeat(now=25)  # renewed: held until 55
    still = await b.claim(now=50, limit=10)
    lapsed = await b.claim(now=60, limit=10)

    assert while_alive == []
    assert still == []
    assert [job.key for job, _ in lapsed] == ["k"]


async def test_claims_take_the_most_overdue_first_within_the_limit(stores: Any) -> None:
    """Due jobs come oldest due first, at most ``limit``; jobs not yet due stay."""
    a = await stores("a")
    for key, due in (("late", 5.0), ("later", 9.0), ("first", 1.0), ("future", 100.0)):
        await a.add(_job(key, due=due), (), hold=False, now=0)

    batch = await a.claim(now=10, limit=2)
    rest = await a.claim(now=10, limit=10)

    assert [job.key for job, _ in batch] == ["first", "late"]
    assert [job.key for job, _ in rest] == ["later"]
    assert await a.next_due(now=10) == 100.0


async def test_two_drivers_claiming_at_once_never_share_a_job(stores: Any) -> None:
    """Concurrent claims from two owners split the due jobs between them, none twice."""
    a, b = await stores("a"), await stores("b")
    for i in range(50):
        await a.add(_job(f"k{i:02d}"), (), hold=False, now=0)

    got = await asyncio.gather(
        *(store.claim(now=1, limit=7) for store in (a, b, a, b, a, b, a, b))
    )

    keys = [job.key for batch in got for job, _ in batch]
    assert len(keys) == len(set(keys)) == 50


async def test_a_step_and_its_records_commit_together(stores: Any) -> None:
    """A commit writes the new state and chains its records after the job's head."""
    a = await stores("a")
    lease = await a.add(_job("k"), [_entry("submitted", "k")], hold=True, now=0)
    moved = _job("k")
    moved.state = "Done"
    moved.phase = Phase.DONE

    after = await a.commit(
        moved,
        [_entry("transition", "k"), _entry("completed", "k")],
        lease,
        hold=False,
        now=1,
    )
    stored = await a.get("k")

    assert lease.jseq == 1
    assert after is not None
    assert after.jseq == 3
    assert stored is not None
    assert (stored.state, stored.done) == ("Done", True)
    assert await a.next_due(now=2) is None  # finished jobs are never due


async def test_releasing_frees_every_held_job(stores: Any) -> None:
    """release() lets an owner's jobs go: another driver claims them at once."""
    a, b = await stores("a"), await stores("b")
    for key in ("x", "y"):
        await a.add(_job(key), (), hold=True, now=0)

    before = await b.claim(now=1, limit=10)
    await a.release()
    after = await b.claim(now=1, limit=10)

    assert before == []
    assert sorted(job.key for job, _ in after) == ["x", "y"]


async def test_an_owner_whose_process_is_gone_frees_its_jobs_at_once(
    stores: Any,
) -> None:
    """A driver of this host killed with SIGKILL: the next one to open takes its jobs now."""
    a = await stores(f"{socket.gethostname()}:{_gone_pid()}:gone")
    await a.add(_job("k"), (), hold=True, now=0)

    b = await stores("b", now=1)
    taken = await b.claim(now=1, limit=10)

    assert [job.key for job, _ in taken] == ["k"]


async def test_a_snapshot_that_cannot_be_read_is_shelved_not_handed_around(
    stores: Any, store_url: str
) -> None:
    """A row whose snapshot is not one is reported and left alone, not claimed in a loop."""
    a = await stores("a")
    await a.add(_job("bad"), (), hold=False, now=0)
    await a.add(_job("good"), (), hold=False, now=0)
    await _corrupt(store_url, "bad")

    first = await a.claim(now=1, limit=10)
    again = await a.claim(now=2, limit=10)

    assert [job.key for job, _ in first] == ["good"]
    assert again == []


async def test_a_release_wakes_a_waiting_driver(stores: Any) -> None:
    """wait_changed() returns soon after another driver releases a job that is due."""
    a, b = await stores("a"), await stores("b")
    await b.wait_changed(0.01)  # drain anything pending

    async def release_soon() -> None:
        await asyncio.sleep(0.1)
        await a.add(_job("k"), (), hold=False, now=0)

    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(5):
        await asyncio.gather(release_soon(), b.wait_changed(3.0))
    waited = asyncio.get_running_loop().time() - started

    assert waited < 1.5


def _gone_pid() -> str:
    """Return the pid of a process that has exited (a driver killed, as far as stores see)."""
    return subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


async def _corrupt(store_url: str, key: str) -> None:
    if store_url.startswith("sqlite:///"):
        import sqlite3

        db = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        with db:
            db.execute(
                "UPDATE jobs SET snapshot = ? WHERE key = ?",
                (json.dumps({"x": 1}), key),
            )
        db.close()
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(
        store_url, autocommit=True
    ) as conn:
        await conn.execute(
            "UPDATE statepoll.jobs SET snapshot = %s WHERE key = %s",
            (json.dumps({"x": 1}), key),
        )


async def test_an_owner_name_used_again_continues_its_audit_chain(stores: Any) -> None:
    """A store opened again under the same owner name writes on after its own records."""
    first = await stores("same")
    await first.add(_job("a"), [_entry("submitted", "a")], hold=False, now=0)
    await first.close()

    again = await stores("same", now=1)
    lease = await again.add(_job("b"), [_entry("submitted", "b")], hold=False, now=1)

    assert lease.jseq == 1
