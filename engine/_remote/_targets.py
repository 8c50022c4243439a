"""Where a URL goes: checked and parsed once, on the route its origin takes.

A job polls the same URL again and again, and checking and parsing one
costs as much as the rest of its request; ``Targets`` keeps them (bounded),
and picks, once per origin, how requests to it are sent (see ``Remote``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import httpx

from engine._core.reply import where
from engine._errors import RemoteError
from engine._remote._clients import aiohttp_session

if TYPE_CHECKING:
    import aiohttp
    import yarl

__all__ = ["URL_CACHE", "Origin", "Route", "RouteKind", "Target", "Targets", "origin"]

#: How many parsed URLs, header sets and seen URLs are kept at most.
URL_CACHE = 4096

Origin = tuple[str, str, int | None]
RouteKind = Literal["aiohttp", "transport", "client"]


def origin(url: str) -> Origin:
    """Return ``(scheme, host, port)`` with default ports made explicit.

    Raises:
        RemoteError: kind ``protocol``, not retryable, when the port is out
            of range or not a number (or the host an unclosed IPv6 bracket).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        msg = f"invalid URL for {where(url)}: bad port or host"
        raise RemoteError(msg, kind="protocol", retryable=False) from exc
    scheme = parts.scheme.lower()
    port = port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


class Route:
    """How requests to one origin are sent (see ``Remote``)."""

    __slots__ = ("kind", "resolves_dots", "session", "transport")

    def __init__(
        self,
        kind: RouteKind,
        *,
        session: aiohttp.ClientSession | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        resolves_dots: bool = False,
    ) -> None:
        self.kind: RouteKind = kind
        self.session = session
        self.transport = transport
        #: The transport under httpx turns the URL into a yarl URL from its
        #: text, which decodes %2E and resolves the dot segment it makes.
        self.resolves_dots = resolves_dots


class Target:
    """One URL, checked and parsed, with the route its origin takes."""

    __slots__ = ("route", "text", "url", "yarl_url")

    def __init__(
        self, route: Route, text: str, url: httpx.URL, yarl_url: yarl.URL | None
    ) -> None:
        self.route = route
        #: The URL as the reply reports it: the engine's own, or with the
        #: query parameters merged in.
        self.text = text
        self.url = url
        #: The same URL for aiohttp (on the aiohttp route only).
        self.yarl_url = yarl_url


class Targets:
    """Checked, parsed, routed URLs, kept for reuse (see ``get``)."""

    def __init__(self, client: httpx.AsyncClient, direct: Callable[[], bool]) -> None:
        """Route ``client``'s requests; ``direct`` says whether they may skip ``client.send``."""
        self.client = client
        self._direct = direct
        self.routes: dict[Origin, Route] = {}
        self.kept: dict[object, Target] = {}
        self.seen: set[object] = set()

    def get(self, url: str, params: Mapping[str, str] | None) -> Target:
        """Return ``url`` (with ``params`` merged) checked, parsed and routed."""
        key: object = (url, *params.items()) if params else url
        target = self.kept.get(key)
        if target is not None:
            return target
        target = self._new_target(url, params)
        # Kept only on its second use within the last URL_CACHE URLs: a job
        # polled again and again gets its parse reused, while 100,000 jobs
        # polled once a minute never fill the cache with parsed URLs that
        # would each live long enough to reach the garbage collector's oldest
        # generation (and make its full collections frequent). The keys in
        # _seen (strings and tuples of strings) are not tracked by it.
        if key in self.seen:
            if len(self.kept) >= URL_CACHE:
                self.kept.clear()
            self.kept[key] = target
        else:
            if len(self.seen) >= URL_CACHE:
                self.seen.clear()
            self.seen.add(key)
        return target

    def _new_target(self, url: str, params: Mapping[str, str] | None) -> Target:
        scheme, host, port = origin(url)
        if scheme not in {"http", "https"} or not host:
            msg = f"invalid URL for {where(url)}: not http(s) with a host"
            raise RemoteError(msg, kind="protocol", retryable=False)
        try:
            parsed = httpx.URL(url)
            if params:
                parsed = parsed.copy_merge_params(params)
        except httpx.InvalidURL as exc:
            msg = f"invalid URL for {where(url)}"
            raise RemoteError(msg, kind="protocol", retryable=False) from exc
        route = self.routes.get((scheme, host, port))
        if route is None:
            route = self.routes[scheme, host, port] = self._new_route(parsed, url)
        if route.resolves_dots and has_encoded_dot_segment(parsed.raw_path):
            msg = (
                f"refused to send {where(url)} through an aiohttp transport behind "
                "client.send: it would resolve the encoded dot segment"
            )
            raise RemoteError(msg, kind="protocol", retryable=False)
        text = str(parsed) if params else url
        yarl_url = None
        if route.kind == "aiohttp":
            import yarl  # noqa: PLC0415 - present whenever an aiohttp route is

            # encoded=True: sent as httpx would send it, byte for byte; from
            # text, yarl would decode %2E%2E and resolve it as "..".
            yarl_url = yarl.URL(str(parsed), encoded=True)
        return Target(route, text, parsed, yarl_url)

    def _new_route(self, parsed: httpx.URL, url: str) -> Route:
        direct = self._direct()
        client = self.client
        transport: httpx.AsyncBaseTransport | None = None
        if hasattr(client, "_transport_for_url"):
            # Private, hence the hasattr(): the client's mounts (proxies,
            # per-host transports) pick the transport for a URL.
            transport = client._transport_for_url(parsed)  # noqa: SLF001
        session = aiohttp_session(transport, url) if transport is not None else None
        if not direct:
            return Route("client", resolves_dots=session is not None)
        assert transport is not None  # noqa: S101 - direct() checked _transport_for_url
        if session is not None and getattr(transport, "proxy", None) is None:
            return Route("aiohttp", session=session)
        return Route(
            "transport", transport=transport, resolves_dots=session is not None
        )


def has_encoded_dot_segment(path: bytes) -> bool:
    """Whether a path has a segment that decodes to ``.`` or ``..``."""
    return any(
        b"%" in segment and segment.lower().replace(b"%2e", b".") in {b".", b".."}
        for segment in path.split(b"/")
    )
