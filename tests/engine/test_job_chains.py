"""Chained lifecycles end to end over loopback: upload, then batch, then export.

A success state's ``then`` starts the next lifecycle with values from the
result; ``wait`` on the first job returns the last one's result; one audit
trail links them; with a store, the next job is written in the same commit
as the first one's end, so that a stop or a crash between the two neither
loses it nor sends it twice.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import AsyncEngine, InputError, RemoteError, Worker
from engine._core import step as core
from engine._core.binding import bind
from engine._core.state import JobState, Phase
from engine.audit import show_log, verify_log
from engine.cli import main
from engine.simulators import ServerHandle, serving
from engine.stores import open_store
from statemachines import load_document
from tests.engine._chain_service import (
    ChainService,
    chain_document,
    reports_document,
    to_reports,
)

LIMIT = 20.0


@pytest.fixture
def service() -> ChainService:
    """A fresh files service's books."""
    return ChainService()


@pytest.fixture
def server(service: ChainService) -> Iterator[ServerHandle]:
    """The files service on 127.0.0.1."""
    with serving(service.app()) as handle:
        yield handle


def _spec(folder: Path, document: dict[str, Any] | None = None) -> str:
    path = folder / "files.json"
    path.write_text(json.dumps(document or chain_document()), encoding="utf-8")
    return str(path)


def _engine(server: ServerHandle, **options: Any) -> AsyncEngine:
    return AsyncEngine(base_urls={"files": server.url}, seed=1, **options)


@pytest.mark.anyio
async def test_wait_on_the_first_job_returns_the_last_jobs_result(
    tmp_path: Path, service: ChainService, server: ServerHandle
) -> None:
    """Upload, batch, export: each job is given what the one before returned, sent once."""
    spec = _spec(tmp_path)
    async with _engine(server) as engine:
        first = await engine.submit(spec, "upload", name="a.jsonl")
        async with asyncio.timeout(LIMIT):
            result = await engine.wait(first)

    assert (result.job.lifecycle, result.state) == ("export", "done")
    assert result.result == {"content": "rows of out-file-1"}
    assert [ref.lifecycle for ref in result.chain] == ["upload", "batch", "export"]
    assert result.chained_from[0] == first
    assert dict(service.posted) == {
        "files": [{"name": "a.jsonl"}],
        "batches": [{"input_file_id": "file-1", "window": "24h", "label": "a.jsonl"}],
        "exports": [{"file_id": "out-file-1"}],
    }


@pytest.mark.anyio
async def test_a_chain_ends_at_a_job_that_does_not_succeed(
    tmp_path: Path, service: ChainService, server: ServerHandle
) -> None:
    """A failed batch starts nothing: wait returns the batch's failure, with its chain."""
    spec = _spec(tmp_path)
    async with _engine(server) as engine:
        first = await engine.submit(spec, "upload", name="fail.jsonl")
        async with asyncio.timeout(LIMIT):
            result = await engine.wait(first)

    assert (result.job.lifecycle, result.state, result.ok) == ("batch", "failed", False)
    assert [ref.lifecycle for ref in result.chain] == ["upload", "batch"]
    assert "exports" not in service.posted


@pytest.mark.anyio
async def test_a_value_not_found_ends_the_job_with_an_error(
    tmp_path: Path, service: ChainService, server: ServerHandle
) -> None:
    """A then-pointer that finds nothing: the upload ends errored, saying why; no batch is sent."""
    document = chain_document()
    then = document["lifecycles"]["upload"]["states"]["processed"]["then"]
    then["inputs"]["input_file_id"] = {"pointer": "/file/id"}
    spec = _spec(tmp_path, document)
    async with _engine(server) as engine:
        first = await engine.submit(spec, "upload", name="a.jsonl")
        async with asyncio.timeout(LIMIT):
            with pytest.raises(
                RemoteError, match=r"cannot start batch: no value at '/file/id'"
            ):
                await engine.wait(first)
        status = await engine.status(first)

    assert (status.state, status.ended) == ("processed", "errored")
    assert "batches" not in service.posted


@pytest.mark.anyio
async def test_one_audit_trail_links_the_jobs_and_verifies(
    tmp_path: Path, server: ServerHandle
) -> None:
    """The first job's end names the next job's key; the next job's first record names the first."""
    spec, log = _spec(tmp_path), tmp_path / "audit.jsonl"
    async with _engine(server, audit=log) as engine:
        first = await engine.submit(spec, "upload", name="a.jsonl")
        async with asyncio.timeout(LIMIT):
            result = await engine.wait(first)
    shown = "\n".join(show_log(log))
    batch = result.chain[1]

    assert f"then files/batch (key {batch.key})" in shown
    assert f"chained from files/upload job file-1 (key {first.key})" in shown
    assert f"files/batch job {batch.job_id}\n" in shown
    assert verify_log(log).intact


@pytest.mark.anyio
async def test_workers_drive_a_chain_from_the_store(
    tmp_path: Path, service: ChainService, server: ServerHandle, store_url: str
) -> None:
    """An enqueued upload, driven by a worker: another engine's wait gets the export's result."""
    spec = _spec(tmp_path)
    async with _engine(server, store=store_url) as engine:
        first = await engine.enqueue(spec, "upload", name="a.jsonl")
    worker = Worker(store_url, base_urls={"files": server.url}, specs=[spec])
    async with asyncio.timeout(LIMIT):
        await worker.run(until_idle=True)
    async with AsyncEngine(store=store_url, specs=[spec]) as reader:
        async with asyncio.timeout(LIMIT):
            result = await reader.wait(first)

    assert (result.job.lifecycle, result.result) == (
        "export",
        {"content": "rows of out-file-1"},
    )
    assert [ref.lifecycle for ref in result.chain] == ["upload", "batch", "export"]
    assert [len(service.posted[k]) for k in ("files", "batches", "exports")] == [
        1,
        1,
        1,
    ]
    shown = "\n".join(show_log(store_url))
    assert f"chained from files/upload job file-1 (key {first.key})" in shown
    assert verify_log(store_url).intact


@pytest.mark.anyio
async def test_a_stop_between_two_jobs_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, service: ChainService, server: ServerHandle
) -> None:
    """A worker stops as the upload ends: the batch waits in the store; the next sends it once."""
    spec, store = _spec(tmp_path), str(tmp_path / "jobs.db")
    async with _engine(server, store=store) as engine:
        first = await engine.enqueue(spec, "upload", name="a.jsonl")
    stopping = Worker(store, base_urls={"files": server.url}, specs=[spec])
    stopping.on("completed", lambda _: stopping.stop())
    async with asyncio.timeout(LIMIT):
        await stopping.run()
    between = await _stored(store, f"{first.key}~2")
    again = Worker(store, base_urls={"files": server.url}, specs=[spec])
    async with asyncio.timeout(LIMIT):
        await again.run(until_idle=True)

    assert (between.phase, between.lifecycle, between.job_id) == (
        Phase.START,
        "batch",
        "",
    )
    assert between.pending == {
        "input_file_id": "file-1",
        "window": "24h",
        "label": "a.jsonl",
    }
    assert [len(service.posted[k]) for k in ("files", "batches", "exports")] == [
        1,
        1,
        1,
    ]
    assert verify_log(store).intact


@pytest.mark.anyio
async def test_a_chained_submit_cut_off_by_a_crash_is_reported_not_resent(
    tmp_path: Path, service: ChainService, server: ServerHandle
) -> None:
    """Intent committed, then the driver died: no lookup, so it ends unresolved, never re-sent."""
    spec, store = _spec(tmp_path), str(tmp_path / "jobs.db")
    async with _engine(server, store=store) as engine:
        first = await engine.enqueue(spec, "upload", name="a.jsonl")
    stopping = Worker(store, base_urls={"files": server.url}, specs=[spec])
    stopping.on("completed", lambda _: stopping.stop())
    async with asyncio.timeout(LIMIT):
        await stopping.run()
    await _crash_after_intent(store, f"{first.key}~2")
    again = Worker(store, base_urls={"files": server.url}, specs=[spec])
    async with asyncio.timeout(LIMIT):
        await again.run(until_idle=True)
    batch = await _stored(store, f"{first.key}~2")

    assert (batch.phase, batch.reason) == (Phase.DONE, "unresolved_submission")
    assert "batches" not in service.posted
    assert verify_log(store).intact


async def _stored(store_url: str, key: str) -> JobState:
    store = open_store(store_url)
    await store.open("reader", lease=1.0, now=0.0)
    try:
        job = await store.get(key)
    finally:
        await store.close()
    assert job is not None
    return job


async def _crash_after_intent(store_url: str, key: str) -> None:
    """Claim the chained job, commit its intent as a driver does, and vanish (no release)."""
    b = bind(
        load_document(chain_document()),
        "batch",
        base_url="http://127.0.0.1",
        scale=1.0,
        auth=None,
        secrets=set(),
    )
    store = open_store(store_url)
    await store.open("doomed", lease=0.1, now=time.time())
    try:
        claimed = await store.claim(now=time.time(), limit=10)
        [(job, lease)] = [(j, held) for j, held in claimed if j.key == key]
        step = core.begin_submit(b, job, now=time.time())
        assert await store.commit(step.job, [], lease, hold=True, now=time.time())
    finally:
        await store.close()
    await asyncio.sleep(0.3)  # the doomed driver's lease lapses


def test_run_reports_the_last_job_and_its_chain(
    tmp_path: Path, server: ServerHandle
) -> None:
    """`statepoll run` on the upload prints the export's end and the chain; --json lists it."""
    spec = _spec(tmp_path)
    base = ["run", spec, "upload", "--base-url", server.url, "--input", "name=a.jsonl"]
    text, data = io.StringIO(), io.StringIO()

    codes = (
        main(base, stdout=text, stderr=io.StringIO()),
        main([*base, "--json"], stdout=data, stderr=io.StringIO()),
    )

    assert codes == (0, 0)
    assert text.getvalue().splitlines()[-1] == (
        "files/export job export-1: done (success) after 1 polls "
        "(chain: upload file-1, batch batch-1, export export-1)"
    )
    report = json.loads(data.getvalue())
    assert (report["lifecycle"], report["job_id"]) == ("export", "export-2")
    assert [j["lifecycle"] for j in report["chain"]] == ["upload", "batch", "export"]


def _reports(folder: Path, document: dict[str, Any] | None = None) -> str:
    path = folder / "reports.json"
    path.write_text(json.dumps(document or reports_document()), encoding="utf-8")
    return str(path)


@pytest.mark.anyio
async def test_a_chain_may_go_on_in_another_spec(
    tmp_path: Path, service: ChainService, server: ServerHandle
) -> None:
    """An upload starts a render of the reports spec: bound as that spec's jobs are."""
    spec, reports = _spec(tmp_path, to_reports(chain_document())), _reports(tmp_path)
    log = tmp_path / "audit.jsonl"
    urls = {"files": server.url, "reports": server.url}
    async with AsyncEngine([reports], base_urls=urls, seed=1, audit=log) as engine:
        first = await engine.submit(spec, "upload", name="a.jsonl")
        async with asyncio.timeout(LIMIT):
            result = await engine.wait(first)

    assert [(ref.service, ref.lifecycle) for ref in result.chain] == [
        ("files", "upload"),
        ("reports", "render"),
    ]
    assert service.posted["renders"] == [{"source": "file-1"}]
    assert f"then reports/render (key {first.key}~2)" in "\n".join(show_log(log))
    assert verify_log(log).intact


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda then: then.update(spec="nowhere"),
            r"/lifecycles/upload/states/processed/then/spec: cannot find spec 'nowhere'",
        ),
        (
            lambda then: then.update(lifecycle="rendr"),
            r"unknown lifecycle 'rendr' of spec 'reports'; did you mean 'render'\?",
        ),
        (
            lambda then: then.update(inputs={}),
            r"missing required input\(s\) of lifecycle 'render': source",
        ),
    ],
)
async def test_a_then_another_spec_cannot_honour_is_refused_before_anything_is_sent(
    tmp_path: Path, service: ChainService, server: ServerHandle, edit: Any, message: str
) -> None:
    """An unknown spec, a lifecycle it lacks, a required input left out: InputError at submit."""
    document = to_reports(chain_document())
    edit(document["lifecycles"]["upload"]["states"]["processed"]["then"])
    spec, reports = _spec(tmp_path, document), _reports(tmp_path)
    urls = {"files": server.url, "reports": server.url}
    async with AsyncEngine([reports], base_urls=urls, seed=1) as engine:
        with pytest.raises(InputError, match=message):
            await engine.submit(spec, "upload", name="a.jsonl")

    assert dict(service.posted) == {}


@pytest.mark.anyio
async def test_a_worker_goes_on_in_another_spec(
    tmp_path: Path, service: ChainService, server: ServerHandle
) -> None:
    """A worker given both specs drives the upload, then the render it starts."""
    spec, reports = _spec(tmp_path, to_reports(chain_document())), _reports(tmp_path)
    store = str(tmp_path / "jobs.db")
    urls = {"files": server.url, "reports": server.url}
    async with AsyncEngine([reports], base_urls=urls, store=store) as engine:
        first = await engine.enqueue(spec, "upload", name="a.jsonl")
    worker = Worker(store, base_urls=urls, specs=[spec, reports])
    async with asyncio.timeout(LIMIT):
        await worker.run(until_idle=True)
    async with AsyncEngine(store=store, specs=[spec, reports]) as reader:
        async with asyncio.timeout(LIMIT):
            result = await reader.wait(first)

    assert (result.job.service, result.state) == ("reports", "done")
    assert service.posted["renders"] == [{"source": "file-1"}]
    assert verify_log(store).intact
