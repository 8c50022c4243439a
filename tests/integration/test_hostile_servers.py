"""Hostile servers over real sockets: stalls and drips cannot hold a job or its service.

A raw asyncio server on 127.0.0.1 answers ``/stall/…`` never, ``/drip/…``
with headers and then one body byte a second, and ``/ok/…`` properly. The
engine must bound every request by the whole exchange and by the job's own
deadline, free the in-flight slots on every exit path, and keep polling the
healthy jobs of the same service.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from engine import AsyncEngine, JobTimedOut, RemoteError
from statemachines import Spec, load_document

DOC: dict[str, Any] = {
    "spec_version": "1",
    "service": {
        "name": "hostile",
        "base_url": "http://127.0.0.1:9",
        "max_in_flight": 8,
    },
    "lifecycles": {
        "job": {
            "states": {
                "Running": {"initial": True},
                "Done": {"outcome": "success"},
            },
            "transitions": [{"from": "Running", "to": "Done"}],
            "inputs": {"kind": {"in": "path", "required": True}},
            "poll": {
                "request": {"path": "/{kind}/{job_id}"},
                "observe": [
                    {
                        "pointer": "/status",
                        "map": {"running": "Running", "done": "Done"},
                    }
                ],
            },
            # Scaled by the test's time_scale (0.2): a 1.5 s deadline, 0.01 s interval.
            "schedule": {"interval": 0.05, "deadline": 7.5},
            "errors": {"retry_budget": 100, "retry_backoff": {"initial": 0.05}},
        },
    },
}
# The same lifecycle with a deadline long enough to outlive the stalled jobs.
DOC["lifecycles"]["long"] = copy.deepcopy(DOC["lifecycles"]["job"])
DOC["lifecycles"]["long"]["schedule"]["deadline"] = 150
SCALE = 0.2


def _spec() -> Spec:
    return load_document(copy.deepcopy(DOC), source="hostile")


class _Server:
    """Answers by path: stall, drip or ok (done after three polls)."""

    def __init__(self) -> None:
        self.polls: dict[str, int] = {}
        self.tasks: set[asyncio.Task[Any]] = set()

    async def handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                kind, _, job = path.strip("/").partition("/")
                self.polls[path] = self.polls.get(path, 0) + 1
                if kind == "stall":
                    await asyncio.sleep(3600)
                if kind == "drip":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                    for _ in range(1000):
                        writer.write(b" ")
                        await writer.drain()
                        await asyncio.sleep(1)
                status = "done" if self.polls[path] >= 3 else "running"
                body = f'{{"status":"{status}","job":"{job}"}}'.encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client gave up, or the test is over
        finally:
            self.tasks.discard(task)
            writer.transport.abort()


@contextlib.asynccontextmanager
async def _serving() -> AsyncIterator[tuple[_Server, str]]:
    server = _Server()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        listener.close()
        for task in list(server.tasks):
            task.cancel()
        await asyncio.gather(*server.tasks, return_exceptions=True)
        await listener.wait_closed()


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["default", "httpx"])
async def test_stalled_jobs_end_by_their_deadline_and_free_the_service(
    transport: str,
) -> None:
    """Stalled jobs filling the service's slots end by their deadline plus a grace.

    8 jobs whose server stalls or drips hold the service's 8 slots; each
    ends timed out within its deadline plus the grace, freeing its slot,
    and the healthy jobs of the same service are then polled to their end.
    """
    async with contextlib.AsyncExitStack() as stack:
        _, url = await stack.enter_async_context(_serving())
        client = None
        if transport == "httpx":
            client = await stack.enter_async_context(httpx.AsyncClient())
        engine = AsyncEngine(
            base_urls={"hostile": url}, time_scale=SCALE, client=client
        )
        await stack.enter_async_context(engine)
        spec = _spec()
        started = time.monotonic()
        stalled = [
            await engine.track(spec, "job", f"s{i}", kind="stall" if i % 2 else "drip")
            for i in range(8)
        ]
        await asyncio.sleep(0.2)  # the stalled requests take every slot first
        healthy = [
            await engine.track(spec, "long", f"h{i}", kind="ok") for i in range(3)
        ]

        async with asyncio.timeout(15):
            done = [await engine.wait(job) for job in healthy]
            ends = []
            for job in stalled:
                with pytest.raises((JobTimedOut, RemoteError)) as info:
                    await engine.wait(job)
                ends.append((type(info.value), time.monotonic() - started))

    assert {r.state for r in done} == {"Done"}
    assert {kind for kind, _ in ends} == {JobTimedOut}
    # Deadline 1.5 s plus a grace of 1 s (5 s scaled): well before 5 s.
    assert max(at for _, at in ends) < 5.0
