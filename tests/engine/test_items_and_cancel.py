"""Items follow their own lifecycle's policies; a fatal page ends the job; cancels end on time."""

from __future__ import annotations

import copy
import logging
from typing import Any

import httpx
import pytest

from engine import AsyncEngine, Event, RemoteError
from statemachines import Spec, load_document

STATUS = {"running": "Running", "done": "Done", "cancelled": "Cancelled"}
DOC: dict[str, Any] = {
    "spec_version": "1",
    "service": {"name": "toy", "base_url": "https://api.example.test"},
    "lifecycles": {
        "batch": {
            "states": {
                "Running": {"initial": True},
                "Done": {"outcome": "success"},
                "Cancelled": {"outcome": "cancelled"},
            },
            "transitions": [
                {"from": "Running", "to": ["Done", "Cancelled"]},
            ],
            "poll": {
                "request": {"path": "/batches/{job_id}"},
                "observe": [{"pointer": "/status", "map": STATUS}],
            },
            "schedule": {"interval": 0.01},
            "errors": {"retry_budget": 3, "retry_backoff": {"initial": 0.01}},
            "cancel": {
                "request": {"method": "DELETE", "path": "/batches/{job_id}"},
                "from": ["Running"],
                "leads_to": ["Cancelled"],
                "observe": False,
            },
            "items": {
                "lifecycle": "doc",
                "request": {"path": "/batches/{job_id}/docs"},
                "items_pointer": "/value",
                "id_pointer": "/id",
                "paging": {"kind": "next_link", "next_pointer": "/next"},
            },
        },
        "doc": {
            "item_only": True,
            "states": {
                "New": {"initial": True},
                "Working": {},
                "Ok": {"outcome": "success"},
                "Bad": {"outcome": "failure"},
            },
            "transitions": [
                {"from": "New", "to": "Working"},
                {"from": "Working", "to": ["Ok", "Bad"]},
            ],
            "poll": {
                "request": {"path": "/batches/{job_id}/docs/{item_id}"},
                "observe": [
                    {
                        "pointer": "/status",
                        "map": {
                            "new": "New",
                            "working": "Working",
                            "ok": "Ok",
                            "bad": "Bad",
                        },
                    }
                ],
            },
        },
    },
}


def _spec(**doc_policy: str) -> Spec:
    doc = copy.deepcopy(DOC)
    if doc_policy:
        doc["lifecycles"]["doc"]["policy"] = doc_policy
    return load_document(doc, source="toy")


class _Service:
    """Batch polls answer ``batch``; listings answer ``pages`` in turn (the last repeats)."""

    def __init__(self, batch: list[str], pages: list[Any]) -> None:
        self.batch = batch
        self.pages = pages
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.seen.append(f"{request.method} {path}")
        if request.method == "DELETE":
            return httpx.Response(204)
        if path.endswith("/docs"):
            listings = sum(1 for s in self.seen if s.endswith("/docs"))
            page = self.pages[min(listings, len(self.pages)) - 1]
            if isinstance(page, int):
                return httpx.Response(page, json={"error": "nope"})
            return httpx.Response(200, json={"value": page})
        polls = sum(1 for s in self.seen if s == f"GET {path}")
        status = self.batch[min(polls, len(self.batch)) - 1]
        return httpx.Response(200, json={"status": status})


def _engine(service: _Service) -> AsyncEngine:
    client = httpx.AsyncClient(transport=httpx.MockTransport(service))
    return AsyncEngine(client=client)


@pytest.mark.anyio
async def test_a_fatal_status_on_an_items_page_ends_the_job_at_once() -> None:
    """A 404 on the documents list is fatal: the job ends errored after one listing."""
    service = _Service(["running"], [404])
    async with _engine(service) as engine:
        job = await engine.track(_spec(), "batch", "b1")
        with pytest.raises(RemoteError) as info:
            await engine.wait(job, timeout=5)

    listings = [s for s in service.seen if s.endswith("/docs")]
    assert (info.value.kind, info.value.status, info.value.retryable) == (
        "status",
        404,
        False,
    )
    assert len(listings) == 1


@pytest.mark.anyio
async def test_an_illegal_item_move_under_a_fail_policy_ends_the_job_and_reaches_hooks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Item Ok -> New is illegal: with the item lifecycle's 'fail' policy the job errors."""
    caplog.set_level(logging.WARNING, logger="statepoll")
    service = _Service(
        ["running"], [[{"id": "d1", "status": "ok"}], [{"id": "d1", "status": "new"}]]
    )
    events: list[Event] = []
    async with _engine(service) as engine:
        engine.on("illegal_transition", events.append)
        job = await engine.track(_spec(illegal_transition="fail"), "batch", "b1")
        with pytest.raises(RemoteError) as info:
            await engine.wait(job, timeout=5)

    assert info.value.kind == "illegal_transition"
    assert [(e.item_id, e.dest) for e in events] == [("d1", "New")]  # type: ignore[attr-defined]
    assert any(
        " item d1 illegal transition 'Ok' -> " in r.getMessage() for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


@pytest.mark.anyio
async def test_an_unknown_item_state_reaches_hooks_and_the_job_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An item status no rule maps is reported to hooks and the log, and the batch completes."""
    caplog.set_level(logging.WARNING, logger="statepoll")
    service = _Service(["running", "done"], [[{"id": "d1", "status": "exploding"}]])
    events: list[Event] = []
    async with _engine(service) as engine:
        engine.on("unknown_state", events.append)
        result = await engine.wait(
            await engine.track(_spec(), "batch", "b1"), timeout=5
        )

    assert result.state == "Done"
    assert events
    assert {(e.item_id, e.observed) for e in events} == {("d1", "exploding")}  # type: ignore[attr-defined]
    assert any(
        " item d1 unknown state" in r.getMessage() and "exploding" in r.getMessage()
        for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


@pytest.mark.anyio
async def test_items_follow_their_lifecycles_skipped_states_policy() -> None:
    """With skipped_states 'illegal', New -> Ok (skipping Working) is refused, not inferred."""
    service = _Service(["running", "done"], [[{"id": "d1", "status": "ok"}]])
    moves: list[Event] = []
    async with _engine(service) as engine:
        engine.on("item_transition", moves.append)
        engine.on("illegal_transition", moves.append)
        spec = _spec(skipped_states="illegal")
        result = await engine.wait(await engine.track(spec, "batch", "b1"), timeout=5)

    assert result.items == {"d1": "New"}
    assert {e.name for e in moves} == {"illegal_transition"}


@pytest.mark.anyio
async def test_a_cancel_leading_to_a_terminal_state_completes_without_another_poll() -> (
    None
):
    """DELETE accepted, cancel leads to Cancelled (terminal): the job ends, no poll follows."""
    service = _Service(["running"], [[]])
    async with _engine(service) as engine:
        job = await engine.track(_spec(), "batch", "b1")
        accepted = await engine.cancel(job)
        result = await engine.wait(job, timeout=5)

    after = service.seen[service.seen.index("DELETE /batches/b1") + 1 :]
    assert accepted
    assert result.state == "Cancelled"
    assert [s for s in after if s == "GET /batches/b1"] == []
