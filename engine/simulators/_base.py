"""Shared parts of the simulators: job timelines, fault injection, loopback serving.

Every simulator is a plain ASGI callable (a Starlette app) so that one app serves
three ways: in-process through ``httpx.ASGITransport``, on a real socket at
127.0.0.1 (:func:`serve`), and from ``statepoll simulate``.

Fault injection is a generic ASGI middleware (:class:`FaultInjector`); the only
service-specific knowledge it needs is a :class:`FaultProfile` (where the status
sits in a poll response, what an earlier status is, how the service's error body
looks). The ``--faults`` language it is configured with lives in ``_faults`` and
is re-exported here.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime as dt
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import Any, Final, Self

import attrs

from ._faults import FAULT_KINDS, FAULT_SYNTAX, FaultRule, Faults, parse_faults

__all__ = [
    "FAULT_KINDS",
    "FAULT_SYNTAX",
    "FaultInjector",
    "FaultProfile",
    "FaultRule",
    "Faults",
    "Gate",
    "ServerHandle",
    "ServiceBase",
    "SimulatedResetError",
    "Timeline",
    "UUID_PATTERN",
    "parse_faults",
    "random_uuid",
    "serve",
    "serving",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MAX_PORT: Final = 65535

#: Path prefix of the simulators' own control endpoints (never a vendor path).
CONTROL_PREFIX: Final = "/_sim/"

#: A UUID as the vendors write ids, in either case.
UUID_PATTERN: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)


def random_uuid(rng: random.Random) -> str:
    """Return a version-4 UUID drawn from ``rng`` (seeded, so ids repeat per seed)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class SimulatedResetError(ConnectionResetError):
    """Raised inside the app to cut a response off after its headers.

    Over a socket the client sees the connection close mid-response (httpx
    reports ``RemoteProtocolError``); through ``ASGITransport`` the exception
    itself reaches the client, as a transport failure would.
    """


@attrs.frozen
class Timeline:
    """A job's planned life: the state it is in at any moment since its start.

    Computing the state from the clock at request time (instead of running a
    task per job) keeps the simulators cheap with many thousands of jobs.
    """

    start: float
    #: ``(offset_seconds, state)`` pairs, offsets ascending, first offset 0.
    steps: tuple[tuple[float, str], ...]

    @classmethod
    def build(
        cls,
        start: float,
        path: tuple[tuple[str, float], ...],
        final: str,
        *,
        time_scale: float = 1.0,
    ) -> Timeline:
        """Build a timeline from ``(state, duration)`` pairs and a final state.

        Durations are multiplied by ``time_scale``.
        """
        steps: list[tuple[float, str]] = []
        offset = 0.0
        for state, duration in path:
            steps.append((offset, state))
            offset += duration * time_scale
        steps.append((offset, final))
        return cls(start, tuple(steps))

    def state_at(self, now: float) -> str:
        """Return the state at clock time ``now``."""
        elapsed = now - self.start
        current = self.steps[0][1]
        for offset, state in self.steps:
            if elapsed >= offset:
                current = state
            else:
                break
        return current

    def previous(self, state: str) -> str | None:
        """Return the state before ``state`` on this timeline, if any."""
        names = [s for _, s in self.steps]
        with contextlib.suppress(ValueError):
            i = names.index(state)
            if i > 0:
                return names[i - 1]
        return None

    @property
    def final(self) -> str:
        """The last state of the timeline."""
        return self.steps[-1][1]

    @property
    def ends_at(self) -> float:
        """Clock time at which the final state is reached."""
        return self.start + self.steps[-1][0]

    def cut_short(self, now: float, state: str) -> Timeline:
        """Return a timeline that stays as it was until ``now`` and then is ``state``."""
        elapsed = max(0.0, now - self.start)
        kept = tuple(step for step in self.steps if step[0] < elapsed)
        return Timeline(self.start, (*kept, (elapsed, state)))


class ServiceBase:
    """What every simulator's in-memory service starts from: RNG, clock, wall time.

    ``rng`` (seeded) draws the ids, outcomes and durations; ``clock`` (monotonic)
    drives the timelines, whose durations ``time_scale`` multiplies.
    """

    def __init__(
        self, *, seed: int | None, time_scale: float, clock: Callable[[], float]
    ) -> None:
        """Seed ``rng`` and anchor wall time at the clock's current reading."""
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self.time_scale = time_scale
        self.clock = clock
        # One wall-clock anchor: every timestamp is the anchor plus clock time,
        # so an injected fake clock moves the timestamps too.
        self.wall_anchor = dt.datetime.now(dt.UTC)
        self.clock_anchor = clock()

    def wall(self, clock_time: float) -> dt.datetime:
        """Return the wall-clock time (UTC) at the clock reading ``clock_time``."""
        return self.wall_anchor + dt.timedelta(seconds=clock_time - self.clock_anchor)


@attrs.frozen(kw_only=True)
class FaultProfile:
    """What the fault injector must know about one service."""

    #: JSON pointer of the status in a poll response body (``/job/status``).
    status_pointer: str
    #: A value the service never sends, for ``unknown_status``.
    unknown_value: str = "Exploding"
    #: Error body for an HTTP status, in the service's own shape.
    error_body: Callable[[int, str], dict[str, Any]]
    #: For ``backwards``: maps a status to an earlier one of its lifecycle.
    earlier: Mapping[str, str] = attrs.field(factory=dict)


_HTML_PAGE: Final = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>"
    b"</body></html>"
)

_REASONS: Final = {
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def _pointer_tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _rewrite_status(body: bytes, pointer: str, rewrite: Callable[[str], str]) -> bytes:
    """Return ``body`` with the string at ``pointer`` rewritten; unchanged if absent."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    *parents, last = _pointer_tokens(pointer)
    node: Any = doc
    for token in parents:
        if not isinstance(node, dict) or token not in node:
            return body
        node = node[token]
    if not isinstance(node, dict) or not isinstance(node.get(last), str):
        return body
    node[last] = rewrite(node[last])
    return json.dumps(doc).encode()


class FaultInjector:
    """ASGI middleware that injects the configured faults and counts them.

    ``counts`` maps each fault kind to how often it fired; it is also served as
    JSON at ``GET /_sim/faults`` so that tests of a simulator running in another
    process can assert that a fault happened.
    """

    def __init__(
        self,
        app: ASGIApp,
        faults: Faults,
        profile: FaultProfile,
        *,
        seed: int | None = None,
    ) -> None:
        """Wrap ``app``; ``seed`` makes rate-based faults reproducible."""
        self.app = app
        self.faults = faults
        self.profile = profile
        self.counts: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.requests = 0
        self._random = random.Random(seed)  # noqa: S311 - simulation, not security

    def _choose(self) -> str | None:
        self.requests += 1
        for rule in self.faults.rules:
            if self.requests in rule.at:
                return rule.kind
            if rule.rate > 0 and self._random.random() < rule.rate:
                return rule.kind
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request, possibly faulted."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(CONTROL_PREFIX):
            await self._control(path, send)
            return
        eligible = self.faults.scope == "all" or scope["method"] == "GET"
        kind = self._choose() if eligible and self.faults.active else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        self.counts[kind] += 1
        await self._inject(kind, scope, receive, send)

    async def _control(self, path: str, send: Send) -> None:
        if path == CONTROL_PREFIX + "faults":
            payload = {"counts": self.counts, "requests": self.requests}
            await _send_bytes(
                send, 200, json.dumps(payload).encode(), "application/json"
            )
        else:
            await _send_bytes(send, 404, b'{"detail": "not found"}', "application/json")

    async def _inject(
        self, kind: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if kind in ("429", "500", "502", "503"):
            status = int(kind)
            headers: list[tuple[bytes, bytes]] = []
            if status in (429, 503):
                headers.append((b"retry-after", _seconds(self.faults.retry_after)))
            body = json.dumps(
                self.profile.error_body(status, _REASONS[status])
            ).encode()
            await _send_bytes(send, status, body, "application/json", headers)
        elif kind == "html":
            await _send_bytes(send, 502, _HTML_PAGE, "text/html")
        elif kind == "malformed":
            await _send_bytes(send, 200, b'{"status": "Runn', "application/json")
        elif kind == "reset":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"64"),
                    ],
                }
            )
            msg = "simulated connection reset"
            raise SimulatedResetError(msg)
        elif kind == "slow":
            await asyncio.sleep(self.faults.delay)
            await self.app(scope, receive, send)
        else:  # unknown_status, backwards: rewrite the real answer's status
            earlier = self.profile.earlier
            unknown = self.profile.unknown_value

            def rewrite(value: str) -> str:
                if kind == "unknown_status":
                    return unknown
                return earlier.get(value, value)

            await self._rewritten(scope, receive, send, rewrite)

    async def _rewritten(
        self, scope: Scope, receive: Receive, send: Send, rewrite: Callable[[str], str]
    ) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = _rewrite_status(b"".join(chunks), self.profile.status_pointer, rewrite)
        headers = [
            (k, v)
            for k, v in start.get("headers", [])
            if k.lower() != b"content-length"
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        await send(
            {
                "type": "http.response.start",
                "status": start["status"],
                "headers": headers,
            }
        )
        await send({"type": "http.response.body", "body": body})


class Gate(abc.ABC):
    """ASGI wrapper that checks each HTTP request's credentials before the app sees it.

    A subclass says how: :meth:`refusal` returns the answer (a response, itself
    an ASGI app) that refuses the request, or None to let it through.
    """

    def __init__(self, app: ASGIApp) -> None:
        """Guard ``app``."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI request, or refuse it."""
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    @abc.abstractmethod
    def refusal(self, scope: Scope) -> ASGIApp | None:
        """Return the answer that refuses this HTTP request, or None to serve it."""


def _seconds(value: float) -> bytes:
    return str(round(value)).encode() if value == round(value) else str(value).encode()


async def _send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _DropSimulatedResets(logging.Filter):
    """Keep uvicorn's log quiet about resets we cause on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, SimulatedResetError)


@attrs.define
class ServerHandle:
    """A simulator served on 127.0.0.1 in a background thread."""

    url: str
    port: int
    _server: Any = attrs.field(repr=False)
    _thread: threading.Thread = attrs.field(repr=False)

    def close(self) -> None:
        """Stop the server and wait for its thread (bounded)."""
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        """Return the handle itself."""
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop the server."""
        self.close()


def _bind(port: int) -> socket.socket:
    # Loopback only, always: the simulators must never be reachable from elsewhere.
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose
    # proto says TCP, and without it every response waits ~40 ms for a
    # delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        # strerror alone ("Address already in use") does not say which address.
        msg = f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}"
        raise OSError(exc.errno, msg) from exc
    return sock


def serve(
    app: ASGIApp, port: int = 0, *, startup_timeout: float = 10.0
) -> ServerHandle:
    """Serve ``app`` on 127.0.0.1 (``port=0`` picks a free port) in a thread.

    Returns a handle with the base URL; use it as a context manager.

    Raises:
        ValueError: ``port`` is not 0..65535.
        OSError: the port is taken (or not ours to bind); ``strerror`` names it.
        RuntimeError: if the server does not start within ``startup_timeout``.
    """
    import uvicorn  # noqa: PLC0415 - only the serving path needs it

    if not 0 <= port <= _MAX_PORT:
        msg = f"port {port} is out of range: use 0 to {_MAX_PORT} (0 picks a free port)"
        raise ValueError(msg)
    sock = _bind(port)
    chosen = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_DropSimulatedResets())
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"simulator:{chosen}",
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            msg = f"simulator on 127.0.0.1:{chosen} did not start"
            raise RuntimeError(msg)
        time.sleep(0.005)
    return ServerHandle(f"http://127.0.0.1:{chosen}", chosen, server, thread)


@contextlib.contextmanager
def serving(app: ASGIApp, port: int = 0) -> Iterator[ServerHandle]:
    """Context manager form of :func:`serve`."""
    handle = serve(app, port)
    try:
        yield handle
    finally:
        handle.close()
