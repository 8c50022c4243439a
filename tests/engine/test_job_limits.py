"""A caller's own deadline and attempts for one job, end to end over loopback.

The toy spec allows 5 polls in 30 s; each test gives a job its own limits at
submit, track, enqueue or track_many (Python or the command line) and checks
what the service was sent.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import AsyncEngine, Engine, InputError, JobTimedOut, Worker
from engine.cli import main
from engine.simulators import ServerHandle, serving
from tests.engine._toy_service import ToyService, write_spec

#: Polls a job needs when it should never end within a test.
FOREVER = 10_000


@pytest.fixture
def service() -> ToyService:
    """A fresh toy service's books."""
    return ToyService()


@pytest.fixture
def server(service: ToyService) -> Iterator[ServerHandle]:
    """The toy service on 127.0.0.1."""
    with serving(service.app()) as handle:
        yield handle


def _engine(server: ServerHandle, **options: object) -> AsyncEngine:
    return AsyncEngine(base_urls={"toy": server.url}, seed=1, **options)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_own_attempts_end_a_job_before_the_specs(
    tmp_path: Path, service: ToyService, server: ServerHandle
) -> None:
    """max_attempts=2 at submit: the job times out after two polls (the spec allows 5)."""
    spec = write_spec(tmp_path)
    async with _engine(server) as engine:
        ref = await engine.submit(spec, "job", polls=FOREVER, max_attempts=2)
        async with asyncio.timeout(10):
            with pytest.raises(JobTimedOut, match=r"2 polls \(max_attempts\)"):
                await engine.wait(ref)

    assert service.polls[ref.job_id] == 2


@pytest.mark.anyio
async def test_own_attempts_above_the_specs_let_a_job_finish(
    tmp_path: Path, service: ToyService, server: ServerHandle
) -> None:
    """A job that needs 8 polls ends Done with max_attempts=10; the spec's 5 would time it out."""
    spec = write_spec(tmp_path)
    async with _engine(server) as engine:
        longer = await engine.submit(spec, "job", polls=8, max_attempts=10)
        spec_only = await engine.submit(spec, "job", polls=8)
        async with asyncio.timeout(10):
            result = await engine.wait(longer)
            with pytest.raises(JobTimedOut):
                await engine.wait(spec_only)

    assert (result.state, result.attempts) == ("Done", 8)
    assert service.polls[spec_only.job_id] == 5


@pytest.mark.anyio
async def test_own_deadline_ends_a_job_before_the_specs(
    tmp_path: Path, server: ServerHandle
) -> None:
    """deadline=0.3 s (the spec's is 30 s): the job times out by its deadline, soon."""
    spec = write_spec(tmp_path)
    async with _engine(server) as engine:
        started = time.monotonic()
        ref = await engine.submit(
            spec, "job", polls=FOREVER, deadline=0.3, max_attempts=FOREVER
        )
        async with asyncio.timeout(10):
            with pytest.raises(JobTimedOut, match="deadline"):
                await engine.wait(ref)
        took = time.monotonic() - started

    assert 0.3 <= took < 5


@pytest.mark.anyio
async def test_tracked_jobs_keep_their_own_limits(
    tmp_path: Path, service: ToyService, server: ServerHandle
) -> None:
    """Adopted by track and track_many with max_attempts=3: each adopted job polls three times."""
    spec = write_spec(tmp_path)
    for job_id in ("a", "b", "c"):
        service.add(job_id, FOREVER)
    async with _engine(server) as engine:
        one = await engine.track(spec, "job", "a", max_attempts=3)
        many = await engine.track_many(spec, "job", ["b", "c"], max_attempts=3)
        async with asyncio.timeout(10):
            for ref in (one, *many):
                with pytest.raises(JobTimedOut):
                    await engine.wait(ref)

    assert dict(service.polls) == {"a": 3, "b": 3, "c": 3}


@pytest.mark.anyio
async def test_a_worker_applies_the_limits_kept_in_the_store(
    tmp_path: Path,
    service: ToyService,
    server: ServerHandle,
    store_url: str,
) -> None:
    """Limits given at enqueue and track_many(drive=False) are stored; the worker honours them."""
    spec, store = write_spec(tmp_path), store_url
    service.add("adopted", FOREVER)
    async with _engine(server, store=store) as engine:
        queued = await engine.enqueue(spec, "job", polls=FOREVER, max_attempts=2)
        (adopted,) = await engine.track_many(
            spec, "job", ["adopted"], max_attempts=4, drive=False
        )
    worker = Worker(store, base_urls={"toy": server.url}, specs=[spec])
    async with asyncio.timeout(20):
        await worker.run(until_idle=True)
    async with AsyncEngine(store=store, specs=[spec]) as reader:
        ends = [(await reader.status(ref)).ended for ref in (queued, adopted)]

    assert ends == ["timed_out", "timed_out"]
    assert (service.polls[queued.job_id], service.polls["adopted"]) == (2, 4)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ((0, None), "deadline must be a positive"),
        ((float("inf"), None), "deadline must be a positive"),
        ((None, 0), "max_attempts must be a whole number"),
        ((None, 1.5), "max_attempts must be a whole number"),
    ],
)
async def test_bad_limits_are_refused_before_any_request(
    tmp_path: Path,
    service: ToyService,
    server: ServerHandle,
    limits: tuple[Any, Any],
    message: str,
) -> None:
    """A limit that is not positive and finite is an InputError; nothing is sent."""
    spec, store = write_spec(tmp_path), str(tmp_path / "jobs.db")
    deadline, attempts = limits
    async with _engine(server, store=store) as engine:
        for call in (
            lambda: engine.submit(
                spec, "job", deadline=deadline, max_attempts=attempts
            ),
            lambda: engine.enqueue(
                spec, "job", deadline=deadline, max_attempts=attempts
            ),
            lambda: engine.track(
                spec, "job", "x", deadline=deadline, max_attempts=attempts
            ),
            lambda: engine.track_many(
                spec, "job", ["x"], deadline=deadline, max_attempts=attempts
            ),
        ):
            with pytest.raises(InputError, match=message):
                await call()

    assert (service.created, sum(service.polls.values())) == (0, 0)


def test_the_blocking_engine_passes_the_limits_on(
    tmp_path: Path, service: ToyService, server: ServerHandle
) -> None:
    """Engine.submit/track with max_attempts: the same limits as the async engine."""
    spec = write_spec(tmp_path)
    service.add("t", FOREVER)
    with Engine(base_urls={"toy": server.url}, seed=1) as engine:
        submitted = engine.submit(spec, "job", polls=FOREVER, max_attempts=1)
        tracked = engine.track(spec, "job", "t", max_attempts=2)
        for ref in (submitted, tracked):
            with pytest.raises(JobTimedOut):
                engine.wait(ref, timeout=10)

    assert (service.polls[submitted.job_id], service.polls["t"]) == (1, 2)


def test_run_and_track_take_deadline_and_attempts_options(
    tmp_path: Path, service: ToyService, server: ServerHandle
) -> None:
    """`run --max-attempts 2` and `track --deadline` time the job out (exit 3)."""
    spec = write_spec(tmp_path)
    service.add("t", FOREVER)
    base = ["--base-url", server.url]
    out = io.StringIO()

    ran = main(
        [
            "run",
            spec,
            "job",
            *base,
            "--input",
            f"polls={FOREVER}",
            "--max-attempts",
            "2",
        ],
        stdout=out,
        stderr=out,
    )
    tracked = main(
        [
            "track",
            spec,
            "job",
            "t",
            *base,
            "--deadline",
            "0.2",
            "--max-attempts",
            "900",
        ],
        stdout=out,
        stderr=out,
    )

    assert (ran, tracked) == (3, 3), out.getvalue()
    assert service.polls["job-1"] == 2
    assert 1 < service.polls["t"] < 900


def test_enqueue_keeps_the_options_for_the_workers(
    tmp_path: Path, service: ToyService, server: ServerHandle
) -> None:
    """`enqueue --max-attempts 3`: a worker gives the job up after three polls."""
    spec, store = write_spec(tmp_path), str(tmp_path / "jobs.db")
    out = io.StringIO()

    code = main(
        [
            *("enqueue", spec, "job", "--store", store, "--base-url", server.url),
            *("--input", f"polls={FOREVER}", "--max-attempts", "3"),
        ],
        stdout=out,
        stderr=out,
    )

    async def drive() -> None:
        worker = Worker(store, base_urls={"toy": server.url}, specs=[spec])
        async with asyncio.timeout(20):
            await worker.run(until_idle=True)

    asyncio.run(drive())
    assert code == 0, out.getvalue()
    assert service.polls["job-1"] == 3


@pytest.mark.parametrize(
    "option", [["--deadline", "0"], ["--deadline", "nan"], ["--max-attempts", "0"]]
)
def test_bad_limit_options_are_usage_errors(
    tmp_path: Path, service: ToyService, server: ServerHandle, option: list[str]
) -> None:
    """A deadline or attempts option that is not positive: exit 2, nothing sent."""
    spec = write_spec(tmp_path)
    err = io.StringIO()

    code = main(
        ["run", spec, "job", "--base-url", server.url, *option],
        stdout=io.StringIO(),
        stderr=err,
    )

    assert code == 2
    assert "must be a positive" in err.getvalue()
    assert service.created == 0
