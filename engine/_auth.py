"""Credentials placed per request: OAuth2 bearer tokens and AWS Signature Version 4.

The core decides what a token request carries, what the token endpoint's
answer means and when a grant is due (``engine._core.auth``); this module
does the I/O around those decisions, for the driver's exchange:

- :class:`BearerToken` fetches one token per service and client, shared by
  every job: concurrent requests wait for one fetch, not one each; it is
  renewed before it expires and once on a 401 (the request is then sent
  once more). A failed fetch is logged once and its verdict shared by every
  request that waited for it; a fatal one (``invalid_client``) stands for
  :data:`~engine._core.auth.FATAL_HOLD` seconds. Each token joins the
  engine's live set of secrets the moment it arrives, so no log, error,
  event, audit record or store row shows it.
- :class:`SigV4` signs every request with botocore's ``SigV4Auth`` (the
  ``aws`` extra). This is the only module that imports botocore, and only
  when a spec that signs is bound.

Both are only ever asked to place a credential on a request to the
service's own origin (the exchange decides that, per redirect hop).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Mapping
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from engine._core.auth import (
    FATAL_HOLD,
    Grant,
    read_grant,
    token_redirect,
    token_request,
    token_url,
)
from engine._core.redact import Redactor
from engine._core.reply import Reply, where
from engine._errors import CredentialError, RemoteError
from engine._remote import Remote
from statemachines import AwsSigV4, OAuth2ClientCredentials

__all__ = ["BearerToken", "Credential", "SigV4", "credential_for"]

logger = logging.getLogger("statepoll.auth")

Headers = tuple[tuple[str, str], ...]
#: Redirects of a token request followed at most (307/308 on the same origin).
MAX_TOKEN_REDIRECTS: Final = 3
#: Tokens kept in the live set of secrets: the current one and a few before
#: it (a late echo of a replaced token is still blanked), without the set
#: growing by one string every renewal for as long as a worker runs.
KEEP_TOKENS: Final = 8
#: After a renewal ahead of expiry failed for a passing reason (a 503, a
#: timeout), the token in hand is used for this long (seconds, times the time
#: scale; never past its expiry) before the endpoint is asked again: a busy
#: endpoint gets one renewal attempt per interval, not one per request.
RENEW_RETRY: Final = 5.0
#: What SigV4 adds to a request.
_SIGNATURE_HEADERS: Final = ("Authorization", "X-Amz-Date", "X-Amz-Security-Token")


class Credential(Protocol):
    """Places a credential on a request to the service's own host, and sends it."""

    async def send(
        self,
        remote: Remote,
        method: str,
        url: str,
        *,
        headers: Headers,
        json_body: Any,
        data: Mapping[str, Any] | None,
        files: Mapping[str, Any] | None,
        timeout: float,
        now: float,
    ) -> Reply:
        """Send one request with the credential on it; ``now`` is the engine's clock."""
        ...


class BearerToken:
    """One OAuth2 client's bearer token, fetched once and shared by every job of a service."""

    def __init__(
        self,
        *,
        service: str,
        auth: OAuth2ClientCredentials,
        url: str,
        client_id: str,
        client_secret: str,
        secrets: set[str],
        scale: float,
    ) -> None:
        """Prepare the token request; nothing is sent before the first job needs a token.

        ``secrets`` is the engine's live set: the client secret joins it now,
        each token as it arrives.
        """
        self._service = service
        self._url = url
        self._request = token_request(auth, client_id, client_secret)
        self._margin = auth.refresh_margin * scale
        self._hold = FATAL_HOLD * scale
        self._renew_retry = RENEW_RETRY * scale
        self._secrets = secrets
        secrets.update(self._request.secrets)
        self._redactor = Redactor(secrets=secrets)
        self._tokens: collections.deque[str] = collections.deque()
        self._lock = asyncio.Lock()
        self._grant: Grant | None = None
        #: Fetches finished (either way): a request that waited for one
        #: shares its verdict instead of asking again.
        self._finished = 0
        self._failure: RemoteError | None = None
        self._fatal_until: float | None = None
        #: Until then a grant due for renewal is still used (a renewal failed).
        self._quiet_until: float | None = None
        #: Token requests sent so far (redirect hops not counted).
        self.fetches = 0

    async def send(
        self,
        remote: Remote,
        method: str,
        url: str,
        *,
        headers: Headers,
        json_body: Any,
        data: Mapping[str, Any] | None,
        files: Mapping[str, Any] | None,
        timeout: float,
        now: float,
    ) -> Reply:
        """Send with the current token; on a 401, renew it once and send once more.

        ``timeout`` bounds everything: waiting for a token, fetching it,
        and both sends.

        Raises:
            RemoteError: kind ``auth`` when no token can be had (see
                :func:`engine._core.auth.read_grant`), else as ``Remote.send``.
        """
        loop = asyncio.get_running_loop()
        ends = loop.time() + timeout
        grant = await self.grant(remote, now=now, timeout=timeout)
        reply = await remote.send(
            method,
            url,
            headers=(*headers, grant.header),
            json_body=json_body,
            data=data,
            files=files,
            timeout=_left(loop, ends),
        )
        if reply.status != 401:
            return reply
        grant = await self.grant(
            remote, now=now, timeout=_left(loop, ends), stale=grant
        )
        return await remote.send(
            method,
            url,
            headers=(*headers, grant.header),
            json_body=json_body,
            data=data,
            files=files,
            timeout=_left(loop, ends),
        )

    async def grant(
        self,
        remote: Remote,
        *,
        now: float,
        timeout: float,
        stale: Grant | None = None,
    ) -> Grant:
        """Return a token fit to use at ``now`` (not ``stale``: that one was refused).

        Raises:
            RemoteError: kind ``auth`` (the endpoint's verdict, shared by
                every request that waited for the same fetch), or
                ``transport`` when none came within ``timeout``.
        """
        current = self._grant
        if self._fit(current, now=now, stale=stale):
            assert current is not None  # noqa: S101 - narrows the type: _fit said so
            return current
        seen = self._finished
        try:
            async with asyncio.timeout(timeout), self._lock:
                current = self._grant
                if self._fit(current, now=now, stale=stale):
                    # Renewed by the request this one waited for, or kept
                    # because that renewal failed for a passing reason.
                    assert current is not None  # noqa: S101 - narrows the type
                    return current
                failure = self._failure
                if failure is not None and (
                    self._finished != seen
                    or (self._fatal_until is not None and now < self._fatal_until)
                ):
                    raise _again(failure)
                return await self._fetch(remote, now=now, timeout=timeout, stale=stale)
        except TimeoutError as exc:
            msg = f"no token from {where(self._url)} within {timeout:g} s"
            raise RemoteError(msg, kind="transport") from exc

    async def _fetch(
        self, remote: Remote, *, now: float, timeout: float, stale: Grant | None
    ) -> Grant:
        """Ask the token endpoint once (following same-origin 307/308) and keep the answer."""
        self.fetches += 1
        url = self._url
        try:
            for _hop in range(MAX_TOKEN_REDIRECTS + 1):
                reply = await remote.send(
                    "POST",
                    url,
                    headers=self._request.headers,
                    data=dict(self._request.form),
                    # Each hop at most this; the caller's asyncio.timeout
                    # bounds the wait and the fetch as a whole.
                    timeout=timeout,
                )
                target = token_redirect(reply, url)
                if target is None:
                    grant = read_grant(
                        reply, now=now, margin=self._margin, text=self._redactor.text
                    )
                    break
                url = target
            else:
                msg = f"too many redirects from token endpoint {where(self._url)}"
                raise RemoteError(msg, kind="auth", retryable=False)  # noqa: TRY301 - one handler for every failure
        except RemoteError as exc:
            self._finished += 1
            self._failure = exc
            self._fatal_until = None if exc.retryable else now + self._hold
            logger.warning("%s: %s", self._service, self._redactor.text(str(exc)))
            current = self._grant
            if (
                exc.retryable
                and current is not None
                and current is not stale
                and (current.expires_at is None or now < current.expires_at)
            ):
                # A renewal ahead of expiry failed: the token in hand still
                # works; every request uses it until the endpoint is asked again.
                self._quiet_until = now + self._renew_retry
                return current
            raise
        self._finished += 1
        self._failure = None
        self._fatal_until = None
        self._quiet_until = None
        self._learn(grant.token)
        self._grant = grant
        return grant

    def _fit(self, grant: Grant | None, *, now: float, stale: Grant | None) -> bool:
        """Whether ``grant`` may be used at ``now`` without asking the endpoint."""
        if grant is None or grant is stale:
            return False
        if not grant.due(now):
            return True
        # Due for renewal, but the last renewal failed for a passing reason:
        # keep using it, until it expires, while the endpoint gets its rest.
        return (
            self._quiet_until is not None
            and now < self._quiet_until
            and (grant.expires_at is None or now < grant.expires_at)
        )

    def _learn(self, token: str) -> None:
        """Add ``token`` to the live secrets; let go of the oldest beyond KEEP_TOKENS."""
        self._secrets.add(token)
        self._tokens.append(token)
        while len(self._tokens) > KEEP_TOKENS:
            self._secrets.discard(self._tokens.popleft())


class SigV4:
    """Signs every request with AWS Signature Version 4 (botocore's ``SigV4Auth``)."""

    def __init__(
        self,
        *,
        service: str,
        region: str,
        access_key: str,
        secret_key: str,
        session_token: str | None,
    ) -> None:
        """Build the signer (botocore must be importable: see :func:`credential_for`)."""
        from botocore.auth import SigV4Auth  # noqa: PLC0415 - the optional aws extra
        from botocore.credentials import Credentials  # noqa: PLC0415 - the same

        credentials = Credentials(access_key, secret_key, session_token)
        self._auth = SigV4Auth(credentials, service, region)

    async def send(
        self,
        remote: Remote,
        method: str,
        url: str,
        *,
        headers: Headers,
        json_body: Any,
        data: Mapping[str, Any] | None,
        files: Mapping[str, Any] | None,
        timeout: float,
        now: float,  # noqa: ARG002 - the signature's time is botocore's wall clock
    ) -> Reply:
        """Send the request signed: Remote encodes the body once and lets :meth:`sign` see it."""
        return await remote.send(
            method,
            url,
            headers=headers,
            json_body=json_body,
            data=data,
            files=files,
            timeout=timeout,
            sign=self.sign,
        )

    def sign(self, method: str, url: str, headers: Headers, body: bytes) -> Headers:
        """Return the headers that sign this request (Authorization, X-Amz-Date, session token).

        The query is given to botocore as decoded pairs, so that it encodes
        them the way SigV4 canonicalises (RFC 3986 unreserved characters
        only), whatever encoding the URL carries. It is decoded as a form
        (``+`` is a space), as the engine encodes it and as AWS reads it.

        Raises:
            RemoteError: kind ``auth``, not retryable, when botocore cannot sign.
        """
        from botocore.awsrequest import AWSRequest  # noqa: PLC0415 - the optional aws extra

        parts = urlsplit(url)
        params = parse_qsl(parts.query, keep_blank_values=True)
        request = AWSRequest(
            method=method,
            url=urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
            params=params,
            data=body,
        )
        for name, value in headers:
            request.headers[name] = value  # HTTPMessage: a repeated name is kept
        try:
            self._auth.add_auth(request)
        except Exception as exc:
            msg = f"could not sign the request to {where(url)}: {type(exc).__name__}"
            raise RemoteError(msg, kind="auth", retryable=False) from exc
        return tuple(
            (name, request.headers[name])
            for name in _SIGNATURE_HEADERS
            if name in request.headers
        )


def credential_for(
    service: str,
    auth: OAuth2ClientCredentials | AwsSigV4,
    *,
    base_url: str,
    env: Mapping[str, str],
    secrets: set[str],
    scale: float,
) -> Credential:
    """Read what ``auth`` needs from ``env`` and return the credential that places it.

    Raises:
        CredentialError: a variable the spec names is unset, or botocore
            (the ``aws`` extra) is not installed.
    """
    if isinstance(auth, OAuth2ClientCredentials):
        client_id = _needed(env, service, auth.client_id_env, "the OAuth2 client id")
        client_secret = _needed(
            env, service, auth.client_secret_env, "the OAuth2 client secret"
        )
        override = env.get(auth.token_url_env) if auth.token_url_env else None
        return BearerToken(
            service=service,
            auth=auth,
            url=token_url(auth, base_url, override or None),
            client_id=client_id,
            client_secret=client_secret,
            secrets=secrets,
            scale=scale,
        )
    try:
        import botocore.auth  # noqa: F401, PLC0415 - only to say how to get it
    except ImportError as exc:
        msg = (
            f"{service}: signing requests with AWS Signature Version 4 needs "
            "botocore: pip install 'statepoll[aws]'"
        )
        raise CredentialError(service, "", msg) from exc
    region = (env.get(auth.region_env) if auth.region_env else None) or auth.region
    if not region:
        variable = auth.region_env or "AWS_REGION"
        msg = f"{service}: set the environment variable {variable} to the AWS region to sign for"
        raise CredentialError(service, variable, msg)
    access_key = _needed(env, service, "AWS_ACCESS_KEY_ID", "your AWS access key id")
    secret_key = _needed(
        env, service, "AWS_SECRET_ACCESS_KEY", "your AWS secret access key"
    )
    session_token = env.get("AWS_SESSION_TOKEN") or None
    secrets.update(s for s in (secret_key, session_token) if s)
    return SigV4(
        service=auth.service,
        region=region,
        access_key=access_key,
        secret_key=secret_key,
        session_token=session_token,
    )


def _needed(env: Mapping[str, str], service: str, name: str, what: str) -> str:
    value = env.get(name)
    if not value:
        msg = f"{service}: set the environment variable {name} to {what}"
        raise CredentialError(service, name, msg)
    return value


def _left(loop: asyncio.AbstractEventLoop, ends: float) -> float:
    """Return the seconds left until ``ends`` (a sliver when none: the send then times out)."""
    return max(ends - loop.time(), 0.001)


def _again(error: RemoteError) -> RemoteError:
    """Return a fresh copy of a shared verdict (each job gets its own exception object)."""
    return RemoteError(
        str(error),
        kind=error.kind,
        status=error.status,
        code=error.code,
        remote_message=error.remote_message,
        retryable=error.retryable,
    )
