"""The only importer of httpx: build requests, pin hosts, cap bodies, map exceptions.

Foreign exceptions are translated once, here, into ``RemoteError`` (httpx's
``map_httpcore_exceptions`` pattern). Messages name the host and path only:
query strings and next links can carry tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ._core.reply import Reply, where
from ._errors import RemoteError

__all__ = [
    "DEFAULT_MAX_BODY",
    "Remote",
    "Reply",
    "default_client",
    "encode_path_value",
    "header_map",
    "origin",
    "where",
]

#: Response bodies larger than this are refused (protocol error).
DEFAULT_MAX_BODY = 8 * 1024 * 1024
#: Parsed URLs (and prepared header sets) kept for reuse.
_URL_CACHE = 4096


def origin(url: str) -> tuple[str, str, int | None]:
    """Return ``(scheme, host, port)`` with default ports made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def encode_path_value(value: object) -> str:
    """Percent-encode one path parameter so it cannot change the path.

    ``/`` is encoded, and so are dot segments: a job id ``..`` or ``../admin``
    must stay one literal segment.
    """
    text = quote(str(value), safe="")
    if text in {".", ".."}:
        return text.replace(".", "%2E")
    return text


def default_client(max_connections: int = 64) -> httpx.AsyncClient:
    """Return the client the engine creates when none is given.

    Uses httpx-aiohttp's transport when it is installed (the ``fast`` extra):
    measured on loopback with 50 requests in flight, the engine made ~2,500
    polls/s over it against ~150 over httpx's default pool, whose connection
    assignment scans every connection for every queued request. Redirects are
    never followed by httpx: the engine follows them itself so that every hop
    is checked against the spec's host before credentials go out.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    try:
        from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415 - optional extra
    except ImportError:
        transport: httpx.AsyncBaseTransport | None = None
    else:
        transport = AiohttpTransport(limits=limits)
    return httpx.AsyncClient(
        limits=limits, transport=transport, follow_redirects=False, timeout=30.0
    )


class Remote:
    """Sends requests through one ``httpx.AsyncClient`` and reads replies.

    The engine does by itself what ``AsyncClient.send`` adds on top of the
    transport: it follows redirects hop by hop, puts its credential on each
    request to the spec's own host, and keeps no cookies. So, when the client
    has no ``auth``, cookies or event hooks of its own, a request goes
    straight to the client's transport (the one its mounts pick for the URL,
    resolved once per origin) with the client's headers and timeouts; that
    skips the client's per-request URL merging and its auth, redirect and
    cookie generators, measured as more than half of a poll's time over a fast
    transport (``bench/throughput.py``). Otherwise, and with any httpx that
    lacks the private ``_transport_for_url``, requests go through
    ``client.send`` so that whatever the caller configured applies.

    Either way the engine sends absolute URLs with the spec's timeout: the
    client's ``base_url``, ``params`` and ``timeout`` do not apply, and its
    headers are read the first time each distinct header set is sent. Which
    path is taken is decided on the first request.
    """

    def __init__(
        self, client: httpx.AsyncClient, *, max_body: int = DEFAULT_MAX_BODY
    ) -> None:
        """Use ``client`` (not owned: the caller closes it)."""
        self.client = client
        self.max_body = max_body
        self._transports: dict[
            tuple[str, str, int | None], httpx.AsyncBaseTransport
        ] = {}
        self._timeouts: dict[float, dict[str, float | None]] = {}
        # Parsed once and reused: a job polls the same URL again and again,
        # and parsing one costs as much as the rest of building its request.
        self._urls: dict[str, httpx.URL] = {}
        self._seen: set[str] = set()
        self._direct: bool | None = None
        self._headers: dict[tuple[tuple[str, str], ...], httpx.Headers] = {}

    def direct(self) -> bool:
        """Whether requests may skip ``client.send`` (see the class docstring).

        Decided on the first request, from the client as it is then: looking
        at its auth, hooks and cookie jar on every request costs as much as
        the engine's own work on a poll.
        """
        if self._direct is None:
            client = self.client
            hooks = client.event_hooks
            self._direct = (
                client.auth is None
                and not hooks["request"]
                and not hooks["response"]
                and not client.cookies
                and hasattr(client, "_transport_for_url")
            )
        return self._direct

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: tuple[tuple[str, str], ...],
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None,
        timeout: float,
    ) -> Reply:
        """Send one request and read its reply (no redirects followed).

        ``headers`` are the request's own, as a tuple so that the prepared
        headers (the client's merged with these) are built once per distinct
        set; they override the client's headers of the same name.

        Raises:
            RemoteError: kind ``transport`` for connection faults and timeouts,
                ``protocol`` for an over-large body or an invalid URL.
        """
        try:
            if self.direct():
                request = httpx.Request(
                    method,
                    self._url(url) if not params else url,
                    params=params,
                    headers=self._prepared(headers),
                    json=json_body,
                    data=data,
                    files=files,
                    extensions={"timeout": self._timeout(timeout)},
                )
                transport = self._transport(request.url)
                response = await transport.handle_async_request(request)
            else:
                request = self.client.build_request(
                    method,
                    url,
                    headers=dict(headers),
                    params=params,
                    json=json_body,
                    data=data,
                    files=files,
                    timeout=timeout,
                )
                response = await self.client.send(
                    request, stream=True, follow_redirects=False
                )
            try:
                got = header_map(response.headers)
                body = await self._read(response, got, url)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            msg = f"timed out talking to {where(url)}"
            raise RemoteError(msg, kind="transport") from exc
        except (httpx.TransportError, OSError) as exc:
            # OSError: an in-process ASGI app that drops the connection raises
            # ConnectionResetError straight through ASGITransport.
            msg = f"connection to {where(url)} failed: {type(exc).__name__}"
            raise RemoteError(msg, kind="transport") from exc
        except httpx.InvalidURL as exc:
            msg = f"invalid URL for {where(url)}"
            raise RemoteError(msg, kind="protocol") from exc
        return Reply(
            response.status_code, got, body, str(request.url) if params else url
        )

    def _url(self, url: str) -> httpx.URL:
        parsed = self._urls.get(url)
        if parsed is not None:
            return parsed
        parsed = httpx.URL(url)
        # Kept only on its second use within the last _URL_CACHE URLs: a job
        # polled again and again gets its parse reused, while 100,000 jobs
        # polled once a minute never fill the cache with parsed URLs that
        # would each live long enough to reach the garbage collector's oldest
        # generation (and make its full collections frequent). The strings
        # in _seen are not tracked by the collector.
        if url in self._seen:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            self._urls[url] = parsed
        else:
            if len(self._seen) >= _URL_CACHE:
                self._seen.clear()
            self._seen.add(url)
        return parsed

    def _prepared(self, headers: tuple[tuple[str, str], ...]) -> httpx.Headers:
        prepared = self._headers.get(headers)
        if prepared is None:
            prepared = self.client.headers.copy()
            prepared.update(dict(headers))
            if len(self._headers) >= _URL_CACHE:
                self._headers.clear()
            self._headers[headers] = prepared
        return prepared

    def _transport(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        key = (url.scheme, url.host, url.port)
        transport = self._transports.get(key)
        if transport is None:
            # Private, hence the hasattr() in direct(): the client's mounts
            # (proxies, per-host transports) pick the transport for a URL.
            transport = self._transports[key] = self.client._transport_for_url(url)  # noqa: SLF001
        return transport

    def _timeout(self, seconds: float) -> dict[str, float | None]:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = httpx.Timeout(seconds).as_dict()
        return timeout

    async def _read(
        self, response: httpx.Response, headers: Mapping[str, str], url: str
    ) -> bytes:
        declared = headers.get("content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.max_body
        ):
            msg = f"response from {where(url)} is {declared} bytes, over the {self.max_body} cap"
            raise RemoteError(msg, kind="protocol", status=response.status_code)
        stream = response.stream
        chunks: AsyncIterator[bytes]
        if "content-encoding" not in headers and isinstance(
            stream, httpx.AsyncByteStream
        ):
            # Nothing to decode: read the stream itself, without the decoder
            # and chunker layers aiter_bytes() stacks on it for every response.
            chunks = aiter(stream)
        else:
            chunks = response.aiter_bytes()
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks:
            size += len(chunk)
            if size > self.max_body:
                msg = f"response from {where(url)} is over the {self.max_body}-byte cap"
                raise RemoteError(msg, kind="protocol", status=response.status_code)
            parts.append(chunk)
        return b"".join(parts)


def header_map(headers: httpx.Headers) -> dict[str, str]:
    """Return ``headers`` as a dict keyed by lower-case name (repeats joined by ", ")."""
    result: dict[str, str] = {}
    for name, value in headers.multi_items():
        seen = result.get(name)
        result[name] = value if seen is None else f"{seen}, {value}"
    return result
