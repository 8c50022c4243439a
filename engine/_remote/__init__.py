"""The HTTP boundary, the only importer of httpx and aiohttp: send, bound, decode, map exceptions.

This package is the boundary: ``_body`` decodes and caps bodies (pure),
``_faults`` maps every foreign exception once, and this module sends.

Every request the engine makes goes through ``Remote.send``, which

- bounds the whole exchange (connect, headers, whole body) by one deadline,
  and releases the connection on every way out;
- caps the body as decoded: gzip and deflate are inflated here, 64 KiB at a
  time, each piece counted against the cap before the next is made; any
  other coding is refused, and only ``gzip, deflate`` is advertised;
- sends every URL byte for byte as the engine built it (``%2E%2E`` stays one
  literal segment), follows no redirect and keeps no cookie;
- translates foreign exceptions once, here, into ``RemoteError`` (httpx's
  ``map_httpcore_exceptions`` pattern): ``transport`` when retrying may help
  (refused, reset, stalled, cut short), ``protocol`` for what the server got
  wrong (a malformed head, a body over the cap or undecodable) and, not
  retryable, for what no retry can fix (an invalid URL, a client that keeps
  cookies).

Messages name the host and path only: query strings and next links can carry
tokens.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import httpx

from engine._core.reply import Reply, where
from engine._core.wire import encode_path_value
from engine._errors import RemoteError
from engine._remote._body import Body, header_dict
from engine._remote._clients import (
    ACCEPT_ENCODING,
    MAX_HEAD_LINE,
    default_client,
)
from engine._remote._faults import classify, timed_out
from engine._remote._targets import URL_CACHE, Target, Targets, origin

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_MAX_BODY",
    "MAX_HEAD_LINE",
    "Remote",
    "Reply",
    "Signer",
    "default_client",
    "encode_path_value",
    "header_map",
    "origin",
    "where",
]

#: Response bodies larger than this, as decoded, are refused (protocol error).
DEFAULT_MAX_BODY = 8 * 1024 * 1024
#: Parsed URLs (and prepared header sets) kept for reuse.
# RFC 9110 5.1 and 5.5: a field name is a token; a value is tab, space and
# visible ASCII (obs-text is not sent).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e]*")
# httpx's default Accept-Encoding (which adds br and zstd when their packages
# are installed): replaced by what this module decodes. A value the caller
# chose is left alone.
_HTTPX_ACCEPT_ENCODING: Final[str | None] = getattr(
    sys.modules.get("httpx._client"), "ACCEPT_ENCODING", None
)

Headers = tuple[tuple[str, str], ...]
#: Signs a request: (method, URL, headers to sign, body) -> headers to add.
#: May raise only ``RemoteError``.
Signer = Callable[[str, str, Headers, bytes], Headers]


class Remote:
    """Sends requests through one ``httpx.AsyncClient`` and reads replies.

    The engine does by itself what ``AsyncClient.send`` adds on top of the
    transport: it follows redirects hop by hop, puts its credential on each
    request to the spec's own host, and keeps no cookies. So requests take
    one of three routes, chosen once per origin (scheme, host, port):

    - ``aiohttp``: the transport the client's mounts pick for the URL is
      httpx-aiohttp's ``AiohttpTransport`` (what ``default_client`` makes)
      with no proxy, and the client has no ``auth``, event hooks or cookies
      of its own: the request goes straight through the transport's
      ``aiohttp.ClientSession``, building no httpx request or response;
    - ``transport``: any other transport, same conditions: an
      ``httpx.Request`` handed to the transport, skipping the client's URL
      merging and its auth, redirect and cookie generators;
    - ``client``: the client has auth, event hooks or cookies (or is an httpx
      without the private ``_transport_for_url``): ``client.send``, so that
      what the caller configured applies. Its cookie jar is read once, on
      the first request: cookies a server sets later are never sent back.

    Every route sends absolute URLs under ``send``'s own deadline. On the
    first two, the client's ``base_url``, ``params`` and ``timeout`` do not
    apply, and its headers are read the first time each distinct header set
    is sent.

    An ``AiohttpTransport`` whose session keeps cookies (aiohttp's default
    jar) is refused with a ``RemoteError`` (protocol, not retryable) that
    says how to build it. One with no session yet gets the session it would
    have made, with a ``DummyCookieJar``. On the ``client`` route such a
    transport would resolve an encoded dot segment, so those URLs are refused
    there rather than sent to the parent path.
    """

    def __init__(
        self, client: httpx.AsyncClient, *, max_body: int = DEFAULT_MAX_BODY
    ) -> None:
        """Use ``client`` (not owned: the caller closes it)."""
        self.client = client
        self.max_body = max_body
        self._direct: bool | None = None
        self._cookies: httpx.Cookies | None = None
        # Kept for reuse: a job polls the same URL again and again, and
        # checking and parsing one costs as much as the rest of its request.
        self._targets = Targets(client, self.direct)
        self._headers: dict[tuple[tuple[str, str], ...], httpx.Headers] = {}
        self._checked: set[tuple[tuple[str, str], ...]] = set()
        self._aiohttp_headers: dict[tuple[tuple[str, str], ...], Any] = {}
        self._timeouts: dict[float, dict[str, float | None]] = {}
        self._no_aiohttp_timeout: aiohttp.ClientTimeout | None = None

    def direct(self) -> bool:
        """Whether requests may skip ``client.send`` (see the class docstring).

        Decided on the first request, from the client as it is then: looking
        at its auth, hooks and cookie jar on every request costs as much as
        the engine's own work on a poll.
        """
        if self._direct is None:
            client = self.client
            hooks = client.event_hooks
            self._cookies = httpx.Cookies(client.cookies)
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
        sign: Signer | None = None,
    ) -> Reply:
        """Send one request and read its reply (no redirects followed).

        ``headers`` are the request's own, as a tuple so that the prepared
        headers (the client's merged with these) are built once per distinct
        set; they override the client's headers of the same name.
        ``timeout`` bounds the whole exchange: connecting, sending, the
        response head and the whole body. ``sign``, when given, gets the
        request as it will go out (the URL with its query, the request's own
        headers, a body's content type and Host, the encoded body) and
        returns the headers that sign it; the body is then sent as exactly
        those bytes, on every route.

        Raises:
            RemoteError: kind ``transport`` for connection faults, a body cut
                short and no complete answer within ``timeout``; ``protocol``
                for a malformed response head, a body over the cap (as
                decoded) or undecodable, and (not retryable) an invalid URL
                or a client that would keep cookies.
        """
        target = self._targets.get(url, params)
        if headers not in self._checked:
            _check_headers(headers, url)
            if len(self._checked) >= URL_CACHE:
                self._checked.clear()
            self._checked.add(headers)
        try:
            # None: not signed (headers kept for reuse); b"": signed, no body.
            content: bytes | None = None
            if sign is not None:
                headers, content = _signed(
                    target,
                    method,
                    headers,
                    json_body=json_body,
                    data=data,
                    files=files,
                    sign=sign,
                )
                json_body = data = files = None
            async with asyncio.timeout(timeout):
                if target.route.kind == "aiohttp":
                    return await self._via_aiohttp(
                        target,
                        method=method,
                        headers=headers,
                        json_body=json_body,
                        data=data,
                        files=files,
                        content=content,
                    )
                return await self._via_httpx(
                    target,
                    method=method,
                    headers=headers,
                    json_body=json_body,
                    data=data,
                    files=files,
                    timeout=timeout,
                    content=content,
                )
        except RemoteError:
            raise
        except TimeoutError as exc:
            # The deadline above (or aiohttp's own timeouts, TimeoutErrors too).
            raise timed_out(where(url), timeout) from exc
        except Exception as exc:
            error = classify(exc, url, timeout=timeout, answered=False)
            if error is None:
                raise
            raise error from exc

    # -- the routes ----------------------------------------------------------------------

    async def _via_aiohttp(
        self,
        target: Target,
        *,
        method: str,
        headers: tuple[tuple[str, str], ...],
        json_body: Any,
        data: Mapping[str, Any] | None,
        files: Mapping[str, Any] | None,
        content: bytes | None,
    ) -> Reply:
        session = target.route.session
        url = target.yarl_url
        # Both set on the aiohttp route, by _new_route and _new_target.
        assert session is not None  # noqa: S101 - narrows the type
        assert url is not None  # noqa: S101 - narrows the type
        sent: Any
        if content is not None:
            # Signed: headers differ on every request, so none is kept.
            sent = self._prepared(headers, keep=False).multi_items()
            content = content or None
        elif json_body is None and data is None and files is None:
            sent = self._aiohttp_prepared(headers)
        else:
            # httpx encodes the body (JSON, form, multipart) exactly as it
            # would on the other routes; aiohttp sends the bytes.
            request = httpx.Request(
                method,
                target.text,
                headers=self._prepared(headers),
                json=json_body,
                data=data,
                files=files,
            )
            content = request.read()
            sent = request.headers.multi_items()
        response = await session.request(
            method,
            url,
            headers=sent,
            data=content,
            allow_redirects=False,
            auto_decompress=False,
            raise_for_status=False,
            timeout=self._aiohttp_timeout(),
            max_line_size=MAX_HEAD_LINE,
            max_field_size=MAX_HEAD_LINE,
        )
        try:
            got = header_dict(response.raw_headers)
            body = Body(self.max_body, got, response.status, target.text)
            stream = response.content
            try:
                while chunk := await stream.readany():
                    body.add(chunk)
            except RemoteError:
                raise
            except Exception as exc:
                error = classify(exc, target.text, timeout=None, answered=True)
                if error is None:
                    raise
                raise error from exc
            result = body.result()
        except BaseException:
            # Closes the connection: a half-read body must not be reused.
            response.close()
            raise
        response.release()
        return Reply(response.status, got, result, target.text)

    async def _via_httpx(
        self,
        target: Target,
        *,
        method: str,
        headers: tuple[tuple[str, str], ...],
        json_body: Any,
        data: Mapping[str, Any] | None,
        files: Mapping[str, Any] | None,
        timeout: float,
        content: bytes | None,
    ) -> Reply:
        route = target.route
        if route.transport is not None and route.kind == "transport":
            request = httpx.Request(
                method,
                target.url,
                headers=self._prepared(headers, keep=content is None),
                content=content or None,
                json=json_body,
                data=data,
                files=files,
                extensions={"timeout": self._timeout(timeout)},
            )
            response = await route.transport.handle_async_request(request)
        else:
            request = self.client.build_request(
                method,
                target.url,
                headers=self._client_headers(headers),
                content=content or None,
                json=json_body,
                data=data,
                files=files,
                timeout=timeout,
            )
            self._only_given_cookies(request, headers)
            response = await self.client.send(
                request, stream=True, follow_redirects=False
            )
        try:
            got = header_dict(response.headers.raw)
            body = Body(self.max_body, got, response.status_code, target.text)
            stream = response.stream
            chunks: AsyncIterator[bytes] = (
                aiter(stream)
                if isinstance(stream, httpx.AsyncByteStream)
                else response.aiter_raw()
            )
            try:
                async for chunk in chunks:
                    body.add(chunk)
            except RemoteError:
                raise
            except Exception as exc:
                error = classify(exc, target.text, timeout=timeout, answered=True)
                if error is None:
                    raise
                raise error from exc
            result = body.result()
        finally:
            await response.aclose()
        return Reply(response.status_code, got, result, target.text)

    # -- built once: headers, timeouts ---------------------------------------------------

    def _prepared(
        self, headers: tuple[tuple[str, str], ...], *, keep: bool = True
    ) -> httpx.Headers:
        """Return the client's headers merged with ``headers`` (kept for reuse when ``keep``)."""
        prepared = self._headers.get(headers) if keep else None
        if prepared is None:
            prepared = self.client.headers.copy()
            prepared.update(dict(headers))
            if prepared.get("accept-encoding") in {None, _HTTPX_ACCEPT_ENCODING} and (
                not _names(headers, "accept-encoding")
            ):
                prepared["accept-encoding"] = ACCEPT_ENCODING
            if keep:
                if len(self._headers) >= URL_CACHE:
                    self._headers.clear()
                self._headers[headers] = prepared
        return prepared

    def _aiohttp_prepared(self, headers: tuple[tuple[str, str], ...]) -> Any:
        prepared = self._aiohttp_headers.get(headers)
        if prepared is None:
            from multidict import CIMultiDict  # noqa: PLC0415 - aiohttp's own dependency

            # aiohttp copies a CIMultiDict as it is; anything else it converts
            # on every request.
            prepared = CIMultiDict(self._prepared(headers).multi_items())
            if len(self._aiohttp_headers) >= URL_CACHE:
                self._aiohttp_headers.clear()
            self._aiohttp_headers[headers] = prepared
        return prepared

    def _client_headers(self, headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
        own = dict(headers)
        if self.client.headers.get("accept-encoding") in {
            None,
            _HTTPX_ACCEPT_ENCODING,
        } and not _names(headers, "accept-encoding"):
            own["accept-encoding"] = ACCEPT_ENCODING
        return own

    def _only_given_cookies(
        self, request: httpx.Request, headers: tuple[tuple[str, str], ...]
    ) -> None:
        """Send the cookies the client held on the first request, never later ones.

        ``client.send`` stores every cookie a server sets in the client's jar,
        and ``build_request`` sends the whole jar; a Cookie header the caller
        put in the headers is theirs and stays.
        """
        if "cookie" in self.client.headers or _names(headers, "cookie"):
            return
        request.headers.pop("cookie", None)
        if self._cookies:
            self._cookies.set_cookie_header(request)

    def _timeout(self, seconds: float) -> dict[str, float | None]:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = httpx.Timeout(seconds).as_dict()
        return timeout

    def _aiohttp_timeout(self) -> aiohttp.ClientTimeout:
        timeout = self._no_aiohttp_timeout
        if timeout is None:
            import aiohttp  # noqa: PLC0415 - present whenever an aiohttp route is

            # None of aiohttp's own: the deadline around send() bounds the
            # whole exchange, and a session's default (300 s) must not apply.
            timeout = self._no_aiohttp_timeout = aiohttp.ClientTimeout()
        return timeout


def _signed(
    target: Target,
    method: str,
    headers: Headers,
    *,
    json_body: Any,
    data: Mapping[str, Any] | None,
    files: Mapping[str, Any] | None,
    sign: Signer,
) -> tuple[Headers, bytes]:
    """Encode the body once and sign the request; return the headers to send and the body.

    What is signed is what every route sends unchanged: the request's own
    headers, the body's content type (a multipart boundary included) and
    Host. The client's default headers (Accept, User-Agent, Connection) are
    not signed: a transport may rewrite them.
    """
    request = httpx.Request(
        method, target.url, headers=headers, json=json_body, data=data, files=files
    )
    body = request.read()
    own = list(headers)
    content_type = request.headers.get("content-type")
    if content_type is not None and not _names(headers, "content-type"):
        own.append(("content-type", content_type))
    signed = (*own, ("host", request.headers["host"]))
    added = sign(method, target.text, signed, body)
    # Host is left to the transport, which writes the same value.
    return (*own, *added), body


def _check_headers(headers: tuple[tuple[str, str], ...], url: str) -> None:
    """Refuse a header HTTP cannot carry, before either transport sees it.

    Raises:
        RemoteError: kind ``protocol``, not retryable: a name that is not a
            token, or a value with a character outside tab, space and
            visible ASCII (h11 and aiohttp refuse them differently; a CR or
            LF would inject a header). The value is never quoted: it may
            be a credential.
    """
    for name, value in headers:
        if _TOKEN.fullmatch(name) is None or _FIELD_VALUE.fullmatch(value) is None:
            msg = (
                f"could not send a valid request to {where(url)}: header "
                f"{name[:40]!r} has a character HTTP does not allow"
            )
            raise RemoteError(msg, kind="protocol", retryable=False)


def _names(headers: tuple[tuple[str, str], ...], name: str) -> bool:
    """Whether ``headers`` has a header called ``name`` (lower case), in any case."""
    return any(key.lower() == name for key, _ in headers)


def header_map(headers: httpx.Headers) -> dict[str, str]:
    """Return ``headers`` as a dict keyed by lower-case name (repeats joined by ", ")."""
    return header_dict(headers.raw)
