"""The clients the engine makes, and their aiohttp sessions: no cookies, h11's head limits."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

import httpx

from engine._core.reply import where
from engine._errors import RemoteError

if TYPE_CHECKING:
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

__all__ = ["ACCEPT_ENCODING", "MAX_HEAD_LINE", "aiohttp_session", "default_client"]

#: The content codings decoded here, and so the only ones advertised.
ACCEPT_ENCODING: Final = "gzip, deflate"
#: The longest response head line (status line or one header) accepted over
#: aiohttp: h11's limit for a whole head (16 KiB), so that any head httpx's
#: own transport accepts is accepted over aiohttp too (aiohttp's own default
#: is 8,190 bytes).
MAX_HEAD_LINE: Final = 16 * 1024


def default_client(max_connections: int = 64) -> httpx.AsyncClient:
    """Return the client the engine creates when none is given.

    Uses httpx-aiohttp's transport when it is installed (the ``fast`` extra):
    measured on loopback with 50 requests in flight, the engine made ~2,500
    polls/s over it against ~150 over httpx's default pool, whose connection
    assignment scans every connection for every queued request. Its
    ``aiohttp.ClientSession`` is made inside the running loop on first use,
    with a ``DummyCookieJar``: the engine keeps no cookies. Redirects are
    never followed by httpx: the engine follows them itself so that every hop
    is checked against the spec's host before credentials go out.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    transport: httpx.AsyncBaseTransport | None
    try:
        from httpx_aiohttp import AiohttpTransport  # noqa: PLC0415 - optional extra
    except ImportError:
        transport = None
    else:
        aiohttp_transport = AiohttpTransport(limits=limits)
        # A factory, not a session: a session belongs to the loop it was
        # made in, and this client may be built before any loop runs.
        aiohttp_transport.client = lambda: _cookieless_session(aiohttp_transport)
        transport = aiohttp_transport
    return httpx.AsyncClient(
        limits=limits,
        transport=transport,
        follow_redirects=False,
        timeout=30.0,
        headers={"accept-encoding": ACCEPT_ENCODING},
    )


def _cookieless_session(transport: AiohttpTransport) -> aiohttp.ClientSession:
    """Build the session ``transport`` would build for itself, minus cookies.

    Mirrors ``AiohttpTransport.get_client`` (its limits, TLS context, Unix
    socket and local address), adding a ``DummyCookieJar`` and head-line
    limits as large as h11's.
    """
    import aiohttp  # noqa: PLC0415 - optional extra; imported only with its transport

    limits = transport.limits
    # aiohttp's own default (100) when httpx's limits set none, as get_client does.
    limit = 100 if limits.max_connections is None else limits.max_connections
    connector: aiohttp.BaseConnector
    if transport.uds:
        connector = aiohttp.UnixConnector(
            path=transport.uds, keepalive_timeout=limits.keepalive_expiry, limit=limit
        )
    else:
        local = (transport.local_address, 0) if transport.local_address else None
        connector = aiohttp.TCPConnector(
            keepalive_timeout=limits.keepalive_expiry,
            ssl=transport.ssl_context,
            local_addr=local,
            limit=limit,
        )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        max_line_size=MAX_HEAD_LINE,
        max_field_size=MAX_HEAD_LINE,
    )


def aiohttp_session(
    transport: httpx.AsyncBaseTransport, url: str
) -> aiohttp.ClientSession | None:
    """Return the cookie-free session under ``transport``, if it is httpx-aiohttp's.

    Raises:
        RemoteError: kind ``protocol``, not retryable, when the session keeps
            cookies (it would send back what servers set).
    """
    module = sys.modules.get("httpx_aiohttp")
    # Not imported means no AiohttpTransport exists: nothing to import here.
    if module is None or not isinstance(transport, module.AiohttpTransport):
        return None
    import aiohttp  # noqa: PLC0415 - imported already by httpx_aiohttp

    held = transport.client
    if held is None:
        session = _cookieless_session(transport)
    elif isinstance(held, aiohttp.ClientSession):
        session = held
    else:
        session = held()
    # What the transport itself does on its first request: it keeps the session.
    transport.client = session
    if not isinstance(session.cookie_jar, aiohttp.DummyCookieJar):
        msg = (
            f"refused to send to {where(url)}: the client's aiohttp session keeps "
            "cookies and would send back what servers set; build it with "
            "cookie_jar=aiohttp.DummyCookieJar()"
        )
        raise RemoteError(msg, kind="protocol", retryable=False)
    return session
