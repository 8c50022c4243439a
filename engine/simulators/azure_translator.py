"""Local simulator of Azure AI Document Translation (batch), both API flavours.

Two flavours share one store of batches (a batch created through one can be read
through the other, as on Azure):

- v1.0 / v1.1: prefix ``/translator/text/batch/v1.0`` (or ``v1.1``), no
  ``api-version``, next-page field ``@nextLink``;
- 2024-05-01 / 2026-03-01: prefix ``/translator/document`` with
  ``?api-version=2024-05-01`` or ``2026-03-01`` (missing or other: 400
  ``InvalidRequest``/``InvalidApiVersion``), next-page field ``nextLink``.

Routes (``{P}`` is a prefix above; every one needs ``Ocp-Apim-Subscription-Key``
with the exact key, else 401 ``{"error": {"code": "401", "message": ...}}``):

========  ================================  =====================================
Method    Path                              Answers
========  ================================  =====================================
POST      ``{P}/batches``                   202, empty body, ``Operation-Location``;
                                            400 ``InvalidRequest``
GET       ``{P}/batches``                   200 page of batch statuses; 400
GET       ``{P}/batches/{id}``              200 batch status; 404
DELETE    ``{P}/batches/{id}``              200 batch now ``Cancelling``; 400
                                            (v1.x, 2024-05-01) or 409 (2026-03-01)
                                            when terminal or cancelling; 404
GET       ``{P}/batches/{id}/documents``    200 page of document statuses; 400; 404
GET       ``{P}/batches/{id}/documents/     200 document status; 404
          {documentId}``
GET       ``/translator/document/formats``  200 supported formats, ``type=document``
          ``?api-version=V&type=T``         or ``glossary`` (else 400)
GET       ``/_sim/faults``                  fault counts (no key needed)
========  ================================  =====================================

Every response carries ``apim-request-id`` and ``X-RequestId``; error responses
carry ``x-ms-error-code`` and the body ``{"error": {"code", "message", "target",
"innerError": {"code", "message"}}}``. The three status GETs carry an ``ETag``
(a hash of the body) and, while the batch is not terminal, ``Retry-After:
round(time_scale)`` (whole seconds, so ``0`` under small scales). Unknown paths
are 404 ``ResourceNotFound``, a wrong method 405.

Listing (documents and batches) accepts ``$top``/``$skip``/``$maxpagesize``/
``$orderBy`` and the bare ``top``/``skip``/``maxpagesize``/``orderby`` (any
case), and the filters ``statuses`` (csv, alias ``status``), ``ids`` (csv of
UUIDs), ``createdDateTimeUtcStart``/``createdDateTimeUtcEnd`` (ISO-8601,
inclusive). It filters, orders by ``createdDateTimeUtc`` (default ``desc``; ties
by id), skips, then takes ``top``; a page holds ``min(maxpagesize, 50)`` items.
While items remain, the absolute next link carries ``skip`` + page length, the
remaining ``top``, the client's ``maxpagesize``, its filters and ordering as it
spelt them, and ``api-version`` on the new flavour; the paging names are
``$``-prefixed if the client used ``$`` names (or none, on v1.x), bare otherwise.
Invalid values are 400 ``InvalidArgument`` with the parameter as ``target``:
``maxpagesize`` outside 1..100, ``top``/``skip`` not an integer in 0..2^31-1, an
order other than ``createdDateTimeUtc [asc|desc]`` (without a direction: ``asc``,
as in OData), a bad date, an unknown status, an id that is not a UUID.

Each input's source holds documents ``doc-000.docx``, ``doc-001.docx``, ... under
the ``sourceUrl``'s path (``source.filter.prefix`` is put in front of the name;
``suffix``, if given, replaces ``.docx``); with ``storageType: File`` the source
is the one document and each ``targetUrl`` is its translation. There is one
document per source document and target language. Query strings (SAS tokens)
are dropped from ``sourcePath`` and ``path``.

Getting a terminal outcome on purpose (read from each ``sourceUrl``):

=======================================  ========================================
Source URL                               Terminal outcome
=======================================  ========================================
contains ``sim-validation``              batch ``ValidationFailed``, no documents,
                                         ``error.innerError.code``
                                         ``InvalidDocumentAccessLevel``
query ``docs=0``                         batch ``ValidationFailed``, no documents,
                                         ``NoTranslatableText``
contains ``sim-failed``                  every document of that input ``Failed``;
                                         the batch ``Failed`` if all its documents
                                         failed
query ``docs=N`` (1..1000)               N source documents (default: seeded 3-10)
query ``faildocs=K``                     the first K source documents (doc-000...)
                                         ``Failed`` in every target language,
                                         error ``InvalidRequest`` /
                                         ``CorruptedDocument``; the others
                                         ``Succeeded``
no ``faildocs``                          seeded mix: each source document fails
                                         with probability 0.05
DELETE before the end                    ``Cancelling``, then ``Cancelled``
=======================================  ========================================

A batch is ``Succeeded`` once every document has finished unless all of them
``Failed`` (then ``Failed``), so a ``Succeeded`` batch may hold failed documents.

Timing (every duration multiplied by ``time_scale``; state computed from the
clock at request time): the batch and its documents are ``NotStarted`` for a
seeded 1-5 s; then every document is ``Running`` for its own seeded 5-40 s
(``progress`` growing from 0 to 1) and ends ``Succeeded`` or ``Failed``; the
batch is ``Running`` until its last document ends. A ``ValidationFailed`` batch
is ``NotStarted`` for the same 1-5 s. A DELETE turns the batch and its
unfinished documents ``Cancelling`` at once and ``Cancelled`` a seeded 1-3 s
later; finished documents keep their state and charge. ``summary`` always counts
the documents' current states (``Cancelling`` documents count as ``inProgress``).

Our own choices where Azure documents nothing: the innerError codes
``InvalidRequestBody`` (bad POST body or trigger), ``InvalidApiVersion``,
``InvalidQueryParameter``, ``BatchNotFound``, ``DocumentNotFound``,
``BatchNotCancellable`` and ``MethodNotAllowed``; a ``Failed`` batch's error
(``InvalidRequest``/``CorruptedDocument``); documents are created 1 µs apart in
input, document, target order; ``Bearer`` tokens are not accepted; faults
injected by ``_base`` lack the request-id and ``x-ms-error-code`` headers.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import attrs
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._base import (
    ASGIApp,
    FaultInjector,
    FaultProfile,
    Faults,
    Message,
    Receive,
    Scope,
    Send,
    Timeline,
)

__all__ = ["API_VERSIONS", "PROFILE", "STATUSES", "create_app"]

_Handler = Callable[[Request], Awaitable[Response]]

NOT_STARTED: Final = "NotStarted"
RUNNING: Final = "Running"
CANCELLING: Final = "Cancelling"
SUCCEEDED: Final = "Succeeded"
FAILED: Final = "Failed"
CANCELLED: Final = "Cancelled"
VALIDATION_FAILED: Final = "ValidationFailed"

#: Every status a batch or a document can have (wire spelling).
STATUSES: Final = (
    NOT_STARTED,
    RUNNING,
    CANCELLING,
    SUCCEEDED,
    FAILED,
    CANCELLED,
    VALIDATION_FAILED,
)
_TERMINAL: Final = frozenset({SUCCEEDED, FAILED, CANCELLED, VALIDATION_FAILED})

#: ``api-version`` values served under ``/translator/document``.
API_VERSIONS: Final = ("2024-05-01", "2026-03-01")
_V1_PREFIXES: Final = {
    "v1.0": "/translator/text/batch/v1.0",
    "v1.1": "/translator/text/batch/v1.1",
}
_NEW_PREFIX: Final = "/translator/document"

#: Seconds (before ``time_scale``) a batch waits before its documents run.
NOT_STARTED_FOR: Final = (1.0, 5.0)
#: Seconds (before ``time_scale``) one document runs.
RUNNING_FOR: Final = (5.0, 40.0)
#: Seconds (before ``time_scale``) from DELETE to ``Cancelled``.
CANCELLING_FOR: Final = (1.0, 3.0)
#: Source documents per input when ``docs=`` is not given.
DEFAULT_DOCS: Final = (3, 10)
MAX_DOCS: Final = 1000
#: Chance that a source document fails when ``faildocs=`` is not given.
FAILURE_RATE: Final = 0.05
PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 100
_INT32: Final = 2**31 - 1

_JSON: Final = "application/json; charset=utf-8"
_UUID: Final = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)
_DIGITS: Final = re.compile(r"[0-9]+")
_ORDER: Final = re.compile(r"\s*createdDateTimeUtc(?:\s+(asc|desc))?\s*", re.IGNORECASE)
_PAGING: Final = ("top", "skip", "maxpagesize", "orderby")
_FILTERS: Final = (
    "statuses",
    "status",
    "ids",
    "createdDateTimeUtcStart",
    "createdDateTimeUtcEnd",
)
_MISSING_KEY: Final = (
    "Access denied due to missing subscription key. Make sure to include "
    "subscription key when making requests to an API."
)
_WRONG_KEY: Final = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure "
    "to provide a valid key for an active subscription and use a correct regional "
    "API endpoint for your resource."
)
_CORRUPTED: Final[dict[str, Any]] = {
    "code": "InvalidRequest",
    "message": "Document is corrupted",
    "target": "Document",
    "innerError": {
        "code": "CorruptedDocument",
        "message": "The document could not be opened.",
    },
}
_REFUSALS: Final = {
    "InvalidDocumentAccessLevel": (
        "Cannot access source document location with the current permissions."
    ),
    "NoTranslatableText": "No translatable documents were found in the source.",
}
_FORMATS: Final[dict[str, list[dict[str, Any]]]] = {
    "document": [
        {
            "format": "PlainText",
            "fileExtensions": [".txt"],
            "contentTypes": ["text/plain"],
            "versions": [],
            "type": "Document",
        },
        {
            "format": "OpenXml Word",
            "fileExtensions": [".docx"],
            "contentTypes": [
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            ],
            "versions": [],
            "type": "Document",
        },
        {
            "format": "PortableDocumentFormat",
            "fileExtensions": [".pdf"],
            "contentTypes": ["application/pdf"],
            "versions": [],
            "type": "Document",
        },
        {
            "format": "HTML",
            "fileExtensions": [".html", ".htm"],
            "contentTypes": ["text/html"],
            "versions": [],
            "type": "Document",
        },
    ],
    "glossary": [
        {
            "format": "XLIFF",
            "fileExtensions": [".xlf"],
            "contentTypes": ["application/xliff+xml"],
            "defaultVersion": "1.2",
            "versions": ["1.0", "1.1", "1.2"],
            "type": "Glossary",
        },
        {
            "format": "TSV",
            "fileExtensions": [".tsv", ".tab"],
            "contentTypes": ["text/tab-separated-values"],
            "versions": [],
            "type": "Glossary",
        },
        {
            "format": "CSV",
            "fileExtensions": [".csv"],
            "contentTypes": ["text/csv"],
            "versions": [],
            "type": "Glossary",
        },
    ],
}


def _error_body(
    code: str, message: str, inner: str | None = None, target: str = "Operation"
) -> dict[str, Any]:
    """Return Azure's error object; ``innerError`` holds the specific code."""
    error: dict[str, Any] = {"code": code, "message": message, "target": target}
    if inner is not None:
        error["innerError"] = {"code": inner, "message": message}
    return {"error": error}


def _fault_error_body(status: int, reason: str) -> dict[str, Any]:
    code = {429: "RequestRateTooHigh", 503: "ServiceUnavailable"}.get(
        status, "InternalServerError"
    )
    return _error_body(code, reason, code)


#: What the fault injector needs to know about Azure Document Translation.
PROFILE: Final = FaultProfile(
    status_pointer="/status",
    unknown_value="Exploding",
    error_body=_fault_error_body,
    earlier={
        RUNNING: NOT_STARTED,
        SUCCEEDED: RUNNING,
        FAILED: RUNNING,
        CANCELLED: CANCELLING,
        CANCELLING: RUNNING,
    },
)


class _AzureError(Exception):
    """Raised by a handler; rendered as Azure's error object with its status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        inner: str | None = None,
        *,
        target: str = "Operation",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner
        self.target = target

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        body = _error_body(self.code, self.message, self.inner, self.target)
        return _json(
            body, self.status, {"x-ms-error-code": self.code, **(headers or {})}
        )


def _bad_body(message: str) -> _AzureError:
    return _AzureError(400, "InvalidRequest", message, "InvalidRequestBody")


def _bad_param(message: str, name: str) -> _AzureError:
    return _AzureError(
        400,
        "InvalidArgument",
        f"Invalid request. Check input parameters: {message}",
        "InvalidQueryParameter",
        target=name,
    )


def _json(
    payload: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type=_JSON, headers=headers)


def _stamp(moment: dt.datetime) -> str:
    # Azure writes 7-digit fractions (100 ns ticks); datetime stops at µs.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _without_query(url: str) -> str:
    # sourceUrl/targetUrl usually carry a SAS token: never echo it back.
    return urlsplit(url)._replace(query="", fragment="").geturl()


# -- the batch request ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Input:
    """One validated ``inputs[]`` entry and the outcome its source URL asks for."""

    source_url: str
    prefix: str
    suffix: str
    single_file: bool
    #: ``(targetUrl, language)`` per target.
    targets: tuple[tuple[str, str], ...]
    #: ``docs=N``; None: a seeded count.
    count: int | None
    #: ``faildocs=K``; None: a seeded mix.
    failing: int | None
    all_fail: bool
    #: innerError code of a batch refused up front, if this input asks for it.
    refusal: str | None

    def names(self, count: int) -> list[str]:
        """Return the names of this input's ``count`` documents, relative to it."""
        if self.single_file:
            return [urlsplit(self.source_url).path.rsplit("/", 1)[-1]]
        ending = self.suffix or ".docx"
        return [f"{self.prefix}doc-{n:03d}{ending}" for n in range(count)]

    def source_path(self, name: str) -> str:
        """Return the source document called ``name``."""
        if self.single_file:
            return _without_query(self.source_url)
        return f"{_without_query(self.source_url).rstrip('/')}/{name}"

    def target_path(self, target_url: str, name: str) -> str:
        """Return where the translation of the document ``name`` is written."""
        if self.single_file:
            return _without_query(target_url)
        return f"{_without_query(target_url).rstrip('/')}/{name}"


def _https(value: object, where: str) -> str:
    if not isinstance(value, str):
        msg = f"{where} is required and must be a string."
        raise _bad_body(msg)
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        msg = f"{where} must be an absolute https URL."
        raise _bad_body(msg)
    return value


def _optional(mapping: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = mapping.get(key)
    if value is not None and not isinstance(value, kind):
        msg = f"{where}.{key} must be a {kind.__name__}."
        raise _bad_body(msg)
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        msg = f"{where} is required and must be an object."
        raise _bad_body(msg)
    return value


def _parse_inputs(body: object) -> tuple[_Input, ...]:
    """Validate a POST body (PROTOCOLS 3.2) and return its inputs."""
    document = _object(body, "The request body")
    inputs = document.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        msg = "inputs is required and must be a non-empty array."
        raise _bad_body(msg)
    _optional(document, "options", dict, "body")
    return tuple(_parse_input(item, f"inputs[{i}]") for i, item in enumerate(inputs))


def _parse_input(item: object, where: str) -> _Input:
    entry = _object(item, where)
    source = _object(entry.get("source"), f"{where}.source")
    source_url = _https(source.get("sourceUrl"), f"{where}.source.sourceUrl")
    found = _optional(source, "filter", dict, f"{where}.source") or {}
    prefix = _optional(found, "prefix", str, f"{where}.source.filter") or ""
    suffix = _optional(found, "suffix", str, f"{where}.source.filter") or ""
    _optional(source, "language", str, f"{where}.source")
    if source.get("storageSource", "AzureBlob") != "AzureBlob":
        msg = f"{where}.source.storageSource must be AzureBlob."
        raise _bad_body(msg)
    storage_type = entry.get("storageType", "Folder")
    if storage_type not in ("Folder", "File"):
        msg = f"{where}.storageType must be Folder or File."
        raise _bad_body(msg)
    targets = entry.get("targets")
    if not isinstance(targets, list) or not targets:
        msg = f"{where}.targets is required and must be a non-empty array."
        raise _bad_body(msg)
    parsed = tuple(
        _parse_target(target, f"{where}.targets[{i}]")
        for i, target in enumerate(targets)
    )
    count, failing = _trigger_numbers(source_url, where)
    lowered = source_url.casefold()
    refusal = None
    if "sim-validation" in lowered:
        refusal = "InvalidDocumentAccessLevel"
    elif count == 0:
        refusal = "NoTranslatableText"
    single = storage_type == "File"
    return _Input(
        source_url=source_url,
        prefix=prefix,
        suffix=suffix,
        single_file=single,
        targets=parsed,
        count=count,
        failing=failing,
        all_fail="sim-failed" in lowered,
        refusal=refusal,
    )


def _parse_target(item: object, where: str) -> tuple[str, str]:
    target = _object(item, where)
    url = _https(target.get("targetUrl"), f"{where}.targetUrl")
    language = target.get("language")
    if not isinstance(language, str) or not language:
        msg = f"{where}.language is required and must be a language code."
        raise _bad_body(msg)
    _optional(target, "category", str, where)
    glossaries = _optional(target, "glossaries", list, where) or []
    for i, glossary in enumerate(glossaries):
        entry = _object(glossary, f"{where}.glossaries[{i}]")
        _https(entry.get("glossaryUrl"), f"{where}.glossaries[{i}].glossaryUrl")
        if not isinstance(entry.get("format"), str):
            msg = f"{where}.glossaries[{i}].format is required."
            raise _bad_body(msg)
    return url, language


def _trigger_numbers(source_url: str, where: str) -> tuple[int | None, int | None]:
    """Return ``docs=`` and ``faildocs=`` from the source URL's query."""
    query = parse_qs(urlsplit(source_url).query)
    numbers: list[int | None] = []
    for name in ("docs", "faildocs"):
        values = query.get(name)
        if values is None:
            numbers.append(None)
            continue
        if (
            len(values) != 1
            or not _DIGITS.fullmatch(values[0])
            or int(values[0]) > MAX_DOCS
        ):
            msg = f"{where}.source.sourceUrl: {name} must be an integer 0..{MAX_DOCS}."
            raise _bad_body(msg)
        numbers.append(int(values[0]))
    return numbers[0], numbers[1]


# -- batches and documents ------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Document:
    """One (source document x target language) of a batch and its planned life."""

    id: str
    source_path: str
    target_path: str
    language: str
    created_at: dt.datetime
    characters: int
    #: Planned running time in clock seconds (``time_scale`` applied).
    run_seconds: float
    timeline: Timeline


@attrs.frozen(kw_only=True)
class _Batch:
    """A submitted batch; its status is derived from its documents at request time."""

    id: str
    created_at: dt.datetime
    #: The batch's own phases: NotStarted, then Running (whose end the documents
    #: decide) or ValidationFailed; a cancel cuts it to Cancelling → Cancelled.
    timeline: Timeline
    documents: tuple[_Document, ...]
    #: innerError code of a ValidationFailed batch.
    refusal: str | None


def _status(batch: _Batch, states: Sequence[str], now: float) -> str:
    phase = batch.timeline.state_at(now)
    if phase != RUNNING:
        return phase
    if any(state not in _TERMINAL for state in states):
        return RUNNING
    return FAILED if all(state == FAILED for state in states) else SUCCEEDED


def _changed_at(timeline: Timeline, now: float) -> float:
    """Return the clock time of the last step of ``timeline`` reached by ``now``."""
    elapsed = now - timeline.start
    reached = [offset for offset, _ in timeline.steps if offset <= elapsed]
    return timeline.start + (reached[-1] if reached else 0.0)


def _progress(document: _Document, state: str, now: float) -> float:
    if state == SUCCEEDED:
        return 1.0
    if state in (NOT_STARTED, FAILED):
        return 0.0
    steps = document.timeline.steps
    running = [i for i, (_, name) in enumerate(steps) if name == RUNNING]
    if not running:  # cancelled before it started
        return 0.0
    began = steps[running[0]][0]
    # Running, or frozen where a cancel cut the run short.
    until = now - document.timeline.start
    if state != RUNNING and running[0] + 1 < len(steps):
        until = steps[running[0] + 1][0]
    return round(min(1.0, max(0.0, (until - began) / document.run_seconds)), 4)


def _cancelled(timeline: Timeline, now: float, done: float) -> Timeline:
    cut = timeline.cut_short(now, CANCELLING)
    return Timeline(cut.start, (*cut.steps, (done - cut.start, CANCELLED)))


@attrs.frozen(kw_only=True)
class _Api:
    """The API flavour a request used."""

    version: str

    @property
    def legacy(self) -> bool:
        """Whether this is v1.0/v1.1 (``$`` names, ``@nextLink``)."""
        return self.version in _V1_PREFIXES

    @property
    def prefix(self) -> str:
        """Path prefix of this flavour."""
        return _V1_PREFIXES.get(self.version, _NEW_PREFIX)

    @property
    def next_field(self) -> str:
        """Name of the next-page field."""
        return "@nextLink" if self.legacy else "nextLink"

    @property
    def refusal_status(self) -> int:
        """Status of a DELETE on a batch that can no longer be cancelled."""
        return 409 if self.version == "2026-03-01" else 400

    def url(self, base: str, path: str, query: Sequence[tuple[str, str]] = ()) -> str:
        """Return the absolute URL of ``path`` under this flavour."""
        pairs = list(query)
        if not self.legacy:
            pairs.append(("api-version", self.version))
        text = urlencode(pairs, safe="$,:", quote_via=quote)
        return f"{base}{self.prefix}{path}" + (f"?{text}" if text else "")


def _api_of(request: Request) -> _Api:
    path: str = request.scope["path"]
    for version, prefix in _V1_PREFIXES.items():
        if path.startswith(prefix + "/"):
            return _Api(version=version)
    version = request.query_params.get("api-version", "")
    if version not in API_VERSIONS:
        msg = (
            f"The api-version {version!r} is not supported; "
            f"use one of {', '.join(API_VERSIONS)}."
        )
        raise _AzureError(400, "InvalidRequest", msg, "InvalidApiVersion")
    return _Api(version=version)


# -- listing --------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Listing:
    """Paging, ordering and filters of one list request."""

    top: int | None
    skip: int
    page_size: int | None
    descending: bool
    statuses: frozenset[str] | None
    ids: frozenset[str] | None
    start: dt.datetime | None
    end: dt.datetime | None
    #: Whether next links use ``$top``... rather than ``top``...
    dollar: bool
    #: The client's ordering and filter parameters, verbatim, for next links.
    carried: tuple[tuple[str, str], ...]

    def admits(self, row: _Row) -> bool:
        """Whether ``row`` passes every filter."""
        return (
            (self.statuses is None or row.status in self.statuses)
            and (self.ids is None or row.id in self.ids)
            and (self.start is None or row.created_at >= self.start)
            and (self.end is None or row.created_at <= self.end)
        )


@attrs.frozen
class _Row:
    """A listed item: what filtering and ordering need, and how to render it."""

    id: str
    created_at: dt.datetime
    status: str
    render: Callable[[], dict[str, Any]]


def _paging_keys(params: QueryParams) -> dict[str, str]:
    """Map each paging name used (``top``...) to the key the client spelt."""
    used: dict[str, str] = {}
    for key in params:
        name = key.removeprefix("$").lower()
        if name not in _PAGING:
            continue
        if name in used or len(params.getlist(key)) > 1:
            msg = f"{key} is given more than once."
            raise _bad_param(msg, key)
        used[name] = key
    return used


def _integer(params: QueryParams, key: str | None, low: int, high: int) -> int | None:
    if key is None:
        return None
    text = params[key]
    if not _DIGITS.fullmatch(text) or not low <= int(text) <= high:
        msg = f"{key} must be an integer from {low} to {high}, not {text!r}."
        raise _bad_param(msg, key)
    return int(text)


def _csv(params: QueryParams, *keys: str) -> tuple[str, list[str]] | None:
    present = [key for key in keys if key in params]
    if not present:
        return None
    values = [
        v.strip() for key in present for t in params.getlist(key) for v in t.split(",")
    ]
    return present[0], [v for v in values if v]


def _date(params: QueryParams, key: str) -> dt.datetime | None:
    text = params.get(key)
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        msg = f"{key} must be an ISO-8601 date-time, not {text!r}."
        raise _bad_param(msg, key) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _parse_listing(params: QueryParams, api: _Api) -> _Listing:
    keys = _paging_keys(params)
    top = _integer(params, keys.get("top"), 0, _INT32)
    skip = _integer(params, keys.get("skip"), 0, _INT32) or 0
    page_size = _integer(params, keys.get("maxpagesize"), 1, MAX_PAGE_SIZE)
    descending = True
    order_key = keys.get("orderby")
    if order_key is not None:
        match = _ORDER.fullmatch(params[order_key])
        if match is None:
            msg = "only createdDateTimeUtc asc or createdDateTimeUtc desc is supported."
            raise _bad_param(msg, order_key)
        descending = (match.group(1) or "asc").lower() == "desc"
    statuses = _csv(params, "statuses", "status")
    canonical = {status.lower(): status for status in STATUSES}
    if statuses is not None and any(s.lower() not in canonical for s in statuses[1]):
        msg = f"statuses must be among {', '.join(STATUSES)}."
        raise _bad_param(msg, statuses[0])
    ids = _csv(params, "ids")
    if ids is not None and not all(_UUID.fullmatch(i) for i in ids[1]):
        msg = "every id must be a UUID."
        raise _bad_param(msg, "ids")
    carried = tuple(
        (key, value)
        for key, value in params.multi_items()
        if key in _FILTERS or key == order_key
    )
    return _Listing(
        top=top,
        skip=skip,
        page_size=page_size,
        descending=descending,
        statuses=None
        if statuses is None
        else frozenset(canonical[s.lower()] for s in statuses[1]),
        ids=None if ids is None else frozenset(i.lower() for i in ids[1]),
        start=_date(params, "createdDateTimeUtcStart"),
        end=_date(params, "createdDateTimeUtcEnd"),
        dollar=any(k.startswith("$") for k in keys.values()) if keys else api.legacy,
        carried=carried,
    )


def _page(
    rows: Iterable[_Row], listing: _Listing, api: _Api, base: str, path: str
) -> dict[str, Any]:
    """Filter, order, skip, take ``top``, cut one page, and link the next one."""
    kept = sorted(
        (row for row in rows if listing.admits(row)),
        key=lambda row: (row.created_at, row.id),
        reverse=listing.descending,
    )
    wanted = kept[listing.skip :]
    if listing.top is not None:
        wanted = wanted[: listing.top]
    # The server page size is a ceiling: maxpagesize only ever makes it smaller.
    page = wanted[: min(listing.page_size or PAGE_SIZE, PAGE_SIZE)]
    body: dict[str, Any] = {"value": [row.render() for row in page]}
    left = len(wanted) - len(page)
    if left > 0:
        p = "$" if listing.dollar else ""
        query = [(f"{p}skip", str(listing.skip + len(page))), (f"{p}top", str(left))]
        if listing.page_size is not None:
            query.append((f"{p}maxpagesize", str(listing.page_size)))
        query.extend(listing.carried)
        body[api.next_field] = api.url(base, path, query)
    return body


# -- the service ----------------------------------------------------------------


class _Service:
    """The in-memory translator: batches by id, and the route handlers."""

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
        self.batches: dict[str, _Batch] = {}
        # One anchor: every timestamp is the anchor plus clock time, so an
        # injected fake clock moves the timestamps too.
        self.wall_anchor = dt.datetime.now(dt.UTC)
        self.clock_anchor = clock()

    def wall(self, clock_time: float) -> dt.datetime:
        return self.wall_anchor + dt.timedelta(seconds=clock_time - self.clock_anchor)

    def base_url(self, request: Request) -> str:
        return (self.public_base_url or str(request.base_url)).rstrip("/")

    def batch_of(self, request: Request) -> _Batch:
        batch_id: str = request.path_params["batch_id"]
        batch = self.batches.get(batch_id.lower())
        if batch is None:
            msg = f"The batch {batch_id} was not found."
            raise _AzureError(404, "ResourceNotFound", msg, "BatchNotFound")
        return batch

    # -- submit -----------------------------------------------------------------

    async def submit(self, request: Request) -> Response:
        api = _api_of(request)
        try:
            body = json.loads(await request.body())
        except ValueError:
            msg = "The request body is not valid JSON."
            raise _bad_body(msg) from None
        batch = self.plan(_parse_inputs(body), self.clock())
        self.batches[batch.id] = batch
        location = api.url(self.base_url(request), f"/batches/{batch.id}")
        return Response(status_code=202, headers={"Operation-Location": location})

    def plan(self, inputs: Sequence[_Input], now: float) -> _Batch:
        """Draw a batch's id, documents, durations and outcomes."""
        batch_id = _random_uuid(self.rng)
        waiting = self.rng.uniform(*NOT_STARTED_FOR)
        refusal = next((i.refusal for i in inputs if i.refusal is not None), None)
        created = self.wall(now)
        documents = () if refusal else self.plan_documents(inputs, now, waiting)
        timeline = Timeline.build(
            now,
            ((NOT_STARTED, waiting),),
            VALIDATION_FAILED if refusal else RUNNING,
            time_scale=self.time_scale,
        )
        return _Batch(
            id=batch_id,
            created_at=created,
            timeline=timeline,
            documents=documents,
            refusal=refusal,
        )

    def plan_documents(
        self, inputs: Sequence[_Input], now: float, waiting: float
    ) -> tuple[_Document, ...]:
        """Draw every (source document x target language) of a batch."""
        documents: list[_Document] = []
        for item in inputs:
            count = (
                self.rng.randint(*DEFAULT_DOCS) if item.count is None else item.count
            )
            for n, name in enumerate(item.names(count)):
                if item.failing is None:
                    fails = item.all_fail or self.rng.random() < FAILURE_RATE
                else:
                    fails = item.all_fail or n < item.failing
                for target_url, language in item.targets:
                    run = self.rng.uniform(*RUNNING_FOR)
                    timeline = Timeline.build(
                        now,
                        ((NOT_STARTED, waiting), (RUNNING, run)),
                        FAILED if fails else SUCCEEDED,
                        time_scale=self.time_scale,
                    )
                    # 1 µs apart: distinct creation times give listings one order.
                    created = self.wall(now) + dt.timedelta(microseconds=len(documents))
                    documents.append(
                        _Document(
                            id=_random_uuid(self.rng),
                            source_path=item.source_path(name),
                            target_path=item.target_path(target_url, name),
                            language=language,
                            created_at=created,
                            characters=self.rng.randint(200, 5000),
                            run_seconds=run * self.time_scale,
                            timeline=timeline,
                        )
                    )
        return tuple(documents)

    # -- bodies -----------------------------------------------------------------

    def document_body(self, document: _Document, now: float) -> dict[str, Any]:
        state = document.timeline.state_at(now)
        changed = max(
            document.created_at, self.wall(_changed_at(document.timeline, now))
        )
        body: dict[str, Any] = {"id": document.id}
        if state == SUCCEEDED:  # the translation exists only once written
            body["path"] = document.target_path
        body.update(
            {
                "sourcePath": document.source_path,
                "createdDateTimeUtc": _stamp(document.created_at),
                "lastActionDateTimeUtc": _stamp(changed),
                "status": state,
                "to": document.language,
                "progress": _progress(document, state, now),
                "characterCharged": document.characters if state == SUCCEEDED else 0,
            }
        )
        if state == FAILED:
            body["error"] = copy.deepcopy(_CORRUPTED)
        return body

    def batch_body(self, batch: _Batch, now: float) -> dict[str, Any]:
        states = [d.timeline.state_at(now) for d in batch.documents]
        status = _status(batch, states, now)
        changes = [_changed_at(d.timeline, now) for d in batch.documents]
        changed = self.wall(max([_changed_at(batch.timeline, now), *changes]))
        charged = sum(
            d.characters
            for d, state in zip(batch.documents, states, strict=True)
            if state == SUCCEEDED
        )
        body: dict[str, Any] = {
            "id": batch.id,
            "createdDateTimeUtc": _stamp(batch.created_at),
            "lastActionDateTimeUtc": _stamp(max(batch.created_at, changed)),
            "status": status,
            "summary": {
                "total": len(states),
                "failed": states.count(FAILED),
                "success": states.count(SUCCEEDED),
                "inProgress": states.count(RUNNING) + states.count(CANCELLING),
                "notYetStarted": states.count(NOT_STARTED),
                "cancelled": states.count(CANCELLED),
                "totalCharacterCharged": charged,
            },
        }
        if status == VALIDATION_FAILED and batch.refusal is not None:
            message = _REFUSALS[batch.refusal]
            body["error"] = _error_body("InvalidRequest", message, batch.refusal)[
                "error"
            ]
        elif status == FAILED:
            message = "Every document of the batch failed."
            body["error"] = _error_body("InvalidRequest", message, "CorruptedDocument")[
                "error"
            ]
        return body

    def polled(self, payload: dict[str, Any], batch: _Batch, now: float) -> Response:
        """Render a status GET: ``ETag`` always, ``Retry-After`` until the end."""
        states = [d.timeline.state_at(now) for d in batch.documents]
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"ETag": f'"{hashlib.sha256(body).hexdigest()[:32]}"'}
        if _status(batch, states, now) not in _TERMINAL:
            headers["Retry-After"] = str(round(self.time_scale))
        return Response(body, media_type=_JSON, headers=headers)

    # -- reads and cancel -------------------------------------------------------

    async def get_batch(self, request: Request) -> Response:
        _api_of(request)
        batch, now = self.batch_of(request), self.clock()
        return self.polled(self.batch_body(batch, now), batch, now)

    async def cancel(self, request: Request) -> Response:
        api = _api_of(request)
        batch, now = self.batch_of(request), self.clock()
        states = [d.timeline.state_at(now) for d in batch.documents]
        status = _status(batch, states, now)
        if status in _TERMINAL or status == CANCELLING:
            msg = f"The batch is {status} and can no longer be cancelled."
            raise _AzureError(
                api.refusal_status, "InvalidRequest", msg, "BatchNotCancellable"
            )
        done = now + self.rng.uniform(*CANCELLING_FOR) * self.time_scale
        documents = tuple(
            d
            if state in _TERMINAL  # finished documents are kept (and billed)
            else attrs.evolve(d, timeline=_cancelled(d.timeline, now, done))
            for d, state in zip(batch.documents, states, strict=True)
        )
        batch = attrs.evolve(
            batch, timeline=_cancelled(batch.timeline, now, done), documents=documents
        )
        self.batches[batch.id] = batch
        return _json(self.batch_body(batch, now))

    async def list_documents(self, request: Request) -> Response:
        api = _api_of(request)
        batch, now = self.batch_of(request), self.clock()
        listing = _parse_listing(request.query_params, api)

        def row(document: _Document) -> _Row:
            return _Row(
                document.id,
                document.created_at,
                document.timeline.state_at(now),
                lambda: self.document_body(document, now),
            )

        path = f"/batches/{batch.id}/documents"
        rows = [row(d) for d in batch.documents]
        page = _page(rows, listing, api, self.base_url(request), path)
        return self.polled(page, batch, now)

    async def get_document(self, request: Request) -> Response:
        _api_of(request)
        batch, now = self.batch_of(request), self.clock()
        wanted = str(request.path_params["document_id"]).lower()
        document = next((d for d in batch.documents if d.id == wanted), None)
        if document is None:
            msg = f"The document {wanted} was not found in batch {batch.id}."
            raise _AzureError(404, "ResourceNotFound", msg, "DocumentNotFound")
        return self.polled(self.document_body(document, now), batch, now)

    async def list_batches(self, request: Request) -> Response:
        api = _api_of(request)
        listing = _parse_listing(request.query_params, api)
        now = self.clock()

        def row(batch: _Batch) -> _Row:
            body = self.batch_body(batch, now)
            return _Row(batch.id, batch.created_at, body["status"], lambda: body)

        rows = [row(b) for b in self.batches.values()]
        return _json(_page(rows, listing, api, self.base_url(request), "/batches"))

    async def formats(self, request: Request) -> Response:
        _api_of(request)
        kind = request.query_params.get("type")
        if kind not in _FORMATS:
            msg = "type must be document or glossary."
            raise _bad_param(msg, "type")
        return _json({"value": _FORMATS[kind]})


# -- HTTP plumbing --------------------------------------------------------------


def _azure_error(_request: Request, exc: Exception) -> Response:
    if not isinstance(exc, _AzureError):  # pragma: no cover - only registered for it
        raise exc
    return exc.response()


def _http_error(_request: Request, exc: Exception) -> Response:
    """Render Starlette's own 404/405 (unknown route, wrong method) as Azure does."""
    if not isinstance(exc, HTTPException):  # pragma: no cover - only registered for it
        raise exc
    if exc.status_code == 405:
        msg = "The method is not allowed on this resource."
        error = _AzureError(405, "InvalidRequest", msg, "MethodNotAllowed")
        return error.response(exc.headers)
    msg = "The requested resource was not found."
    return _AzureError(exc.status_code, "ResourceNotFound", msg).response()


def _by_method(**handlers: _Handler) -> _Handler:
    """Return one endpoint that hands each method to its handler (HEAD as GET)."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return endpoint


class _RequireKey:
    """ASGI wrapper that refuses requests without the exact subscription key."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.api_key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"ocp-apim-subscription-key")
            # Constant-time, so the simulator does not teach a timing side channel.
            if given is None or not hmac.compare_digest(given, self.api_key):
                message = _MISSING_KEY if given is None else _WRONG_KEY
                body = {"error": {"code": "401", "message": message}}
                refusal = _json(body, 401, {"x-ms-error-code": "401"})
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _RequestIds:
    """ASGI wrapper that stamps every response with Azure's request-id headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - lifespan is off in serve()
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4()).encode()

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"apim-request-id", request_id),
                    (b"x-requestid", request_id),
                ]
            await send(message)

        await self.app(scope, receive, stamped)


def create_app(
    *,
    seed: int | None = None,
    time_scale: float = 1.0,
    api_key: str = "sim-key",
    faults: Faults | None = None,
    clock: Callable[[], float] = time.monotonic,
    public_base_url: str | None = None,
) -> FaultInjector:
    """Build the Azure Document Translation simulator, wrapped in the fault injector.

    Args:
        seed: Seeds ids, durations and the outcomes the client did not choose.
        time_scale: Multiplies every duration (``0.01`` runs 100 times faster).
        api_key: The only value of ``Ocp-Apim-Subscription-Key`` accepted.
        faults: Faults to inject; none by default.
        clock: Monotonic clock that drives the batch and document timelines.
        public_base_url: Base of every absolute URL emitted (``Operation-Location``,
            next links), instead of the request's own.

    Returns:
        The ASGI app; ``.counts`` tells which faults fired.
    """
    service = _Service(
        seed=seed, time_scale=time_scale, clock=clock, public_base_url=public_base_url
    )
    routes = [
        Route(f"{_NEW_PREFIX}/formats", service.formats, methods=["GET"]),
    ]
    for prefix in (*_V1_PREFIXES.values(), _NEW_PREFIX):
        batch = f"{prefix}/batches/{{batch_id}}"
        routes += [
            # One route per path, so that a 405 lists every allowed method.
            Route(
                f"{prefix}/batches",
                _by_method(POST=service.submit, GET=service.list_batches),
                methods=["GET", "POST"],
            ),
            Route(
                batch,
                _by_method(GET=service.get_batch, DELETE=service.cancel),
                methods=["GET", "DELETE"],
            ),
            Route(f"{batch}/documents", service.list_documents, methods=["GET"]),
            Route(
                f"{batch}/documents/{{document_id}}",
                service.get_document,
                methods=["GET"],
            ),
        ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, _AzureError: _azure_error},
    )
    return FaultInjector(
        _RequestIds(_RequireKey(app, api_key)), faults or Faults(), PROFILE, seed=seed
    )
