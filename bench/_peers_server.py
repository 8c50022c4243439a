"""The remote API of ``peers.py``: Azure Document Translation's batch status, cheaply.

``bench/_server.py`` extended with what the peers workload needs, and no more:

- ``GET /translator/document/batches/{id}?api-version=2024-05-01`` with the
  bench key in ``Ocp-Apim-Subscription-Key`` answers the batch's status body
  (``_peers_workload.status_body``), ``Running`` until the batch's terminal
  time, ``Succeeded`` from then on, with the headers Azure sends
  (``apim-request-id``, ``x-requestid``, ``ETag``, and ``Retry-After: 1``
  while running). Without the key: 401; without the api-version: 400; an
  unknown id: 404, each in Azure's error shape;
- ``POST /translator/document/batches?api-version=…`` answers ``202`` with an
  ``Operation-Location`` (the azure-core contender's one real submit, from
  which it takes its continuation token);
- ``GET /__start?t0=…&jobs=…&stagger=…&lead=…&spread=…&grace=…`` starts a run:
  it sets every batch's terminal time and zeroes the counters;
- ``GET /__stats`` answers the run's counters as JSON: status polls answered,
  error answers, other requests, connections opened, and the server's own CPU
  seconds and wall seconds since ``/__start`` (so each run can show the server
  was not the bottleneck).

Every response is built when the run starts; a request costs a prefix test,
two substring tests, one list lookup and one comparison of the time. Raw
``asyncio.Protocol``, keep-alive, pipelined requests answered in order; no
request bodies (a body would be read as the next request).

    python bench/_peers_server.py [--cpu 1] [--lifetime 3600]

prints its port (127.0.0.1, chosen by the OS) and serves until its standard
input closes or ``--lifetime`` seconds pass.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import _peers_workload as work
import _server

_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024
_STATUS = b"GET " + work.PATH_PREFIX.encode()
_SUBMIT = b"POST " + work.PATH_PREFIX.rstrip("/").encode() + b"?"
_ID_AT = len(_STATUS)
_API = f"api-version={work.API_VERSION}".encode()
_KEY = work.KEY.encode()


def _response(status: str, headers: dict[str, str], body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def _error(status: str, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return _response(status, {"Content-Type": "application/json; charset=utf-8"}, body)


_UNAUTHORIZED = _error(
    "401 Unauthorized",
    "401",
    "Access denied due to invalid subscription key or wrong API endpoint.",
)
_NO_VERSION = _error(
    "400 Bad Request", "InvalidRequest", "The api-version query parameter is missing."
)
_NOT_FOUND = _error("404 Not Found", "NotFound", "The batch does not exist.")


def _status_response(i: int, status: str) -> bytes:
    body = work.status_body(i, status)
    request_id = f"{i:08x}-0000-4000-8000-{i:012x}"
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "ETag": f'"{hash((i, status)) & 0xFFFFFFFF:08x}"',
        "apim-request-id": request_id,
        "x-requestid": request_id,
        "X-Content-Type-Options": "nosniff",
    }
    if status not in work.TERMINAL:
        headers["Retry-After"] = "1"
    return _response("200 OK", headers, body)


class _Run:
    """One run's schedule and counters (replaced by each ``/__start``)."""

    def __init__(
        self, jobs: int = 0, t0: float = 0.0, timeline: work.Timeline | None = None
    ) -> None:
        timeline = timeline or work.Timeline(0, 0, 0, 0)
        self.jobs = jobs
        self.terminal_at = [t0 + timeline.terminal_offset(i) for i in range(jobs)]
        self.running = [_status_response(i, "Running") for i in range(jobs)]
        self.done = [_status_response(i, "Succeeded") for i in range(jobs)]
        self.polls = 0
        self.bad = 0
        self.other = 0
        self.connections = 0
        self.cpu0 = time.process_time()
        self.wall0 = time.perf_counter()

    def stats(self) -> bytes:
        body = json.dumps(
            {
                "polls": self.polls,
                "bad": self.bad,
                "other": self.other,
                # The /__stats connection itself is not the contender's.
                "connections": self.connections - 1,
                "cpu": time.process_time() - self.cpu0,
                "wall": time.perf_counter() - self.wall0,
            }
        ).encode()
        return _response(
            "200 OK", {"Content-Type": "application/json", "Connection": "close"}, body
        )


class _Server:
    """The state every connection shares: the current run and the submit reply."""

    def __init__(self) -> None:
        self.run = _Run()
        self.accepted = b""

    def answer(self, head: bytes, now: float) -> bytes:
        """Return the response to one request head."""
        run = self.run
        if not head.startswith(_STATUS):
            run.other += 1
            return self._other(head)
        try:
            i = int(head[_ID_AT : _ID_AT + 8], 16)
        except ValueError:
            i = -1
        if _KEY in head and _API in head and 0 <= i < run.jobs:
            run.polls += 1
            return run.done[i] if now >= run.terminal_at[i] else run.running[i]
        run.bad += 1
        if _KEY not in head:
            return _UNAUTHORIZED
        return _NO_VERSION if _API not in head else _NOT_FOUND

    def _other(self, head: bytes) -> bytes:
        """Answer the submit and the control requests."""
        if head.startswith(_SUBMIT):
            return self.accepted
        if head.startswith(b"GET /__start?"):
            target = head.split(b" ", 2)[1].decode()
            query = dict(parse_qsl(target.split("?", 1)[1]))
            timeline = work.Timeline(
                float(query["stagger"]),
                float(query["lead"]),
                float(query["spread"]),
                float(query["grace"]),
            )
            self.run = _Run(int(query["jobs"]), float(query["t0"]), timeline)
            return _response("200 OK", {"Connection": "close"}, b"{}")
        if head.startswith(b"GET /__stats"):
            return self.run.stats()
        return _NOT_FOUND


class _Protocol(asyncio.Protocol):
    """One connection: answer every complete request head, keep the tail."""

    __slots__ = ("_buffer", "_server", "_transport")

    def __init__(self, server: _Server) -> None:
        self._buffer = b""
        self._server = server
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.run.connections += 1

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        transport = self._transport
        assert transport is not None
        start = 0
        out = []
        now = time.time()
        close = False
        while (end := buffer.find(_END, start)) != -1:
            head = buffer[start:end]
            out.append(self._server.answer(head, now))
            close = close or b"onnection: close" in head or b"onnection: Close" in head
            start = end + 4
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
            buffer = buffer[start:]
            if close:
                transport.close()
        elif len(buffer) > _MAX_HEAD:
            transport.close()
        self._buffer = buffer


async def _serve(lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    state = _Server()
    server = await loop.create_server(
        lambda: _Protocol(state), "127.0.0.1", 0, backlog=4096
    )
    port = server.sockets[0].getsockname()[1]
    location = (
        f"http://127.0.0.1:{port}{work.status_path(0)}?api-version={work.API_VERSION}"
    )
    state.accepted = _response(
        "202 Accepted",
        {"Operation-Location": location, "apim-request-id": "submit"},
        b"",
    )
    print(port, flush=True)
    parent_gone = asyncio.Event()
    fd = sys.stdin.fileno()

    def on_stdin() -> None:
        if not os.read(fd, 4096):
            parent_gone.set()

    loop.add_reader(fd, on_stdin)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(lifetime):
            await parent_gone.wait()
    loop.remove_reader(fd)
    server.close()


@contextlib.contextmanager
def running(*, server_cpu: int | None, lifetime: float) -> Iterator[tuple[str, int]]:
    """Start the server in its own process (on ``server_cpu``); yield ``(url, pid)``."""
    argv = [sys.executable, str(Path(__file__)), "--lifetime", str(lifetime)]
    if server_cpu is not None:
        argv += ["--cpu", str(server_cpu)]
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


cpu_seconds = _server.cpu_seconds
split_cpus = _server.split_cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu", type=int, default=None, help="pin the server to this CPU"
    )
    parser.add_argument(
        "--lifetime", type=float, default=3600.0, help="exit after this many seconds"
    )
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    work.raise_open_files()
    asyncio.run(_serve(args.lifetime))


if __name__ == "__main__":
    main()
