"""A hostile HTTP/1.1 server on 127.0.0.1 for the boundary tests: raw asyncio.

Real sockets, so both transports meet the same bytes: it stalls, drips,
resets, sends huge heads and compression bombs. Each request is answered by
the route its path starts with (``ROUTES``); the server records every
request head it reads, byte for byte, and counts open connections so that a
test can check that a failed request let go of its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs

#: A route: writes the answer (or misbehaves); True keeps the connection.
Action = Callable[
    ["Request", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]
]
_MAX_HEAD = 64 * 1024


@attrs.frozen
class Request:
    """One request head as it arrived."""

    method: str
    target: str  # the request-target, exactly as sent (path and query)
    headers: dict[str, str]  # lower-case names, repeats joined by ", "
    body: bytes


def response(
    status: int = 200,
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    *,
    length: bool = True,
) -> bytes:
    """Return a whole HTTP/1.1 response (with Content-Length unless ``length`` is False)."""
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{k}: {v}" for k, v in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int) -> bytes:
    """Return ``body`` in chunked transfer coding, ``size`` bytes a chunk."""
    parts = [
        f"{len(body[i : i + size]):x}\r\n".encode() + body[i : i + size] + b"\r\n"
        for i in range(0, len(body), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


@functools.cache
def gzip_bomb(decoded: int = 1 << 30) -> bytes:
    """Return a gzip body of about decoded/1000 bytes that inflates to ``decoded`` zeros.

    One compressed MiB of zeros, ended by a full flush (no reference to what
    came before), repeated: a valid stream, built in milliseconds.
    """
    mib = 1 << 20
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = squeeze.compress(bytes(mib)) + squeeze.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()
    crc = 0
    zeros = bytes(mib)
    for _ in range(decoded // mib):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, decoded & 0xFFFFFFFF)
    return header + block * (decoded // mib) + end + trailer


def answer(data: bytes, *, keep: bool = True) -> Action:
    """Route: write ``data`` (a whole response) and go on (or close)."""

    async def act(
        _request: Request, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(data)
        await writer.drain()
        return keep

    return act


async def _echo(
    request: Request, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    """Answer what arrived: the request-target and the Cookie header."""
    body = json.dumps(
        {"target": request.target, "cookie": request.headers.get("cookie")}
    ).encode()
    writer.write(response(200, body, (("Content-Type", "application/json"),)))
    await writer.drain()
    return True


async def _until_hung_up(reader: asyncio.StreamReader) -> None:
    """Wait for the client to close its side (what a released connection does)."""
    with contextlib.suppress(ConnectionError):
        await reader.read()


async def _stall(
    _request: Request, reader: asyncio.StreamReader, _writer: asyncio.StreamWriter
) -> bool:
    """Never answer: no status line, no headers."""
    await _until_hung_up(reader)
    return False


def _drip(head: bytes, every: float) -> Action:
    """Route: send ``head``, then one body byte each ``every`` seconds, for ever."""

    async def act(
        _request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(head)

        async def trickle() -> None:
            while True:
                await asyncio.sleep(every)
                writer.write(b"x")
                await writer.drain()

        task = asyncio.create_task(trickle())
        try:
            await _until_hung_up(reader)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
        return False

    return act


def _cut(data: bytes, *, reset: bool) -> Action:
    """Route: send ``data`` (part of a response), then reset or close the connection."""

    async def act(
        _request: Request, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(data)
        await writer.drain()
        if reset:
            sock = writer.get_extra_info("socket")
            # SO_LINGER 0: close() sends RST, not FIN.
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            writer.transport.abort()
        return False

    return act


async def _set_cookie(
    request: Request, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    """Echo, and set a cookie the client must never send back."""
    writer.write(
        response(
            200,
            json.dumps({"cookie": request.headers.get("cookie")}).encode(),
            (
                ("Content-Type", "application/json"),
                ("Set-Cookie", "sid=planted; Path=/"),
                ("Set-Cookie", "other=planted2; Path=/; Max-Age=3600"),
            ),
        )
    )
    await writer.drain()
    return True


async def _redirect(
    request: Request, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    """``/redirect/CODE``: that status, with a Location no client should touch."""
    code = int(request.target.split("/")[2].split("?")[0])
    writer.write(
        response(
            code,
            b"",
            (("Location", "../moved/%2E%2E/x?sig=a%2Fb&y=1"),),
        )
    )
    await writer.drain()
    return True


PAYLOAD = json.dumps({"status": "Running", "pad": "x" * 200}).encode()
HUGE_HEADER = 10 * 1024 * 1024
MANY_HEADERS = 100_000

ROUTES: dict[str, Action] = {
    "/set-cookie": _set_cookie,
    "/redirect/": _redirect,
    "/stall-head": _stall,
    "/drip-body": _drip(
        b"HTTP/1.1 200 X\r\nContent-Length: 100000\r\n\r\nx", every=0.05
    ),
    "/stall-body": _drip(
        b"HTTP/1.1 200 X\r\nContent-Length: 100000\r\n\r\nxxxx", every=3600
    ),
    "/reset-body": _cut(
        b"HTTP/1.1 200 X\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10, reset=True
    ),
    "/close-body": _cut(
        b"HTTP/1.1 200 X\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10, reset=False
    ),
    "/hang-up": _cut(b"", reset=False),
    "/gzip": answer(
        response(200, gzip.compress(PAYLOAD), (("Content-Encoding", "gzip"),))
    ),
    "/deflate": answer(
        response(200, zlib.compress(PAYLOAD), (("Content-Encoding", "deflate"),))
    ),
    "/raw-deflate": answer(
        response(
            200,
            zlib.compress(PAYLOAD, wbits=-zlib.MAX_WBITS),
            (("Content-Encoding", "deflate"),),
        )
    ),
    "/brotli": answer(
        response(200, b"\x0b\x02\x80hi\x03", (("Content-Encoding", "br"),))
    ),
    "/not-gzip": answer(
        response(200, b"this is not gzip", (("Content-Encoding", "gzip"),))
    ),
    "/plain-big": answer(response(200, b"y" * 300_000)),
    "/chunked-big": answer(
        response(200, length=False, headers=(("Transfer-Encoding", "chunked"),))
        + chunked(b"y" * 300_000, 16_384)
    ),
    "/gzip-big": answer(
        response(
            200,
            gzip.compress(b"y" * 300_000),
            (("Content-Encoding", "gzip"),),
        )
    ),
    "/deflate-big": answer(
        response(
            200,
            zlib.compress(b"y" * 300_000),
            (("Content-Encoding", "deflate"),),
        )
    ),
    "/long-header": answer(response(200, PAYLOAD, (("X-Long", "v" * 12_000),))),
    "/huge-header": answer(
        response(200, PAYLOAD, (("X-Huge", "v" * HUGE_HEADER),)), keep=False
    ),
    "/many-headers": answer(
        response(200, PAYLOAD, tuple(("X-N", str(i)) for i in range(MANY_HEADERS))),
        keep=False,
    ),
}


class HostileServer:
    """Serves ``ROUTES`` (and echoes any other path) on 127.0.0.1, port chosen by the OS."""

    def __init__(self) -> None:
        """Nothing listens until ``start``."""
        self.seen: list[Request] = []
        self.open_connections = 0
        self.extra_routes: dict[str, Action] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.url = ""

    async def start(self) -> None:
        """Listen on 127.0.0.1:0."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop listening and end every connection's handler."""
        assert self._server is not None
        self._server.close()
        # Aborted, not cancelled: each handler then ends on its own (asyncio
        # 3.11 logs an error for a cancelled connection handler).
        for writer in list(self._writers):
            writer.transport.abort()
        async with asyncio.timeout(2.0):
            for _ in range(1000):
                if not self._tasks:
                    break
                await asyncio.sleep(0.01)
        await self._server.wait_closed()

    async def wait_all_closed(self, seconds: float = 2.0) -> None:
        """Return once every connection has been closed (by either side)."""
        async with asyncio.timeout(seconds):
            for _ in range(10_000):
                if self.open_connections == 0:
                    return
                await asyncio.sleep(0.01)

    def _route(self, target: str) -> Action:
        path = target.partition("?")[0]
        for routes in (self.extra_routes, ROUTES):
            if path in routes:
                return routes[path]
            for prefix, action in routes.items():
                # A key ending in "/" serves every path below it.
                if prefix.endswith("/") and path.startswith(prefix):
                    return action
        return _echo

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.open_connections += 1
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                for _ in range(1000):
                    request = await _read_request(reader)
                    if request is None:
                        break
                    self.seen.append(request)
                    if not await self._route(request.target)(request, reader, writer):
                        break
        finally:
            self.open_connections -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._writers.discard(writer)
            self._tasks.discard(task)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request (head and Content-Length body); None when the client hung up."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    if len(head) > _MAX_HEAD:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            seen = headers.get(key)
            headers[key] = value.strip() if seen is None else f"{seen}, {value.strip()}"
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return Request(method, target, headers, body)


@contextlib.asynccontextmanager
async def hostile_server() -> AsyncIterator[HostileServer]:
    """Run a ``HostileServer`` for the duration of the block."""
    server = HostileServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
