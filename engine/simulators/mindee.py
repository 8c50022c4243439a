"""Local simulator of Mindee API v2 (document inference), both path generations.

Routes (every one needs ``Authorization: <api key>``, the raw key, no prefix):

========  ===============================================  ===========================
Method    Path                                             Answers
========  ===============================================  ===========================
POST      ``/v2/products/{product}/enqueue``               202 job, 404, 422
POST      ``/v2/inferences/enqueue`` (legacy)              202 job, 422
GET       ``/v2/jobs/{job_id}[?redirect=false]``           200, 302 + ``Location``,
                                                           404, 422
GET       ``/v2/products/{product}/results/{inference}``   200 inference, 404, 422
GET       ``/v2/inferences/{inference_id}`` (legacy)       200 inference, 404, 422
GET       ``/_sim/faults``                                 fault counts (no auth)
========  ===============================================  ===========================

``product`` is one of extraction, classification, crop, ocr, split. The enqueue
form is ``multipart/form-data``: ``model_id`` (UUID, required); exactly one of a
``file`` part, ``url`` (https, at most 2048 characters) or ``file_base64`` (at
least 15 characters); optional ``alias``, ``webhook_ids`` (repeated UUIDs),
``rag``/``raw_text``/``polygon``/``confidence`` (``"true"``/``"false"``),
``text_context`` and ``data_schema`` (a JSON object as a string). The options are
accepted for every product and echoed in the result's ``active_options``.

A job enqueued on the legacy path is an extraction whose inference id equals its
job id: its ``result_url`` is ``/v2/inferences/<job id>``, and
``/v2/products/extraction/results/<job id>`` answers too (as 4.34-4.36 SDKs
call it). A job enqueued on a product path gets its own inference id and its
``result_url`` is ``/v2/products/<product>/results/<inference id>``; the legacy
``/v2/inferences/{id}`` serves any extraction inference by its inference id.
The key is checked before routing, so an unknown path without the key is a 401.

Getting a terminal outcome on purpose (case-insensitive substring of the
uploaded file's name, the ``url`` or the ``alias``; ``sim-failed`` wins over
``sim-processed``):

=========================  =========================================================
Input contains             Terminal outcome
=========================  =========================================================
``sim-failed-invalid``     ``Failed``, ``job.error`` = the ``422-001`` fixture object
``sim-failed``             ``Failed``, ``job.error`` = ``500-012`` "Inference failed"
``sim-processed``          ``Processed``
anything else              seeded mix: 85 % ``Processed``, 15 % ``Failed`` (500-012)
=========================  =========================================================

Timing: a job is ``Processing`` for a seeded 2-6 s (jobs bound to succeed) or
1-3 s (jobs bound to fail), multiplied by ``time_scale``; its state is computed
from the clock at request time. ``GET /v2/jobs/{id}`` answers 200 while
``Processing`` and once ``Failed``; once ``Processed`` it answers 302 with the
full job as its JSON body and ``Location`` = ``result_url`` (200 with
``?redirect=false``).

Our own choices where Mindee documents nothing: a result asked for before the job
is ``Processed``, or of a ``Failed`` job, is a 404 error object; not-found errors
use code ``404-001``, a wrong method ``405-001``, a malformed id in a path
``422-001``; ``filename`` is null for ``file_base64`` uploads and the URL's last
path segment for ``url`` ones; webhooks are never called, each id just gets a
``Processed`` delivery entry in ``job.webhooks`` once the job ends. ``Retry-After``
is only sent with injected 429/503 faults. The inference's fields are
illustrative (an invoice), the same for every product.
"""

from __future__ import annotations

import copy
import datetime as dt
import hmac
import json
import mimetypes
import random
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import attrs
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._base import (
    ASGIApp,
    FaultInjector,
    FaultProfile,
    Faults,
    Receive,
    Scope,
    Send,
    Timeline,
)

__all__ = ["PRODUCTS", "PROFILE", "create_app"]

#: Product families served under ``/v2/products/{product}/``.
PRODUCTS: Final = ("extraction", "classification", "crop", "ocr", "split")

PROCESSING: Final = "Processing"
PROCESSED: Final = "Processed"
FAILED: Final = "Failed"

#: Share of jobs without a trigger that fail.
FAILURE_RATE: Final = 0.15
#: Seconds a job bound to succeed stays ``Processing`` (before ``time_scale``).
PROCESSED_AFTER: Final = (2.0, 6.0)
#: Seconds a job bound to fail stays ``Processing`` (before ``time_scale``).
FAILED_AFTER: Final = (1.0, 3.0)

_UUID: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)
# The SDK parses with datetime.fromisoformat, which on Python 3.10 only accepts
# 3- or 6-digit fractions; %f always gives 6, isoformat() drops them at .000000.
_TIMESTAMP: Final = "%Y-%m-%dT%H:%M:%S.%f"
_FLAGS: Final = ("rag", "raw_text", "polygon", "confidence")
_SOURCES: Final = ("file", "url", "file_base64")
_MAX_URL: Final = 2048
_MIN_BASE64: Final = 15
# Starlette caps text fields at 1 MiB by default; a base64 document is a text
# field, and a 1 MiB cap would refuse any file over ~750 KiB.
_MAX_FIELD_BYTES: Final = 64 * 1024 * 1024
_CONFIDENCES: Final = ("Certain", "High", "Medium", "Low")

# The failed-job error of PROTOCOLS 1.4, verbatim from the fixture.
_INVALID_FIELDS: Final[dict[str, Any]] = {
    "status": 422,
    "title": "Invalid fields in form",
    "code": "422-001",
    "detail": "One or more fields failed validation.",
    "errors": [{"pointer": "#/model_id", "detail": "model_id must be a valid UUID"}],
}
_INFERENCE_FAILED: Final[dict[str, Any]] = {
    "status": 500,
    "title": "Inference failed",
    "code": "500-012",
    "detail": "The inference could not be completed.",
    "errors": [],
}
_FAILURES: Final = {"422-001": _INVALID_FIELDS, "500-012": _INFERENCE_FAILED}


def _problem(
    status: int,
    title: str,
    code: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Return an RFC 9457-style error object in Mindee's shape."""
    return {
        "status": status,
        "title": title,
        "code": code,
        "detail": detail,
        "errors": errors or [],
    }


def _fault_error_body(status: int, reason: str) -> dict[str, Any]:
    return _problem(status, reason, f"{status}-000", reason)


#: What the fault injector needs to know about Mindee.
PROFILE: Final = FaultProfile(
    status_pointer="/job/status",
    unknown_value="Exploding",
    error_body=_fault_error_body,
    earlier={PROCESSED: PROCESSING, FAILED: PROCESSING},
)


def _error(
    status: int,
    title: str,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = _problem(status, title, code, detail, errors)
    return JSONResponse(body, status_code=status, headers=headers)


def _not_found(detail: str) -> JSONResponse:
    return _error(404, "Not Found", "404-001", detail)


def _bad_path_id(name: str) -> JSONResponse:
    item = {"pointer": f"#/{name}", "detail": f"{name} must be a valid UUID"}
    return _error(
        422,
        "Invalid path parameter",
        "422-001",
        f"{name} is not a UUID.",
        errors=[item],
    )


def _is_uuid(text: str) -> bool:
    return _UUID.fullmatch(text) is not None


@attrs.frozen(kw_only=True)
class _Options:
    """Inference options sent with the enqueue form."""

    rag: bool = False
    raw_text: bool = False
    polygon: bool = False
    confidence: bool = False
    text_context: str | None = None
    data_schema: str | None = None


@attrs.frozen(kw_only=True)
class _Submission:
    """A valid enqueue form."""

    model_id: str
    filename: str | None
    mime_type: str
    url: str | None
    alias: str | None
    webhook_ids: tuple[str, ...]
    options: _Options

    def triggered(self) -> str | None:
        """Return the failure code or outcome the client asked for, if any."""
        texts = " ".join(t for t in (self.filename, self.url, self.alias) if t)
        texts = texts.casefold()
        if "sim-failed-invalid" in texts:
            return "422-001"
        if "sim-failed" in texts:
            return "500-012"
        if "sim-processed" in texts:
            return PROCESSED
        return None


@attrs.frozen(kw_only=True)
class _Job:
    """One enqueued document and its planned life."""

    id: str
    inference_id: str
    product: str
    legacy: bool
    submission: _Submission
    page_count: int
    #: Wall-clock time of the enqueue (UTC); later timestamps add clock time.
    created_at: dt.datetime
    timeline: Timeline
    #: ``code`` of the error object a failed job carries (a key of ``_FAILURES``).
    failure: str | None


class _FormErrors:
    """Collects ``errors[]`` items so that one 422 names every bad field."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, name: str, detail: str) -> None:
        self.items.append({"pointer": f"#/{name}", "detail": detail})

    def text(self, form: FormData, name: str) -> str | None:
        """Return the single text value of ``name``, or None (and an error)."""
        values = form.getlist(name)
        if not values:
            return None
        if len(values) > 1:
            self.add(name, f"{name} must be given once, not {len(values)} times")
            return None
        value = values[0]
        if not isinstance(value, str):
            self.add(name, f"{name} must be a text field, not a file")
            return None
        return value

    def flag(self, form: FormData, name: str) -> bool:
        value = self.text(form, name)
        if value is None or value == "false":
            return False
        if value == "true":
            return True
        self.add(name, f'{name} must be "true" or "false", not {value!r}')
        return False


def _parse_form(form: FormData, errors: _FormErrors) -> _Submission | None:
    model_id = errors.text(form, "model_id")
    if model_id is None:
        if "model_id" not in form:
            errors.add("model_id", "model_id is required")
    elif not _is_uuid(model_id):
        errors.add("model_id", "model_id must be a valid UUID")
    source = _parse_source(form, errors)
    webhook_ids = _parse_webhook_ids(form, errors)
    options = _parse_options(form, errors)
    alias = errors.text(form, "alias")
    if errors.items or model_id is None or source is None:
        return None
    filename, mime_type, url = source
    return _Submission(
        model_id=model_id,
        filename=filename,
        mime_type=mime_type,
        url=url,
        alias=alias,
        webhook_ids=webhook_ids,
        options=options,
    )


def _parse_source(
    form: FormData, errors: _FormErrors
) -> tuple[str | None, str, str | None] | None:
    """Return ``(filename, mime_type, url)`` of the one document source."""
    given = [name for name in _SOURCES if name in form]
    if len(given) != 1:
        got = f"; got {', '.join(given)}" if given else ""
        errors.add("file", f"exactly one of file, url or file_base64 is required{got}")
        return None
    if given[0] == "file":
        return _parse_file(form, errors)
    if given[0] == "url":
        return _parse_url(form, errors)
    encoded = errors.text(form, "file_base64")
    if encoded is None:
        return None
    if len(encoded) < _MIN_BASE64:
        errors.add(
            "file_base64", f"file_base64 must be at least {_MIN_BASE64} characters"
        )
        return None
    return None, "application/pdf", None


def _parse_file(
    form: FormData, errors: _FormErrors
) -> tuple[str | None, str, str | None] | None:
    parts = form.getlist("file")
    upload = parts[0]
    if len(parts) > 1 or not isinstance(upload, UploadFile):
        errors.add("file", "file must be one binary part")
        return None
    if not upload.size:
        errors.add("file", "file is empty")
        return None
    mime_type = upload.content_type
    if not mime_type or mime_type == "application/octet-stream":
        mime_type = mimetypes.guess_type(upload.filename or "")[0] or "application/pdf"
    return upload.filename, mime_type, None


def _parse_url(
    form: FormData, errors: _FormErrors
) -> tuple[str | None, str, str | None] | None:
    url = errors.text(form, "url")
    if url is None:
        return None
    parts = urlsplit(url)
    if len(url) > _MAX_URL:
        errors.add("url", f"url must be at most {_MAX_URL} characters")
        return None
    if parts.scheme != "https" or not parts.hostname:
        errors.add("url", "url must be an https URL")
        return None
    filename = unquote(parts.path.rsplit("/", 1)[-1]) or parts.hostname
    mime_type = mimetypes.guess_type(filename)[0] or "application/pdf"
    return filename, mime_type, url


def _parse_webhook_ids(form: FormData, errors: _FormErrors) -> tuple[str, ...]:
    ids: list[str] = []
    for value in form.getlist("webhook_ids"):
        if isinstance(value, str) and _is_uuid(value):
            ids.append(value)
        else:
            errors.add("webhook_ids", "each webhook_ids value must be a valid UUID")
    return tuple(ids)


def _parse_options(form: FormData, errors: _FormErrors) -> _Options:
    flags = {name: errors.flag(form, name) for name in _FLAGS}
    text_context = errors.text(form, "text_context")
    data_schema = errors.text(form, "data_schema")
    if data_schema is not None:
        try:
            schema = json.loads(data_schema)
        except ValueError:
            schema = None
        if not isinstance(schema, dict):
            errors.add("data_schema", "data_schema must be a JSON object")
    return _Options(text_context=text_context, data_schema=data_schema, **flags)


def _timestamp(moment: dt.datetime) -> str:
    return moment.strftime(_TIMESTAMP)


def _random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _sample_fields(job: _Job) -> dict[str, Any]:
    """Return illustrative invoice fields, the same every time for one job."""
    # Seeded by the inference id (itself seeded), so a result reads the same on
    # every fetch without being stored.
    rng = random.Random(job.inference_id)  # noqa: S311 - simulation, not security
    options = job.submission.options

    def simple(value: object) -> dict[str, Any]:
        confidence = rng.choice(_CONFIDENCES) if options.confidence else None
        locations = []
        if options.polygon:
            x, y = round(rng.uniform(0.05, 0.7), 3), round(rng.uniform(0.05, 0.9), 3)
            right, bottom = round(x + 0.2, 3), round(y + 0.03, 3)
            box = [[x, y], [right, y], [right, bottom], [x, bottom]]
            locations.append({"polygon": box, "page": 0})
        return {"value": value, "confidence": confidence, "locations": locations}

    number = f"F-{rng.randint(2020, 2030)}-{rng.randint(1, 9999):04d}"
    amounts = [round(rng.uniform(5, 500), 2) for _ in range(rng.randint(1, 3))]
    return {
        "invoice_number": simple(number),
        "total_amount": simple(round(sum(amounts), 2)),
        "line_items": {
            "items": [{"fields": {"amount": simple(amount)}} for amount in amounts]
        },
        "supplier": {"fields": {"name": simple("ACME SARL")}},
    }


def _inference_body(job: _Job) -> dict[str, Any]:
    submission = job.submission
    options = submission.options
    raw_text = None
    if options.raw_text:
        name = submission.filename or "document"
        pages = [{"content": f"Page {n + 1} of {name}"} for n in range(job.page_count)]
        raw_text = {"pages": pages}
    return {
        "inference": {
            "id": job.inference_id,
            "job": {"id": job.id},
            "model": {"id": submission.model_id},
            "file": {
                "name": submission.filename,
                "alias": submission.alias,
                "page_count": job.page_count,
                "mime_type": submission.mime_type,
            },
            "active_options": {
                "raw_text": options.raw_text,
                "polygon": options.polygon,
                "confidence": options.confidence,
                "rag": options.rag,
                "text_context": bool(options.text_context),
                "data_schema": {"replace": options.data_schema is not None},
            },
            "result": {
                "fields": _sample_fields(job),
                "raw_text": raw_text,
                "rag": {"retrieved_document_id": None} if options.rag else None,
            },
        }
    }


class _Service:
    """The in-memory Mindee: jobs by id and by inference id, and the handlers."""

    def __init__(
        self,
        *,
        seed: int | None,
        time_scale: float,
        clock: Callable[[], float],
        public_base_url: str | None,
    ) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - simulation, not security
        self.time_scale = time_scale
        self.clock = clock
        self.public_base_url = public_base_url
        self.jobs: dict[str, _Job] = {}
        self.inferences: dict[str, _Job] = {}
        # One wall-clock anchor: every timestamp is the anchor plus clock time,
        # so an injected fake clock moves the timestamps too.
        self.wall_anchor = dt.datetime.now(dt.UTC)
        self.clock_anchor = clock()

    def base_url(self, request: Request) -> str:
        return (self.public_base_url or str(request.base_url)).rstrip("/")

    # -- enqueue ---------------------------------------------------------------

    async def enqueue_product(self, request: Request) -> Response:
        product: str = request.path_params["product"]
        if product not in PRODUCTS:
            return _not_found(f"Unknown product {product!r}; use one of {PRODUCTS}.")
        return await self._enqueue(request, product, legacy=False)

    async def enqueue_legacy(self, request: Request) -> Response:
        return await self._enqueue(request, "extraction", legacy=True)

    async def _enqueue(
        self, request: Request, product: str, *, legacy: bool
    ) -> Response:
        errors = _FormErrors()
        try:
            async with request.form(max_part_size=_MAX_FIELD_BYTES) as form:
                submission = _parse_form(form, errors)
        except HTTPException as exc:  # a malformed multipart body
            errors.add("file", str(exc.detail))
            submission = None
        if submission is None:
            return _error(
                422,
                "Invalid fields in form",
                "422-001",
                "One or more fields failed validation.",
                errors=errors.items,
            )
        job = self._plan(submission, product, legacy=legacy)
        self.jobs[job.id] = job
        self.inferences[job.inference_id] = job
        return JSONResponse(self._job_body(job, request), status_code=202)

    def _plan(self, submission: _Submission, product: str, *, legacy: bool) -> _Job:
        """Draw a job's ids, outcome and duration from the seeded RNG."""
        job_id = _random_uuid(self.rng)
        inference_id = job_id if legacy else _random_uuid(self.rng)
        # Drawn even when a trigger decides, so that adding a trigger to one
        # request does not reshuffle the outcomes of the requests after it.
        draw = self.rng.random()
        chosen = submission.triggered()
        if chosen is None:
            chosen = "500-012" if draw < FAILURE_RATE else PROCESSED
        final, failure = (PROCESSED, None) if chosen == PROCESSED else (FAILED, chosen)
        low, high = FAILED_AFTER if final == FAILED else PROCESSED_AFTER
        duration = self.rng.uniform(low, high)
        pdf = submission.mime_type == "application/pdf"
        page_count = self.rng.randint(1, 3) if pdf else 1
        now = self.clock()
        timeline = Timeline.build(
            now, ((PROCESSING, duration),), final, time_scale=self.time_scale
        )
        return _Job(
            id=job_id,
            inference_id=inference_id,
            product=product,
            legacy=legacy,
            submission=submission,
            page_count=page_count,
            created_at=self._wall(now),
            timeline=timeline,
            failure=failure,
        )

    def _wall(self, clock_time: float) -> dt.datetime:
        return self.wall_anchor + dt.timedelta(seconds=clock_time - self.clock_anchor)

    # -- jobs ------------------------------------------------------------------

    def result_url(self, job: _Job, request: Request) -> str:
        if job.legacy:
            return f"{self.base_url(request)}/v2/inferences/{job.id}"
        path = f"/v2/products/{job.product}/results/{job.inference_id}"
        return self.base_url(request) + path

    def _job_body(self, job: _Job, request: Request) -> dict[str, Any]:
        state = job.timeline.state_at(self.clock())
        done = state != PROCESSING
        completed = self._wall(job.timeline.ends_at)
        # Webhooks are not called; a delivery entry appears once the job ends.
        delivered = completed + dt.timedelta(seconds=0.1 * self.time_scale)
        webhooks = [
            {
                "id": webhook_id,
                "created_at": _timestamp(delivered),
                "status": PROCESSED,
                "error": None,
            }
            for webhook_id in job.submission.webhook_ids
            if done
        ]
        error = None
        if state == FAILED and job.failure is not None:
            error = copy.deepcopy(_FAILURES[job.failure])
        return {
            "job": {
                "id": job.id,
                "model_id": job.submission.model_id,
                "filename": job.submission.filename,
                "alias": job.submission.alias,
                "created_at": _timestamp(job.created_at),
                "completed_at": _timestamp(completed) if done else None,
                "status": state,
                "polling_url": f"{self.base_url(request)}/v2/jobs/{job.id}",
                "result_url": (
                    self.result_url(job, request) if state == PROCESSED else None
                ),
                "webhooks": webhooks,
                "error": error,
            }
        }

    async def get_job(self, request: Request) -> Response:
        job_id: str = request.path_params["job_id"]
        if not _is_uuid(job_id):
            return _bad_path_id("job_id")
        redirect = _parse_bool(request.query_params.get("redirect", "true"))
        if redirect is None:
            item = {"pointer": "#/redirect", "detail": "redirect must be a boolean"}
            return _error(
                422,
                "Invalid query",
                "422-001",
                "redirect is not a boolean.",
                errors=[item],
            )
        job = self.jobs.get(job_id.lower())
        if job is None:
            return _not_found(f"No job with id {job_id}.")
        body = self._job_body(job, request)
        result_url = body["job"]["result_url"]
        if redirect and result_url is not None:
            # Mindee sends the whole job along with the redirect; clients are
            # told to prefer job.result_url over following Location.
            return JSONResponse(body, status_code=302, headers={"Location": result_url})
        return JSONResponse(body)

    # -- results ---------------------------------------------------------------

    async def get_result(self, request: Request) -> Response:
        product: str = request.path_params["product"]
        if product not in PRODUCTS:
            return _not_found(f"Unknown product {product!r}; use one of {PRODUCTS}.")
        return self._result(request.path_params["inference_id"], product)

    async def get_legacy_result(self, request: Request) -> Response:
        return self._result(request.path_params["inference_id"], "extraction")

    def _result(self, inference_id: str, product: str) -> Response:
        if not _is_uuid(inference_id):
            return _bad_path_id("inference_id")
        job = self.inferences.get(inference_id.lower())
        if job is None or job.product != product:
            return _not_found(f"No {product} inference with id {inference_id}.")
        state = job.timeline.state_at(self.clock())
        if state != PROCESSED:
            # Our choice: Mindee does not say what an early fetch answers.
            detail = f"Inference {inference_id} is not available: the job is {state}."
            return _not_found(detail)
        return JSONResponse(_inference_body(job))


def _parse_bool(text: str) -> bool | None:
    """Parse a query boolean the way FastAPI does; None if it is not one."""
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    return None


def _http_error(_request: Request, exc: Exception) -> Response:
    """Render Starlette's own 404/405 (unknown route, wrong method) as Mindee does."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - only registered for it
        raise exc
    if exc.status_code == 405:
        detail = "This method is not allowed on this path."
        return _error(405, "Method Not Allowed", "405-001", detail, headers=exc.headers)
    if exc.status_code == 404:
        return _not_found("No such route.")
    title = str(exc.detail)
    return _error(exc.status_code, title, f"{exc.status_code}-000", title)


class _RequireKey:
    """ASGI wrapper that refuses requests without the exact API key."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            refusal = self._refusal(given)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _refusal(self, given: bytes) -> Response | None:
        if not given:
            return _error(
                401,
                "Credentials are required.",
                "401-008",
                "Send your API key, without a prefix, in the Authorization header.",
            )
        # Constant-time, so the simulator does not teach a timing side channel.
        if not hmac.compare_digest(given, self.api_key):
            return _error(
                401, "Invalid API key", "401-001", "The provided API key is invalid."
            )
        return None


def create_app(
    *,
    seed: int | None = None,
    time_scale: float = 1.0,
    api_key: str = "sim-key",
    faults: Faults | None = None,
    clock: Callable[[], float] = time.monotonic,
    public_base_url: str | None = None,
) -> FaultInjector:
    """Build the Mindee v2 simulator, wrapped in the fault injector.

    Args:
        seed: Seeds ids, durations and the outcomes the client did not choose.
        time_scale: Multiplies every duration (``0.01`` runs 100 times faster).
        api_key: The only value of ``Authorization`` that is accepted.
        faults: Faults to inject; none by default.
        clock: Monotonic clock that drives the job timelines.
        public_base_url: Base of every absolute URL emitted, instead of the
            request's own.

    Returns:
        The ASGI app; ``.counts`` tells which faults fired.
    """
    service = _Service(
        seed=seed, time_scale=time_scale, clock=clock, public_base_url=public_base_url
    )
    routes = [
        Route(
            "/v2/products/{product}/enqueue", service.enqueue_product, methods=["POST"]
        ),
        Route("/v2/inferences/enqueue", service.enqueue_legacy, methods=["POST"]),
        Route("/v2/jobs/{job_id}", service.get_job, methods=["GET"]),
        Route(
            "/v2/products/{product}/results/{inference_id}",
            service.get_result,
            methods=["GET"],
        ),
        Route(
            "/v2/inferences/{inference_id}", service.get_legacy_result, methods=["GET"]
        ),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return FaultInjector(
        _RequireKey(app, api_key), faults or Faults(), PROFILE, seed=seed
    )
