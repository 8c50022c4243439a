"""AWS Signature Version 4 end to end: a loopback API recomputes every signature with botocore."""

# ruff: noqa: S105, S106 - made-up AWS credentials, checked on loopback only

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import hmac
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import attrs
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine import AsyncEngine, CredentialError, Event, RemoteError
from engine.simulators import serving
from statemachines import Spec, load_document

pytestmark = pytest.mark.anyio

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "session-token-of-the-test"
ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_SESSION_TOKEN": SESSION_TOKEN,
}
REGION, SERVICE = "eu-west-3", "execute-api"
BOUND = 10.0


@attrs.define
class Verifier:
    """An API that accepts a request only when its SigV4 signature recomputes.

    It rebuilds the canonical request from what arrived (method, raw path,
    decoded query, the headers SignedHeaders names, the body), signs it with
    the known test credentials at the request's own X-Amz-Date, and compares.
    """

    secret_key: str = SECRET_KEY
    #: (method, raw path and query, verdict) of every request.
    seen: list[tuple[str, str, str]] = attrs.Factory(list)
    bodies: list[bytes] = attrs.Factory(list)
    polls: int = 0
    #: Where the first poll's answer links to (a next link, maybe elsewhere).
    next_link: str | None = None

    def app(self) -> Starlette:
        """Return the ASGI app: POST /jobs, GET /jobs/{id}, each verified first."""
        return Starlette(
            routes=[
                Route("/jobs", self._submit, methods=["POST"]),
                Route("/jobs/{job_id:path}", self._poll, methods=["GET"]),
            ]
        )

    async def _verdict(self, request: Request) -> str:
        """Return 'ok' or why the signature does not hold."""
        body = await request.body()
        raw = request.scope["raw_path"].decode()
        query = request.scope["query_string"].decode()
        headers = request.headers
        authorization = headers.get("authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            return "unsigned"
        fields = dict(
            part.strip().split("=", 1)
            for part in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(",")
        )
        amz_date = headers.get("x-amz-date", "")
        scope = f"{ACCESS_KEY}/{amz_date[:8]}/{REGION}/{SERVICE}/aws4_request"
        signed = fields["SignedHeaders"].split(";")
        if fields["Credential"] != scope:
            return f"scope {fields['Credential']}"
        if not {"host", "x-amz-date", "x-amz-security-token"} <= set(signed):
            return f"signed headers {signed}"
        stamp = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        if abs(dt.datetime.now(dt.UTC) - stamp).total_seconds() > 300:
            return "stale"
        # Decoded as a form ('+' is a space), as AWS reads a query.
        params = parse_qsl(query, keep_blank_values=True)
        again = AWSRequest(
            method=request.method,
            url=f"http://{headers['host']}{raw}",
            params=params,
            data=body,
            headers={name: headers[name] for name in signed},
        )
        again.context["timestamp"] = amz_date
        auth = SigV4Auth(
            Credentials(ACCESS_KEY, self.secret_key, SESSION_TOKEN), SERVICE, REGION
        )
        expected = auth.signature(
            auth.string_to_sign(again, auth.canonical_request(again)), again
        )
        return "ok" if hmac.compare_digest(expected, fields["Signature"]) else "bad"

    async def _checked(self, request: Request) -> str:
        verdict = await self._verdict(request)
        target = request.scope["raw_path"].decode()
        if request.scope["query_string"]:
            target += "?" + request.scope["query_string"].decode()
        self.seen.append((request.method, target, verdict))
        return verdict

    async def _submit(self, request: Request) -> Response:
        verdict = await self._checked(request)
        if verdict != "ok":
            return JSONResponse({"message": verdict}, status_code=403)
        self.bodies.append(await request.body())
        return JSONResponse({"id": "a b/c"}, status_code=202)

    async def _poll(self, request: Request) -> Response:
        verdict = await self._checked(request)
        if verdict != "ok":
            return JSONResponse({"message": verdict}, status_code=403)
        self.polls += 1
        answer: dict[str, Any] = {"status": "done" if self.polls >= 2 else "running"}
        if self.polls == 1 and self.next_link is not None:
            answer["next"] = f"{self.next_link}/elsewhere"
        return JSONResponse(answer)


def _spec(
    base_url: str,
    *,
    auth: dict[str, Any] | None = None,
    body: str = "json",
    **policy: Any,
) -> Spec:
    document: dict[str, Any] = {
        "spec_version": "1",
        "service": {
            "name": "toy",
            "base_url": base_url,
            "auth": {"kind": "aws_sigv4", "service": SERVICE}
            | (auth if auth is not None else {"region": REGION}),
            "headers": {"X-Client": "statepoll tests"},
        },
        "lifecycles": {
            "job": {
                "states": {
                    "Running": {"initial": True},
                    "Done": {"outcome": "success"},
                },
                "transitions": [{"from": "Running", "to": "Done"}],
                "inputs": {
                    "source": {
                        "in": "body" if body == "json" else "form",
                        "description": "what to process",
                    },
                    "label": {"in": "none", "default": "a b:c/d~e"},
                },
                "submit": {
                    "request": {
                        "method": "POST",
                        "path": "/jobs",
                        "query": {"label": "{label}", "v": "2"},
                    },
                    "body": body,
                    "job_id": {"pointer": "/id"},
                },
                "poll": {
                    "request": {
                        "path": "/jobs/{job_id}",
                        "query": {"label": "{label}"},
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
                "errors": {"message_pointer": "/message"},
                "policy": policy,
            }
        },
    }
    return load_document(copy.deepcopy(document), source="toy")


@pytest.fixture(params=["httpcore", "aiohttp"])
def transport(request: pytest.FixtureRequest) -> str:
    """Name the transport a test runs over: httpx's own, or the aiohttp fast path."""
    return str(request.param)


@contextlib.asynccontextmanager
async def _engine(transport: str, **options: Any) -> AsyncIterator[AsyncEngine]:
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


async def _submit_and_wait(engine: AsyncEngine, spec: Spec) -> Any:
    """Submit one job and wait for it: its result, or the RemoteError it ended with."""
    async with asyncio.timeout(BOUND):
        try:
            job = await engine.submit(spec, "job", source="s3://bucket/key with space")
            return await engine.wait(job, timeout=BOUND)
        except RemoteError as exc:
            return exc


async def test_every_request_is_signed_and_the_server_recomputes_it(
    transport: str,
) -> None:
    """Submit (JSON body, encoded query) and polls (encoded path) all verify."""
    verifier = Verifier()
    with serving(verifier.app()) as api:
        async with _engine(transport) as engine:
            result = await _submit_and_wait(engine, _spec(api.url))

    assert result.state == "Done"
    assert [verdict for _, _, verdict in verifier.seen] == ["ok", "ok", "ok"]
    assert verifier.seen[0][:2] == ("POST", "/jobs?label=a+b%3Ac%2Fd~e&v=2")
    assert verifier.seen[1][1].startswith("/jobs/a%20b%2Fc?label=")
    assert verifier.bodies == [b'{"source":"s3://bucket/key with space"}']


@pytest.mark.parametrize("body", ["form", "multipart"])
async def test_a_form_or_multipart_body_is_signed_as_sent(
    transport: str, body: str
) -> None:
    """The body is encoded once, hashed into the signature, and sent as those bytes."""
    verifier = Verifier()
    with serving(verifier.app()) as api:
        async with _engine(transport) as engine:
            result = await _submit_and_wait(engine, _spec(api.url, body=body))

    assert result.state == "Done"
    assert [verdict for _, _, verdict in verifier.seen] == ["ok", "ok", "ok"]
    assert b"key with space" in verifier.bodies[0].replace(b"+", b" ")


async def test_a_foreign_link_is_never_signed(transport: str) -> None:
    """A next link to another host, followed anonymously: no signature reaches it."""
    seen: list[dict[str, str]] = []

    async def anyone(request: Request) -> Response:
        seen.append(dict(request.headers))
        return JSONResponse({"status": "done"})

    other = Starlette(routes=[Route("/{path:path}", anyone, methods=["GET"])])
    with serving(other) as elsewhere:
        verifier = Verifier(next_link=elsewhere.url)
        with serving(verifier.app()) as api:
            async with _engine(transport) as engine:
                spec = _spec(api.url, foreign_links="anonymous")
                result = await _submit_and_wait(engine, spec)

    assert result.state == "Done"
    assert len(seen) == 1
    assert not {"authorization", "x-amz-date", "x-amz-security-token"} & set(seen[0])
    assert {verdict for _, _, verdict in verifier.seen} == {"ok"}


async def test_a_signature_made_with_another_key_is_refused(transport: str) -> None:
    """The verifier is real: a wrong secret key fails at the submit with HTTP 403."""
    verifier = Verifier(secret_key="not-the-secret-key")
    with serving(verifier.app()) as api:
        async with _engine(transport) as engine:
            result = await _submit_and_wait(engine, _spec(api.url))

    assert verifier.seen[0][2] == "bad"
    assert isinstance(result, RemoteError)
    assert result.status == 403


async def test_the_region_comes_from_its_variable_when_set(transport: str) -> None:
    """region_env set wins over region: the server expects eu-west-3, the spec says us-east-1."""
    verifier = Verifier()
    with serving(verifier.app()) as api:
        spec = _spec(api.url, auth={"region": "us-east-1", "region_env": "TOY_REGION"})
        async with _engine(transport, env={**ENV, "TOY_REGION": REGION}) as engine:
            result = await _submit_and_wait(engine, spec)

    assert result.state == "Done"
    assert {verdict for _, _, verdict in verifier.seen} == {"ok"}


async def test_the_secret_key_and_session_token_reach_no_log_audit_or_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A 403 echoing both: blanked in the error, events, log lines and audit log."""

    async def leak(request: Request) -> Response:
        said = f"{SECRET_KEY} and {SESSION_TOKEN} are not welcome"
        return JSONResponse({"message": said}, status_code=403)

    app = Starlette(routes=[Route("/jobs", leak, methods=["POST"])])
    audit = tmp_path / "audit.jsonl"
    events: list[Event] = []
    caplog.set_level(logging.DEBUG, logger="statepoll")
    with serving(app) as api:
        async with _engine("httpcore", audit=audit) as engine:
            engine.on("*", events.append)
            error = await _submit_and_wait(engine, _spec(api.url))

    assert isinstance(error, RemoteError)
    assert error.remote_message == "[REDACTED] and [REDACTED] are not welcome"
    seen = [str(error), repr(error), caplog.text, audit.read_text()]
    seen += [repr(e) for e in events]
    for text in seen:
        assert SECRET_KEY not in text
        assert SESSION_TOKEN not in text


@pytest.mark.parametrize(
    ("unset", "variable"),
    [("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"), ("AWS_SECRET_ACCESS_KEY", None)],
)
async def test_missing_aws_keys_are_refused_before_any_request(
    unset: str, variable: str | None
) -> None:
    """An unset key variable: CredentialError naming it, nothing sent."""
    verifier = Verifier()
    env = {k: v for k, v in ENV.items() if k != unset}
    with serving(verifier.app()) as api:
        async with _engine("httpcore", env=env) as engine:
            with pytest.raises(CredentialError) as info:
                await engine.submit(_spec(api.url), "job", source="x")

    assert info.value.env == (variable or unset)
    assert unset in str(info.value)
    assert verifier.seen == []


async def test_an_unset_region_variable_without_a_fallback_is_refused() -> None:
    """region_env alone and unset: CredentialError naming that variable."""
    spec = _spec("http://127.0.0.1:9", auth={"region_env": "TOY_REGION"})
    async with _engine("httpcore") as engine:
        with pytest.raises(CredentialError) as info:
            await engine.submit(spec, "job", source="x")

    assert info.value.env == "TOY_REGION"
    assert str(info.value) == (
        "toy: set the environment variable TOY_REGION to the AWS region to sign for"
    )


async def test_without_botocore_the_error_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without botocore importable: CredentialError with pip install 'statepoll[aws]'."""
    monkeypatch.setitem(sys.modules, "botocore.auth", None)
    async with _engine("httpcore") as engine:
        with pytest.raises(CredentialError) as info:
            await engine.submit(_spec("http://127.0.0.1:9"), "job", source="x")

    assert str(info.value) == (
        "toy: signing requests with AWS Signature Version 4 needs botocore: "
        "pip install 'statepoll[aws]'"
    )
