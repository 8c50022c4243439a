"""A chain's next job is written with the step that starts it, SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest

from engine._core.state import End, JobState, Phase
from engine.audit import AuditEntry
from engine.stores import JobStore, open_store

pytestmark = pytest.mark.anyio


def _job(key: str, *, phase: Phase = Phase.POLL) -> JobState:
    return JobState(
        key=key,
        service="toy",
        lifecycle="job",
        spec_hash="sha256:x",
        spec_source="",
        job_id=key if phase is not Phase.START else "",
        state="Queued",
        phase=phase,
        due=0.0,
    )


def _entry(kind: str, job_id: str) -> AuditEntry:
    return AuditEntry(
        kind=kind, service="toy", lifecycle="job", job_id=job_id, spec_hash="sha256:x"
    )


@pytest.fixture
async def stores(store_url: str) -> AsyncIterator[Callable[[str], Any]]:
    """Open stores on one URL, each under its own owner; close them all after the test."""
    opened: list[JobStore] = []

    async def open_as(owner: str) -> JobStore:
        store = open_store(store_url)
        await store.open(owner, lease=30, now=0)
        opened.append(store)
        return store

    yield open_as
    for store in opened:
        await store.close()


def _ended(job: JobState) -> JobState:
    return attrs.evolve(job, phase=Phase.DONE, end=End.COMPLETED, next_key="k~2")


async def test_the_step_and_the_next_job_are_written_together(stores: Any) -> None:
    """The first job ends and the second exists, its records chained after the first's."""
    a = await stores("a")
    lease = await a.add(_job("k"), [_entry("submitted", "k")], hold=True, now=0)
    nxt = _job("k~2", phase=Phase.START)

    written = await a.commit_and_add(
        _ended(_job("k")),
        [_entry("completed", "k")],
        lease,
        (nxt, [_entry("chained", "")]),
        hold_new=False,
        now=1,
    )
    first, second = await a.get("k"), await a.get("k~2")

    assert written is not None
    moved, added = written
    assert (moved.jseq, added.key, added.jseq) == (2, "k~2", 1)
    assert first is not None
    assert (first.end, first.next_key) == (End.COMPLETED, "k~2")
    assert second is not None
    assert second.phase is Phase.START
    # Released and due: any driver may claim the new job (and only it).
    claimed = await (await stores("b")).claim(now=2, limit=10)
    assert [job.key for job, _ in claimed] == ["k~2"]


async def test_the_next_job_may_stay_with_the_driver(stores: Any) -> None:
    """hold_new: the new job is the writer's; another driver cannot claim it."""
    a = await stores("a")
    lease = await a.add(_job("k"), (), hold=True, now=0)

    written = await a.commit_and_add(
        _ended(_job("k")),
        (),
        lease,
        (_job("k~2", phase=Phase.START), ()),
        hold_new=True,
        now=1,
    )
    claimed = await (await stores("b")).claim(now=2, limit=10)

    assert written is not None
    assert claimed == []


async def test_a_fenced_step_adds_no_next_job(stores: Any) -> None:
    """A driver whose lease lapsed: its step is refused, and the next job is not created."""
    a, b = await stores("a"), await stores("b")
    await a.add(_job("k"), (), hold=False, now=0)
    [(job, held_by_a)] = await a.claim(now=1, limit=10)
    await b.claim(now=40, limit=10)  # a lapsed; b holds the job now

    refused = await a.commit_and_add(
        _ended(job),
        [_entry("completed", "k")],
        held_by_a,
        (_job("k~2", phase=Phase.START), [_entry("chained", "")]),
        hold_new=False,
        now=41,
    )

    assert refused is None
    assert await a.get("k~2") is None
