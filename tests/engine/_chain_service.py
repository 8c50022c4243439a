"""A toy files service for the chained-lifecycle tests: upload, then batch, then export.

Starlette, served on 127.0.0.1:0. An upload is ``processing`` at its first
poll and ``processed`` at the second; a batch is ``in_progress``, then
``completed`` with an ``output_file_id`` (``failed`` when its input file's
name says ``fail``); an export is ``done`` at once, its content at
``/exports/{id}/content``. Every body posted is kept, so that a test can
check what each job was given and that nothing was sent twice.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def _status_map(*names: str) -> dict[str, str]:
    return {name: name for name in names}


#: The spec: three lifecycles, each success state starting the next.
DOCUMENT: dict[str, Any] = {
    "spec_version": "1",
    "service": {"name": "files", "base_url": "https://files.example.test"},
    "lifecycles": {
        "upload": {
            "states": {
                "processing": {"initial": True},
                "processed": {
                    "outcome": "success",
                    "then": {
                        "lifecycle": "batch",
                        "inputs": {
                            "input_file_id": {"pointer": "/id"},
                            "window": {"value": "24h"},
                            "label": {"input": "name"},
                        },
                    },
                },
                "error": {"outcome": "failure"},
            },
            "transitions": [{"from": "processing", "to": ["processed", "error"]}],
            "inputs": {"name": {"in": "query", "required": True}},
            "submit": {
                "request": {"method": "POST", "path": "/files"},
                "job_id": {"pointer": "/id"},
            },
            "poll": {
                "request": {"path": "/files/{job_id}"},
                "observe": [
                    {
                        "pointer": "/status",
                        "map": _status_map("processing", "processed", "error"),
                    }
                ],
            },
            "schedule": {"interval": 0.01, "deadline": 30},
        },
        "batch": {
            "states": {
                "in_progress": {"initial": True},
                "completed": {
                    "outcome": "success",
                    "then": {
                        "lifecycle": "export",
                        "inputs": {"file_id": {"pointer": "/output_file_id"}},
                    },
                },
                "failed": {"outcome": "failure"},
            },
            "transitions": [{"from": "in_progress", "to": ["completed", "failed"]}],
            "inputs": {
                "input_file_id": {"in": "body", "required": True},
                "window": {"in": "body"},
                "label": {"in": "body"},
            },
            "submit": {
                "request": {"method": "POST", "path": "/batches"},
                "job_id": {"pointer": "/id"},
            },
            "poll": {
                "request": {"path": "/batches/{job_id}"},
                "observe": [
                    {
                        "pointer": "/status",
                        "map": _status_map("in_progress", "completed", "failed"),
                    }
                ],
            },
            "schedule": {"interval": 0.01, "deadline": 30},
        },
        "export": {
            "states": {
                "queued": {"initial": True},
                "done": {"outcome": "success"},
            },
            "transitions": [{"from": "queued", "to": "done"}],
            "inputs": {"file_id": {"in": "body", "required": True}},
            "submit": {
                "request": {"method": "POST", "path": "/exports"},
                "job_id": {"pointer": "/id"},
            },
            "poll": {
                "request": {"path": "/exports/{job_id}"},
                "observe": [
                    {"pointer": "/status", "map": _status_map("queued", "done")}
                ],
            },
            "result": {"request": {"path": "/exports/{job_id}/content"}},
            "schedule": {"interval": 0.01, "deadline": 30},
        },
    },
}


#: A second spec (another service, the same server): what an upload may start.
REPORTS: dict[str, Any] = {
    "spec_version": "1",
    "service": {"name": "reports", "base_url": "https://reports.example.test"},
    "lifecycles": {
        "render": {
            "states": {"queued": {"initial": True}, "done": {"outcome": "success"}},
            "transitions": [{"from": "queued", "to": "done"}],
            "inputs": {"source": {"in": "body", "required": True}},
            "submit": {
                "request": {"method": "POST", "path": "/renders"},
                "job_id": {"pointer": "/id"},
            },
            "poll": {
                "request": {"path": "/renders/{job_id}"},
                "observe": [
                    {"pointer": "/status", "map": _status_map("queued", "done")}
                ],
            },
            "schedule": {"interval": 0.01, "deadline": 30},
        }
    },
}


def reports_document() -> dict[str, Any]:
    """Return a fresh copy of the reports spec."""
    return copy.deepcopy(REPORTS)


def to_reports(document: dict[str, Any]) -> dict[str, Any]:
    """Make ``document``'s upload start a render of the reports spec instead of a batch."""
    states = document["lifecycles"]["upload"]["states"]
    states["processed"]["then"] = {
        "spec": "reports",
        "lifecycle": "render",
        "inputs": {"source": {"pointer": "/id"}},
    }
    return document


def chain_document() -> dict[str, Any]:
    """Return a fresh copy of the files spec (to change in place)."""
    return copy.deepcopy(DOCUMENT)


_PREFIX = {
    "files": "file",
    "batches": "batch",
    "exports": "export",
    "renders": "render",
}


class ChainService:
    """The service's books: what was posted to each collection, and polls by id."""

    def __init__(self) -> None:
        """Start empty."""
        self.posted: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.bodies: dict[str, dict[str, Any]] = {}
        self.polls: Counter[str] = Counter()

    def app(self) -> Starlette:
        """Return the ASGI app that serves these books."""
        return Starlette(
            routes=[
                Route("/{kind}", self._create, methods=["POST"]),
                Route("/exports/{job_id}/content", self._content, methods=["GET"]),
                Route("/{kind}/{job_id}", self._poll, methods=["GET"]),
            ]
        )

    async def _create(self, request: Request) -> JSONResponse:
        kind = request.path_params["kind"]
        body = dict(request.query_params)
        if await request.body():
            body.update(await request.json())
        self.posted[kind].append(body)
        job_id = f"{_PREFIX[kind]}-{len(self.posted[kind])}"
        self.bodies[job_id] = body
        return JSONResponse({"id": job_id}, status_code=201)

    async def _poll(self, request: Request) -> JSONResponse:
        kind, job_id = request.path_params["kind"], request.path_params["job_id"]
        if job_id not in self.bodies:
            return JSONResponse({"error": "no such job"}, status_code=404)
        self.polls[job_id] += 1
        body, first = self.bodies[job_id], self.polls[job_id] == 1
        if kind == "files":
            status = "processing" if first else "processed"
            return JSONResponse({"id": job_id, "status": status})
        if kind == "batches":
            if first:
                return JSONResponse({"status": "in_progress"})
            if "fail" in str(body.get("label")):
                return JSONResponse({"status": "failed"})
            output = f"out-{body['input_file_id']}"
            return JSONResponse({"status": "completed", "output_file_id": output})
        return JSONResponse({"status": "done"})

    async def _content(self, request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        return JSONResponse({"content": f"rows of {self.bodies[job_id]['file_id']}"})
