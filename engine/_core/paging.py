"""Item listings: which page comes next, and when a listing ends.

A page names the next one by a link, a cursor (in the query or, for a body
cursor, sent again in the request body), or an offset; the spec's
``stop_when`` ends a listing whatever the page carries, and a page that
names itself is a protocol error rather than a loop until ``max_pages``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import parse_qsl, urlsplit

from engine._core.observe import holds
from engine._core.reply import NO_HEADERS, where
from engine._core.wire import _join, merge_query
from engine._errors import RemoteError
from statemachines import Paging, resolve_pointer

__all__ = ["next_cursor", "next_page"]


def next_page(
    paging: Paging,
    body: Any,
    *,
    url: str,
    base_url: str,
    listed: int,
    count: int,
    status: int = 200,
    headers: Mapping[str, str] = NO_HEADERS,
) -> str | None:
    """Return the next page's URL after a page at ``url``, or ``None`` after the last.

    ``listed`` counts the entries read so far in this listing (this page's
    included), ``count`` this page's entries. The page is the last when the
    spec's ``stop_when`` holds for it (``has_more: false``), whatever cursor
    or link it carries; ``max_pages`` is the caller's to apply.

    Raises:
        RemoteError: (protocol, not retried) the page names itself as the
            next one: its cursor is the one just sent, or its next link is
            its own URL. Following it would read the same page until
            ``max_pages``.
    """
    if paging.stop_when is not None and holds(paging.stop_when, status, headers, body):
        return None
    if paging.kind == "next_link":
        return _next_link(paging, body, url=url, base_url=base_url)
    if paging.kind == "skip":
        full = paging.page_size is None or count >= paging.page_size
        if count and full and paging.skip_param:
            return merge_query(url, {paging.skip_param: str(listed)})
        return None
    return _next_cursor(paging, body, url=url)


def _next_link(paging: Paging, body: Any, *, url: str, base_url: str) -> str | None:
    for pointer in paging.next_pointers:
        link = resolve_pointer(body, pointer)
        if isinstance(link, str) and link:
            # The link carries its own query (skip, top, filters).
            following = _join(base_url, link)
            if following == url:
                _repeated("next link", url)
            return following
    return None


def _next_cursor(paging: Paging, body: Any, *, url: str) -> str | None:
    for pointer in paging.next_pointers:
        token = resolve_pointer(body, pointer)
        if isinstance(token, str) and token and paging.cursor_param:
            if token == _sent(url, paging.cursor_param):
                _repeated("cursor", url)
            return merge_query(url, {paging.cursor_param: token})
    return None


def next_cursor(
    paging: Paging,
    body: Any,
    *,
    sent: str | None,
    url: str,
    status: int = 200,
    headers: Mapping[str, str] = NO_HEADERS,
) -> str | None:
    """Return the cursor a page gives for the next one (sent in a request body), or ``None``.

    ``sent`` is the cursor this page was asked with. As with ``next_page``,
    ``stop_when`` ends the listing whatever cursor the page carries.

    Raises:
        RemoteError: (protocol, not retried) the page gives back the cursor
            it was asked with: following it would read it until ``max_pages``.
    """
    if paging.stop_when is not None and holds(paging.stop_when, status, headers, body):
        return None
    for pointer in paging.next_pointers:
        token = resolve_pointer(body, pointer)
        if isinstance(token, str) and token:
            if token == sent:
                _repeated("cursor", url)
            return token
    return None


def _sent(url: str, param: str) -> str | None:
    """Return the value of query parameter ``param`` in ``url`` (the last one), if any."""
    found = None
    for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True):
        if name == param:
            found = value
    return found


def _repeated(what: str, url: str) -> NoReturn:
    # Neither the cursor nor the URL's query goes into the message: both may be tokens.
    msg = (
        f"the page at {where(url)} gives the same {what} as the page before: "
        "the listing would never end"
    )
    raise RemoteError(msg, kind="protocol", retryable=False)
