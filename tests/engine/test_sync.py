"""The blocking Engine: a loop thread keeps jobs moving between the caller's calls."""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import httpx
import pytest

from engine import Engine, Event
from statemachines import Spec, load_document

KEY = "secret-key-123"
DOC: dict[str, Any] = {
    "spec_version": "1",
    "service": {
        "name": "toy",
        "base_url": "https://api.example.test",
        "auth": {"header": "X-Key", "env": "TOY_KEY"},
    },
    "lifecycles": {
        "job": {
            "states": {
                "Queued": {"initial": True},
                "Done": {"outcome": "success"},
            },
            "transitions": [{"from": "Queued", "to": "Done"}],
            "poll": {
                "request": {"path": "/jobs/{job_id}"},
                "observe": [
                    {"pointer": "/status", "map": {"queued": "Queued", "done": "Done"}}
                ],
            },
            "schedule": {"interval": 0.01},
        }
    },
}


def _spec() -> Spec:
    return load_document(copy.deepcopy(DOC), source="toy")


def _client(polls_to_done: dict[str, int]) -> httpx.AsyncClient:
    """A server where job ``x`` is done after ``polls_to_done[x]`` polls (never if absent)."""
    seen: dict[str, int] = {}

    def handle(request: httpx.Request) -> httpx.Response:
        job = request.url.path.rsplit("/", 1)[-1]
        seen[job] = seen.get(job, 0) + 1
        done = job in polls_to_done and seen[job] >= polls_to_done[job]
        return httpx.Response(200, json={"status": "done" if done else "queued"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def test_jobs_move_between_blocking_calls() -> None:
    """A job tracked before a plain time.sleep() has reached its end when the caller looks."""
    with Engine(client=_client({"a": 3}), env={"TOY_KEY": KEY}) as engine:
        job = engine.track(_spec(), "job", "a")
        deadline = time.monotonic() + 5
        while engine.state_of(job) != "Done" and time.monotonic() < deadline:
            time.sleep(0.05)  # the caller does something else; no engine call runs

        assert engine.state_of(job) == "Done"


def test_as_completed_timeout_holds_after_the_first_result() -> None:
    """as_completed(timeout=) raises on time even after it has yielded a result."""
    with Engine(client=_client({"fast": 1}), env={"TOY_KEY": KEY}) as engine:
        jobs = [engine.track(_spec(), "job", name) for name in ("fast", "never")]
        got: list[str] = []
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            got.extend(r.job.job_id for r in engine.as_completed(jobs, timeout=0.5))
        elapsed = time.monotonic() - started

        assert got == ["fast"]
        assert 0.4 <= elapsed < 3.0
        assert engine.state_of(jobs[1]) == "Queued"


def test_hooks_run_on_the_engine_thread() -> None:
    """Hooks run on the engine's loop thread, not the caller's."""
    threads: list[str] = []

    def hook(event: Event) -> None:
        threads.append(threading.current_thread().name)

    with Engine(client=_client({"a": 1}), env={"TOY_KEY": KEY}) as engine:
        engine.on("completed", hook)
        engine.wait(engine.track(_spec(), "job", "a"), timeout=5)

    assert len(threads) == 1
    assert threads[0] != threading.current_thread().name


def test_a_closed_engine_refuses_and_closing_twice_is_harmless() -> None:
    """After close(), calls raise EngineClosedError; a second close() does nothing."""
    from engine import EngineClosedError

    engine = Engine(client=_client({}), env={"TOY_KEY": KEY})
    engine.open()
    engine.close()
    engine.close()

    with pytest.raises(EngineClosedError):
        engine.track(_spec(), "job", "a")
