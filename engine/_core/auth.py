"""OAuth2 client credentials as decisions: the token request, what its answer means, when to renew.

Fetching a token is I/O, so it is the driver's (``engine._auth``); this
module decides, on plain values, everything around it: where the token
endpoint is, what a token request carries (RFC 6749 §4.4, the client
authenticated by HTTP Basic or in the form), whether a redirect of it may be
followed (only to the same origin: the client secret goes nowhere else),
what the endpoint's answer means (a grant, or an error that is fatal or
worth retrying), and when a grant is due for renewal.

Every message here names host and path only, and passes what the server
wrote through the caller's redactor.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import quote_plus, urljoin, urlsplit

import attrs

from engine._core.binding import origin_of
from engine._core.reply import Reply, where
from engine._errors import RemoteError
from statemachines import OAuth2ClientCredentials

__all__ = [
    "FATAL_HOLD",
    "Grant",
    "TokenRequest",
    "read_grant",
    "token_error",
    "token_redirect",
    "token_request",
    "token_url",
]

#: How long (seconds, times the time scale) a fatal answer of the token endpoint
#: stands for every job before the endpoint is asked again: 10,000 jobs that
#: start with wrong credentials make one token request, not 10,000.
FATAL_HOLD: Final = 60.0
#: RFC 6749 §5.2 error codes no retry can fix.
_FATAL_CODES: Final = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
    }
)
#: Statuses a later attempt may get past.
_TRANSIENT: Final = frozenset({408, 425, 429})
# RFC 6750 §2.1 allows token68 characters only; any visible ASCII but a space
# is taken (opaque tokens vary), and nothing that could break a header.
_TOKEN: Final = re.compile(r"[\x21-\x7e]+")
_MAX_TEXT: Final = 200


@attrs.frozen(kw_only=True)
class TokenRequest:
    """What a token request carries: its headers and its form (both hold the secret)."""

    headers: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    form: tuple[tuple[str, str], ...] = attrs.field(repr=False)
    #: The values to redact: the secret and the Basic credential built from it.
    secrets: tuple[str, ...] = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class Grant:
    """A bearer token and when it is due for renewal (times on the engine's clock)."""

    token: str = attrs.field(repr=False)
    obtained: float
    #: ``None``: the server said nothing of expiry; renewed only on a 401.
    expires_at: float | None = None
    refresh_at: float | None = None

    def due(self, now: float) -> bool:
        """Whether the grant should be renewed before it is used at ``now``."""
        return self.refresh_at is not None and now >= self.refresh_at

    @property
    def header(self) -> tuple[str, str]:
        """The header that carries it (RFC 6750 §2.1)."""
        return ("Authorization", f"Bearer {self.token}")


def token_url(
    auth: OAuth2ClientCredentials, base_url: str, override: str | None
) -> str:
    """Return the token endpoint: the override, else the spec's (a path: on the base URL's host)."""
    url = override or auth.token_url
    if url.startswith("/") and not url.startswith("//"):
        parts = urlsplit(base_url)
        return f"{parts.scheme}://{parts.netloc}{url}"
    return url


def token_request(
    auth: OAuth2ClientCredentials, client_id: str, client_secret: str
) -> TokenRequest:
    """Return the client credentials grant request (RFC 6749 §4.4.2).

    With ``client_auth`` ``basic`` the id and secret are form-encoded, joined
    by a colon and sent as HTTP Basic (RFC 6749 §2.3.1); with ``form`` they
    are form fields. Scope and the spec's extra parameters follow.
    """
    headers = [("Accept", "application/json")]
    form = [("grant_type", "client_credentials")]
    secrets = [client_secret]
    if auth.client_auth == "basic":
        pair = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
        basic = base64.b64encode(pair.encode()).decode("ascii")
        headers.append(("Authorization", f"Basic {basic}"))
        secrets.append(basic)
    else:
        form += [("client_id", client_id), ("client_secret", client_secret)]
    if auth.scope is not None:
        form.append(("scope", auth.scope))
    form.extend(auth.params)
    return TokenRequest(
        headers=tuple(headers), form=tuple(form), secrets=tuple(secrets)
    )


def token_redirect(reply: Reply, url: str) -> str | None:
    """Return where a redirect of the token request leads, when it may be followed.

    Only 307 and 308 keep the POST and its form, and only a target on the
    same origin may receive the client secret.

    Raises:
        RemoteError: kind ``auth``, not retryable: a redirect elsewhere, or
            one that would turn the POST into a GET.
    """
    if not 300 <= reply.status < 400:
        return None
    location = reply.headers.get("location")
    if reply.status not in (307, 308) or not location:
        msg = (
            f"token endpoint {where(url)} answered HTTP {reply.status}; a token "
            "request is only redirected by 307/308 with a Location"
        )
        raise RemoteError(msg, kind="auth", status=reply.status, retryable=False)
    target = urljoin(url, location)
    if origin_of(target) != origin_of(url):
        msg = (
            f"token endpoint {where(url)} redirected to another host "
            f"({where(target)}); the client secret goes only to "
            f"{urlsplit(url).hostname}"
        )
        raise RemoteError(msg, kind="auth", status=reply.status, retryable=False)
    return target


def read_grant(
    reply: Reply,
    *,
    now: float,
    margin: float,
    text: Callable[[str], str],
) -> Grant:
    """Return the grant a token endpoint's 2xx answer holds.

    ``margin`` (seconds) is how long before expiry the grant is renewed, but
    never earlier than half its lifetime: a token that lives 10 s is renewed
    after 5 s, not on every request. ``expires_in`` is the server's, in real
    seconds (not scaled). ``text`` redacts what the server wrote.

    Raises:
        RemoteError: kind ``auth``: an error answer (retryable for 408, 425,
            429, 5xx and codes other than RFC 6749's), or a success without
            a usable bearer token (not retryable).
    """
    url = reply.url
    if not 200 <= reply.status < 300:
        raise token_error(reply, text)
    try:
        body = reply.json()
    except RemoteError as exc:
        msg = f"token endpoint {where(url)} answered HTTP {reply.status} without JSON"
        raise RemoteError(
            msg, kind="auth", status=reply.status, retryable=False
        ) from exc
    fields: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    token = fields.get("access_token")
    kind = fields.get("token_type", "Bearer")
    problem = None
    if not isinstance(token, str) or _TOKEN.fullmatch(token) is None:
        problem = "no usable access_token"
    elif not isinstance(kind, str) or kind.lower() != "bearer":
        problem = f"token_type {text(str(kind))[:40]!r}, not Bearer"
    if problem is not None:
        msg = f"token endpoint {where(url)} answered HTTP {reply.status} with {problem}"
        raise RemoteError(msg, kind="auth", status=reply.status, retryable=False)
    assert isinstance(token, str)  # noqa: S101 - narrows the type: checked above
    lifetime = _seconds(fields.get("expires_in"))
    if lifetime is None:
        return Grant(token=token, obtained=now)
    ahead = min(margin, lifetime / 2)
    return Grant(
        token=token,
        obtained=now,
        expires_at=now + lifetime,
        refresh_at=now + lifetime - ahead,
    )


def token_error(reply: Reply, text: Callable[[str], str]) -> RemoteError:
    """Classify a token endpoint's error answer (RFC 6749 §5.2), kind ``auth``.

    Transient: 408, 425, 429 and 5xx, and an error code RFC 6749 does not
    define (``temporarily_unavailable``). Fatal: the RFC's codes
    (``invalid_client``, ``invalid_scope``…) and every other status.
    """
    code = description = None
    try:
        body = reply.json()
    except RemoteError:
        body = None
    if isinstance(body, Mapping):
        if isinstance(body.get("error"), str):
            code = text(body["error"])[:_MAX_TEXT]
        if isinstance(body.get("error_description"), str):
            description = text(body["error_description"])[:_MAX_TEXT]
    status = reply.status
    if status in _TRANSIENT or status >= 500:
        retryable = True
    elif code is not None:
        retryable = code not in _FATAL_CODES
    else:
        retryable = False
    said = f" {code}" if code else ""
    said += f": {description}" if description else ""
    msg = f"token endpoint {where(reply.url)} refused a token (HTTP {status}{said})"
    return RemoteError(
        msg,
        kind="auth",
        status=status,
        code=code,
        remote_message=description,
        retryable=retryable,
    )


def _seconds(value: Any) -> float | None:
    """Read ``expires_in``: a number, or a numeric string (some servers send one).

    Anything else (absent, a bool, not finite, an int too large for a float)
    reads as "not said": the grant is then renewed on a 401 only.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        seconds = float(value)
    except (ValueError, OverflowError):
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None
