"""What the job core's tests share: toy specs, bindings, replies and jobs as plain values.

Nothing here opens a socket, starts a loop or reads a clock: a test builds a
binding from a toy spec, a job state and a :class:`~engine._core.reply.Reply`,
and hands them to the core with an explicit ``now``.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Mapping
from functools import cache
from typing import Any

import attrs
import pytest

from engine._core.binding import Binding, bind
from engine._core.reply import Reply
from engine._core.state import JobState, Phase
from statemachines import Spec, load_document

BASE = "https://api.example.test"
#: The toy job's id, and the URL its polls go to.
JOB_ID = "j1"
POLL_URL = f"{BASE}/regions/eu/jobs/{JOB_ID}?v=1"

_STATUS_MAP = {
    "queued": "Queued",
    "running": "Running",
    "cancelling": "Cancelling",
    "done": "Done",
    "failed": "Failed",
    "cancelled": "Cancelled",
}

_TOY: dict[str, Any] = {
    "spec_version": "1.0",
    "service": {
        "name": "toy",
        "base_url": BASE,
        "auth": {"header": "X-Key", "env": "TOY_KEY"},
        "headers": {"Accept": "application/json"},
        "redact": {"pointers": ["/secret"], "query_params": ["sig"]},
    },
    "lifecycles": {
        "job": {
            "states": {
                "Queued": {"initial": True},
                "Running": {},
                "Cancelling": {},
                "Done": {"outcome": "success"},
                "Failed": {"outcome": "failure"},
                "Cancelled": {"outcome": "cancelled"},
            },
            "transitions": [
                {"from": "Queued", "to": "Running"},
                {"from": "Running", "to": ["Done", "Failed"]},
                {"from": ["Queued", "Running"], "to": "Cancelling"},
                {"from": "Cancelling", "to": "Cancelled"},
            ],
            "inputs": {
                "region": {"in": "path", "required": True},
                "text": {"in": "body"},
                "api_version": {"in": "none", "default": "1"},
                "tag": {"in": "query"},
            },
            "submit": {
                "request": {
                    "method": "POST",
                    "path": "/regions/{region}/jobs",
                    "expect_status": [201],
                },
                "job_id": {"pointer": "/id"},
                "retry_status": [429],
            },
            "poll": {
                "request": {
                    "path": "/regions/{region}/jobs/{job_id}",
                    "query": {"v": "{api_version}"},
                },
                "observe": [{"pointer": "/status", "map": _STATUS_MAP}],
            },
            "result": {
                "request": {
                    "url": {"pointer": "/result_url"},
                    "path": "/regions/{region}/jobs/{job_id}/result",
                }
            },
            "cancel": {
                "request": {
                    "method": "DELETE",
                    "path": "/regions/{region}/jobs/{job_id}",
                },
                "from": ["Queued", "Running"],
                "leads_to": ["Cancelling", "Cancelled"],
                "refused_status": [409],
            },
            "schedule": {"interval": 2, "deadline": 100},
            "errors": {
                "code_pointer": "/error/code",
                "message_pointer": "/error/message",
                "retry_budget": 2,
                "retry_backoff": {"initial": 1, "factor": 2, "max": 10},
            },
        }
    },
}

_ITEM_MAP = {"waiting": "Waiting", "working": "Working", "ok": "Ok", "bad": "Bad"}

_BATCH: dict[str, Any] = {
    "spec_version": "1.0",
    "service": {"name": "bulk", "base_url": BASE},
    "lifecycles": {
        "batch": {
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
                "request": {"path": "/batches/{job_id}"},
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
            "items": {
                "lifecycle": "doc",
                "request": {"path": "/batches/{job_id}/docs"},
                "items_pointer": "/value",
                "id_pointer": "/id",
                "paging": {"kind": "next_link", "next_pointer": ["/@next", "/next"]},
            },
            "schedule": {"interval": 2, "deadline": 100},
            "errors": {"retry_budget": 2},
        },
        "doc": {
            "item_only": True,
            "states": {
                "Waiting": {"initial": True},
                "Working": {},
                "Ok": {"outcome": "success"},
                "Bad": {"outcome": "failure"},
            },
            "transitions": [
                {"from": "Waiting", "to": "Working"},
                {"from": "Working", "to": ["Ok", "Bad"]},
            ],
            "poll": {
                "request": {"path": "/batches/{job_id}/docs/{item_id}"},
                "observe": [{"pointer": "/status", "map": _ITEM_MAP}],
            },
        },
    },
}


def toy_document() -> dict[str, Any]:
    """Return a fresh toy spec document (tests may change it freely).

    Service ``toy``, lifecycle ``job``: Queued → Running → Done | Failed, and
    Queued | Running → Cancelling → Cancelled; submitted to
    ``POST /regions/{region}/jobs`` (id at ``/id``), polled at
    ``/regions/{region}/jobs/{job_id}?v={api_version}``, every 2 s for 100 s,
    with a result and a cancel, and a retry budget of 2.
    """
    return copy.deepcopy(_TOY)


def batch_document() -> dict[str, Any]:
    """Return a fresh spec whose ``batch`` lifecycle has items of lifecycle ``doc``.

    Items are listed at ``/batches/{job_id}/docs`` (entries at ``/value``, ids at
    ``/id``, next links at ``/@next`` or ``/next``) after every poll.
    """
    return copy.deepcopy(_BATCH)


def lifecycle_of(document: dict[str, Any], name: str = "job") -> dict[str, Any]:
    """Return lifecycle ``name`` of ``document`` (to change it in place)."""
    found: dict[str, Any] = document["lifecycles"][name]
    return found


@cache
def _load(text: str) -> Spec:
    return load_document(json.loads(text), source="<toy>")


def load(document: Mapping[str, Any]) -> Spec:
    """Return ``document`` loaded and checked (cached by content: specs are immutable).

    Keys keep their order: it is the file order of states and inputs.
    """
    return _load(json.dumps(document))


def binding(
    document: Mapping[str, Any] | None = None,
    lifecycle: str = "job",
    *,
    scale: float = 1.0,
    auth: tuple[str, str] | None = None,
    secrets: set[str] | None = None,
) -> Binding:
    """Return ``lifecycle`` of ``document`` (default the toy spec) bound to the toy base URL."""
    return bind(
        load(document if document is not None else _TOY),
        lifecycle,
        base_url=BASE,
        scale=scale,
        auth=auth,
        secrets=secrets if secrets is not None else set(),
    )


def reply(
    status: int = 200,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    url: str = POLL_URL,
) -> Reply:
    """Return a reply as the driver hands it to the core.

    ``body`` is JSON-encoded unless it is ``bytes`` (sent as is) or ``None``
    (an empty body); header names are lower-cased, as the driver keys them.
    """
    if isinstance(body, bytes):
        raw = body
    elif body is None:
        raw = b""
    else:
        raw = json.dumps(body).encode()
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    return Reply(status, lowered, raw, url)


def job(b: Binding, **changes: Any) -> JobState:
    """Return a live job of ``b`` polled at :data:`POLL_URL`, with ``changes`` applied.

    By default: id ``j1`` in the initial state, phase poll, due at 0, started at
    0 with the spec's deadline, inputs ``region=eu`` and ``api_version=1``.
    """
    deadline = b.lifecycle.schedule.deadline
    state = JobState(
        key="k1",
        service=b.spec.name,
        lifecycle=b.lifecycle.name,
        spec_hash=b.spec.content_hash,
        spec_source=b.spec.source,
        job_id=JOB_ID,
        state=b.lifecycle.initial,
        phase=Phase.POLL,
        deadline=None if deadline is None else deadline * b.scale,
        inputs={"region": "eu", "api_version": "1"},
        base_url=b.base_url,
    )
    return attrs.evolve(state, **changes)


@pytest.fixture
def toy() -> Binding:
    """The toy spec's ``job`` lifecycle, bound."""
    return binding()


@pytest.fixture
def batch() -> Binding:
    """The batch spec's ``batch`` lifecycle (items: ``doc``), bound."""
    return binding(batch_document(), "batch")


@pytest.fixture
def rng() -> random.Random:
    """A seeded random source: jitter is reproducible."""
    return random.Random(1234)
