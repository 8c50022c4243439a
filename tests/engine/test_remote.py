"""``engine._remote``: the direct path to the transport, headers, bodies, errors."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

import engine._remote._targets as targets_module
from engine import RemoteError
from engine._remote import Remote, header_map

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx.Request], httpx.Response]
JSON = {"content-type": "application/json"}


def _recording(seen: list[httpx.Request], body: bytes = b'{"ok":true}') -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body, headers=JSON)

    return handle


async def test_direct_path_merges_client_headers_without_duplicates() -> None:
    """Straight to the transport: the client's headers under the request's, the spec's timeout."""
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_recording(seen)), headers={"user-agent": "ua/1"}
    ) as client:
        remote = Remote(client)
        assert remote.direct()
        reply = await remote.send(
            "GET",
            "https://api.test/jobs/1",
            headers=(("accept", "application/json"), ("x-key", "k")),
            timeout=5.0,
        )
    (request,) = seen
    # The spec's Accept replaces the client's default instead of being sent twice.
    assert request.headers.get_list("accept") == ["application/json"]
    assert request.headers["user-agent"] == "ua/1"
    assert request.headers["x-key"] == "k"
    assert request.extensions["timeout"] == {
        "connect": 5.0,
        "read": 5.0,
        "write": 5.0,
        "pool": 5.0,
    }
    assert reply.status == 200
    assert reply.json() == {"ok": True}
    assert reply.url == "https://api.test/jobs/1"


async def test_direct_path_honours_the_clients_mounts() -> None:
    """The transport for each URL is the one the client's mounts pick."""
    default: list[httpx.Request] = []
    mounted: list[httpx.Request] = []
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_recording(default)),
        mounts={"https://other.test": httpx.MockTransport(_recording(mounted))},
    ) as client:
        remote = Remote(client)
        for url in ("https://api.test/a", "https://other.test/b", "https://api.test/c"):
            await remote.send("GET", url, headers=(), timeout=1.0)
    assert [r.url.path for r in default] == ["/a", "/c"]
    assert [r.url.path for r in mounted] == ["/b"]


async def test_query_parameters_are_sent_and_kept_in_the_reply_url() -> None:
    """Parameters go on the wire, and the reply's URL is the one sent."""
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_recording(seen))
    ) as client:
        reply = await Remote(client).send(
            "GET",
            "https://api.test/docs",
            headers=(),
            params={"$top": "10", "$skip": "20"},
            timeout=1.0,
        )
    assert dict(seen[0].url.params) == {"$top": "10", "$skip": "20"}
    assert reply.url == str(seen[0].url)


async def test_a_client_with_event_hooks_or_auth_is_used_through_send() -> None:
    """What the caller configured on the client (hooks, auth) is not bypassed."""
    seen: list[httpx.Request] = []
    hooked: list[str] = []

    async def on_request(request: httpx.Request) -> None:
        hooked.append(request.url.path)

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_recording(seen)),
        event_hooks={"request": [on_request]},
    ) as client:
        remote = Remote(client)
        assert not remote.direct()
        await remote.send("GET", "https://api.test/x", headers=(), timeout=1.0)
    assert hooked == ["/x"]
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_recording(seen)), auth=("user", "pass")
    ) as client:
        remote = Remote(client)
        assert not remote.direct()
        await remote.send("GET", "https://api.test/y", headers=(), timeout=1.0)
    assert seen[-1].headers["authorization"].startswith("Basic ")


async def test_reply_headers_are_lower_case_with_repeats_joined() -> None:
    """Reply headers: a plain dict keyed in lower case, repeats joined as httpx joins them."""

    def handle(_request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            302,
            headers=[("Location", "/next"), ("X-Tag", "a"), ("x-tag", "b")],
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        reply = await Remote(client).send(
            "GET", "https://api.test/", headers=(), timeout=1.0
        )
    assert reply.headers["location"] == "/next"
    assert reply.headers["x-tag"] == "a, b"
    assert "Location" not in reply.headers
    assert reply.json() is None  # an empty body
    assert header_map(httpx.Headers([("A", "1"), ("a", "2"), ("B", "3")])) == {
        "a": "1, 2",
        "b": "3",
    }


async def test_encoded_bodies_are_decoded_and_plain_ones_read_as_sent() -> None:
    """A gzip body is decoded; a plain one is read from the stream as is."""
    payload = json.dumps({"status": "Running"}).encode()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/gzip":
            return httpx.Response(
                200,
                content=gzip.compress(payload),
                headers={**JSON, "content-encoding": "gzip"},
            )
        return httpx.Response(200, content=payload, headers=JSON)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        remote = Remote(client)
        for path in ("/gzip", "/plain"):
            reply = await remote.send(
                "GET", f"https://api.test{path}", headers=(), timeout=1.0
            )
            assert reply.body == payload
            assert reply.json() == {"status": "Running"}


async def _chunks(count: int, size: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield b"x" * size


async def test_bodies_over_the_cap_are_refused_declared_or_streamed() -> None:
    """Over the cap is refused, whether the length is declared up front or not."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/declared":
            return httpx.Response(200, content=b"y" * 100)
        # No Content-Length: only counting the bytes as they come can stop it.
        return httpx.Response(200, content=_chunks(10, 20))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        remote = Remote(client, max_body=50)
        for path, words in (
            ("/declared", "100 bytes"),
            ("/streamed", "over the 50-byte cap"),
        ):
            with pytest.raises(RemoteError, match=words) as caught:
                await remote.send(
                    "GET", f"https://api.test{path}", headers=(), timeout=1.0
                )
            assert caught.value.kind == "protocol"
            assert caught.value.status == 200


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (
            httpx.ConnectError("refused"),
            "connection to api.test/x failed: ConnectError",
        ),
        (httpx.ReadTimeout("slow"), "no complete answer from api.test/x within 1 s"),
        (
            ConnectionResetError(),
            "connection to api.test/x failed: ConnectionResetError",
        ),
    ],
)
async def test_transport_faults_become_retryable_remote_errors(
    fault: Exception, words: str
) -> None:
    """Connection faults and timeouts: retryable transport errors naming host and path only."""

    def handle(_request: httpx.Request) -> httpx.Response:
        raise fault

    async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(RemoteError, match=words) as caught:
            await Remote(client).send(
                "GET", "https://api.test/x?sig=secret", headers=(), timeout=1.0
            )
    assert caught.value.kind == "transport"
    assert caught.value.retryable
    assert "secret" not in str(caught.value)  # messages never carry the query


async def test_the_parsed_url_cache_keeps_reused_urls_and_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """URLs sent again are parsed once; a stream of new ones neither grows nor fills it."""
    monkeypatch.setattr(targets_module, "URL_CACHE", 8)
    parsed: list[str] = []
    real_url = httpx.URL

    def counting_url(url: str) -> httpx.URL:
        parsed.append(url)
        return real_url(url)

    # Only engine._remote's own parses are counted (httpx's models keep theirs).
    monkeypatch.setattr(httpx, "URL", counting_url)
    seen: list[httpx.Request] = []
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(_recording(seen))
    ) as client:
        remote = Remote(client)
        for i in range(30):
            await remote.send(
                "GET", f"https://api.test/jobs/{i}", headers=(), timeout=1.0
            )
        # Each URL used once: nothing parsed is kept, and what was seen is bounded.
        assert remote._targets.kept == {}
        assert len(remote._targets.seen) <= 8
        hot = [f"https://api.test/hot/{i}" for i in range(4)]
        remote = Remote(client)
        parsed.clear()
        for _ in range(5):
            for url in hot:
                await remote.send("GET", url, headers=(), timeout=1.0)
        # Parsed on the first and second use, then reused.
        assert sorted(parsed) == sorted(hot * 2)
        assert sorted(map(str, remote._targets.kept)) == hot
    assert [str(r.url) for r in seen[30:]] == hot * 5
