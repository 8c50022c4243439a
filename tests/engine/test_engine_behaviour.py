"""Engine behaviour through an in-process transport: schedules, policies, hooks, security."""

from __future__ import annotations

import asyncio
import copy
import inspect
import itertools
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from engine import (
    AsyncEngine,
    Engine,
    EngineOptions,
    Event,
    JobTimedOut,
    RemoteError,
    WaitTimeout,
)
from statemachines import Spec, load_document
from tests.engine.conftest import VirtualClock

BASE = "https://api.example.test"
KEY = "secret-key-123"

DOC: dict[str, Any] = {
    "spec_version": "1",
    "service": {
        "name": "toy",
        "base_url": BASE,
        "auth": {"header": "X-Key", "env": "TOY_KEY"},
    },
    "lifecycles": {
        "job": {
            "states": {
                "Queued": {"initial": True},
                "Running": {},
                "Done": {"outcome": "success"},
                "Failed": {"outcome": "failure"},
            },
            "transitions": [
                {"from": "Queued", "to": "Running"},
                {"from": "Running", "to": ["Done", "Failed"]},
            ],
            "poll": {
                "request": {"path": "/jobs/{job_id}", "url": {"pointer": "/next"}},
                "observe": [
                    {
                        "pointer": "/status",
                        "map": {
                            "queued": "Queued",
                            "running": "Running",
                            "done": "Done",
                            "failed": "Failed",
                        },
                    }
                ],
            },
            "schedule": {"interval": 0.01, "retry_after": {"max": 5}},
            "errors": {
                "retry_budget": 3,
                "retry_backoff": {"initial": 0.01, "max": 0.02},
            },
        }
    },
}


def _spec(**changes: Any) -> Spec:
    doc = copy.deepcopy(DOC)
    lifecycle = doc["lifecycles"]["job"]
    for key, value in changes.items():
        lifecycle[key] = {**lifecycle.get(key, {}), **value}
    return load_document(doc, source="toy")


Handler = Callable[[httpx.Request], httpx.Response]


def _scripted(bodies: list[dict[str, Any]], seen: list[httpx.Request]) -> Handler:
    """Answer polls with the given bodies in turn (the last repeats)."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = bodies[min(len(seen) - 1, len(bodies) - 1)]
        return httpx.Response(200, json=body)

    return handle


def _engine(handler: Handler, **options: Any) -> tuple[AsyncEngine, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AsyncEngine(client=client, env={"TOY_KEY": KEY}, **options), client


@pytest.mark.anyio
async def test_retry_after_spaces_polls_though_the_interval_is_shorter() -> None:
    """A Retry-After of 30 s spaces polls by exactly that, not the 0.01 s interval."""
    clock = VirtualClock()
    stamps: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        stamps.append(clock.now())
        status = "done" if len(stamps) >= 3 else "running"
        return httpx.Response(
            200, json={"status": status}, headers={"Retry-After": "30"}
        )

    engine, client = _engine(handle, clock=clock)
    async with client, engine:
        spec = _spec(schedule={"retry_after": {"max": 60}})
        result = await engine.wait(await engine.track(spec, "job", "a"), timeout=10)

    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert result.state == "Done"
    assert gaps == [30.0, 30.0]


@pytest.mark.anyio
async def test_a_submits_retry_after_sets_the_first_polls_delay() -> None:
    """202 + Retry-After: 20 on the submit: the first poll waits 20 s, not the initial delay."""
    clock = VirtualClock()
    stamps: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            stamps.append(clock.now())
            return httpx.Response(202, json={"id": "a"}, headers={"Retry-After": "20"})
        stamps.append(clock.now())
        return httpx.Response(200, json={"status": "done"})

    doc = copy.deepcopy(DOC)
    doc["lifecycles"]["job"]["submit"] = {
        "request": {"method": "POST", "path": "/jobs"},
        "job_id": {"pointer": "/id"},
    }
    doc["lifecycles"]["job"]["schedule"].update(
        initial_delay=1, retry_after={"max": 60}
    )
    engine, client = _engine(handle, clock=clock)
    async with client, engine:
        job = await engine.submit(load_document(doc, source="toy"), "job")
        result = await engine.wait(job, timeout=10)

    assert result.state == "Done"
    assert stamps[1] - stamps[0] == 20.0


@pytest.mark.anyio
async def test_retry_after_above_the_spec_max_is_clamped() -> None:
    """A server asking for an hour is clamped to the spec's retry_after.max (scaled)."""
    clock = VirtualClock()
    stamps: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        stamps.append(clock.now())
        status = "done" if len(stamps) >= 2 else "running"
        return httpx.Response(
            200, json={"status": status}, headers={"Retry-After": "3600"}
        )

    engine, client = _engine(handle, clock=clock, time_scale=0.5)
    async with client, engine:
        result = await engine.wait(await engine.track(_spec(), "job", "a"), timeout=10)

    assert result.state == "Done"
    assert stamps[1] - stamps[0] == 2.5  # max 5 s x 0.5


@pytest.mark.anyio
async def test_deadline_times_out_and_stops_polling() -> None:
    """At the deadline the job times out, a timed_out event fires, and no poll follows."""
    clock = VirtualClock()
    seen: list[float] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(clock.now())
        return httpx.Response(200, json={"status": "running"})

    engine, client = _engine(handle, clock=clock)
    events: list[Event] = []
    engine.on("timed_out", events.append)
    async with client, engine:
        start = clock.now()
        spec = _spec(schedule={"interval": 7, "deadline": 20})
        job = await engine.track(spec, "job", "a")
        with pytest.raises(JobTimedOut):
            await engine.wait(job, timeout=5)
        await clock.sleep_until(clock.now() + 100)

    assert len(events) == 1
    # Polls at 0, 7 and 14; the last wait is shortened to the deadline (20).
    assert [t - start for t in seen] == [0, 7, 14, 20]
    assert engine.state_of(job) == "Running"


@pytest.mark.anyio
async def test_wait_timeout_raises_and_the_job_goes_on() -> None:
    """wait(timeout=) raises WaitTimeout (a TimeoutError); the job keeps being polled."""
    seen: list[httpx.Request] = []
    engine, client = _engine(_scripted([{"status": "running"}], seen))
    async with client, engine:
        job = await engine.track(_spec(), "job", "a")
        with pytest.raises(TimeoutError) as info:
            await engine.wait(job, timeout=0.1)
        count = len(seen)
        await asyncio.sleep(0.1)

        assert isinstance(info.value, WaitTimeout)
        assert info.value.state == "Running"
        assert len(seen) > count
        assert engine.state_of(job) == "Running"


@pytest.mark.anyio
async def test_forget_stops_polling() -> None:
    """forget() ends the job: it is polled no more and waiters get JobTimedOut."""
    seen: list[httpx.Request] = []
    engine, client = _engine(_scripted([{"status": "running"}], seen))
    async with client, engine:
        job = await engine.track(_spec(), "job", "a")
        await asyncio.sleep(0.05)
        await engine.forget(job)
        count = len(seen)
        await asyncio.sleep(0.1)
        with pytest.raises(JobTimedOut):
            await engine.wait(job)

    assert len(seen) == count


class _Concurrency:
    """An async handler that answers after a short wait, counting requests in flight."""

    def __init__(self, polls_to_done: int) -> None:
        self.polls_to_done = polls_to_done
        self.now = 0
        self.peak = 0
        self.polls: dict[str, int] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(0.005)
        finally:
            self.now -= 1
        job = request.url.path.rsplit("/", 1)[-1]
        count = self.polls[job] = self.polls.get(job, 0) + 1
        status = "done" if count >= self.polls_to_done else "running"
        return httpx.Response(200, json={"status": status})


def _limited_spec(limit: int | None) -> Spec:
    doc = copy.deepcopy(DOC)
    if limit is not None:
        doc["service"]["max_in_flight"] = limit
    doc["lifecycles"]["job"]["schedule"] = {"interval": 0.001}
    return load_document(doc, source="toy")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("engine_limit", "service_limit", "peak"), [(3, None, 3), (10, 2, 2)]
)
async def test_requests_in_flight_never_exceed_the_global_or_service_limit(
    engine_limit: int, service_limit: int | None, peak: int
) -> None:
    """20 jobs polled back to back: in flight reaches the tighter limit, never more."""
    server = _Concurrency(polls_to_done=5)
    client = httpx.AsyncClient(transport=httpx.MockTransport(server))
    engine = AsyncEngine(
        client=client, env={"TOY_KEY": KEY}, max_in_flight=engine_limit
    )
    spec = _limited_spec(service_limit)
    async with client, engine:
        jobs = [await engine.track(spec, "job", f"j{i}") for i in range(20)]
        results = [await engine.wait(job, timeout=10) for job in jobs]

    assert server.peak == peak
    assert {r.state for r in results} == {"Done"}
    assert server.polls == {f"j{i}": 5 for i in range(20)}


@pytest.mark.anyio
async def test_a_poll_started_as_the_job_ends_never_reaches_the_wire() -> None:
    """A step whose task exists when the job ends sends nothing (seen once in CI)."""
    seen: list[httpx.Request] = []
    engine, client = _engine(_scripted([{"status": "running"}], seen))
    async with client, engine:
        job = await engine.track(_spec(schedule={"initial_delay": 60}), "job", "a")
        record = engine._run.jobs[job.key]
        # White-box, to make the race deterministic: the driver has started
        # the poll's task, and before it runs the job is forgotten.
        engine._run.start(record)
        await engine.forget(job)
        await asyncio.sleep(0.05)

    assert seen == []
    assert engine.state_of(job) == "Queued"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("policy", "ends"), [("reject", "Done"), ("fail", "illegal_transition")]
)
async def test_illegal_transition_by_policy(policy: str, ends: str) -> None:
    """Running -> Queued is refused: 'reject' keeps polling to the end, 'fail' ends the job."""
    seen: list[httpx.Request] = []
    bodies = [{"status": "running"}, {"status": "queued"}, {"status": "done"}]
    engine, client = _engine(_scripted(bodies, seen))
    illegal: list[Event] = []
    engine.on("illegal_transition", illegal.append)
    async with client, engine:
        job = await engine.track(
            _spec(policy={"illegal_transition": policy}), "job", "a"
        )
        try:
            outcome: str = (await engine.wait(job, timeout=5)).state
        except RemoteError as exc:
            outcome = exc.kind

    assert outcome == ends
    assert [(e.state, getattr(e, "dest", None)) for e in illegal] == [
        ("Running", "Queued")
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("policy", "ends"), [("reject", "Done"), ("fail", "unknown_state")]
)
async def test_unknown_state_by_policy(policy: str, ends: str) -> None:
    """An unmapped status value is reported; 'reject' goes on, 'fail' ends the job."""
    seen: list[httpx.Request] = []
    bodies = [{"status": "exploding"}, {"status": "done"}]
    engine, client = _engine(_scripted(bodies, seen))
    unknown: list[Event] = []
    engine.on("unknown_state", unknown.append)
    async with client, engine:
        job = await engine.track(_spec(policy={"unknown_state": policy}), "job", "a")
        try:
            outcome: str = (await engine.wait(job, timeout=5)).state
        except RemoteError as exc:
            outcome = exc.kind

    assert outcome == ends
    assert [getattr(e, "observed", None) for e in unknown] == ["exploding"]


@pytest.mark.anyio
async def test_foreign_link_gets_no_credential_and_is_refused_by_default() -> None:
    """A next link to another host is never sent the key; policy 'refuse' ends the job."""
    seen: list[httpx.Request] = []
    bodies = [
        {"status": "running", "next": "https://evil.example/steal"},
        {"status": "done"},
    ]
    engine, client = _engine(_scripted(bodies, seen))
    async with client, engine:
        job = await engine.track(_spec(), "job", "a")
        # The first poll has no link yet; its response carries the foreign one.
        with pytest.raises(RemoteError) as info:
            await engine.wait(job, timeout=5)

    assert info.value.kind == "protocol"
    assert all(r.url.host == "api.example.test" for r in seen)
    assert all(r.headers.get("X-Key") == KEY for r in seen)


@pytest.mark.anyio
async def test_foreign_link_is_fetched_anonymously_by_policy() -> None:
    """With foreign_links 'anonymous' the link is followed without the credential."""
    seen: list[httpx.Request] = []
    bodies = [
        {"status": "running", "next": "https://other.example/jobs/a"},
        {"status": "done"},
    ]
    engine, client = _engine(_scripted(bodies, seen))
    async with client, engine:
        job = await engine.track(
            _spec(policy={"foreign_links": "anonymous"}), "job", "a"
        )
        result = await engine.wait(job, timeout=5)

    foreign = [r for r in seen if r.url.host == "other.example"]
    assert result.state == "Done"
    assert foreign
    assert all("X-Key" not in r.headers for r in foreign)


@pytest.mark.anyio
async def test_job_id_cannot_change_the_path() -> None:
    """A job id like '../admin' stays one percent-encoded path segment."""
    seen: list[httpx.Request] = []
    engine, client = _engine(_scripted([{"status": "done"}], seen))
    async with client, engine:
        await engine.wait(await engine.track(_spec(), "job", "../admin"), timeout=5)

    assert seen[0].url.raw_path == b"/jobs/..%2Fadmin"


@pytest.mark.anyio
async def test_hooks_sync_async_failing_in_registration_order() -> None:
    """Sync and async hooks run in order; a raising hook is isolated and reported."""
    seen: list[httpx.Request] = []
    engine, client = _engine(
        _scripted([{"status": "running"}, {"status": "done"}], seen)
    )
    calls: list[str] = []
    failures: list[Event] = []

    def first(event: Event) -> None:
        calls.append(f"sync:{event.state}")

    async def second(event: Event) -> None:
        await asyncio.sleep(0)
        calls.append(f"async:{event.state}")

    def broken(event: Event) -> None:
        msg = "hook bug"
        raise RuntimeError(msg)

    engine.on("entered", first)
    engine.on("entered", broken)
    engine.on("entered", second)
    engine.on("hook_failed", failures.append)
    async with client, engine:
        result = await engine.wait(await engine.track(_spec(), "job", "a"), timeout=5)

    assert result.state == "Done"
    assert calls == ["sync:Running", "async:Running", "sync:Done", "async:Done"]
    assert len(failures) == 2
    assert "hook bug" in getattr(failures[0], "error", "")


def test_unknown_hook_event_suggests_the_right_name() -> None:
    """A misspelt event name is refused with a did-you-mean."""
    engine = AsyncEngine()

    with pytest.raises(ValueError, match="did you mean 'transition'"):
        engine.on("transtion", print)


def test_engine_and_async_engine_signatures_are_identical() -> None:
    """Every public method of AsyncEngine has a twin on Engine with the same parameters."""
    skip = {"open", "aclose"}  # Engine's are open() and close()
    names = [
        name
        for name, member in inspect.getmembers(AsyncEngine)
        if not name.startswith("_") and name not in skip and callable(member)
    ]

    assert set(names) >= {
        "submit",
        "track",
        "wait",
        "cancel",
        "as_completed",
        "on",
        "state_of",
        "jobs",
    }
    for name in names:
        # Parameters must match exactly; only the return type differs (a value
        # instead of a coroutine, an iterator instead of an async generator).
        sync = inspect.signature(getattr(Engine, name)).parameters
        core = inspect.signature(getattr(AsyncEngine, name)).parameters
        assert sync == core, name


def test_engine_options_are_exactly_the_async_engines_keyword_options() -> None:
    """Engine(**options: Unpack[EngineOptions]) cannot drift from AsyncEngine's options."""
    core = inspect.signature(AsyncEngine).parameters
    sync = inspect.signature(Engine).parameters
    keyword = {n for n, p in core.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}

    assert set(EngineOptions.__optional_keys__) == keyword
    assert not EngineOptions.__required_keys__
    assert list(sync) == ["specs", "options"]
    assert sync["specs"].default == core["specs"].default == ()


def test_sync_engine_runs_a_job_and_refuses_inside_a_loop() -> None:
    """Engine blocks to the end outside a loop, and refuses to run inside one."""
    seen: list[httpx.Request] = []
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(_scripted([{"status": "done"}], seen))
    )
    with Engine(client=client, env={"TOY_KEY": KEY}) as engine:
        result = engine.wait(engine.track(_spec(), "job", "a"), timeout=5)

        async def inside() -> None:
            engine.state_of  # noqa: B018 - attribute access only; the call below must refuse
            engine.jobs()
            with pytest.raises(RuntimeError, match="use AsyncEngine"):
                engine.wait(engine.jobs()[0])

        asyncio.run(inside())
    asyncio.run(client.aclose())

    assert result.state == "Done"
