"""poll.progress end to end over loopback: events, status, console and audit trail."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import AsyncEngine, Polled, Worker
from engine.audit import show_log, verify_log
from engine.cli import main
from engine.cli._progress import Progress
from engine.simulators import ServerHandle, serving
from tests.engine._toy_service import ToyService, toy_document, write_spec


@pytest.fixture
def service() -> ToyService:
    """A fresh toy service's books."""
    return ToyService()


@pytest.fixture
def server(service: ToyService) -> Iterator[ServerHandle]:
    """The toy service on 127.0.0.1."""
    with serving(service.app()) as handle:
        yield handle


def _spec(folder: Path, progress: dict[str, Any]) -> str:
    document = toy_document()
    document["lifecycles"]["job"]["poll"]["progress"] = progress
    return write_spec(folder, document)


class _Terminal(io.StringIO):
    """A console that says it is a terminal, so that the status line is written."""

    def isatty(self) -> bool:
        return True


@pytest.mark.anyio
@pytest.mark.parametrize(
    "progress", [{"pointer": "/percent"}, {"done": "/done", "total": "/total"}]
)
async def test_polled_events_carry_the_fraction_done(
    tmp_path: Path, server: ServerHandle, progress: dict[str, str]
) -> None:
    """A job done at its 4th poll reports 0.25, 0.5, 0.75, 1.0, from a percent or from counts."""
    spec = _spec(tmp_path, progress)
    async with AsyncEngine(base_urls={"toy": server.url}, seed=1) as engine:
        polled: list[Polled] = []
        engine.on("polled", polled.append)
        ref = await engine.submit(spec, "job", polls=4)
        async with asyncio.timeout(10):
            result = await engine.wait(ref)

    assert result.state == "Done"
    assert [e.progress for e in polled] == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.anyio
async def test_a_spec_without_progress_reports_none(
    tmp_path: Path, server: ServerHandle
) -> None:
    """The same service, a spec that reads no progress: every event's progress is None."""
    spec = write_spec(tmp_path)
    async with AsyncEngine(base_urls={"toy": server.url}, seed=1) as engine:
        polled: list[Polled] = []
        engine.on("polled", polled.append)
        ref = await engine.submit(spec, "job", polls=2)
        async with asyncio.timeout(10):
            await engine.wait(ref)

    assert [e.progress for e in polled] == [None, None]


@pytest.mark.anyio
async def test_the_console_status_line_shows_the_percent(
    tmp_path: Path, server: ServerHandle
) -> None:
    """On a terminal, each poll's status line ends with how far along the job is."""
    spec, console = _spec(tmp_path, {"pointer": "/percent"}), _Terminal()
    async with AsyncEngine(base_urls={"toy": server.url}, seed=1) as engine:
        Progress(console).attach(engine)
        ref = await engine.submit(spec, "job", polls=4)
        async with asyncio.timeout(10):
            await engine.wait(ref)

    shown = re.findall(r"\((\d+)% done\)", console.getvalue())
    assert shown == ["25", "50", "75", "100"]


@pytest.mark.anyio
async def test_audit_show_lists_progress_by_the_tenth_and_verify_holds(
    tmp_path: Path, server: ServerHandle
) -> None:
    """20 polls of 5 % each: the log records 10 %, 20 %, … 100 % (not every 5 %), still intact."""
    spec, log = _spec(tmp_path, {"pointer": "/percent"}), tmp_path / "audit.jsonl"
    async with AsyncEngine(base_urls={"toy": server.url}, seed=1, audit=log) as engine:
        ref = await engine.submit(spec, "job", polls=20, max_attempts=30)
        async with asyncio.timeout(10):
            await engine.wait(ref)

    lines = [line for line in show_log(log) if "progress:" in line]
    assert [re.findall(r"(\d+)% done", line) for line in lines] == [
        [str(tenth)] for tenth in (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    ]
    assert verify_log(log).intact


@pytest.mark.anyio
async def test_a_worker_keeps_the_progress_in_the_store(
    tmp_path: Path,
    service: ToyService,
    server: ServerHandle,
    store_url: str,
) -> None:
    """A job driven by a worker: status() from another engine reads its last progress."""
    spec, store = _spec(tmp_path, {"pointer": "/percent"}), store_url
    async with AsyncEngine(base_urls={"toy": server.url}, store=store) as engine:
        ref = await engine.enqueue(spec, "job", polls=4, max_attempts=2)
    worker = Worker(store, base_urls={"toy": server.url}, specs=[spec])
    async with asyncio.timeout(20):
        await worker.run(until_idle=True)
    async with AsyncEngine(store=store, specs=[spec]) as reader:
        status = await reader.status(ref)

    assert (status.ended, status.progress) == ("timed_out", 0.5)
    assert service.polls[ref.job_id] == 2
    shown = "\n".join(show_log(store))
    assert "progress: 25% done" in shown
    assert "progress: 50% done" in shown


def test_audit_show_on_the_command_line_prints_progress(
    tmp_path: Path, server: ServerHandle
) -> None:
    """`statepoll run --audit` then `statepoll audit show`: the progress lines are there."""
    spec, log = _spec(tmp_path, {"pointer": "/percent"}), tmp_path / "audit.jsonl"
    quiet, out = io.StringIO(), io.StringIO()

    ran = main(
        [
            *("run", spec, "job", "--base-url", server.url),
            *("--input", "polls=2", "--audit", str(log)),
        ],
        stdout=quiet,
        stderr=quiet,
    )
    shown = main(["audit", "show", str(log)], stdout=out, stderr=out)

    assert (ran, shown) == (0, 0), quiet.getvalue()
    assert "progress: 50% done" in out.getvalue()
    assert "progress: 100% done" in out.getvalue()
