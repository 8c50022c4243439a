"""A toy job service for loopback tests: Starlette, served on 127.0.0.1:0.

``POST /jobs`` with ``{"polls": N}`` creates a job that answers ``running``
to its first N-1 polls and ``done`` to the N-th; every poll also says how far
along the job is (``percent`` 0..100, and ``done``/``total`` counts). The
service counts what it was sent, so that a test can check how many requests
a job cost.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

#: A spec for the toy service (tests copy and change it).
DOCUMENT: dict[str, Any] = {
    "spec_version": "1",
    "service": {"name": "toy", "base_url": "https://toy.example.test"},
    "lifecycles": {
        "job": {
            "states": {
                "Running": {"initial": True},
                "Done": {"outcome": "success"},
            },
            "transitions": [{"from": "Running", "to": "Done"}],
            "inputs": {"polls": {"in": "body", "type": "integer", "default": 2}},
            "submit": {
                "request": {"method": "POST", "path": "/jobs"},
                "job_id": {"pointer": "/id"},
            },
            "poll": {
                "request": {"path": "/jobs/{job_id}"},
                "observe": [
                    {
                        "pointer": "/status",
                        "map": {"running": "Running", "done": "Done"},
                    }
                ],
            },
            "schedule": {"interval": 0.01, "max_attempts": 5, "deadline": 30},
        }
    },
}


def toy_document() -> dict[str, Any]:
    """Return a fresh copy of the toy spec (to change in place)."""
    return copy.deepcopy(DOCUMENT)


def write_spec(folder: Path, document: dict[str, Any] | None = None) -> str:
    """Write ``document`` (default the toy spec) to ``folder/toy.json``; return its path."""
    path = folder / "toy.json"
    path.write_text(json.dumps(document or DOCUMENT), encoding="utf-8")
    return str(path)


class ToyService:
    """The service's books: jobs created, and the polls each one was sent."""

    def __init__(self) -> None:
        """Start with no jobs."""
        self.needed: dict[str, int] = {}
        self.polls: Counter[str] = Counter()
        #: How many jobs were submitted (their ids are job-1, job-2, …).
        self.created = 0

    def app(self) -> Starlette:
        """Return the ASGI app that serves these books."""
        return Starlette(
            routes=[
                Route("/jobs", self._submit, methods=["POST"]),
                Route("/jobs/{job_id}", self._poll, methods=["GET"]),
            ]
        )

    def add(self, job_id: str, polls: int) -> None:
        """Make a job exist as if submitted elsewhere (for track)."""
        self.needed[job_id] = polls

    async def _submit(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.created += 1
        job_id = f"job-{self.created}"
        self.needed[job_id] = int(body.get("polls", 2))
        return JSONResponse({"id": job_id}, status_code=201)

    async def _poll(self, request: Request) -> JSONResponse:
        job_id = request.path_params["job_id"]
        if job_id not in self.needed:
            return JSONResponse({"error": "no such job"}, status_code=404)
        self.polls[job_id] += 1
        seen, total = self.polls[job_id], self.needed[job_id]
        done = min(seen, total)
        return JSONResponse(
            {
                "status": "done" if seen >= total else "running",
                "percent": round(100 * done / total, 1),
                "done": done,
                "total": total,
            }
        )
