"""Semantic checks of ``service.auth``: where secrets may go, and what is missing.

Unlike the other themes these read the whole spec, not one lifecycle: a
header that auth sets may be written on the service or on any request.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal
from urllib.parse import urlsplit

from ._checks_requests import all_requests
from .errors import shorten
from .pointer import escape
from .spec import AwsSigV4, OAuth2ClientCredentials, Spec

__all__ = ["Severity", "auth_sound"]

# -- service.auth ------------------------------------------------------------------------

#: Form fields of a token request the spec's own fields set.
_TOKEN_FORM_FIELDS = {
    "grant_type": "the grant is always client_credentials",
    "client_id": "the client id comes from client_id_env",
    "client_secret": "the client secret comes from client_secret_env",
    "scope": "use the 'scope' field",
}
#: Headers each auth kind sets on every request to the service's host.
_AUTH_HEADERS = {
    "oauth2_client_credentials": ("authorization",),
    "aws_sigv4": (
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
    ),
}
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
Severity = Literal["error", "warning"]


def auth_sound(spec: Spec) -> Iterator[tuple[str, str, Severity]]:
    """Check ``service.auth`` beyond its schema: where secrets may go, what is missing."""
    auth = spec.service.auth
    if isinstance(auth, OAuth2ClientCredentials):
        yield from _token_url_sound(auth)
        if auth.client_id_env == auth.client_secret_env:
            yield (
                f"{auth.location}/client_secret_env",
                (
                    f"client_id_env and client_secret_env both name "
                    f"{auth.client_id_env}; the id and the secret are two variables"
                ),
                "error",
            )
        for name, _value in auth.params:
            reason = _TOKEN_FORM_FIELDS.get(name)
            if reason is not None:
                yield (
                    f"{auth.location}/params/{escape(name)}",
                    f"the token request's {name!r} is not a parameter: {reason}",
                    "error",
                )
    elif isinstance(auth, AwsSigV4) and auth.region is None and auth.region_env is None:
        yield (
            auth.location,
            "name the region to sign for: 'region', 'region_env', or both",
            "error",
        )
    if auth is None or auth.kind not in _AUTH_HEADERS:
        return
    taken = _AUTH_HEADERS[auth.kind]
    places = [("/service/headers", spec.service.headers)]
    for lifecycle in spec.lifecycles:
        places.extend(
            (f"{request.location}/headers", request.headers)
            for request in all_requests(lifecycle)
        )
    for at, headers in places:
        for name, _value in headers:
            if name.lower() in taken:
                yield (
                    f"{at}/{escape(name)}",
                    (
                        f"header {shorten(name)!r} is set by auth kind {auth.kind!r} "
                        "on every request; remove it here"
                    ),
                    "error",
                )


def _token_url_sound(
    auth: OAuth2ClientCredentials,
) -> Iterator[tuple[str, str, Severity]]:
    at = f"{auth.location}/token_url"
    url = auth.token_url
    if url.startswith("//"):
        # urljoin would read "//host/path" as another host, not as a path.
        yield (
            at,
            "a path starts with one '/'; for another host write https://HOST/PATH",
            "error",
        )
        return
    if url.startswith("/"):
        return
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        yield at, "not a valid URL: bad port or host", "error"
        return
    if parts.username is not None or parts.password is not None:
        yield (
            at,
            (
                "a token URL carries no user or password: the client id and "
                "secret come from client_id_env and client_secret_env"
            ),
            "error",
        )
    elif not parts.hostname:
        yield at, "a token URL needs a host", "error"
    elif parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        yield (
            at,
            (
                "plain http: the client secret and the token would cross the "
                "network unencrypted; use https"
            ),
            "warning",
        )
