"""OAuth2 client credentials end to end: a loopback token endpoint and API, on both transports."""

# ruff: noqa: S105 - made-up credentials, served and checked on loopback only

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine import AsyncEngine, CredentialError, Event, RemoteError
from engine._auth import BearerToken, credential_for
from engine._remote import Remote
from engine.simulators import ServerHandle, serving
from statemachines import OAuth2ClientCredentials, Spec, load_document

pytestmark = pytest.mark.anyio

CLIENT_ID = "statepoll-test"
SECRET = "client-s3cr3t-42"
ENV = {"TOY_CLIENT_ID": CLIENT_ID, "TOY_CLIENT_SECRET": SECRET}
BASIC = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
#: No test waits longer than this for its jobs.
BOUND = 10.0


@attrs.define
class Provider:
    """An identity provider and the API it guards, in one Starlette app.

    Tokens are ``tok-N``; the API answers a poll ``running`` until a job has
    been polled ``polls`` times, then ``done``, and refuses (401) a token it
    never issued, one revoked, or one past its lifetime.
    """

    expires_in: float | None = 3600.0
    polls: int = 2
    #: The token endpoint's answer instead of a token: (status, JSON body).
    refusal: tuple[int, Any] | None = None
    #: How many token requests get the refusal (None: all of them).
    refusals: int | None = None
    #: Seconds the token endpoint takes to answer.
    delay: float = 0.0
    #: Where the token endpoint redirects (307) instead of answering.
    redirect: str | None = None
    #: A poll answer echoing the bearer token, for the job with this id.
    echo_job: str | None = None
    #: Link the first poll of each job carries (a next link, maybe elsewhere).
    next_link: str | None = None
    #: Revoke tok-1 once the API has seen this many requests.
    revoke_after: int | None = None
    token_requests: list[tuple[dict[str, str], dict[str, str]]] = attrs.Factory(list)
    issued: dict[str, float] = attrs.Factory(dict)
    revoked: set[str] = attrs.Factory(set)
    #: (path, Authorization header) of every API request.
    api: list[tuple[str, str | None]] = attrs.Factory(list)
    refused: int = 0
    _counts: dict[str, int] = attrs.Factory(dict)

    def app(self) -> Starlette:
        """Return the ASGI app: POST /oauth/token, GET /jobs/{id}."""
        return Starlette(
            routes=[
                Route("/oauth/token", self._token, methods=["POST"]),
                Route("/jobs/{job_id}", self._poll, methods=["GET"]),
            ]
        )

    async def _token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append((dict(request.headers), form))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.redirect is not None:
            return Response(status_code=307, headers={"location": self.redirect})
        if self.refusal is not None and (
            self.refusals is None or len(self.token_requests) <= self.refusals
        ):
            return JSONResponse(self.refusal[1], status_code=self.refusal[0])
        basic = request.headers.get("authorization")
        if basic != f"Basic {BASIC}" or form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = f"tok-{len(self.issued) + 1}"
        self.issued[token] = time.monotonic()
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return JSONResponse(body)

    async def _poll(self, request: Request) -> Response:
        header = request.headers.get("authorization")
        self.api.append((request.url.path, header))
        if self.revoke_after is not None and len(self.api) > self.revoke_after:
            self.revoked.add("tok-1")
        token = (header or "").removeprefix("Bearer ")
        issued = self.issued.get(token)
        if (
            issued is None
            or token in self.revoked
            or (
                self.expires_in is not None
                and time.monotonic() - issued > self.expires_in
            )
        ):
            self.refused += 1
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        job_id = request.path_params["job_id"]
        if job_id == self.echo_job:
            detail = f"token {token} may not read this job"
            return JSONResponse({"detail": detail}, status_code=403)
        count = self._counts[job_id] = self._counts.get(job_id, 0) + 1
        body: dict[str, Any] = {"status": "done" if count >= self.polls else "running"}
        if count == 1 and self.next_link is not None:
            body["next"] = f"{self.next_link}/jobs/{job_id}"
        return JSONResponse(body)


@attrs.define
class Anyone:
    """A server of another host: records each request's Authorization header."""

    seen: list[tuple[str, str | None]] = attrs.Factory(list)

    def app(self) -> Starlette:
        """Return the ASGI app: any GET or POST is answered ``done``."""

        async def handle(request: Request) -> Response:
            self.seen.append((request.url.path, request.headers.get("authorization")))
            return JSONResponse({"status": "done"})

        return Starlette(
            routes=[Route("/{path:path}", handle, methods=["GET", "POST"])]
        )


def _spec(base_url: str, *, auth: dict[str, Any] | None = None, **policy: Any) -> Spec:
    document: dict[str, Any] = {
        "spec_version": "1",
        "service": {
            "name": "toy",
            "base_url": base_url,
            "auth": {
                "kind": "oauth2_client_credentials",
                "token_url": "/oauth/token",
                "client_id_env": "TOY_CLIENT_ID",
                "client_secret_env": "TOY_CLIENT_SECRET",
                "scope": "jobs:read",
                **(auth or {}),
            },
        },
        "lifecycles": {
            "job": {
                "states": {
                    "Running": {"initial": True},
                    "Done": {"outcome": "success"},
                },
                "transitions": [{"from": "Running", "to": "Done"}],
                "poll": {
                    "request": {
                        "path": "/jobs/{job_id}",
                        "url": {"pointer": "/next"},
                    },
                    "observe": [
                        {
                            "pointer": "/status",
                            "map": {"running": "Running", "done": "Done"},
                        }
                    ],
                },
                "schedule": {"interval": 0.01},
                "errors": {
                    "message_pointer": "/detail",
                    "retry_backoff": {"initial": 0.01, "max": 0.02},
                },
                "policy": policy,
            }
        },
    }
    return load_document(copy.deepcopy(document), source="toy")


@pytest.fixture(params=["httpcore", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    """Name the transport a test runs over: httpx's own, or the aiohttp fast path."""
    return str(request.param)


@contextlib.contextmanager
def _served(app: Any) -> Iterator[ServerHandle]:
    with serving(app) as handle:
        yield handle


@contextlib.asynccontextmanager
async def _engine(transport: str, **options: Any) -> AsyncIterator[AsyncEngine]:
    """An engine over ``transport`` with the client's id and secret in its environment."""
    options.setdefault("env", ENV)
    if transport == "aiohttp":
        async with AsyncEngine(**options) as engine:
            yield engine
        return
    async with (
        httpx.AsyncClient() as client,
        AsyncEngine(client=client, **options) as engine,
    ):
        yield engine


async def _run(engine: AsyncEngine, spec: Spec, *ids: str) -> list[Any]:
    async with asyncio.timeout(BOUND):
        jobs = [await engine.track(spec, "job", job_id) for job_id in ids]
        return list(
            await asyncio.gather(
                *(engine.wait(job, timeout=BOUND) for job in jobs),
                return_exceptions=True,
            )
        )


async def test_every_job_shares_one_token_fetched_once(transport: str) -> None:
    """20 jobs at once wait for one token request (Basic auth, RFC 6749 §4.4 form)."""
    provider = Provider(delay=0.05)
    with _served(provider.app()) as api:
        async with _engine(transport) as engine:
            results = await _run(engine, _spec(api.url), *(f"j{i}" for i in range(20)))

    assert [r.state for r in results] == ["Done"] * 20
    assert len(provider.token_requests) == 1
    headers, form = provider.token_requests[0]
    assert headers["authorization"] == f"Basic {BASIC}"
    assert form == {"grant_type": "client_credentials", "scope": "jobs:read"}
    assert {auth for _, auth in provider.api} == {"Bearer tok-1"}


async def test_form_client_auth_sends_id_and_secret_in_the_body(
    transport: str,
) -> None:
    """client_auth 'form': no Basic header, the id and secret are form fields."""
    provider = Provider()

    async def token(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        provider.token_requests.append((dict(request.headers), form))
        provider.issued["tok-form"] = time.monotonic()
        return JSONResponse({"access_token": "tok-form", "token_type": "bearer"})

    app = provider.app()
    app.router.routes.insert(0, Route("/oauth/token", token, methods=["POST"]))
    with _served(app) as api:
        async with _engine(transport) as engine:
            [result] = await _run(
                engine, _spec(api.url, auth={"client_auth": "form"}), "a"
            )

    headers, form = provider.token_requests[0]
    assert result.state == "Done"
    assert "authorization" not in headers
    assert form["client_id"] == CLIENT_ID
    assert form["client_secret"] == SECRET
    assert provider.api[-1][1] == "Bearer tok-form"


async def test_a_token_is_renewed_before_it_expires(transport: str) -> None:
    """A 0.3 s token is renewed at half its life: the API never sees an expired one."""
    provider = Provider(expires_in=0.3, polls=40)
    with _served(provider.app()) as api:
        async with _engine(transport) as engine:
            [result] = await _run(engine, _spec(api.url), "a")

    assert result.state == "Done"
    assert len(provider.token_requests) >= 2
    assert provider.refused == 0


async def test_a_refused_token_is_renewed_once_and_the_request_sent_again(
    transport: str,
) -> None:
    """A 401 on a revoked token: one new token, the same request once more, no error."""
    provider = Provider(polls=3, revoke_after=1)
    errors: list[Event] = []
    with _served(provider.app()) as api:
        async with _engine(transport) as engine:
            engine.on("errored", errors.append)
            [result] = await _run(engine, _spec(api.url), "a")

    assert result.state == "Done"
    assert len(provider.token_requests) == 2
    assert provider.refused == 1
    assert provider.api[-1][1] == "Bearer tok-2"
    assert errors == []


async def test_jobs_refused_at_once_wait_for_one_renewal(transport: str) -> None:
    """Ten jobs meeting a revoked token together: one new token for all, not ten."""
    provider = Provider(polls=3, revoke_after=10, delay=0.05)
    with _served(provider.app()) as api:
        async with _engine(transport) as engine:
            results = await _run(engine, _spec(api.url), *(f"j{i}" for i in range(10)))

    assert [r.state for r in results] == ["Done"] * 10
    assert len(provider.token_requests) == 2
    assert provider.refused >= 1
    assert provider.api[-1][1] == "Bearer tok-2"


async def test_a_refused_client_fails_every_job_after_one_token_request(
    transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """invalid_client is fatal: five jobs end as 'auth' errors; one token request, one log line."""
    description = f"secret {SECRET} is wrong"
    provider = Provider(
        refusal=(401, {"error": "invalid_client", "error_description": description}),
        delay=0.05,
    )
    caplog.set_level(logging.DEBUG, logger="statepoll")
    with _served(provider.app()) as api:
        async with _engine(transport) as engine:
            results = await _run(engine, _spec(api.url), *"abcde")

    assert all(isinstance(r, RemoteError) for r in results)
    errors: list[RemoteError] = results
    assert {(e.kind, e.code, e.status, e.retryable) for e in errors} == {
        ("auth", "invalid_client", 401, False)
    }
    assert str(errors[0]).startswith(
        "token endpoint 127.0.0.1/oauth/token refused a token (HTTP 401 invalid_client"
    )
    assert len(provider.token_requests) == 1
    assert provider.api == []
    warned = [r for r in caplog.records if r.name == "statepoll.auth"]
    assert len(warned) == 1
    assert SECRET not in caplog.text
    assert all(SECRET not in str(e) + repr(e) for e in errors)


async def test_a_busy_token_endpoint_is_retried_by_the_jobs_budget(
    transport: str,
) -> None:
    """Two 503s are transient: the job retries, and gets its token at the third request."""
    provider = Provider(refusal=(503, {"error": "temporarily_unavailable"}), refusals=2)
    with _served(provider.app()) as api:
        async with _engine(transport) as engine:
            [result] = await _run(engine, _spec(api.url), "a")

    assert result.state == "Done"
    assert len(provider.token_requests) == 3


async def test_the_token_and_secret_reach_no_error_event_log_audit_or_store(
    transport: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An API echoing the live token: blanked in the error, events, log, audit and store."""
    provider = Provider(echo_job="leak")
    audit, store = tmp_path / "audit.jsonl", tmp_path / "jobs.db"
    events: list[Event] = []
    caplog.set_level(logging.DEBUG, logger="statepoll")
    with _served(provider.app()) as api:
        async with _engine(transport, audit=audit, store=store) as engine:
            engine.on("*", events.append)
            [error] = await _run(engine, _spec(api.url), "leak")

    assert isinstance(error, RemoteError)
    assert error.remote_message == "token [REDACTED] may not read this job"
    with sqlite3.connect(store) as db:
        rows = "\n".join(db.iterdump())
    seen = [str(error), repr(error), caplog.text, audit.read_text(), rows]
    seen += [repr(e) for e in events]
    for text in seen:
        assert "tok-1" not in text
        assert SECRET not in text
        assert BASIC not in text


async def test_a_foreign_link_never_gets_the_token(transport: str) -> None:
    """A next link to another host, followed anonymously: no Authorization reaches it."""
    other = Anyone()
    with _served(other.app()) as elsewhere:
        provider = Provider(next_link=elsewhere.url)
        with _served(provider.app()) as api:
            async with _engine(transport) as engine:
                spec = _spec(api.url, foreign_links="anonymous")
                [result] = await _run(engine, spec, "a")

    assert result.state == "Done"
    assert other.seen == [("/jobs/a", None)]
    assert provider.api == [("/jobs/a", "Bearer tok-1")]


async def test_a_token_redirect_to_another_host_never_gets_the_secret(
    transport: str,
) -> None:
    """The token endpoint's 307 elsewhere: nothing sent there, the job ends with kind 'auth'."""
    other = Anyone()
    with _served(other.app()) as elsewhere:
        provider = Provider(redirect=f"{elsewhere.url}/steal")
        with _served(provider.app()) as api:
            async with _engine(transport) as engine:
                [error] = await _run(engine, _spec(api.url), "a")

    assert isinstance(error, RemoteError)
    assert (error.kind, error.retryable) == ("auth", False)
    assert "redirected to another host" in str(error)
    assert other.seen == []


async def test_a_token_url_on_another_declared_host_is_used(transport: str) -> None:
    """An absolute token_url: the token comes from there, the API sees only the token."""
    idp = Provider()
    with _served(idp.app()) as identity:
        api_side = Provider()
        api_side.issued = idp.issued  # the API trusts the provider's tokens
        with _served(api_side.app()) as api:
            spec = _spec(api.url, auth={"token_url": f"{identity.url}/oauth/token"})
            async with _engine(transport) as engine:
                [result] = await _run(engine, spec, "a")

    assert result.state == "Done"
    assert len(idp.token_requests) == 1
    assert api_side.token_requests == []
    assert api_side.api[-1] == ("/jobs/a", "Bearer tok-1")


async def test_an_unset_client_secret_is_refused_before_any_request() -> None:
    """The secret's variable unset: CredentialError naming it, and no request sent."""
    provider = Provider()
    with _served(provider.app()) as api:
        async with _engine("httpcore", env={"TOY_CLIENT_ID": CLIENT_ID}) as engine:
            with pytest.raises(CredentialError) as info:
                await engine.track(_spec(api.url), "job", "a")

    assert info.value.env == "TOY_CLIENT_SECRET"
    assert str(info.value) == (
        "toy: set the environment variable TOY_CLIENT_SECRET to the OAuth2 client secret"
    )
    assert provider.token_requests == []


# -- the shared token on an explicit clock ---------------------------------------------------


def _bearer(token_url: str, secrets: set[str] | None = None) -> BearerToken:
    auth = _spec(token_url, auth={"token_url": f"{token_url}/oauth/token"}).service.auth
    assert isinstance(auth, OAuth2ClientCredentials)
    credential = credential_for(
        "toy",
        auth,
        base_url=token_url,
        env=ENV,
        secrets=set() if secrets is None else secrets,
        scale=1.0,
    )
    assert isinstance(credential, BearerToken)
    return credential


@contextlib.asynccontextmanager
async def _remote() -> AsyncIterator[Remote]:
    async with httpx.AsyncClient() as client:
        yield Remote(client)


async def test_a_failed_renewal_keeps_the_token_in_hand_until_it_expires() -> None:
    """A 503 at renewal: the token in hand is kept; asked again after 5 s, not per job."""
    provider = Provider(expires_in=100.0)
    with _served(provider.app()) as idp:
        token = _bearer(idp.url)
        async with _remote() as remote:
            first = await token.grant(remote, now=0.0, timeout=BOUND)
            provider.refusal = (503, {"error": "temporarily_unavailable"})
            kept = [
                await token.grant(remote, now=now, timeout=BOUND)
                for now in (50.0, 51.0, 54.9)
            ]
            again = await token.grant(remote, now=55.0, timeout=BOUND)
            with pytest.raises(RemoteError) as info:
                await token.grant(remote, now=100.0, timeout=BOUND)

    assert first.refresh_at == 50.0  # half of a 100 s life: less than the 60 s margin
    assert kept == [first] * 3
    assert again is first
    assert token.fetches == 4  # at 0, 50, 55 and 100: not at 51 or 54.9
    assert (info.value.kind, info.value.retryable) == ("auth", True)


async def test_a_fatal_refusal_stands_for_a_minute_then_is_asked_again() -> None:
    """invalid_client is not asked again for 60 s; after that, one new request."""
    provider = Provider(refusal=(400, {"error": "invalid_client"}))
    with _served(provider.app()) as idp:
        token = _bearer(idp.url)
        async with _remote() as remote:
            for now in (0.0, 30.0, 59.9):
                with pytest.raises(RemoteError):
                    await token.grant(remote, now=now, timeout=BOUND)
            provider.refusal = None
            grant = await token.grant(remote, now=60.0, timeout=BOUND)

    assert token.fetches == 2
    assert grant.token == "tok-1"


async def test_a_token_request_redirected_in_a_loop_is_given_up() -> None:
    """Same-origin 307s past three hops: a fatal auth error, not an endless loop."""
    looping = Provider()
    with _served(looping.app()) as idp:
        token = _bearer(idp.url)
        looping.redirect = f"{idp.url}/oauth/token"
        async with _remote() as remote:
            with pytest.raises(RemoteError) as info:
                await token.grant(remote, now=0.0, timeout=BOUND)

    assert (info.value.kind, info.value.retryable) == ("auth", False)
    assert str(info.value) == (
        "too many redirects from token endpoint 127.0.0.1/oauth/token"
    )
    assert len(looping.token_requests) == 4


async def test_a_token_endpoint_that_does_not_answer_in_time_is_a_transport_error() -> (
    None
):
    """No token within the request's timeout: retryable, naming host and path."""
    provider = Provider(delay=0.5)
    with _served(provider.app()) as idp:
        token = _bearer(idp.url)
        async with _remote() as remote:
            with pytest.raises(RemoteError) as info:
                await token.grant(remote, now=0.0, timeout=0.1)

    assert (info.value.kind, info.value.retryable) == ("transport", True)
    assert str(info.value) == "no token from 127.0.0.1/oauth/token within 0.1 s"


async def test_old_tokens_leave_the_secret_set_past_eight() -> None:
    """The live secret set keeps the last eight tokens and the client secret, not every token."""
    provider = Provider(expires_in=10.0)
    secrets: set[str] = set()
    with _served(provider.app()) as idp:
        token = _bearer(idp.url, secrets)
        async with _remote() as remote:
            for n in range(10):
                await token.grant(remote, now=n * 10.0, timeout=BOUND)

    assert token.fetches == 10
    assert {s for s in secrets if s.startswith("tok-")} == {
        f"tok-{n}" for n in range(3, 11)
    }
    assert SECRET in secrets
