"""Azure translator simulator: constants, error objects, the fault profile, batch records."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import attrs
from starlette.responses import Response

from engine.simulators._base import FaultProfile, Timeline

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


def _without_query(url: str) -> str:
    # sourceUrl/targetUrl usually carry a SAS token: never echo it back.
    return urlsplit(url)._replace(query="", fragment="").geturl()


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
