"""Builders shared by the statemachines tests: a minimal valid spec and its file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The checkout's root: expected lines name bad specs relative to it.
REPO_ROOT = Path(__file__).resolve().parents[2]
BAD_SPECS = REPO_ROOT / "tests" / "data" / "bad_specs"


def minimal_spec() -> dict[str, Any]:
    """Return a fresh, valid spec document with one lifecycle, ``job``.

    ``Queued`` (initial) → ``Running`` → ``Done`` (success) or ``Failed``
    (failure), polled at ``/jobs/{job_id}``. Each call builds a new dict, so
    tests may mutate it freely.
    """
    return {
        "spec_version": "1.0",
        "service": {"name": "demo", "base_url": "https://api.example.com"},
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
                    "request": {"path": "/jobs/{job_id}"},
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
            }
        },
    }


def write_spec(
    tmp_path: Path, doc: Any, *, name: str = "spec.json", indent: int | None = 2
) -> Path:
    """Write ``doc`` as JSON into ``tmp_path`` and return the file's path."""
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=indent) + "\n", encoding="utf-8")
    return path


def job_lifecycle(doc: dict[str, Any]) -> dict[str, Any]:
    """Return the ``job`` lifecycle of a :func:`minimal_spec` document."""
    lifecycle: dict[str, Any] = doc["lifecycles"]["job"]
    return lifecycle
