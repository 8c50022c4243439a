"""Azure AI Document Translation simulator (batch API, both flavours).

Routes (``{P}`` is ``/translator/document`` with ``?api-version=2024-05-01`` or
``2026-03-01``, or ``/translator/text/batch/v1.0`` / ``v1.1`` without it):

- ``POST {P}/batches`` → 202, empty body, absolute ``Operation-Location``
- ``GET {P}/batches/{id}`` → batch status (``Retry-After`` while running, ``ETag``)
- ``DELETE {P}/batches/{id}`` → 200 ``Cancelling``; when already terminal or
  cancelling: 400 (v1.x and 2024-05-01) or 409 (2026-03-01)
- ``GET {P}/batches/{id}/documents`` → a page of document statuses;
  ``$top``/``$skip``/``$maxpagesize``/``$orderBy`` or their bare spellings,
  ``statuses``, ``ids``, ``createdDateTimeUtcStart``/``End``; next link
  ``@nextLink`` (v1.x) or ``nextLink`` (2024+), absolute, carrying skip, the
  remaining top, the page size and the filters in the client's spelling
- ``GET {P}/batches/{id}/documents/{docId}``, ``GET {P}/batches``

Outcomes on purpose, from the source URL: ``docs=N`` (documents, default a
seeded 3-10), ``faildocs=K`` (K of them fail), ``sim-failed`` (every document
fails: the batch is Failed), ``sim-validation`` or ``docs=0`` (ValidationFailed).
Otherwise documents succeed. Durations (times ``time_scale``): NotStarted 1-5 s,
each document runs 5-40 s; a cancel takes 1-3 s to reach Cancelled.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit

import attrs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._base import FaultInjector, FaultProfile, Faults

__all__ = ["PROFILE", "create_app"]

_NEW_VERSIONS: Final = ("2024-05-01", "2026-03-01")
_PAGE: Final = 50
_TERMINAL: Final = ("Succeeded", "Failed", "Cancelled", "ValidationFailed")
_INT32: Final = 2**31 - 1
_DENIED: Final = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
    "provide a valid key for an active subscription and use a correct regional API "
    "endpoint for your resource."
)


def _error(
    status: int, code: str, message: str, inner: str | None = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "target": "Operation"}
    if inner:
        error["innerError"] = {"code": inner, "message": message}
    return JSONResponse(
        {"error": error}, status_code=status, headers={"x-ms-error-code": code}
    )


def _error_body(status: int, reason: str) -> dict[str, Any]:
    code = {429: "RequestRateTooHigh", 503: "ServiceUnavailable"}.get(
        status, "InternalServerError"
    )
    return {
        "error": {
            "code": code,
            "message": reason,
            "target": "Operation",
            "innerError": {"code": code, "message": reason},
        }
    }


PROFILE: Final = FaultProfile(
    status_pointer="/status",
    unknown_value="Exploding",
    error_body=_error_body,
    earlier={
        "Running": "NotStarted",
        "Succeeded": "Running",
        "Failed": "Running",
        "Cancelled": "Cancelling",
        "Cancelling": "Running",
    },
)


@attrs.define
class _Doc:
    id: str
    source: str
    target: str
    to: str
    start: float  # clock offset from batch creation when it starts running
    end: float  # when it finishes
    fails: bool
    chars: int
    created_offset: float


@attrs.define
class _Batch:
    id: str
    created: float
    created_wall: datetime
    flavour: str  # "v1.0", "v1.1", "2024-05-01", "2026-03-01"
    not_started: float
    docs: list[_Doc]
    validation: bool = False
    cancel_at: float | None = None
    cancel_done: float | None = None

    def state(self, now: float) -> str:
        t = now - self.created
        if self.validation:
            return "NotStarted" if t < self.not_started else "ValidationFailed"
        if self.cancel_at is not None and self.cancel_done is not None:
            return "Cancelling" if now < self.cancel_done else "Cancelled"
        if t < self.not_started:
            return "NotStarted"
        if any(t < d.end for d in self.docs):
            return "Running"
        return "Failed" if all(d.fails for d in self.docs) else "Succeeded"

    def doc_state(self, doc: _Doc, now: float) -> str:
        t = now - self.created
        if self.validation:
            return "NotStarted" if t < self.not_started else "ValidationFailed"
        if self.cancel_at is not None and self.cancel_done is not None:
            cut = self.cancel_at - self.created
            if cut < doc.end:  # not finished when the cancel arrived
                return "Cancelling" if now < self.cancel_done else "Cancelled"
        if t < doc.start:
            return "NotStarted"
        if t < doc.end:
            return "Running"
        return "Failed" if doc.fails else "Succeeded"


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"  # 7-digit fraction, as Azure


class _Sim:
    def __init__(
        self,
        *,
        seed: int | None,
        time_scale: float,
        api_key: str,
        clock: Callable[[], float],
        public_base_url: str | None,
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - simulation
        self.scale = time_scale
        self.key = api_key
        self.clock = clock
        self.public = public_base_url.rstrip("/") if public_base_url else None
        self.batches: dict[str, _Batch] = {}
        self.wall0 = datetime.now(UTC)
        self.mono0 = clock()

    def wall(self, mono: float) -> datetime:
        return self.wall0 + timedelta(seconds=mono - self.mono0)

    # -- routing ----------------------------------------------------------------------
    async def dispatch(  # noqa: C901, PLR0911, PLR0912 - one router, a branch per route
        self, request: Request
    ) -> Response:
        if request.headers.get("ocp-apim-subscription-key") != self.key:
            return JSONResponse(
                {
                    "error": {
                        "code": "401",
                        "message": _DENIED,
                    }
                },
                status_code=401,
            )
        path = request.url.path
        m = re.match(r"^/translator/(?:text/batch/(v1\.[01])|document)(/.*)$", path)
        if m is None:
            return _error(404, "ResourceNotFound", "Resource not found.")
        flavour = m.group(1)
        if flavour is None:
            version = request.query_params.get("api-version")
            if version not in _NEW_VERSIONS:
                return _error(
                    400,
                    "InvalidRequest",
                    f"Unsupported api-version {version!r}; use one of {', '.join(_NEW_VERSIONS)}.",
                    "InvalidApiVersion",
                )
            flavour = version
        rest = m.group(2)
        method = request.method
        parts = rest.strip("/").split("/")
        if parts == ["formats"] and method == "GET" and not flavour.startswith("v1"):
            return JSONResponse(
                {
                    "value": [
                        {
                            "format": "PlainText",
                            "fileExtensions": [".txt"],
                            "contentTypes": ["text/plain"],
                            "versions": [],
                        },
                        {
                            "format": "OpenXML Word",
                            "fileExtensions": [".docx"],
                            "contentTypes": [
                                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
                            ],
                            "versions": [],
                        },
                    ]
                }
            )
        if parts[0] != "batches":
            return _error(404, "ResourceNotFound", "Resource not found.")
        if len(parts) == 1:
            if method == "POST":
                return await self.submit(request, flavour)
            if method == "GET":
                return self.list_batches(request, flavour)
            return _error(405, "InvalidRequest", "Method not allowed.")
        batch = self.batches.get(parts[1])
        # One resource whatever the API version used to read it (as in Azure).
        if batch is None:
            return _error(
                404, "ResourceNotFound", f"Batch {parts[1]} not found.", "BatchNotFound"
            )
        if len(parts) == 2:
            if method == "GET":
                return self.status(batch)
            if method == "DELETE":
                return self.cancel(batch, flavour)
            return _error(405, "InvalidRequest", "Method not allowed.")
        if parts[2] == "documents" and method == "GET":
            if len(parts) == 3:
                return self.list_docs(request, batch, flavour)
            if len(parts) == 4:
                doc = next((d for d in batch.docs if d.id == parts[3]), None)
                if doc is None:
                    return _error(
                        404,
                        "ResourceNotFound",
                        f"Document {parts[3]} not found.",
                        "DocumentNotFound",
                    )
                return self._json(self.doc_json(batch, doc), batch)
        return _error(404, "ResourceNotFound", "Resource not found.")

    def base(self, request: Request) -> str:
        return self.public or str(request.base_url).rstrip("/")

    def prefix(self, flavour: str) -> str:
        return (
            f"/translator/text/batch/{flavour}"
            if flavour.startswith("v1")
            else "/translator/document"
        )

    # -- batches --------------------------------------------------------------------------
    async def submit(self, request: Request, flavour: str) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(
                400,
                "InvalidRequest",
                "Request body is not valid JSON.",
                "InvalidRequestBody",
            )
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not inputs:
            return _error(
                400,
                "InvalidRequest",
                "Request is invalid: 'inputs' is required.",
                "MissingInputs",
            )
        now = self.clock()
        docs: list[_Doc] = []
        validation = False
        not_started = self.rng.uniform(1, 5) * self.scale
        for item in inputs:
            source = (
                (item.get("source") or {}).get("sourceUrl", "")
                if isinstance(item, dict)
                else ""
            )
            targets = item.get("targets") if isinstance(item, dict) else None
            if (
                not str(source).startswith("https://")
                or not isinstance(targets, list)
                or not targets
            ):
                return _error(
                    400,
                    "InvalidRequest",
                    "Request is invalid: each input needs an https sourceUrl and targets.",
                    "InvalidDocumentAccessLevel",
                )
            for target in targets:
                if not str(target.get("targetUrl", "")).startswith(
                    "https://"
                ) or not target.get("language"):
                    return _error(
                        400,
                        "InvalidRequest",
                        "Request is invalid: each target needs an https targetUrl and a language.",
                        "InvalidTargetDocumentAccessLevel",
                    )
            query = parse_qs(urlsplit(source).query)
            count = int(query.get("docs", [str(self.rng.randint(3, 10))])[0])
            failing = int(query.get("faildocs", ["0"])[0])
            if "sim-validation" in source or count <= 0:
                validation = True
            all_fail = "sim-failed" in source
            folder = urlsplit(source)._replace(query="").geturl().rstrip("/")
            for target in targets:
                for n in range(max(count, 0)):
                    start = not_started + self.rng.uniform(0, 2) * self.scale
                    run = self.rng.uniform(5, 40) * self.scale
                    docs.append(
                        _Doc(
                            id=str(uuid.UUID(int=self.rng.getrandbits(128))),
                            source=f"{folder}/doc-{n:03d}.docx",
                            target=f"{str(target['targetUrl']).rstrip('/')}/doc-{n:03d}.docx",
                            to=str(target["language"]),
                            start=start,
                            end=start + run,
                            fails=all_fail or n < failing,
                            chars=self.rng.randint(200, 5000),
                            created_offset=n * 0.001,
                        )
                    )
        batch = _Batch(
            id=str(uuid.UUID(int=self.rng.getrandbits(128))),
            created=now,
            created_wall=self.wall(now),
            flavour=flavour,
            not_started=not_started,
            docs=docs,
            validation=validation,
        )
        self.batches[batch.id] = batch
        location = f"{self.base(request)}{self.prefix(flavour)}/batches/{batch.id}"
        if not flavour.startswith("v1"):
            location += f"?api-version={flavour}"
        return Response(status_code=202, headers={"Operation-Location": location})

    def batch_json(self, batch: _Batch) -> dict[str, Any]:
        now = self.clock()
        states = [batch.doc_state(d, now) for d in batch.docs]
        state = batch.state(now)
        last = max(
            [batch.created] + [min(now, batch.created + d.end) for d in batch.docs]
        )
        out: dict[str, Any] = {
            "id": batch.id,
            "createdDateTimeUtc": _stamp(batch.created_wall),
            "lastActionDateTimeUtc": _stamp(self.wall(last)),
            "status": state,
            "summary": {
                "total": len(states),
                "failed": states.count("Failed") + states.count("ValidationFailed"),
                "success": states.count("Succeeded"),
                "inProgress": states.count("Running") + states.count("Cancelling"),
                "notYetStarted": states.count("NotStarted"),
                "cancelled": states.count("Cancelled"),
                "totalCharacterCharged": sum(
                    d.chars
                    for d, s in zip(batch.docs, states, strict=True)
                    if s == "Succeeded"
                ),
            },
        }
        if state == "ValidationFailed":
            out["error"] = {
                "code": "InvalidRequest",
                "message": "No translatable documents were found.",
                "target": "Operation",
                "innerError": {
                    "code": "NoTranslatableText",
                    "message": "No translatable documents were found in the source container.",
                },
            }
        elif state == "Failed":
            out["error"] = {
                "code": "InternalServerError",
                "message": "Every document failed.",
                "target": "Operation",
                "innerError": {
                    "code": "CorruptedDocument",
                    "message": "Every document failed to translate.",
                },
            }
        return out

    def doc_json(self, batch: _Batch, doc: _Doc) -> dict[str, Any]:
        now = self.clock()
        state = batch.doc_state(doc, now)
        t = now - batch.created
        progress = (
            0.0
            if t < doc.start
            else min(1.0, (t - doc.start) / max(doc.end - doc.start, 1e-9))
        )
        out: dict[str, Any] = {
            "id": doc.id,
            "sourcePath": doc.source,
            "createdDateTimeUtc": _stamp(
                batch.created_wall + timedelta(seconds=doc.created_offset)
            ),
            "lastActionDateTimeUtc": _stamp(self.wall(batch.created + min(t, doc.end))),
            "status": state,
            "to": doc.to,
            "progress": round(
                progress
                if state in ("Running", "Cancelling")
                else (1.0 if state == "Succeeded" else 0.0),
                4,
            ),
            "characterCharged": doc.chars if state == "Succeeded" else 0,
        }
        if state == "Succeeded":
            out["path"] = doc.target
        if state == "Failed":
            out["error"] = {
                "code": "InvalidRequest",
                "message": "Document is corrupted",
                "target": "Document",
                "innerError": {
                    "code": "CorruptedDocument",
                    "message": "The document could not be opened.",
                },
            }
        return out

    def _json(self, payload: dict[str, Any], batch: _Batch | None) -> JSONResponse:
        body = json.dumps(payload).encode()
        headers = {
            "ETag": '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            "apim-request-id": str(uuid.uuid4()),
        }
        if batch is not None and batch.state(self.clock()) not in _TERMINAL:
            headers["Retry-After"] = str(round(1 * self.scale))
        return JSONResponse(payload, headers=headers)

    def status(self, batch: _Batch) -> Response:
        return self._json(self.batch_json(batch), batch)

    def cancel(self, batch: _Batch, flavour: str) -> Response:
        now = self.clock()
        state = batch.state(now)
        if state in _TERMINAL or state == "Cancelling":
            status = 409 if flavour == "2026-03-01" else 400
            return _error(
                status,
                "InvalidRequest",
                f"The batch is already {state}; it cannot be cancelled.",
                "BatchCannotBeCancelled",
            )
        batch.cancel_at = now
        batch.cancel_done = now + self.rng.uniform(1, 3) * self.scale
        return self._json(self.batch_json(batch), batch)

    def list_batches(self, request: Request, flavour: str) -> Response:
        mine = [b for b in self.batches.values() if b.flavour == flavour]
        rows = [(b.id, b.created_wall, self.batch_json(b)) for b in mine]
        return self._page(
            request, flavour, rows, f"{self.prefix(flavour)}/batches", None
        )

    def list_docs(self, request: Request, batch: _Batch, flavour: str) -> Response:
        rows = [
            (
                d.id,
                batch.created_wall + timedelta(seconds=d.created_offset),
                self.doc_json(batch, d),
            )
            for d in batch.docs
        ]
        return self._page(
            request,
            flavour,
            rows,
            f"{self.prefix(flavour)}/batches/{batch.id}/documents",
            batch,
        )

    # -- paging ------------------------------------------------------------------------------
    def _page(
        self,
        request: Request,
        flavour: str,
        rows: list[tuple[str, datetime, dict[str, Any]]],
        path: str,
        batch: _Batch | None,
    ) -> Response:
        q = request.query_params
        dollar = any(k.startswith("$") for k in q)

        def get(name: str) -> str | None:
            for key in (f"${name}", name, f"${name.lower()}", name.lower()):
                if key in q:
                    return q[key]
            return None

        try:
            top = _int(get("top"), "top")
            skip = _int(get("skip"), "skip") or 0
            size = _int(get("maxpagesize"), "maxpagesize")
            if size is not None and not 1 <= size <= 100:
                msg = "maxpagesize must be between 1 and 100"
                raise ValueError(msg)  # noqa: TRY301 - reported as a 400 below
            order = (get("orderBy") or "createdDateTimeUtc desc").strip()
            om = re.fullmatch(
                r"createdDateTimeUtc(?:\s+(asc|desc))?", order, re.IGNORECASE
            )
            if om is None:
                msg = f"cannot order by {order!r}"
                raise ValueError(msg)  # noqa: TRY301 - reported as a 400 below
            start = _date(q.get("createdDateTimeUtcStart"))
            end = _date(q.get("createdDateTimeUtcEnd"))
        except ValueError as exc:
            return _error(
                400,
                "InvalidArgument",
                f"Invalid request. Check input parameters: {exc}.",
                "InvalidQueryParameter",
            )
        statuses = {
            s.strip()
            for s in (q.get("statuses") or q.get("status") or "").split(",")
            if s.strip()
        }
        ids = {s.strip() for s in (q.get("ids") or "").split(",") if s.strip()}
        selected = [
            r
            for r in rows
            if (not statuses or r[2]["status"] in statuses)
            and (not ids or r[0] in ids)
            and (start is None or r[1] >= start)
            and (end is None or r[1] <= end)
        ]
        selected.sort(
            key=lambda r: (r[1], r[0]),
            reverse=(om.group(1) or "desc").lower() == "desc",
        )
        remaining = selected[skip:]
        if top is not None:
            remaining = remaining[:top]
        page_size = min(size or _PAGE, _PAGE)
        page = remaining[:page_size]
        left = len(remaining) - len(page)
        payload: dict[str, Any] = {"value": [r[2] for r in page]}
        if left > 0:
            p = "$" if (dollar or flavour.startswith("v1")) else ""
            params: list[tuple[str, str]] = [
                (f"{p}skip", str(skip + len(page))),
                (f"{p}top", str(left)),
            ]
            if size is not None:
                params.append((f"{p}maxpagesize", str(size)))
            if get("orderBy") is not None:
                params.append((f"{p}orderBy" if p else "orderby", order))
            for key in (
                "statuses",
                "status",
                "ids",
                "createdDateTimeUtcStart",
                "createdDateTimeUtcEnd",
            ):
                if key in q:
                    params.append((key, q[key]))
            if not flavour.startswith("v1"):
                params.append(("api-version", flavour))
            link = f"{self.base(request)}{path}?{urlencode(params, safe='$,:')}"
            payload["@nextLink" if flavour.startswith("v1") else "nextLink"] = link
        return self._json(payload, batch)


def _int(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"\d+", text.strip()) or int(text) > _INT32:
        msg = f"{name} must be an integer from 0 to {_INT32}, not {text!r}"
        raise ValueError(msg)
    return int(text)


def _date(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        msg = f"not an ISO-8601 date-time: {text!r}"
        raise ValueError(msg) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def create_app(
    *,
    seed: int | None = None,
    time_scale: float = 1.0,
    api_key: str = "sim-key",
    faults: Faults | None = None,
    clock: Callable[[], float] = time.monotonic,
    public_base_url: str | None = None,
) -> FaultInjector:
    """Build the Azure Document Translation simulator, wrapped in the fault injector."""
    sim = _Sim(
        seed=seed,
        time_scale=time_scale,
        api_key=api_key,
        clock=clock,
        public_base_url=public_base_url,
    )
    app = Starlette(
        routes=[
            Route(
                "/{path:path}",
                sim.dispatch,
                methods=["GET", "POST", "DELETE", "PUT", "PATCH"],
            )
        ]
    )
    return FaultInjector(app, faults or Faults(), PROFILE, seed=seed)
