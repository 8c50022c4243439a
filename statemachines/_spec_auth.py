"""The spec model's credentials: the three shapes of ``service.auth``.

Secrets are never in the model: each shape names the environment variables
they are read from.
"""

from __future__ import annotations

from typing import Literal

import attrs

from ._spec_base import loc as _loc

__all__ = ["Auth", "AwsSigV4", "OAuth2ClientCredentials"]


@attrs.frozen(kw_only=True)
class Auth:
    """Credentials: an environment variable's value sent in one header."""

    header: str
    env: str
    scheme: str | None = None
    required: bool = True

    @property
    def kind(self) -> Literal["header"]:
        """The spec's ``auth.kind`` for this shape."""
        return "header"


@attrs.frozen(kw_only=True)
class OAuth2ClientCredentials:
    """Credentials: a bearer token from an OAuth2 token endpoint (RFC 6749 §4.4).

    The client id and secret are read from the environment variables named
    here, never from the spec. ``token_url`` is absolute, or a path on the
    service's own host (``/oauth/token``).
    """

    token_url: str
    client_id_env: str
    client_secret_env: str
    token_url_env: str | None = None
    scope: str | None = None
    #: Further form parameters of the token request (``audience``, ``resource``).
    params: tuple[tuple[str, str], ...] = ()
    client_auth: Literal["basic", "form"] = "basic"
    refresh_margin: float = attrs.field(default=60.0, validator=attrs.validators.ge(0))
    location: str = _loc()

    @property
    def kind(self) -> Literal["oauth2_client_credentials"]:
        """The spec's ``auth.kind`` for this shape."""
        return "oauth2_client_credentials"


@attrs.frozen(kw_only=True)
class AwsSigV4:
    """Credentials: every request signed with AWS Signature Version 4.

    The keys come from ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and
    ``AWS_SESSION_TOKEN``; the region from ``region_env`` when it is set,
    else ``region``.
    """

    #: The service's signing name (``execute-api``, ``batch``).
    service: str
    region: str | None = None
    region_env: str | None = None
    location: str = _loc()

    @property
    def kind(self) -> Literal["aws_sigv4"]:
        """The spec's ``auth.kind`` for this shape."""
        return "aws_sigv4"
