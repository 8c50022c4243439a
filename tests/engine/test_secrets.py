"""Secrets never leak: not through hooks, errors, events, log lines, the audit log or the store."""

from __future__ import annotations

import copy
import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine import AsyncEngine, Event, RemoteError

KEY = "secret-key-123"
SIG = "sv=2024&sig=S3cr3tSignature%3D"
DOC: dict[str, Any] = {
    "spec_version": "1",
    "service": {
        "name": "toy",
        "base_url": "https://api.example.test",
        "auth": {"header": "X-Key", "env": "TOY_KEY"},
        "redact": {"query_params": ["sig"]},
    },
    "lifecycles": {
        "job": {
            "states": {
                "Queued": {"initial": True},
                "Running": {},
                "Done": {"outcome": "success"},
            },
            "transitions": [
                {"from": "Queued", "to": "Running"},
                {"from": "Running", "to": "Done"},
            ],
            "inputs": {
                "source": {"in": "body", "description": "a SAS URL"},
                "api_version": {"in": "none", "default": "1"},
            },
            "submit": {
                "request": {"method": "POST", "path": "/jobs"},
                "job_id": {"pointer": "/id"},
            },
            "poll": {
                "request": {"path": "/jobs/{job_id}", "query": {"v": "{api_version}"}},
                "observe": [
                    {
                        "pointer": "/status",
                        "map": {
                            "queued": "Queued",
                            "running": "Running",
                            "done": "Done",
                        },
                    }
                ],
            },
            "schedule": {"interval": 0.01},
            "errors": {"message_pointer": "/detail", "code_pointer": "/code"},
        }
    },
}


def _engine(handler: Any, **options: Any) -> AsyncEngine:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    spec_doc = copy.deepcopy(DOC)
    from statemachines import load_document

    return AsyncEngine(
        [load_document(spec_doc, source="toy")],
        client=client,
        env={"TOY_KEY": KEY},
        **options,
    )


def _polls(*statuses: str) -> Any:
    count = {"n": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"id": "a"})
        count["n"] += 1
        status = statuses[min(count["n"], len(statuses)) - 1]
        return httpx.Response(200, json={"status": status})

    return handle


@pytest.mark.anyio
async def test_a_hook_failure_carrying_the_key_is_redacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook whose exception names the key: the audit log and the log lines show it blanked."""
    audit = tmp_path / "audit.jsonl"
    engine = _engine(_polls("running", "done"), audit=audit)

    def leaky(event: Event) -> None:
        msg = f"could not forward {event.job_id} with key {KEY}"
        raise RuntimeError(msg)

    engine.on("transition", leaky)
    caplog.set_level(logging.DEBUG, logger="statepoll")
    async with engine:
        result = await engine.wait(await engine.track("toy", "job", "a"), timeout=5)

    text = audit.read_text()
    failures = [
        r for r in map(json.loads, text.splitlines()) if r["kind"] == "hook_failed"
    ]
    assert result.state == "Done"
    assert failures
    assert "[REDACTED]" in failures[0]["detail"]["error"]
    assert KEY not in text
    assert KEY not in caplog.text


@pytest.mark.anyio
async def test_a_key_echoed_by_the_service_reaches_no_error_event_or_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 body echoing the key and a SAS signature: blanked in error, event, log, audit."""
    detail = f"key {KEY} cannot read https://store.example/c?{SIG}"

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"code": f"BadKey:{KEY}", "detail": detail})

    audit = tmp_path / "audit.jsonl"
    engine = _engine(handle, audit=audit)
    events: list[Event] = []
    engine.on("errored", events.append)
    caplog.set_level(logging.DEBUG, logger="statepoll")
    async with engine:
        job = await engine.track("toy", "job", "a")
        with pytest.raises(RemoteError) as info:
            await engine.wait(job, timeout=5)

    error = info.value
    seen = [str(error), repr(error), error.remote_message or "", error.code or ""]
    seen += [repr(e) for e in events]
    seen += [caplog.text, audit.read_text()]
    assert error.status == 401
    assert not error.retryable
    assert len(events) == 1
    for text in seen:
        assert KEY not in text
        assert "S3cr3tSignature" not in text


@pytest.mark.anyio
async def test_the_store_never_holds_the_submit_body_or_the_key(tmp_path: Path) -> None:
    """A live job's store snapshot keeps only what later requests need: no SAS URL, no key."""
    store = tmp_path / "jobs.db"
    engine = _engine(_polls("running"), store=store)
    async with engine:
        await engine.submit("toy", "job", source=f"https://store.example/c?{SIG}")
        rows = sqlite3.connect(store).execute("SELECT snapshot FROM jobs").fetchall()

    snapshot = json.loads(rows[0][0])
    assert snapshot["inputs"] == {"api_version": "1"}
    assert "S3cr3tSignature" not in rows[0][0]
    assert KEY not in rows[0][0]
