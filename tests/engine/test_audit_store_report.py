"""show, stats and read on a job store, and verify on a store an engine wrote."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import AsyncEngine
from engine.audit import (
    LifecycleStats,
    log_stats,
    open_audit,
    read_records,
    show_log,
    spec_entry,
    verify_log,
)
from engine.stores import SqliteJobStore
from statemachines import Spec
from tests.engine.audit_store_build import build_two_writers, entry, state, toy_spec


@pytest.fixture
def spec(tmp_path: Path) -> Spec:
    """The toy spec, in a file beside the store."""
    return toy_spec(tmp_path)


@pytest.fixture
def store(tmp_path: Path, spec: Spec) -> Path:
    """Three jobs written by two writers taking turns (see build_two_writers)."""
    path = tmp_path / "jobs.db"
    asyncio.run(build_two_writers(path, spec))
    return path


def _steps(lines: list[str]) -> list[str]:
    """The timeline lines without their times."""
    return [line.split("s  ", 1)[1] if "+" in line else line for line in lines]


def _shape(stats: list[LifecycleStats]) -> list[tuple[Any, ...]]:
    """What stats say, without the timings (which differ from one build to the next)."""
    return [
        (
            s.service,
            s.lifecycle,
            s.jobs,
            [(t.state, t.count) for t in s.states],
            s.polls_median,
            s.outcomes,
        )
        for s in stats
    ]


def test_read_records_gives_a_stores_records_in_commit_order(store: Path) -> None:
    """Both writers' records, in the order they were committed."""
    records = list(read_records(store))

    order = " ".join(f"{r['writer'][-1]}{r['wseq']}" for r in records)
    assert order == "a1 a2 b1 b2 a3 b3 b4 b5 b6 b7 b8 a4 a5"


def test_show_gives_each_job_its_chain_whoever_wrote_it(store: Path) -> None:
    """Job k1's timeline runs across both writers, in chain order; jobs by first commit."""
    lines = show_log(store)

    titles = [line for line in lines if line.startswith("toy/")]
    assert lines[0] == "specs recorded in this store"
    assert titles == [
        "toy/job job j1 (key k1)",
        "toy/job job j2 (key k2)",
        "toy/job job j3 (key k3)",
    ]
    k1 = lines.index("toy/job job j1 (key k1)")
    assert _steps(lines[k1 : k1 + 6]) == [
        "toy/job job j1 (key k1)",
        "submitted in Queued",
        "transition: Queued -> Running (poll)",
        "resumed",
        "transition: Running -> Done (poll)",
        "completed: Done (success) after 2 polls",
    ]


@pytest.mark.parametrize("wanted", ["k3", "j3"])
def test_show_of_one_job_by_key_or_job_id(store: Path, wanted: str) -> None:
    """A job is found by its store key or by the service's job id; no spec list then."""
    lines = show_log(store, job=wanted)

    assert _steps(lines) == [
        "toy/job job j3 (key k3)",
        "submitted in Queued",
        "transition: Queued -> Running (poll)",
        "",
    ]


def test_show_of_an_unknown_job_in_a_store_says_so(store: Path) -> None:
    """No job matches: one line saying so."""
    assert show_log(store, job="nope") == ["no records for job nope"]


def test_a_submission_without_a_job_id_is_shown_by_its_client_reference(
    tmp_path: Path, spec: Spec
) -> None:
    """An intent whose request never got an id is titled by its client_ref."""
    path = tmp_path / "jobs.db"

    async def main() -> None:
        store = SqliteJobStore(path)
        await store.open("w", lease=30.0, now=0.0)
        try:
            await store.add(
                state(spec, "k1", ""),
                [entry(spec, "intent", "", detail={"client_ref": "ref-1"})],
                hold=False,
                now=0.0,
            )
        finally:
            await store.close()

    asyncio.run(main())

    assert _steps(show_log(path, job="ref-1")) == [
        "toy/job submission ref-1 (key k1)",
        "about to submit (client_ref ref-1)",
        "",
    ]


def test_stats_of_a_store_say_what_the_same_records_in_a_log_say(
    tmp_path: Path, store: Path, spec: Spec
) -> None:
    """Jobs, states visited, polls and outcomes match a JSON Lines log of the same records."""
    sink = open_audit(tmp_path / "same.jsonl")
    for r in read_records(store):
        if r["kind"] != "spec":
            again = entry(
                spec, r["kind"], r["job_id"], r["from"], r["to"], detail=r["detail"]
            )
            sink.append(again)
    sink.append(spec_entry(spec, spec.document))
    sink.close()

    assert _shape(log_stats(store)) == _shape(log_stats(tmp_path / "same.jsonl"))
    assert _shape(log_stats(store)) == [
        ("toy", "job", 3, [("Queued", 3), ("Running", 2)], 2, (("success", 2),))
    ]


# -- a store the engine wrote -----------------------------------------------------------


def _engine(
    status: dict[str, str], store: Path
) -> tuple[AsyncEngine, httpx.AsyncClient]:
    def handle(request: httpx.Request) -> httpx.Response:
        job = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"status": status.get(job, "running")})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return AsyncEngine(client=client, store=store), client


async def _until(engine: AsyncEngine, refs: list[Any], state: str) -> None:
    async with asyncio.timeout(5):
        while any(engine.state_of(ref) != state for ref in refs):  # noqa: ASYNC110 - polls the engine's state, bounded by the timeout
            await asyncio.sleep(0.01)


@pytest.mark.anyio
async def test_a_store_two_engines_wrote_at_once_and_handed_over_verifies(
    tmp_path: Path, spec: Spec
) -> None:
    """Two engines on one store, then a third taking over their jobs: intact and checked."""
    store = tmp_path / "jobs.db"
    status: dict[str, str] = {}
    first, client1 = _engine(status, store)
    second, client2 = _engine(status, store)
    async with client1, client2, first, second:
        mine = [await first.track(spec.source, "job", f"a{i}") for i in range(3)]
        theirs = [await second.track(spec.source, "job", f"b{i}") for i in range(3)]
        await _until(first, mine, "Running")
        await _until(second, theirs, "Running")
        status.update(a0="done", b0="done")
        await first.wait(mine[0], timeout=5)
        await second.wait(theirs[0], timeout=5)
    status.update({f"{side}{i}": "done" for side in "ab" for i in (1, 2)})
    third, client3 = _engine(status, store)
    async with client3, third:
        for ref in third.jobs():
            await third.wait(ref, timeout=5)

    report = verify_log(store)

    db = sqlite3.connect(store)
    try:
        (rows, writers) = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT writer) FROM audit"
        ).fetchone()
    finally:
        db.close()
    assert (report.problems, report.checked, report.records) == ((), True, rows)
    assert writers == 3
    assert sum(line.startswith("toy/job job ") for line in show_log(store)) == 6
