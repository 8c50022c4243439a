"""A fake AWS JSON-protocol endpoint on loopback that checks every SigV4 signature.

It recomputes each request's signature with botocore's own signer from what
arrived (method, raw path, query, the signed headers, the body) at the
request's X-Amz-Date, as tests/engine/test_auth_sigv4.py's verifier does, and
answers the operation ``X-Amz-Target`` names (JSON protocol) or, without
one, ``"METHOD /raw/path"`` (REST) from a script: each entry is a JSON body
(200) or ``(status, body)``; the last entry repeats.
"""

# ruff: noqa: S105 - made-up AWS credentials, checked on loopback only

from __future__ import annotations

import datetime as dt
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
REGION = "eu-west-3"

#: One answer: a JSON body (HTTP 200) or (status, JSON body).
Answer = Mapping[str, Any] | tuple[int, Mapping[str, Any]]


@attrs.define
class FakeAws:
    """An AWS JSON or REST-JSON API for one signing name, with scripted answers."""

    service: str
    content_type: str
    #: X-Amz-Target (or "METHOD /raw/path") → its answers, in order (the last one repeats).
    script: dict[str, list[Answer]]
    #: (target, verdict, parsed body) of every request.
    seen: list[tuple[str, str, Any]] = attrs.Factory(list)
    _served: dict[str, int] = attrs.Factory(dict)

    def app(self) -> Starlette:
        """Return the ASGI app."""
        return Starlette(
            routes=[Route("/{rest:path}", self._call, methods=["GET", "POST"])]
        )

    async def _call(self, request: Request) -> Response:
        body = await request.body()
        target = request.headers.get("x-amz-target") or (
            f"{request.method} {request.scope['raw_path'].decode()}"
        )
        verdict = self._verdict(request, body)
        if body and request.headers.get("content-type") != self.content_type:
            verdict = f"content type {request.headers.get('content-type')}"
        self.seen.append((target, verdict, json.loads(body or b"null")))
        if verdict != "ok":
            return _json(
                403, {"__type": "InvalidSignatureException", "message": verdict}
            )
        answers = self.script.get(target)
        if not answers:
            return _json(400, {"__type": "UnknownOperationException"})
        index = self._served.get(target, 0)
        self._served[target] = index + 1
        answer = answers[min(index, len(answers) - 1)]
        status, payload = answer if isinstance(answer, tuple) else (200, answer)
        return _json(status, payload, self.content_type)

    def _verdict(self, request: Request, body: bytes) -> str:
        """Return 'ok' or why the signature does not hold."""
        headers = request.headers
        authorization = headers.get("authorization", "")
        if not authorization.startswith("AWS4-HMAC-SHA256 "):
            return "unsigned"
        fields = dict(
            part.strip().split("=", 1)
            for part in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(",")
        )
        amz_date = headers.get("x-amz-date", "")
        scope = f"{ACCESS_KEY}/{amz_date[:8]}/{REGION}/{self.service}/aws4_request"
        if fields.get("Credential") != scope:
            return f"scope {fields.get('Credential')}"
        signed = fields["SignedHeaders"].split(";")
        needed = {"host", "x-amz-date"} | (
            {"x-amz-target"} if "x-amz-target" in headers else set()
        )
        if not needed <= set(signed):
            return f"signed headers {signed}"
        stamp = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        if abs(dt.datetime.now(dt.UTC) - stamp).total_seconds() > 300:
            return "stale"
        query = request.scope["query_string"].decode()
        again = AWSRequest(
            method=request.method,
            url=f"http://{headers['host']}{request.scope['raw_path'].decode()}",
            params=parse_qsl(query, keep_blank_values=True),
            data=body,
            headers={name: headers[name] for name in signed},
        )
        again.context["timestamp"] = amz_date
        auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), self.service, REGION)
        expected = auth.signature(
            auth.string_to_sign(again, auth.canonical_request(again)), again
        )
        return "ok" if hmac.compare_digest(expected, fields["Signature"]) else "bad"


def _json(
    status: int, payload: Mapping[str, Any], content_type: str = "application/json"
) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type=content_type)


def env(base_url: str, variable: str) -> dict[str, str]:
    """The environment a converted spec reads: fake keys, the region, the endpoint."""
    return {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        variable: base_url,
    }
