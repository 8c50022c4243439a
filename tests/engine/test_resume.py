"""A restarted engine takes its store's jobs over, reconciled with the audit log read once."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import AsyncEngine
from engine._core.state import JobState, Phase
from engine._resume import audited_positions
from engine.stores import SqliteJobStore
from statemachines import Spec, load_document

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


def _spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "toy.json"
    path.write_text(json.dumps(DOC), encoding="utf-8")
    return path


def _engine(
    status: dict[str, str], **options: Any
) -> tuple[AsyncEngine, httpx.AsyncClient]:
    def handle(request: httpx.Request) -> httpx.Response:
        job = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"status": status.get(job, "running")})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return AsyncEngine(client=client, **options), client


@pytest.mark.anyio
async def test_a_restarted_engine_drives_the_stores_jobs_to_their_end(
    tmp_path: Path,
) -> None:
    """Jobs left running in the store by a closed engine are resumed and completed."""
    spec = str(_spec_file(tmp_path))
    store, audit = tmp_path / "jobs.db", tmp_path / "audit.jsonl"
    status: dict[str, str] = {}
    first, client = _engine(status, store=store, audit=audit)
    async with client, first:
        refs = [await first.track(spec, "job", f"j{i}") for i in range(3)]
        await _until_running(first, refs)

    status.update(j0="done", j1="done", j2="done")
    second, client = _engine(status, store=store, audit=audit)
    async with client, second:
        resumed = second.jobs()
        results = [await second.wait(ref, timeout=5) for ref in resumed]

    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert sorted(r.job.job_id for r in results) == ["j0", "j1", "j2"]
    assert {r.state for r in results} == {"Done"}
    assert sum(1 for r in records if r["kind"] == "resumed") == 3
    assert list(SqliteJobStore(store).unfinished()) == []


@pytest.mark.anyio
async def test_the_log_wins_over_a_store_that_lagged_behind(tmp_path: Path) -> None:
    """A state the log recorded after the store's last commit is the state resumed from."""
    spec = str(_spec_file(tmp_path))
    store, audit = tmp_path / "jobs.db", tmp_path / "audit.jsonl"
    first, client = _engine({}, store=store, audit=audit)
    async with client, first:
        ref = await first.track(spec, "job", "j0")
        await _until_running(first, [ref])
    # As after a crash between the two writes: the log has the move to
    # Running, the store still says Queued.
    jobs = SqliteJobStore(store)
    [(key, snapshot)] = list(jobs.unfinished())
    jobs.put(key, {**snapshot, "state": "Queued"})
    jobs.close()

    second, client = _engine({}, store=store, audit=audit)
    async with client, second:
        [resumed] = second.jobs()

        assert resumed.job_id == "j0"
        assert second.state_of(resumed) == "Running"
    kinds = [json.loads(line)["kind"] for line in audit.read_text().splitlines()]
    assert "illegal_transition" not in kinds


async def _until_running(engine: AsyncEngine, refs: list[Any]) -> None:
    """Wait (bounded) until every job has been polled into Running."""
    async with asyncio.timeout(5):
        while any(engine.state_of(ref) != "Running" for ref in refs):  # noqa: ASYNC110 - polls the engine's state, bounded by the timeout
            await asyncio.sleep(0.01)


def test_positions_are_read_in_one_pass_with_sessions_and_items() -> None:
    """The last state, the items' states and whether a job ended, per job, in one pass."""
    records = [
        {
            "kind": "submitted",
            "service": "s",
            "lifecycle": "b",
            "job_id": "1",
            "to": "A",
        },
        {
            "kind": "transition",
            "service": "s",
            "lifecycle": "b",
            "job_id": "1",
            "to": "B",
        },
        {
            "kind": "item_transition",
            "service": "s",
            "lifecycle": "doc",
            "job_id": "1",
            "item_id": "d",
            "to": "Ok",
        },
        {"kind": "completed", "service": "s", "lifecycle": "b", "job_id": "2"},
        {
            "kind": "submitted",
            "service": "s",
            "lifecycle": "b",
            "job_id": "3",
            "to": "A",
        },
        {"kind": "errored", "service": "s", "lifecycle": "b", "job_id": "3"},
        {
            "kind": "submitted",
            "service": "s",
            "lifecycle": "b",
            "job_id": "3",
            "to": "A",
        },
        {"kind": "item_transition", "service": "s", "job_id": "9", "item_id": "x"},
    ]

    positions = audited_positions(records)

    assert positions[("s", "b", "1")].state == "B"
    assert positions[("s", "b", "1")].items == {"d": "Ok"}
    assert positions[("s", "b", "2")].ended
    assert not positions[("s", "b", "3")].ended  # tracked again after it ended
    assert ("s", "b", "9") not in positions


@pytest.mark.anyio
async def test_stored_jobs_that_cannot_be_resumed_are_reported_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot that is not one, a spec that is gone or changed: logged, the rest resumes."""
    spec_path = _spec_file(tmp_path)
    store = tmp_path / "jobs.db"
    jobs = SqliteJobStore(store)
    good = JobState(
        key="j1",
        service="toy",
        lifecycle="job",
        spec_hash=_spec(spec_path).content_hash,
        spec_source=str(spec_path),
        job_id="ok",
        state="Queued",
        phase=Phase.POLL,
        base_url="https://api.example.test",
    )
    jobs.put("j1", good.to_json())
    jobs.put("j2", {"not": "a snapshot"})
    jobs.put(
        "j3",
        {**good.to_json(), "key": "j3", "spec_source": str(tmp_path / "gone.json")},
    )
    jobs.put("j4", {**good.to_json(), "key": "j4", "spec_hash": "sha256:other"})
    jobs.close()
    caplog.set_level(logging.ERROR, logger="statepoll")

    engine, client = _engine({"ok": "done"}, store=store)
    async with client, engine:
        resumed = [ref.job_id for ref in engine.jobs()]

    assert resumed == ["ok"]
    assert "j2" in caplog.text
    assert caplog.text.count("not resuming") == 3


def _spec(path: Path) -> Spec:
    return load_document(copy.deepcopy(json.loads(path.read_text())), source=str(path))
