"""The HTTP boundary, once, over both transports, against a real hostile server.

Every test that takes ``client`` runs twice: over httpx's own transport
(httpcore) and over the client ``default_client()`` builds (httpx-aiohttp's
transport, which ``Remote`` sends through with aiohttp directly). Both must
behave the same: deadlines, decoded caps, heads, cookies, dot segments,
redirects and the error each fault becomes.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import httpx
import pytest
import yarl
from httpx_aiohttp import AiohttpTransport

from engine import RemoteError
from engine._core.reply import MAX_JSON_DEPTH, parse_json
from engine._remote import ACCEPT_ENCODING, Remote, Reply, default_client, origin
from tests.engine._servers import (
    PAYLOAD,
    HostileServer,
    answer,
    gzip_bomb,
    hostile_server,
    response,
)

pytestmark = pytest.mark.anyio

#: No test waits on the network longer than this.
BOUND = 5.0


@pytest.fixture(params=["httpcore", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    """Name the transport a test runs over."""
    return str(request.param)


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    """A hostile server on 127.0.0.1."""
    async with hostile_server() as running:
        yield running


def _client(transport: str) -> httpx.AsyncClient:
    if transport == "aiohttp":
        client = default_client()
        assert isinstance(client._transport, AiohttpTransport)
        return client
    return httpx.AsyncClient()


@pytest.fixture
async def client(transport: str) -> AsyncIterator[httpx.AsyncClient]:
    """The client of that transport, closed after the test."""
    async with _client(transport) as made:
        yield made


async def _get(
    remote: Remote,
    url: str,
    *,
    timeout: float = 2.0,
    headers: tuple[tuple[str, str], ...] = (),
    params: Mapping[str, str] | None = None,
) -> Reply:
    async with asyncio.timeout(BOUND):
        return await remote.send(
            "GET", url, headers=headers, params=params, timeout=timeout
        )


async def _refused(remote: Remote, url: str, *, timeout: float = 2.0) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        await _get(remote, url, timeout=timeout)
    return caught.value


# -- 1. one deadline for the whole exchange ----------------------------------------------


@pytest.mark.parametrize(
    "path", ["/stall-head", "/drip-body", "/stall-body"], ids=["head", "drip", "body"]
)
async def test_no_complete_answer_within_the_timeout_is_a_transport_error(
    client: httpx.AsyncClient, server: HostileServer, path: str
) -> None:
    """Stalled head, a body dripped byte by byte or stalled: given up at the deadline."""
    started = time.monotonic()

    error = await _refused(Remote(client), f"{server.url}{path}?sig=s", timeout=0.4)

    assert time.monotonic() - started < 1.5
    assert error.kind == "transport"
    assert error.retryable
    assert str(error) == f"no complete answer from 127.0.0.1{path} within 0.4 s"
    await server.wait_all_closed()  # the connection was let go


async def test_a_cancelled_request_lets_go_of_its_connection(
    client: httpx.AsyncClient, server: HostileServer
) -> None:
    """A send cancelled mid-body (the engine closing, say) closes its connection."""
    task = asyncio.create_task(_get(Remote(client), f"{server.url}/drip-body"))
    async with asyncio.timeout(BOUND):
        for _ in range(500):
            if server.seen:
                break
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # some body bytes are in

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    await server.wait_all_closed()


async def test_the_deadline_leaves_the_pool_usable(
    client: httpx.AsyncClient, server: HostileServer
) -> None:
    """After a request given up mid-body, the next one on the same client succeeds."""
    remote = Remote(client)
    await _refused(remote, f"{server.url}/drip-body", timeout=0.3)

    reply = await _get(remote, f"{server.url}/after")

    assert reply.json()["target"] == "/after"


# -- 2. the decoded size cap -------------------------------------------------------------


async def test_a_gzip_bomb_is_refused_at_the_cap_holding_little_memory(
    client: httpx.AsyncClient, server: HostileServer
) -> None:
    """1 MB of gzip inflating to 1 GiB: refused at the cap, peak memory < 3 x the cap."""
    cap = 2 * 1024 * 1024
    bomb = gzip_bomb()
    server.extra_routes["/bomb"] = answer(
        response(200, bomb, (("Content-Encoding", "gzip"),)), keep=False
    )
    remote = Remote(client, max_body=cap)
    await _get(remote, f"{server.url}/warm-up")  # connection and route made first

    tracemalloc.start()
    try:
        error = await _refused(remote, f"{server.url}/bomb")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert error.kind == "protocol"
    assert str(error) == f"response from 127.0.0.1/bomb is over the {cap}-byte cap"
    assert peak < 3 * cap, f"peak {peak:,} B"


@pytest.mark.parametrize(
    "path", ["/plain-big", "/chunked-big", "/gzip-big", "/deflate-big"]
)
async def test_bodies_over_the_cap_are_refused_plain_or_compressed(
    client: httpx.AsyncClient, server: HostileServer, path: str
) -> None:
    """Declared, streamed, gzip or deflate: over the cap (as decoded) is a protocol error."""
    error = await _refused(Remote(client, max_body=100_000), f"{server.url}{path}")

    assert error.kind == "protocol"
    assert error.status == 200
    assert "over the 100000" in str(error)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/gzip", PAYLOAD),
        ("/deflate", PAYLOAD),
        ("/raw-deflate", PAYLOAD),
        ("/gzip-big", b"y" * 300_000),
        ("/deflate-big", b"y" * 300_000),
    ],
)
async def test_gzip_and_deflate_bodies_are_decoded(
    client: httpx.AsyncClient, server: HostileServer, path: str, body: bytes
) -> None:
    """gzip, zlib-wrapped and raw deflate read as sent, inflated piece by piece."""
    reply = await _get(Remote(client), f"{server.url}{path}")

    assert reply.body == body


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/brotli", "has Content-Encoding 'br'; only gzip and deflate are decoded"),
        ("/not-gzip", "is not valid gzip"),
    ],
)
async def test_a_body_in_a_coding_not_decoded_here_is_a_protocol_error(
    client: httpx.AsyncClient, server: HostileServer, path: str, words: str
) -> None:
    """An unadvertised coding, or bytes that are not what the coding says: protocol errors."""
    error = await _refused(Remote(client), f"{server.url}{path}")

    assert error.kind == "protocol"
    assert words in str(error)


async def test_only_the_decoded_codings_are_advertised_unless_the_caller_chose(
    client: httpx.AsyncClient, server: HostileServer
) -> None:
    """Accept-Encoding is "gzip, deflate"; a value in the request's headers is kept."""
    remote = Remote(client)

    await _get(remote, f"{server.url}/a")
    await _get(remote, f"{server.url}/b", headers=(("Accept-Encoding", "identity"),))

    assert [r.headers["accept-encoding"] for r in server.seen] == [
        ACCEPT_ENCODING,
        "identity",
    ]


# -- 3. heads: sizes and every fault mapped ----------------------------------------------


@pytest.mark.parametrize("path", ["/huge-header", "/many-headers"])
async def test_an_oversized_response_head_is_a_protocol_error(
    client: httpx.AsyncClient, server: HostileServer, path: str
) -> None:
    """A 10 MB header or 100,000 headers: a classified protocol error, never a raw one."""
    error = await _refused(Remote(client), f"{server.url}{path}")

    assert error.kind == "protocol"
    assert str(error).startswith(f"malformed response head from 127.0.0.1{path}")


async def test_a_12_kb_header_is_read_over_both_transports(
    client: httpx.AsyncClient, server: HostileServer
) -> None:
    """A long header h11 accepts is accepted over aiohttp too."""
    reply = await _get(Remote(client), f"{server.url}/long-header")

    assert reply.headers["x-long"] == "v" * 12_000


@pytest.mark.parametrize(
    "header",
    [
        ("X-Key", "k\r\nX-Evil: 1"),
        ("X-Key", "caf\u00e9"),
        ("X-Key", "a\x00b"),
        ("X Key", "secret-value"),
    ],
    ids=["crlf", "non-ascii", "nul", "space-in-name"],
)
async def test_a_header_http_cannot_carry_is_refused_before_sending(
    client: httpx.AsyncClient, server: HostileServer, header: tuple[str, str]
) -> None:
    """CR/LF, NUL, non-ASCII values or a bad name: protocol, not retryable, value not echoed."""
    remote = Remote(client)

    with pytest.raises(RemoteError) as caught:
        await _get(remote, f"{server.url}/jobs/1", headers=(header,))

    assert caught.value.kind == "protocol"
    assert not caught.value.retryable
    assert header[1] not in str(caught.value)
    assert server.seen == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("path", ["/reset-body", "/close-body", "/hang-up"])
async def test_a_connection_cut_is_a_retryable_transport_error(
    client: httpx.AsyncClient, server: HostileServer, path: str
) -> None:
    """Reset or closed mid-body, or hung up before answering: transport, retryable."""
    error = await _refused(Remote(client), f"{server.url}{path}?sig=secret")

    assert error.kind == "transport"
    assert error.retryable
    assert str(error).startswith(f"connection to 127.0.0.1{path} failed: ")
    assert "secret" not in str(error)


async def test_a_refused_connection_is_a_retryable_transport_error(
    client: httpx.AsyncClient,
) -> None:
    """Nothing listening: transport, retryable, naming host and path."""
    url = f"http://127.0.0.1:{_closed_port()}/jobs/1"

    error = await _refused(Remote(client), url)

    assert error.kind == "transport"
    assert error.retryable
    assert str(error).startswith("connection to 127.0.0.1/jobs/1 failed: ")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/jobs/1",
        "http://127.0.0.1:port/jobs/1",
        "http:///jobs/1",
        "ftp://127.0.0.1/jobs/1",
        "http://[::1/jobs/1",
    ],
    ids=["port-99999", "port-word", "no-host", "ftp", "open-bracket"],
)
async def test_an_invalid_url_is_a_protocol_error_no_retry_fixes(
    client: httpx.AsyncClient, url: str
) -> None:
    """Port out of range, no host, not http(s): protocol, not retryable."""
    error = await _refused(Remote(client), url)

    assert error.kind == "protocol"
    assert not error.retryable
    assert str(error).startswith("invalid URL for ")


def test_origin_of_a_port_out_of_range_is_a_remote_error() -> None:
    """origin() classifies a bad port instead of raising a bare ValueError."""
    with pytest.raises(RemoteError) as caught:
        origin("https://api.test:99999/jobs?sig=secret")

    assert caught.value.kind == "protocol"
    assert not caught.value.retryable
    assert "secret" not in str(caught.value)


# -- 4. no cookies, ever -----------------------------------------------------------------


async def test_cookies_a_server_sets_are_never_sent_back(
    client: httpx.AsyncClient, server: HostileServer
) -> None:
    """A Set-Cookie answer: the next requests carry no Cookie header."""
    remote = Remote(client)

    for _ in range(3):
        await _get(remote, f"{server.url}/set-cookie")

    assert [r.headers.get("cookie") for r in server.seen] == [None, None, None]


async def test_a_client_with_hooks_sends_its_own_cookies_and_no_others(
    client: httpx.AsyncClient, server: HostileServer
) -> None:
    """Through client.send: the cookies the client held at first, never the server's."""
    hooked: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        hooked.append(request.url.path)

    client.event_hooks = {"request": [on_request], "response": []}
    client.cookies.set("mine", "1")
    remote = Remote(client)

    for _ in range(3):
        await _get(remote, f"{server.url}/set-cookie")

    assert not remote.direct()
    assert hooked == ["/set-cookie"] * 3
    assert [r.headers.get("cookie") for r in server.seen] == ["mine=1"] * 3


async def test_the_default_clients_session_cannot_hold_a_cookie(
    server: HostileServer,
) -> None:
    """default_client()'s aiohttp session drops cookies even from a named host.

    Over 127.0.0.1 aiohttp's own jar ignores cookies anyway (IP hosts), so the
    jar is fed one for a host name directly, as a real service would set it.
    """
    async with default_client() as client:
        await _get(Remote(client), f"{server.url}/set-cookie")
        transport = client._transport
        assert isinstance(transport, AiohttpTransport)
        session = transport.client
        assert isinstance(session, aiohttp.ClientSession)

        session.cookie_jar.update_cookies(
            {"sid": "planted"}, yarl.URL("https://api.test/")
        )

        assert len(session.cookie_jar) == 0


async def test_a_session_that_keeps_cookies_is_refused(server: HostileServer) -> None:
    """A caller's aiohttp session with a real cookie jar: refused, saying how to fix it."""
    session = aiohttp.ClientSession()
    async with httpx.AsyncClient(transport=AiohttpTransport(client=session)) as client:
        error = await _refused(Remote(client), f"{server.url}/jobs/1")

    assert error.kind == "protocol"
    assert not error.retryable
    assert "cookie_jar=aiohttp.DummyCookieJar()" in str(error)
    assert server.seen == []


async def test_a_transport_without_a_session_gets_one_that_keeps_no_cookies(
    server: HostileServer,
) -> None:
    """AiohttpTransport() as a caller builds it: its session is made without a cookie jar."""
    transport = AiohttpTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        remote = Remote(client)
        for _ in range(2):
            await _get(remote, f"{server.url}/set-cookie")

        assert isinstance(transport.client, aiohttp.ClientSession)
        assert isinstance(transport.client.cookie_jar, aiohttp.DummyCookieJar)
    assert [r.headers.get("cookie") for r in server.seen] == [None, None]


# -- 5. dot segments ---------------------------------------------------------------------


@pytest.mark.parametrize("segment", ["%2E%2E", "%2E", "%2e%2E"])
async def test_a_dot_segment_id_reaches_the_server_as_built(
    client: httpx.AsyncClient, server: HostileServer, segment: str
) -> None:
    """/v2/jobs/%2E%2E arrives as sent, with or without query parameters."""
    remote = Remote(client)
    url = f"{server.url}/v2/jobs/{segment}"

    await _get(remote, url)
    reply = await _get(remote, url, params={"api-version": "1"})

    assert [r.target for r in server.seen] == [
        f"/v2/jobs/{segment}",
        f"/v2/jobs/{segment}?api-version=1",
    ]
    assert reply.url == f"{url}?api-version=1"


async def test_behind_client_send_an_aiohttp_transport_refuses_dot_segments(
    server: HostileServer,
) -> None:
    """Hooks force client.send, where yarl would resolve %2E%2E: refused, nothing sent."""

    async def on_request(_request: httpx.Request) -> None:
        return None

    async with default_client() as client:
        client.event_hooks = {"request": [on_request], "response": []}
        remote = Remote(client)
        error = await _refused(remote, f"{server.url}/v2/jobs/%2E%2E")
        fine = await _get(remote, f"{server.url}/v2/jobs/42")

    assert error.kind == "protocol"
    assert not error.retryable
    assert fine.json()["target"] == "/v2/jobs/42"
    assert [r.target for r in server.seen] == ["/v2/jobs/42"]


# -- redirects: handed back untouched ----------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_handed_back_untouched(
    client: httpx.AsyncClient, server: HostileServer, status: int
) -> None:
    """Status and Location come back as sent; nothing follows them."""
    reply = await _get(Remote(client), f"{server.url}/redirect/{status}")

    assert reply.status == status
    assert reply.headers["location"] == "../moved/%2E%2E/x?sig=a%2Fb&y=1"
    assert len(server.seen) == 1


# -- 7. one reply, whatever the route ----------------------------------------------------


async def test_both_transports_give_the_same_reply(server: HostileServer) -> None:
    """Status, headers, body and URL of a reply do not depend on the transport."""
    replies = []
    for transport in ("httpcore", "aiohttp"):
        async with _client(transport) as client:
            reply = await _get(
                Remote(client),
                f"{server.url}/jobs/%2E%2E/x",
                headers=(("X-Key", "k"),),
                params={"api-version": "2024-05-01", "q": "a b"},
            )
        replies.append((reply.status, dict(reply.headers), reply.body, reply.url))

    assert replies[0] == replies[1]
    first, second = server.seen
    assert first == second


@pytest.mark.parametrize(
    ("value", "text"),
    [(b"caf\xc3\xa9", "caf\u00e9"), (b"caf\xe9", "caf\u00e9")],
    ids=["utf-8", "latin-1"],
)
async def test_a_non_ascii_response_header_reads_alike(
    client: httpx.AsyncClient, server: HostileServer, value: bytes, text: str
) -> None:
    """Header bytes are decoded as httpx decodes them: UTF-8, else Latin-1."""
    head = b"HTTP/1.1 200 X\r\nX-Name: " + value + b"\r\nContent-Length: 0\r\n\r\n"
    server.extra_routes["/named"] = answer(head)

    reply = await _get(Remote(client), f"{server.url}/named")

    assert reply.headers["x-name"] == text


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ({"json_body": {"name": "caf\u00e9", "n": [1, 2]}}, "application/json"),
        ({"data": {"a": "1", "b": "x y"}}, "application/x-www-form-urlencoded"),
    ],
    ids=["json", "form"],
)
async def test_a_request_body_arrives_alike_over_both_transports(
    server: HostileServer, body: dict[str, Any], content_type: str
) -> None:
    """A submit's JSON or form body reaches the server byte for byte the same."""
    for transport in ("httpcore", "aiohttp"):
        async with _client(transport) as client, asyncio.timeout(BOUND):
            await Remote(client).send(
                "POST", f"{server.url}/submit", headers=(), timeout=2.0, **body
            )

    first, second = server.seen
    assert first == second
    assert first.headers["content-type"] == content_type
    assert first.headers["content-length"] == str(len(first.body))


async def test_the_default_client_builds_no_httpx_models(
    server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over default_client(), a poll goes through aiohttp with no httpx Request or Response."""
    built: list[str] = []
    for model in (httpx.Request, httpx.Response):
        real = model.__init__

        def counting(
            self: object, *args: object, _real: object = real, **kw: object
        ) -> None:
            built.append(type(self).__name__)
            _real(self, *args, **kw)  # type: ignore[operator]

        monkeypatch.setattr(model, "__init__", counting)
    async with default_client() as client:
        remote = Remote(client)

        for _ in range(3):
            await _get(remote, f"{server.url}/jobs/1", params={"api-version": "1"})

    assert built == []
    assert len(server.seen) == 3


# -- 6. hostile JSON ---------------------------------------------------------------------


def _parse(body: bytes) -> object:
    return parse_json(
        body, url="https://api.test/jobs/1?sig=s", status=200, content_type="json"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1),
    ],
    ids=["100k-open", "cap+1-arrays", "cap+1-objects"],
)
def test_json_nested_deeper_than_the_cap_is_a_protocol_error(body: bytes) -> None:
    """A nesting bomb is refused as malformed JSON, never a RecursionError."""
    with pytest.raises(RemoteError) as caught:
        _parse(body)

    assert caught.value.kind == "protocol"
    assert str(caught.value) == (
        "malformed JSON from api.test/jobs/1 (HTTP 200, json): "
        f"nested deeper than {MAX_JSON_DEPTH} levels"
    )


def test_json_at_the_cap_and_brackets_in_strings_are_accepted() -> None:
    """Exactly MAX_JSON_DEPTH levels parse; brackets inside strings are not nesting."""
    deep = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    quoted = json.dumps({"s": "[" * 1000 + '\\"[{', "n": [[1]] * 300}).encode()

    assert _parse(deep) is not None
    assert _parse(quoted) == json.loads(quoted)


@pytest.mark.parametrize("body", [b'{"status": "Runn', b"[1, 2", b"\xff\xfe{"])
def test_truncated_or_undecodable_json_is_a_protocol_error(body: bytes) -> None:
    """A body cut short or not text is malformed JSON."""
    with pytest.raises(
        RemoteError, match=r"^malformed JSON from api\.test/jobs/1"
    ) as caught:
        _parse(body)

    assert caught.value.kind == "protocol"


async def test_a_nesting_bomb_from_a_server_is_a_protocol_error(
    client: httpx.AsyncClient, server: HostileServer
) -> None:
    """100,000 "[" on the wire: reply.json() raises the project's own error."""
    server.extra_routes["/deep"] = answer(response(200, b"[" * 100_000))
    reply = await _get(Remote(client), f"{server.url}/deep")

    with pytest.raises(RemoteError, match="nested deeper") as caught:
        reply.json()

    assert caught.value.kind == "protocol"
