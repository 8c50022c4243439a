"""Foreign exceptions, mapped once into ``RemoteError`` (as httpx's map_httpcore_exceptions).

``transport`` when retrying may help (refused, reset, stalled, cut short),
``protocol`` for what the server got wrong (a malformed head), and, not
retryable, for what no retry can fix (an invalid URL). aiohttp's errors are
read from ``sys.modules``: this module never imports aiohttp itself.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import httpx

from engine._core.reply import where
from engine._errors import RemoteError

__all__ = ["classify", "timed_out"]


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc`` and what it was raised from (httpx wraps httpcore wraps h11).

    Falls back on the exception being handled: httpcore re-raises h11's
    errors in a way that leaves them there, not in ``__cause__``.
    """
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return
        yield current
        current = current.__cause__ or current.__context__


def classify(  # noqa: PLR0911 - one return per class of fault: a table, read top down
    exc: Exception, url: str, *, timeout: float | None, answered: bool
) -> RemoteError | None:
    """Map a transport's exception to a ``RemoteError`` (``None``: not a transport's).

    ``answered``: the response head had arrived, so the fault cut the body
    short (a transport fault on every route, retryable), whatever the
    transport calls it.
    """
    place = where(url)
    chain = list(_causes(exc))
    aiohttp = sys.modules.get("aiohttp")
    parsing = sys.modules.get("aiohttp.http_exceptions")
    if aiohttp is not None and parsing is not None:
        # httpx-aiohttp re-raises aiohttp's errors as httpx ones (a server
        # that hung up becomes ConnectTimeout), or lets them through: the
        # aiohttp error is the one that says what happened.
        foreign = (aiohttp.ClientError, parsing.HttpProcessingError)
        for cause in chain:
            if isinstance(cause, foreign):
                return _from_aiohttp(
                    aiohttp, foreign, cause, place, timeout, answered=answered
                )
    name = type(exc).__name__
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return timed_out(place, timeout)
    if isinstance(exc, (httpx.InvalidURL, httpx.UnsupportedProtocol)):
        msg = f"invalid URL for {place}: {name}"
        return RemoteError(msg, kind="protocol", retryable=False)
    if isinstance(exc, httpx.LocalProtocolError):
        msg = f"could not send a valid request to {place}: {name}"
        return RemoteError(msg, kind="protocol", retryable=False)
    if isinstance(exc, httpx.DecodingError):
        msg = f"response from {place} could not be decoded: {name}"
        return RemoteError(msg, kind="protocol")
    if (
        isinstance(exc, httpx.RemoteProtocolError)
        and not answered
        and any(type(cause).__module__.partition(".")[0] == "h11" for cause in chain)
    ):
        # h11 refused the head (too large, malformed). httpcore raises the
        # same class, without an h11 cause, for a server that hung up.
        msg = f"malformed response head from {place}: {name}"
        return RemoteError(msg, kind="protocol")
    if isinstance(exc, (httpx.TransportError, OSError)):
        # OSError: an in-process ASGI app that drops the connection raises
        # ConnectionResetError straight through ASGITransport.
        msg = f"connection to {place} failed: {name}"
        return RemoteError(msg, kind="transport")
    return None


def _from_aiohttp(
    aiohttp: Any,
    foreign: tuple[type[BaseException], type[BaseException]],
    exc: BaseException,
    place: str,
    timeout: float | None,
    *,
    answered: bool,
) -> RemoteError:
    name = type(exc).__name__
    if isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        msg = f"invalid URL for {place}: {name}"
        return RemoteError(msg, kind="protocol", retryable=False)
    if isinstance(exc, TimeoutError):
        return timed_out(place, timeout)
    if not answered and isinstance(exc, (aiohttp.ClientResponseError, foreign[1])):
        # aiohttp's parser refused the head (a line too long, too many
        # headers, a bad status line): ClientResponseError from the parser's
        # HttpProcessingError. Statuses never raise: raise_for_status=False.
        msg = f"malformed response head from {place}: {name}"
        return RemoteError(msg, kind="protocol")
    msg = f"connection to {place} failed: {name}"
    return RemoteError(msg, kind="transport")


def timed_out(place: str, timeout: float | None) -> RemoteError:
    within = "" if timeout is None else f" within {timeout:g} s"
    msg = f"no complete answer from {place}{within}"
    return RemoteError(msg, kind="transport")
