"""Bodies on every request and values read from earlier responses, end to end over loopback."""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import parse_qs

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from engine import AsyncEngine
from engine.simulators import serving
from statemachines import Spec, load_document

_BATCH: dict[str, Any] = {
    "states": {
        "queued": {"initial": True},
        "running": {},
        "completed": {"outcome": "success"},
        "cancelled": {"outcome": "cancelled"},
    },
    "transitions": [
        {"from": "queued", "to": "running"},
        {"from": ["queued", "running"], "to": ["completed", "cancelled"]},
    ],
    "inputs": {
        "prompt": {"in": "none", "required": True},
        "count": {"in": "none", "type": "integer", "required": True},
    },
    "submit": {
        "request": {
            "method": "POST",
            "path": "/v1/batches",
            "body": {"json": {"input": {"text": "{prompt}", "n": "{count}"}}},
        },
        "job_id": {"pointer": "/id"},
        "observe": False,
    },
    "values": {
        "upload_ref": {"header": "X-Upload", "response": "submit"},
        "output_file_id": {"pointer": "/output_file_id", "response": "final"},
    },
    "poll": {
        "request": {
            "method": "POST",
            "path": "/v1/batches:get",
            "body": {"json": {"id": "{job_id}", "upload": "{upload_ref}"}},
        },
        "observe": [
            {
                "pointer": "/status",
                "map": {
                    "queued": "queued",
                    "running": "running",
                    "completed": "completed",
                    "cancelled": "cancelled",
                },
            }
        ],
    },
    "result": {"request": {"path": "/v1/files/{output_file_id}/content"}},
    "cancel": {
        "request": {
            "method": "PATCH",
            "path": "/v1/batches/{job_id}",
            "body": {"json": {"status": "completed", "conclusion": "cancelled"}},
        },
        "from": ["queued", "running"],
        "leads_to": ["cancelled"],
        "observe": False,
    },
    "items": {
        "lifecycle": "line",
        "refresh": "at_end",
        "request": {
            "method": "POST",
            "path": "/v1/batches/{job_id}/lines:list",
            "body": {"json": {"page_token": "{cursor}", "size": 2}},
        },
        "items_pointer": "/lines",
        "id_pointer": "/id",
        "paging": {"kind": "cursor", "next_pointer": "/next_page_token"},
    },
    "schedule": {"initial_delay": 0, "interval": 0.01, "deadline": 20},
}
_LINE: dict[str, Any] = {
    "item_only": True,
    "states": {"pending": {"initial": True}, "ok": {"outcome": "success"}},
    "transitions": [{"from": "pending", "to": "ok"}],
    "poll": {
        "request": {"path": "/v1/lines/{item_id}"},
        "observe": [{"pointer": "/status", "map": {"ok": "ok"}}],
    },
}


def _spec(poll_body: Any = None) -> Spec:
    batch = copy.deepcopy(_BATCH)
    if poll_body is not None:
        batch["poll"]["request"]["body"] = poll_body
    doc = {
        "spec_version": "1",
        "service": {"name": "bodies", "base_url": "http://127.0.0.1:9"},
        "lifecycles": {"batch": batch, "line": copy.deepcopy(_LINE)},
    }
    return load_document(doc, source="bodies")


class _Service:
    """One batch 'b1': running until poll ``finish_at``, then completed (file 'file-9')."""

    def __init__(self, finish_at: int = 2) -> None:
        self.finish_at = finish_at
        self.seen: list[tuple[str, str, Any]] = []
        #: The X-Tenant header of each request, in order (None: not sent).
        self.tenants: list[str | None] = []
        self.app = Starlette(
            routes=[
                Route("/v1/batches", self.create, methods=["POST"]),
                Route("/v1/batches:get", self.status, methods=["POST"]),
                Route("/v1/batches/b1", self.cancel, methods=["PATCH"]),
                Route("/v1/batches/b1/lines:list", self.lines, methods=["POST"]),
                Route("/v1/files/{file}/content", self.content, methods=["GET"]),
            ]
        )

    async def _note(self, request: Request) -> Any:
        self.tenants.append(request.headers.get("x-tenant"))
        raw = await request.body()
        if request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            body: Any = parse_qs(raw.decode())
        else:
            body = await request.json() if raw else None
        self.seen.append((request.method, request.url.path, body))
        return body

    def calls(self, path: str) -> list[Any]:
        return [body for _, p, body in self.seen if p == path]

    async def create(self, request: Request) -> Response:
        await self._note(request)
        return JSONResponse({"id": "b1"}, headers={"X-Upload": "up-3"})

    async def status(self, request: Request) -> Response:
        await self._note(request)
        if self.calls("/v1/batches/b1"):
            return JSONResponse({"id": "b1", "status": "cancelled"})
        if len(self.calls("/v1/batches:get")) < self.finish_at:
            return JSONResponse({"id": "b1", "status": "running"})
        return JSONResponse(
            {"id": "b1", "status": "completed", "output_file_id": "file-9"}
        )

    async def cancel(self, request: Request) -> Response:
        await self._note(request)
        return JSONResponse({"id": "b1", "status": "cancelling"})

    async def lines(self, request: Request) -> Response:
        body = await self._note(request)
        if body.get("page_token") == "t2":
            return JSONResponse({"lines": [{"id": "l3", "status": "ok"}]})
        return JSONResponse(
            {
                "lines": [{"id": "l1", "status": "ok"}, {"id": "l2", "status": "ok"}],
                "next_page_token": "t2",
            }
        )

    async def content(self, request: Request) -> Response:
        await self._note(request)
        return PlainTextResponse('{"file": "%s"}' % request.path_params["file"])  # noqa: UP031


@pytest.mark.anyio
async def test_every_request_carries_its_templated_body_and_values_flow_on() -> None:
    """Submit and poll send bodies, items page by a body cursor, a final value fills a path."""
    service = _Service()
    with serving(service.app) as server:
        async with AsyncEngine(base_urls={"bodies": server.url}) as engine:
            job = await engine.submit(_spec(), "batch", prompt="hi", count=3)
            result = await engine.wait(job, timeout=10)

    assert result.state == "completed"
    assert result.result == {"file": "file-9"}
    assert dict(result.items) == {"l1": "ok", "l2": "ok", "l3": "ok"}
    assert service.calls("/v1/batches") == [{"input": {"text": "hi", "n": 3}}]
    assert service.calls("/v1/batches:get") == [{"id": "b1", "upload": "up-3"}] * 2
    assert service.calls("/v1/batches/b1/lines:list") == [
        {"size": 2},
        {"page_token": "t2", "size": 2},
    ]
    assert [m for m, p, _ in service.seen if p.startswith("/v1/files/")] == ["GET"]
    assert service.seen[-1][1] == "/v1/files/file-9/content"


@pytest.mark.anyio
async def test_a_cancel_is_a_patch_with_its_body() -> None:
    """cancel() sends PATCH {"status": "completed", "conclusion": "cancelled"}."""
    service = _Service(finish_at=10**6)
    with serving(service.app) as server:
        async with AsyncEngine(base_urls={"bodies": server.url}) as engine:
            spec = _spec()
            job = await engine.submit(spec, "batch", prompt="hi", count=3)
            await engine.cancel(job)
            result = await engine.wait(job, timeout=10)

    assert result.state == "cancelled"
    assert service.calls("/v1/batches/b1") == [
        {"status": "completed", "conclusion": "cancelled"}
    ]


@pytest.mark.anyio
async def test_a_form_body_is_sent_urlencoded() -> None:
    """A form poll body sends its fields urlencoded: text, a boolean, a repeated field."""
    service = _Service()
    form = {"form": {"id": "{job_id}", "full": True, "tag": ["a", "{upload_ref}"]}}
    with serving(service.app) as server:
        async with AsyncEngine(base_urls={"bodies": server.url}) as engine:
            job = await engine.submit(_spec(form), "batch", prompt="hi", count=3)
            result = await engine.wait(job, timeout=10)

    assert result.state == "completed"
    assert service.calls("/v1/batches:get")[0] == {
        "id": ["b1"],
        "full": ["true"],
        "tag": ["a", "up-3"],
    }


@pytest.mark.anyio
async def test_a_header_input_is_sent_on_every_request() -> None:
    """An 'in: header' input reaches the service on the submit, each poll and the result."""
    batch = copy.deepcopy(_BATCH)
    batch["inputs"]["tenant"] = {"in": "header", "name": "X-Tenant"}
    doc = {
        "spec_version": "1",
        "service": {"name": "bodies", "base_url": "http://127.0.0.1:9"},
        "lifecycles": {"batch": batch, "line": copy.deepcopy(_LINE)},
    }
    service = _Service()
    with serving(service.app) as server:
        async with AsyncEngine(base_urls={"bodies": server.url}) as engine:
            job = await engine.submit(
                load_document(doc, source="bodies"),
                "batch",
                prompt="hi",
                count=3,
                tenant="acme",
            )
            result = await engine.wait(job, timeout=10)

    assert result.state == "completed"
    assert len(service.tenants) >= 4  # submit, two polls, the listing, the result
    assert set(service.tenants) == {"acme"}
