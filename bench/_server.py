"""The cheapest correct HTTP/1.1 keep-alive server: the benchmarks' remote API.

Every GET is answered ``200`` with the fixed body ``{"status":"Running"}`` and
its Content-Length, on a connection kept alive (pipelined requests are
answered in order, in one write). Raw ``asyncio.Protocol``, no parsing beyond
finding each request's end: it does less per request than any client it
serves, so it is not the bottleneck (throughput.py reports its CPU use in
every window and its ceiling). Requests without a body only (GET): a
request body would be read as the next request.

Run by the benchmarks as a subprocess, in its own process and, where the
machine has two CPUs or more, pinned to its own CPU, so that it never shares
the client's event loop or core:

    python bench/_server.py [--cpu 1] [--lifetime 900]

prints the port (127.0.0.1, chosen by the OS) and serves until its standard
input closes (the parent exited) or ``--lifetime`` seconds pass.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

BODY = b'{"status":"Running"}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
_END = b"\r\n\r\n"
#: A request head longer than this is refused (the connection is closed).
_MAX_HEAD = 64 * 1024


class _Protocol(asyncio.Protocol):
    """One connection: answer every complete request head, keep the tail."""

    __slots__ = ("_buffer", "_transport")

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        count = buffer.count(_END)
        transport = self._transport
        assert transport is not None
        if count:
            # A head can end across two reads: only what follows the last
            # complete head is kept for the next read.
            transport.write(RESPONSE * count if count > 1 else RESPONSE)
            buffer = buffer[buffer.rfind(_END) + 4 :]
            if b"lose" in data and b"connection: close" in data.lower():
                transport.close()
        elif len(buffer) > _MAX_HEAD:
            transport.close()
        self._buffer = buffer


async def _serve(lifetime: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
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


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def split_cpus(*, pin: bool) -> tuple[int | None, int | None]:
    """Return ``(client_cpu, server_cpu)``, or ``None``s when not pinning."""
    if not pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


@contextlib.contextmanager
def running(
    *, pin: bool = True, lifetime: float = 900.0
) -> Iterator[tuple[str, int, int | None]]:
    """Start the server in its own process; yield ``(url, pid, server_cpu)``.

    With ``pin``, the server gets the second CPU and the calling process the
    first (restored on exit), so client and server never share a core.
    """
    client_cpu, server_cpu = split_cpus(pin=pin)
    argv = [sys.executable, str(Path(__file__)), "--lifetime", str(lifetime)]
    if server_cpu is not None:
        argv += ["--cpu", str(server_cpu)]
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    previous = os.sched_getaffinity(0) if client_cpu is not None else None
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        yield f"http://127.0.0.1:{port}", process.pid, server_cpu
    finally:
        if previous is not None:
            os.sched_setaffinity(0, previous)
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu", type=int, default=None, help="pin the server to this CPU"
    )
    parser.add_argument(
        "--lifetime", type=float, default=900.0, help="exit after this many seconds"
    )
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    asyncio.run(_serve(args.lifetime))


if __name__ == "__main__":
    main()
