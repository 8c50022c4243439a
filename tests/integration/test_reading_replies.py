"""Reading replies end to end: a toy server on 127.0.0.1 and a spec testing its replies.

Error rules (a rate-limited 403 is retried, a plain one ends the job with the
service's code), error codes read from a header, a JSON ``__type`` or an XML
``<Code>`` and observed as states, a reset header as a wait hint, conditions
over arrays, numbers, ``not`` and a case-insensitive map, and a listing that
stops on ``has_more: false`` or refuses a repeated cursor.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine import AsyncEngine, RemoteError
from engine.simulators import ServerHandle, serve
from statemachines import Spec, load_document

#: Stands for "an hour from now" in a scripted header: the server fills it in.
IN_AN_HOUR = "<in an hour>"
#: One scripted answer: status, body (JSON, or bytes as is) and headers.
Answer = tuple[int, Any, dict[str, str]]
STATES = "/Reservations/*/Instances/*/State/Name"
PENDING = {"State": {"Name": "pending"}}

DOC: dict[str, Any] = {
    "spec_version": "1",
    "service": {"name": "replies", "base_url": "http://127.0.0.1:9"},
    "lifecycles": {
        "job": {
            "policy": {"illegal_transition": "fail", "unknown_state": "fail"},
            "states": {
                "Pending": {"initial": True},
                "Running": {},
                "Done": {"outcome": "success"},
                "Failed": {"outcome": "failure"},
            },
            "transitions": [
                {"from": "Pending", "to": ["Running", "Failed"]},
                {"from": "Running", "to": ["Done", "Failed"]},
            ],
            "poll": {
                "request": {"path": "/jobs/{job_id}"},
                "observe": [
                    {"when": {"error": "NotFound"}, "state": "Failed"},
                    {
                        "when": {
                            "pointer": STATES,
                            "equals": "terminated",
                            "match": "any",
                        },
                        "state": "Failed",
                    },
                    {
                        "when": {
                            "pointer": STATES,
                            "equals": "pending",
                            "match": "any",
                        },
                        "state": "Running",
                    },
                    {
                        "when": {
                            "pointer": STATES,
                            "equals": "running",
                            "match": "all",
                        },
                        "state": "Done",
                    },
                    {
                        "when": {
                            "all": [
                                {"pointer": "/progress", "ge": 50},
                                {"not": {"pointer": "/stalled", "equals": True}},
                            ]
                        },
                        "state": "Running",
                    },
                    {
                        "pointer": "/status",
                        "map": {
                            "Pending": "Pending",
                            "Running": "Running",
                            "Succeeded": "Done",
                            "Failed": "Failed",
                        },
                        "ignore_case": True,
                    },
                ],
            },
            "schedule": {
                "interval": 0.01,
                "deadline": 20,
                "jitter": {"kind": "full", "min": 0.005},
                "retry_after": {
                    "max": 0.3,
                    "hints": [
                        {
                            "header": "X-RateLimit-Reset",
                            "kind": "epoch",
                            "when": {"header": "X-RateLimit-Remaining", "le": 0},
                        }
                    ],
                },
            },
            "errors": {
                "code_from": [
                    {"header": "x-amzn-ErrorType", "pattern": "^([^:]+)"},
                    {"pointer": "/__type", "pattern": "([^#]+)$"},
                    {"pattern": "<Code>([^<]+)</Code>"},
                ],
                "message_from": {"pointer": "/message"},
                "rules": [
                    {"when": {"error": "NotFound"}, "as": "observe"},
                    {
                        "when": {
                            "all": [
                                {"status": 403},
                                {
                                    "any": [
                                        {"header": "Retry-After"},
                                        {"header": "X-RateLimit-Remaining", "le": 0},
                                    ]
                                },
                            ]
                        },
                        "as": "transient",
                    },
                ],
                "retry_budget": 3,
                "retry_backoff": {"initial": 0.01},
            },
        },
        "batch": {
            "states": {"Open": {"initial": True}, "Closed": {"outcome": "success"}},
            "transitions": [{"from": "Open", "to": "Closed"}],
            "poll": {
                "request": {"path": "/batches/{job_id}"},
                "observe": [{"when": {"status": 200}, "state": "Closed"}],
            },
            "items": {
                "lifecycle": "doc",
                "request": {"path": "/batches/{job_id}/docs"},
                "items_pointer": "/data",
                "id_pointer": "/id",
                "paging": {
                    "kind": "cursor",
                    "cursor_param": "after",
                    "next_pointer": "/next",
                    "stop_when": {"pointer": "/has_more", "equals": False},
                },
            },
            "schedule": {"interval": 0.01, "deadline": 20},
        },
        "doc": {
            "item_only": True,
            "states": {"Waiting": {"initial": True}, "Ok": {"outcome": "success"}},
            "transitions": [{"from": "Waiting", "to": "Ok"}],
            "poll": {
                "request": {"path": "/docs/{item_id}"},
                "observe": [{"pointer": "/status", "map": {"ok": "Ok"}}],
            },
        },
    },
}

#: What the server answers, by path: each request takes the next answer; the last repeats.
SCRIPTS: dict[str, list[Answer]] = {
    # Conditions.
    "/jobs/ec2": [
        (200, {"Reservations": [{"Instances": [PENDING]}]}, {}),
        (
            200,
            {"Reservations": [{"Instances": [{"State": {"Name": "running"}}] * 2}]},
            {},
        ),
    ],
    "/jobs/ec2-lost": [
        (
            200,
            {
                "Reservations": [
                    {"Instances": [PENDING, {"State": {"Name": "terminated"}}]}
                ]
            },
            {},
        ),
    ],
    "/jobs/empty": [
        (200, {"Reservations": [], "status": "PENDING"}, {}),
        (200, {"Reservations": [], "status": "running"}, {}),
        (200, {"Reservations": [], "status": "SUCCEEDED"}, {}),
    ],
    "/jobs/climb": [
        (200, {"progress": 10, "status": "pending"}, {}),
        (200, {"progress": 60, "status": "pending"}, {}),
        (200, {"status": "succeeded"}, {}),
    ],
    "/jobs/stalled": [(200, {"progress": 60, "stalled": True, "status": "FAILED"}, {})],
    # Error rules and codes.
    "/jobs/limited": [
        (403, {"__type": "x#Throttling"}, {"Retry-After": "0"}),
        (403, {"__type": "x#Throttling"}, {"X-RateLimit-Remaining": "0"}),
        (200, {"status": "running"}, {}),
        (200, {"status": "succeeded"}, {}),
    ],
    "/jobs/denied": [
        (403, {"__type": "com.example#AccessDenied", "message": "no"}, {}),
    ],
    "/jobs/gone-xml": [(404, b"<Error><Code>NotFound</Code></Error>", {})],
    "/jobs/gone-header": [(400, b"", {"x-amzn-ErrorType": "NotFound:http://x/"})],
    # Wait hints.
    "/jobs/reset": [
        (
            200,
            {"status": "running"},
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": IN_AN_HOUR},
        ),
        (200, {"status": "succeeded"}, {}),
    ],
    # Paging.
    "/batches/b1/docs": [
        (
            200,
            {"data": [{"id": "a", "status": "ok"}], "next": "c1", "has_more": True},
            {},
        ),
        (
            200,
            {"data": [{"id": "b", "status": "ok"}], "next": "c2", "has_more": False},
            {},
        ),
        (200, {"data": [{"id": "never", "status": "ok"}], "has_more": False}, {}),
    ],
    "/batches/loop/docs": [
        (200, {"data": [{"id": "a", "status": "ok"}], "next": "c1"}, {}),
        (200, {"data": [], "next": "c1"}, {}),
    ],
}


class _Server:
    """Plays each path's script; records when each request came."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[float, str]]] = {}

    async def answer(self, request: Request) -> Response:
        """Return the next answer of the path's script."""
        path = request.url.path
        if path.startswith("/batches/") and not path.endswith("/docs"):
            return Response(b"{}", media_type="application/json")
        seen = self.seen.setdefault(path, [])
        seen.append((time.monotonic(), request.url.query))
        script = SCRIPTS[path]
        status, body, headers = script[min(len(seen), len(script)) - 1]
        filled = {
            k: str(time.time() + 3600) if v == IN_AN_HOUR else v
            for k, v in headers.items()
        }
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Response(raw, status, filled, media_type="application/json")


SERVER = _Server()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerHandle]:
    """Serve the scripted toy for the whole module."""
    app = Starlette(routes=[Route("/{path:path}", SERVER.answer)])
    with serve(app) as handle:
        yield handle


def _spec() -> Spec:
    return load_document(copy.deepcopy(DOC), source="replies")


async def _run(server: ServerHandle, lifecycle: str, job_id: str) -> Any:
    """Track ``job_id`` to its end; return the result or the error it ended with."""
    async with AsyncEngine(base_urls={"replies": server.url}) as engine:
        job = await engine.track(_spec(), lifecycle, job_id)
        async with asyncio.timeout(10):
            try:
                return await engine.wait(job)
            except RemoteError as exc:
                return exc


def _polls(path: str) -> int:
    return len(SERVER.seen.get(path, []))


# -- conditions ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_all_and_any_over_nested_arrays_decide_the_state(
    server: ServerHandle,
) -> None:
    """Any pending instance is Running; every instance running is Done (pathAny, pathAll)."""
    result = await _run(server, "job", "ec2")

    assert (result.state, _polls("/jobs/ec2")) == ("Done", 2)


@pytest.mark.anyio
async def test_any_terminated_instance_fails_the_job(server: ServerHandle) -> None:
    """One terminated instance among others fails the job at the first poll."""
    result = await _run(server, "job", "ec2-lost")

    assert (result.state, result.ok) == ("Failed", False)


@pytest.mark.anyio
async def test_an_empty_array_holds_for_no_match_and_the_map_ignores_case(
    server: ServerHandle,
) -> None:
    """No instance is not 'all running' (that would be an illegal Pending → Done); PENDING maps."""
    result = await _run(server, "job", "empty")

    assert (result.state, _polls("/jobs/empty")) == ("Done", 3)


@pytest.mark.anyio
async def test_a_number_test_moves_the_job_once_progress_reaches_it(
    server: ServerHandle,
) -> None:
    """A progress of 50 or more is Running; below it the (case-insensitive) status decides."""
    result = await _run(server, "job", "climb")

    assert (result.state, _polls("/jobs/climb")) == ("Done", 3)


@pytest.mark.anyio
async def test_not_keeps_a_stalled_job_out_of_running(server: ServerHandle) -> None:
    """Progress past 50 but stalled: 'not' fails the rule, and FAILED maps to Failed."""
    result = await _run(server, "job", "stalled")

    assert result.state == "Failed"


# -- error rules and codes -------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_rate_limited_403_is_retried_until_the_job_succeeds(
    server: ServerHandle,
) -> None:
    """403 with Retry-After, then 403 with nothing left, are retried; the job then ends Done."""
    result = await _run(server, "job", "limited")

    assert (result.state, _polls("/jobs/limited")) == ("Done", 4)


@pytest.mark.anyio
async def test_a_plain_403_ends_the_job_with_the_services_code(
    server: ServerHandle,
) -> None:
    """A 403 without a rate-limit sign is fatal: one request, the code from __type."""
    error = await _run(server, "job", "denied")

    assert isinstance(error, RemoteError)
    assert (error.kind, error.status, error.code, error.remote_message) == (
        "status",
        403,
        "AccessDenied",
        "no",
    )
    assert (error.retryable, _polls("/jobs/denied")) == (False, 1)


@pytest.mark.anyio
@pytest.mark.parametrize("job_id", ["gone-xml", "gone-header"])
async def test_an_error_code_is_observed_as_a_state(
    server: ServerHandle, job_id: str
) -> None:
    """NotFound (an XML <Code> or x-amzn-ErrorType) is the Failed state, not an error."""
    result = await _run(server, "job", job_id)

    assert (result.state, result.error) == ("Failed", None)


# -- wait hints ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_reset_header_holds_the_next_poll_clamped_by_the_spec(
    server: ServerHandle,
) -> None:
    """x-ratelimit-reset an hour away, nothing left: the next poll waits the spec's max (0.3 s)."""
    result = await _run(server, "job", "reset")

    (first, _), (second, _) = SERVER.seen["/jobs/reset"]
    assert result.state == "Done"
    assert 0.29 <= second - first < 5


# -- paging ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_has_more_false_ends_the_listing_despite_a_cursor(
    server: ServerHandle,
) -> None:
    """The second page says has_more: false: its cursor is never followed."""
    result = await _run(server, "batch", "b1")

    queries = [query for _, query in SERVER.seen["/batches/b1/docs"]]
    assert (result.state, dict(result.items)) == ("Closed", {"a": "Ok", "b": "Ok"})
    assert queries == ["", "after=c1"]


@pytest.mark.anyio
async def test_a_repeated_cursor_ends_the_job_with_a_protocol_error(
    server: ServerHandle,
) -> None:
    """A page giving back the cursor it was asked with ends the job instead of looping."""
    error = await _run(server, "batch", "loop")

    assert isinstance(error, RemoteError)
    assert (error.kind, error.retryable) == ("protocol", False)
    assert "same cursor" in str(error)
    assert len(SERVER.seen["/batches/loop/docs"]) == 2
