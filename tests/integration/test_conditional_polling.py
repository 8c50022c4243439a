"""Conditional polling over loopback: ETag back as If-None-Match, 304s free of attempts."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine import AsyncEngine, Event
from engine.simulators import serving
from statemachines import Spec, load_document

#: Real answers the job needs (queued, then done): max_attempts allows no more.
ATTEMPTS = 2
#: 304s the service sends between them: more than max_attempts.
UNCHANGED = 4


def _spec() -> Spec:
    doc: dict[str, Any] = {
        "spec_version": "1",
        "service": {"name": "etags", "base_url": "http://127.0.0.1:9"},
        "lifecycles": {
            "job": {
                "states": {"queued": {"initial": True}, "done": {"outcome": "success"}},
                "transitions": [{"from": "queued", "to": "done"}],
                "poll": {
                    # Redirects are followed: a 304 must still not be one.
                    "request": {"path": "/jobs/{job_id}", "follow_redirects": True},
                    "observe": [
                        {
                            "pointer": "/status",
                            "map": {"queued": "queued", "done": "done"},
                        }
                    ],
                    "conditional": True,
                },
                "schedule": {
                    "initial_delay": 0,
                    "interval": 0.01,
                    "max_attempts": ATTEMPTS,
                    "deadline": 20,
                },
            }
        },
    }
    return load_document(doc, source="etags")


class _Service:
    """Job 'j1': queued (ETag "v1"), unchanged for a while, then done (ETag "v2")."""

    def __init__(self) -> None:
        self.conditions: list[tuple[str | None, str | None]] = []
        self.app = Starlette(routes=[Route("/jobs/j1", self.get, methods=["GET"])])

    async def get(self, request: Request) -> Response:
        self.conditions.append(
            (
                request.headers.get("if-none-match"),
                request.headers.get("if-modified-since"),
            )
        )
        polls = len(self.conditions)
        if polls == 1:
            return JSONResponse(
                {"status": "queued"},
                headers={
                    "ETag": '"v1"',
                    "Last-Modified": "Mon, 30 Nov 2026 10:00:00 GMT",
                },
            )
        if polls <= 1 + UNCHANGED:
            # A Location on a 304 would be followed if 304 were read as a redirect.
            return Response(status_code=304, headers={"Location": "/elsewhere"})
        return JSONResponse({"status": "done"}, headers={"ETag": '"v2"'})


@pytest.mark.anyio
async def test_304s_are_unchanged_cost_no_attempt_and_the_job_ends() -> None:
    """Validators go back; four 304s under max_attempts 2 change nothing; the job completes."""
    service = _Service()
    events: list[Event] = []
    with serving(service.app) as server:
        async with AsyncEngine(base_urls={"etags": server.url}) as engine:
            engine.on("*", events.append)
            job = await engine.track(_spec(), "job", "j1")
            result = await engine.wait(job, timeout=10)

    sent = ('"v1"', "Mon, 30 Nov 2026 10:00:00 GMT")
    assert result.state == "done"
    assert result.attempts == ATTEMPTS
    assert service.conditions == [(None, None)] + [sent] * (UNCHANGED + 1)
    assert "illegal_transition" not in {e.name for e in events}
