"""A job id that is a path (a Google-style operation name) is polled at {+job_id} over loopback."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine import AsyncEngine, RemoteError
from engine.simulators import serving
from statemachines import Spec, load_document

OPERATION = "projects/1/locations/eu-west/operations/op-7"


def _spec() -> Spec:
    doc: dict[str, Any] = {
        "spec_version": "1",
        "service": {"name": "lro", "base_url": "http://127.0.0.1:9"},
        "lifecycles": {
            "operation": {
                "states": {
                    "Running": {"initial": True},
                    "Done": {"outcome": "success"},
                },
                "transitions": [{"from": "Running", "to": "Done"}],
                "submit": {
                    "request": {
                        "method": "POST",
                        "path": "/v1/projects/1/locations/eu-west/jobs",
                    },
                    "job_id": {"pointer": "/name"},
                    "observe": False,
                },
                "poll": {
                    "request": {"path": "/v1/{+job_id}"},
                    "observe": [
                        {
                            "pointer": "/metadata/state",
                            "map": {"RUNNING": "Running", "SUCCEEDED": "Done"},
                        }
                    ],
                },
                "schedule": {"initial_delay": 0, "interval": 0.01, "deadline": 20},
            }
        },
    }
    return load_document(doc, source="lro")


class _Operations:
    """Creates one operation named ``name``; it is done at its second poll."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.paths: list[str] = []
        self.app = Starlette(
            routes=[
                Route(
                    "/v1/projects/1/locations/eu-west/jobs",
                    self.create,
                    methods=["POST"],
                ),
                Route("/v1/{rest:path}", self.get, methods=["GET"]),
            ]
        )

    async def create(self, request: Request) -> JSONResponse:
        del request
        return JSONResponse({"name": self.name, "done": False})

    async def get(self, request: Request) -> JSONResponse:
        # The path as it arrived on the wire, before any decoding.
        self.paths.append(request.scope["raw_path"].decode("latin-1"))
        state = "SUCCEEDED" if len(self.paths) >= 2 else "RUNNING"
        return JSONResponse({"name": self.name, "metadata": {"state": state}})


@pytest.mark.anyio
async def test_an_operation_name_with_slashes_is_polled_at_its_own_path() -> None:
    """{+job_id} puts 'projects/1/.../operations/op-7' in the path with its '/' unencoded."""
    service = _Operations(OPERATION)
    with serving(service.app) as server:
        async with AsyncEngine(base_urls={"lro": server.url}) as engine:
            job = await engine.submit(_spec(), "operation")
            result = await engine.wait(job, timeout=10)

    assert result.state == "Done"
    assert result.job.job_id == OPERATION
    assert service.paths == [f"/v1/{OPERATION}"] * 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "hostile",
    [
        "projects/1/../../admin",
        "projects/1/%2e%2e/%2E%2E/admin",
        "projects\\1",
        "//evil.example/x",
        "http://evil.example/x",
    ],
)
async def test_a_hostile_operation_name_is_never_requested(hostile: str) -> None:
    """A name that would climb out of /v1/ or leave the host ends the job; no poll is sent."""
    service = _Operations(hostile)
    with serving(service.app) as server:
        async with AsyncEngine(base_urls={"lro": server.url}) as engine:
            job = await engine.submit(_spec(), "operation")
            with pytest.raises(RemoteError) as info:
                await engine.wait(job, timeout=10)

    assert info.value.retryable is False
    assert "{+job_id}" in str(info.value)
    assert service.paths == []
