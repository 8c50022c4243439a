"""Hostile replies through the whole engine, over real sockets: each is a classified error.

A raw asyncio server on 127.0.0.1 (no framework between the bytes and the
engine) answers by path: ``/stall/…`` never, ``/bomb/…`` a JSON nesting bomb
(then, for a poll, a proper answer), ``/link/…`` a link to a port that
cannot exist, ``/ok/…`` properly. It records each request's raw target, so a
test sees exactly what reached the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine import AsyncEngine, RemoteError, Retrying
from statemachines import Spec, load_document

BOMB = b"[" * 100_000
DOC: dict[str, Any] = {
    "spec_version": "1",
    "service": {"name": "hostile", "base_url": "http://127.0.0.1:9"},
    "lifecycles": {
        "job": {
            "states": {"Running": {"initial": True}, "Done": {"outcome": "success"}},
            "transitions": [{"from": "Running", "to": "Done"}],
            "inputs": {"kind": {"in": "path", "required": True}},
            "submit": {
                "request": {"method": "POST", "path": "/{kind}/new"},
                "job_id": {"pointer": "/job"},
            },
            "poll": {
                "request": {
                    "path": "/{kind}/{job_id}",
                    "url": {"pointer": "/link", "response": "submit"},
                },
                "observe": [
                    {
                        "pointer": "/status",
                        "map": {"running": "Running", "done": "Done"},
                    }
                ],
            },
            "schedule": {"interval": 0.05, "deadline": 20},
            "errors": {
                "timeout": 1.0,
                "retry_budget": 3,
                "retry_backoff": {"initial": 0.05},
            },
        }
    },
}


def _spec() -> Spec:
    return load_document(copy.deepcopy(DOC), source="hostile-replies")


class _Server:
    """Answers by the first path segment; remembers every raw request target."""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        #: Notified on every request received.
        self.received = asyncio.Condition()

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, target = head.split(b" ", 2)[:2]
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                path = target.decode()
                self.targets.append(path)
                async with self.received:
                    self.received.notify_all()
                body = self.answer(method, path)
                if body is None:
                    await asyncio.sleep(3600)
                    return
                status, headers = b"200 OK", b""
                kind = path.strip("/").split("/", 1)[0]
                if kind == "busy" and self.targets.count(path) == 1:
                    status = b"503 Service Unavailable"
                elif kind == "huge" and method == b"GET":
                    headers = b"X-Huge: " + b"a" * 10_000_000 + b"\r\n"
                writer.write(
                    b"HTTP/1.1 "
                    + status
                    + b"\r\nContent-Type: application/json\r\n"
                    + headers
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client gave up, or the test is over
        finally:
            self.tasks.discard(task)
            writer.transport.abort()

    def answer(self, method: bytes, path: str) -> bytes | None:
        kind, _, rest = path.strip("/").partition("/")
        if kind == "stall":
            return None
        if method == b"POST":
            if kind == "bomb":
                return BOMB
            if kind == "link":
                return b'{"job": "j1", "link": "http://127.0.0.1:99999/x"}'
            return b'{"job": "j1"}'
        if kind == "bomb" and self.targets.count(path) == 1:
            return BOMB  # the first poll only: then a proper answer
        return f'{{"status": "done", "job": "{rest}"}}'.encode()


@contextlib.asynccontextmanager
async def _engine() -> AsyncIterator[tuple[_Server, AsyncEngine]]:
    server = _Server()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        async with AsyncEngine(
            base_urls={"hostile": f"http://127.0.0.1:{port}"}
        ) as engine:
            yield server, engine
    finally:
        listener.close()
        for task in list(server.tasks):
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        await listener.wait_closed()


@pytest.mark.anyio
async def test_a_stalled_submit_is_a_transport_error_within_its_timeout() -> None:
    """A submit the server never answers raises a classified RemoteError by the request timeout."""
    async with _engine() as (_, engine):
        started = time.monotonic()
        with pytest.raises(RemoteError) as info:
            async with asyncio.timeout(10):
                await engine.submit(_spec(), "job", kind="stall")
        took = time.monotonic() - started

    assert info.value.kind in ("transport", "submission")
    assert took < 5.0  # errors.timeout is 1 s; a blind re-send would take longer


@pytest.mark.anyio
async def test_a_nesting_bomb_answering_a_submit_is_a_protocol_error() -> None:
    """submit() against 100,000 '[': a RemoteError of kind protocol, never a RecursionError."""
    async with _engine() as (_, engine):
        with pytest.raises(RemoteError) as info:
            async with asyncio.timeout(10):
                await engine.submit(_spec(), "job", kind="bomb")

    assert info.value.kind == "protocol"
    assert "malformed" in str(info.value).lower() or "json" in str(info.value).lower()


@pytest.mark.anyio
async def test_a_nesting_bomb_answering_a_poll_is_retried_like_a_truncated_body() -> (
    None
):
    """A polled job that receives a bomb once retries, then ends on the proper answer."""
    async with _engine() as (server, engine):
        job = await engine.track(_spec(), "job", "j7", kind="bomb")
        async with asyncio.timeout(10):
            result = await engine.wait(job)

    assert result.state == "Done"
    assert server.targets.count("/bomb/j7") == 2


@pytest.mark.anyio
async def test_a_link_to_an_impossible_port_ends_the_job_as_a_protocol_error() -> None:
    """A submit answer linking to port 99999: the job errs (protocol), not an internal error."""
    async with _engine() as (server, engine):
        job = await engine.submit(_spec(), "job", kind="link")
        with pytest.raises(RemoteError) as info:
            async with asyncio.timeout(10):
                await engine.wait(job)

    assert info.value.kind == "protocol"
    assert "internal" not in str(info.value)
    assert server.targets == ["/link/new"]  # nothing was sent anywhere else


@pytest.mark.anyio
async def test_a_dot_dot_job_id_reaches_the_server_inside_its_segment() -> None:
    """track(…, "..") over the default transport polls /ok/%2E%2E, never the parent path."""
    async with _engine() as (server, engine):
        job = await engine.track(_spec(), "job", "..", kind="ok")
        async with asyncio.timeout(10):
            await engine.wait(job)

    assert server.targets == ["/ok/%2E%2E"]


@pytest.mark.anyio
async def test_forgetting_a_stalled_job_frees_its_slot_at_once() -> None:
    """With one request in flight allowed, forget() on a stalled job lets the next job go."""
    doc = copy.deepcopy(DOC)
    doc["service"]["max_in_flight"] = 1
    doc["lifecycles"]["job"]["errors"]["timeout"] = 60.0  # the stall outlasts the test
    spec = load_document(doc, source="hostile-replies")
    async with _engine() as (server, engine):
        stalled = await engine.track(spec, "job", "s1", kind="stall")
        async with asyncio.timeout(10), server.received:
            await server.received.wait_for(lambda: "/stall/s1" in server.targets)
        healthy = await engine.track(spec, "job", "h1", kind="ok")
        await asyncio.sleep(0.2)
        assert "/ok/h1" not in server.targets  # the stalled job holds the only slot

        started = time.monotonic()
        await engine.forget(stalled)
        async with asyncio.timeout(10):
            result = await engine.wait(healthy)
        took = time.monotonic() - started

    assert result.state == "Done"
    assert took < 2.0  # not the stalled request's 60 s timeout


@pytest.mark.anyio
async def test_a_retry_is_an_event_hooks_receive() -> None:
    """A poll answered 503 then 200: a ``retrying`` event says why and when, then the job ends."""
    seen: list[Retrying] = []
    async with _engine() as (_, engine):
        engine.on("retrying", seen.append)
        job = await engine.track(_spec(), "job", "b1", kind="busy")
        async with asyncio.timeout(10):
            result = await engine.wait(job)

    assert result.state == "Done"
    [event] = seen
    assert (event.job_id, event.state) == ("b1", "Running")
    assert "503" in event.error
    assert event.failures == 1
    assert event.delay > 0


@pytest.mark.anyio
async def test_a_10_mb_header_ends_the_job_with_a_classified_error() -> None:
    """A poll answered with a 10 MB header: a RemoteError through wait(), never an internal one."""
    async with _engine() as (server, engine):
        job = await engine.track(_spec(), "job", "h1", kind="huge")
        with pytest.raises(RemoteError) as info:
            async with asyncio.timeout(15):
                await engine.wait(job)

    assert "internal" not in str(info.value)
    assert info.value.kind in ("transport", "protocol")
    assert server.targets.count("/huge/h1") >= 1
